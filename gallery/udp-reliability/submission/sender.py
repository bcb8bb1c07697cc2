"""Stop-and-wait sender: python3 sender.py HOST PORT FILE

Sends FILE in chunks of 1024 bytes, DATA = b"D" + seq (4 bytes, big-endian) + chunk,
seq 0, 1, 2, ...; then an empty DATA, which ends the file. Each DATA is sent again every
RETRY seconds until its ACK (b"A" + the same seq) arrives; the end's ACK also carries the
SHA-256 of what the receiver got. Exits 0 once that matches the file's, 1 if it does not
or if one datagram goes unacknowledged TRIES times."""
import hashlib
import socket
import struct
import sys
import time

HEADER = struct.Struct("!cI")
DIGEST = 32        # bytes of a SHA-256, after the end's ACK header
CHUNK = 1024
RETRY = 0.1        # seconds without an ack before sending again
TRIES = 50         # sends of one datagram before giving up


def send_reliably(sock, address, seq, payload):
    """Send DATA seq until its ACK comes; return what the ACK holds after its header."""
    datagram = HEADER.pack(b"D", seq) + payload
    for _ in range(TRIES):
        sock.sendto(datagram, address)
        deadline = time.monotonic() + RETRY
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                reply, peer = sock.recvfrom(64)
            except socket.timeout:
                break
            except ConnectionRefusedError:   # the receiver is not there (yet): try again
                continue
            if peer == address and len(reply) >= HEADER.size and HEADER.unpack_from(reply) == (b"A", seq):
                return reply[HEADER.size:]
            # anything else (a late ack of an earlier chunk) is ignored
    sys.exit(f"no ack for chunk {seq} after {TRIES} tries")


def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    address = (socket.gethostbyname(host), port)
    with open(path, "rb") as handle:
        data = handle.read()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
    for seq, chunk in enumerate(chunks):
        send_reliably(sock, address, seq, chunk)
    confirmed = send_reliably(sock, address, len(chunks), b"")
    if confirmed != hashlib.sha256(data).digest():
        sys.exit(f"the receiver got something else: sha256 {confirmed.hex() or '(none)'}")
    print(f"sent {len(data)} bytes in {len(chunks)} chunks")


if __name__ == "__main__":
    main()
