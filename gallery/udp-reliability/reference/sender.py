"""The lab's own sender, against which the student's receiver is graded (it runs on a host
with none of the student's code, so what it prints is evidence):

  python3 sender.py HOST PORT SIZE [TRANSFERS]

Sends TRANSFERS files (1 unless told) of SIZE fresh random bytes at the same time, each from
a socket (a port) of its own, by the protocol of README.md. The end of each must be
acknowledged with the SHA-256 of that very file: no receiver can know it without receiving
every byte, in order, none twice. Prints "confirmed SIZE bytes" once per transfer when all
are confirmed, and exits 0; otherwise it exits 1, saying on stderr what went wrong."""
import hashlib
import os
import socket
import struct
import sys
import threading
import time

HEADER = struct.Struct("!cI")
DIGEST = 32
CHUNK = 1024
RETRY = 0.1        # seconds without an ack before sending again
TRIES = 50         # sends of one datagram before giving up (about 5 s)
MAX_REPLY = 256


class Failed(Exception):
    pass


def send_reliably(sock, address, seq, payload):
    """Send DATA seq until its ACK comes; what the ACK holds after its header."""
    datagram = HEADER.pack(b"D", seq) + payload
    for _ in range(TRIES):
        sock.sendto(datagram, address)
        deadline = time.monotonic() + RETRY
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                reply, peer = sock.recvfrom(MAX_REPLY)
            except socket.timeout:
                break
            except ConnectionRefusedError:
                continue
            if peer == address and len(reply) >= HEADER.size and HEADER.unpack_from(reply) == (b"A", seq):
                return reply[HEADER.size:]
    raise Failed(f"no ACK for DATA {seq} after {TRIES} sends ({TRIES * RETRY:g} s)")


def transfer(address, size):
    data = os.urandom(size)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
        for seq, chunk in enumerate(chunks):
            if send_reliably(sock, address, seq, chunk):
                raise Failed(f"the ACK of DATA {seq} is longer than 5 bytes (only the end's carries a SHA-256)")
        confirmed = send_reliably(sock, address, len(chunks), b"")
    finally:
        sock.close()
    expected = hashlib.sha256(data).hexdigest()
    if len(confirmed) != DIGEST:
        raise Failed(f"the end's ACK holds {len(confirmed)} bytes after its seq, not a {DIGEST}-byte SHA-256")
    if confirmed.hex() != expected:
        raise Failed(f"the end's ACK holds another SHA-256: the receiver kept other bytes than were sent "
                     f"(a duplicate written twice?): {confirmed.hex()[:12]}... for {expected[:12]}...")


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: sender.py HOST PORT SIZE [TRANSFERS]")
    address = (socket.gethostbyname(sys.argv[1]), int(sys.argv[2]))
    size, count = int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) == 5 else 1
    problems = []

    def run(number):
        try:
            transfer(address, size)
        except (Failed, OSError) as exc:
            problems.append(f"{exc} (transfer {number + 1} of {count})" if count > 1 else str(exc))

    threads = [threading.Thread(target=run, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if problems:
        sys.exit("; ".join(sorted(problems)))
    for _ in range(count):
        print(f"confirmed {size} bytes")


if __name__ == "__main__":
    main()
