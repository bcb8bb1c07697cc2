"""Reference solution: one port, two services.

TCP: every line (bytes up to and including b"\n") comes back upper-cased, on a connection
kept open until the client closes it. UDP: every datagram comes back reversed.
Each TCP connection and each datagram is announced as `client <address>`.
Usage: python3 -u server.py PORT
"""
import socket
import sys
import threading

MAX_LINE = 64 * 1024    # a longer line closes the connection
IDLE = 30               # seconds a silent connection is kept

print_lock = threading.Lock()   # threads printing at once would mix their lines


def log(line):
    with print_lock:
        print(line, flush=True)


def serve_tcp(conn, peer):
    log(f"client {peer[0]}")
    with conn:
        conn.settimeout(IDLE)
        reader = conn.makefile("rb")
        try:
            while True:
                line = reader.readline(MAX_LINE + 1)
                if not line:                # the client closed its side
                    break
                if len(line) > MAX_LINE:
                    break
                if not line.endswith(b"\n"):    # closed in the middle of a line
                    break
                conn.sendall(line.upper())
        except OSError:                     # timeout or reset: drop this client only
            pass


def serve_udp(sock):
    while True:
        data, peer = sock.recvfrom(65535)
        log(f"client {peer[0]}")
        try:
            sock.sendto(data[::-1], peer)
        except OSError:
            pass


def main():
    port = int(sys.argv[1])
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", port))
    tcp = socket.create_server(("0.0.0.0", port))
    threading.Thread(target=serve_udp, args=(udp,), daemon=True).start()
    while True:
        conn, peer = tcp.accept()
        threading.Thread(target=serve_tcp, args=(conn, peer), daemon=True).start()


main()
