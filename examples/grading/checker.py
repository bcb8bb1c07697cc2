"""The teacher's client: python3 checker.py HOST PORT LINES

Sends LINES fresh random lines on one connection, each answered before the next is sent,
and expects each back in upper case: nothing it sends can be known in advance, so canned
answers fail. Prints "upper case ok", or exits 1 saying why on stderr."""
import random
import socket
import string
import sys

TIMEOUT = 3
MAX_LINE = 4096

chance = random.SystemRandom()


def main(host, port, count):
    with socket.create_connection((host, port), timeout=TIMEOUT) as conn:
        reader = conn.makefile("rb")
        for _ in range(count):
            line = ("".join(chance.choice(string.ascii_lowercase + " ") for _ in range(16)) + "x\n").encode()
            conn.sendall(line)
            reply = reader.readline(MAX_LINE)
            if reply != line.upper():
                sys.exit(f"sent {line!r}, got {reply!r}, expected {line.upper()!r}")
    print("upper case ok")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: checker.py HOST PORT LINES")
    try:
        main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    except OSError as exc:
        sys.exit(f"cannot talk to the server: {exc}")
