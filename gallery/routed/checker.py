"""The lab's own client: python3 checker.py HOST PORT

On one connection it sends a fresh random line, which must come back exactly, then TIME,
which must be answered with the current UTC time (YYYY-MM-DDTHH:MM:SSZ, within a few
seconds of this host's clock: the lab's hosts share one). Nothing it sends can be known in
advance, so canned answers fail. Prints "served ok", or exits 1 saying why on stderr.
"""
import calendar
import random
import socket
import string
import sys
import time

TIMEOUT = 3
MAX_LINE = 1024
SLACK = 3          # seconds the server's time may differ from ours

chance = random.SystemRandom()


def read_line(conn, sent):
    reply = b""
    try:
        while not reply.endswith(b"\n") and len(reply) <= MAX_LINE:
            chunk = conn.recv(MAX_LINE)
            if not chunk:
                sys.exit(f"sent {sent!r}, got {reply!r}, then the server closed the connection")
            reply += chunk
    except socket.timeout:
        sys.exit(f"sent {sent!r}, got {reply!r}, then nothing for {TIMEOUT}s")
    return reply


def main(host, port):
    line = ("".join(chance.choice(string.ascii_letters + string.digits + " ") for _ in range(20)) + "\n").encode()
    with socket.create_connection((host, port), timeout=TIMEOUT) as conn:
        conn.sendall(line)
        reply = read_line(conn, line)
        if reply != line:
            sys.exit(f"sent {line!r}, got {reply!r}")
        conn.sendall(b"TIME\n")
        reply = read_line(conn, b"TIME\n")
    try:
        said = calendar.timegm(time.strptime(reply.decode(), "%Y-%m-%dT%H:%M:%SZ\n"))
    except (ValueError, UnicodeDecodeError):
        sys.exit(f"sent b'TIME\\n', got {reply!r}, expected YYYY-MM-DDTHH:MM:SSZ")
    if abs(said - time.time()) > SLACK:
        sys.exit(f"sent b'TIME\\n', got {reply!r}, but it is {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
    print("served ok")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: checker.py HOST PORT")
    try:
        main(sys.argv[1], int(sys.argv[2]))
    except OSError as exc:
        sys.exit(f"cannot talk to the server: {exc}")
