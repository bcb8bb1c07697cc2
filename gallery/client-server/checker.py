"""The lab's own client for what a single check cannot say.

  checker.py split HOST PORT   sends b"hel", waits, then b"lo\n" on one connection and
                               prints the line that comes back (it should be HELLO).
Exits 1, saying why on stderr, when the server closes or stays silent.
"""
import socket
import sys
import time

PAUSE = 0.5         # long enough that the server surely reads b"hel" on its own
TIMEOUT = 3
MAX_REPLY = 4096


def split(host, port):
    with socket.create_connection((host, port), timeout=TIMEOUT) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sendall(b"hel")
        time.sleep(PAUSE)
        try:
            conn.sendall(b"lo\n")
        except OSError as exc:
            sys.exit(f"the server closed the connection after b'hel' ({exc.strerror})")
        reply = b""
        try:
            while not reply.endswith(b"\n") and len(reply) < MAX_REPLY:
                chunk = conn.recv(MAX_REPLY)
                if not chunk:
                    break
                reply += chunk
        except socket.timeout:
            pass
        except OSError as exc:
            print(reply.decode("utf-8", "replace"), end="")
            sys.exit(f"the connection broke after {reply!r} ({exc.strerror})")
    print(reply.decode("utf-8", "replace"), end="")
    if not reply.endswith(b"\n"):
        sys.exit(f"got {reply!r}, then the server closed or went silent before the newline")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "split":
        sys.exit("usage: checker.py split HOST PORT")
    split(sys.argv[2], int(sys.argv[3]))
