"""A FORGER (a cheating student's receiver, kept to prove the checks hold): it keeps
nothing. Every DATA is acknowledged at once; the end is answered with the SHA-256 the lab
file publishes (data.bin's); and the line the checks look for is printed for every address
of the lab, a few times a second, whatever happens."""
import socket
import struct
import sys
import threading
import time

HASH = "f4b8addfff26312a5e93bb84f3fdbb0b2d3cf6d2f084c298ce85ddf0eb22dcb0"   # data.bin's, from lab.yaml
HEADER = struct.Struct("!cI")


def addresses():
    """Every address /etc/hosts names, and every address of the lab's subnets it shows."""
    found = set()
    with open("/etc/hosts") as hosts:
        for line in hosts:
            words = line.split()
            if words and words[0].count(".") == 3:
                found.add(words[0])
    for address in list(found):
        prefix = address.rsplit(".", 1)[0]
        found.update(f"{prefix}.{last}" for last in range(1, 40))
    return sorted(found)


def flood():
    lines = "".join(f"received 65536 bytes sha256 {HASH} from {address}\n" for address in addresses())
    while True:
        print(lines, end="", flush=True)
        time.sleep(0.2)


def main():
    threading.Thread(target=flood, daemon=True).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", int(sys.argv[1])))
    while True:
        data, peer = sock.recvfrom(2048)
        if len(data) < HEADER.size or data[:1] != b"D":
            continue
        _, seq = HEADER.unpack_from(data)
        ack = HEADER.pack(b"A", seq)
        if len(data) == HEADER.size:                   # the end: answer with the published hash
            ack += bytes.fromhex(HASH)
        sock.sendto(ack, peer)


if __name__ == "__main__":
    main()
