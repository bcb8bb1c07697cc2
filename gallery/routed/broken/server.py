# BROKEN on purpose (the student's bug): the server binds to 127.0.0.1, the loopback
# interface, so only programs on the server host itself can connect; every client on the
# lab's networks, even on the server's own subnet, is refused, though the network routes fine.
"""Time-or-echo server: python3 server.py PORT

Listens on TCP PORT on every address. For each line a client sends: `TIME` is answered
with the UTC time as YYYY-MM-DDTHH:MM:SSZ, any other line is sent back as it came.
Prints `client ADDRESS` for each connection."""
import socket
import sys
import threading
import time

MAX_LINE = 1024      # bytes in one request line
IDLE = 30            # seconds a connection may stay silent


def serve(conn):
    with conn:
        conn.settimeout(IDLE)
        reader = conn.makefile("rb")
        try:
            while line := reader.readline(MAX_LINE + 1):
                if not line.endswith(b"\n"):
                    break                                  # too long, or cut off: hang up
                if line.rstrip(b"\r\n") == b"TIME":
                    line = time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()).encode()
                conn.sendall(line)
        except OSError:                                    # a timeout or a reset
            pass


def main():
    server = socket.create_server(("127.0.0.1", int(sys.argv[1])), backlog=64)
    while True:
        conn, peer = server.accept()
        print(f"client {peer[0]}", flush=True)    # here, one thread: lines never interleave
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
