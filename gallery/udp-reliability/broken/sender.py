"""BROKEN on purpose (the student's bug): each chunk is sent ONCE, then the sender blocks
in recvfrom() for its ack with no timeout and never retransmits. On a clean link that
works; under loss the first lost chunk or ack leaves it waiting forever.

Stop-and-wait sender: python3 sender.py HOST PORT FILE"""
import hashlib
import socket
import struct
import sys

HEADER = struct.Struct("!cI")
CHUNK = 1024


def send_reliably(sock, address, seq, payload):
    sock.sendto(HEADER.pack(b"D", seq) + payload, address)
    while True:
        reply, peer = sock.recvfrom(64)            # bug: no timeout, no retransmission
        if peer == address and len(reply) >= HEADER.size and HEADER.unpack_from(reply) == (b"A", seq):
            return reply[HEADER.size:]


def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    address = (socket.gethostbyname(host), port)
    with open(path, "rb") as handle:
        data = handle.read()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
    for seq, chunk in enumerate(chunks):
        send_reliably(sock, address, seq, chunk)
    if send_reliably(sock, address, len(chunks), b"") != hashlib.sha256(data).digest():
        sys.exit("the receiver got something else")
    print(f"sent {len(data)} bytes in {len(chunks)} chunks")


if __name__ == "__main__":
    main()
