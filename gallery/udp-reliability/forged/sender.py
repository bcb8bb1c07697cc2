"""A FORGER (a cheating student's sender, kept to prove the checks hold): it sends one
datagram, prints the line and the hash the checks publish, twice, for every address in
/etc/hosts, and exits 0, without delivering the file. What it prints is its own say-so:
the checks read what the lab's receiver, on a host of its own, prints."""
import socket
import sys

HASH = "f4b8addfff26312a5e93bb84f3fdbb0b2d3cf6d2f084c298ce85ddf0eb22dcb0"   # data.bin's, from lab.yaml

host, port = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.sendto(b"D\x00\x00\x00\x00" + b"x" * 1024, (host, port))
with open("/etc/hosts") as hosts:
    addresses = [line.split()[0] for line in hosts if line.split() and line.split()[0].count(".") == 3]
for _ in range(2):
    for address in addresses:
        print(f"received 65536 bytes sha256 {HASH} from {address}", flush=True)
print("sent 65536 bytes in 64 chunks")
