"""BROKEN on purpose. The bug: the TCP side answers only what the first recv() returned,
then closes the connection. One short line works; a second line on the same connection,
or a line that arrives in two pieces, does not. (UDP is correct.)
Usage: python3 -u server.py PORT
"""
import socket
import sys
import threading

print_lock = threading.Lock()   # threads printing at once would mix their lines


def log(line):
    with print_lock:
        print(line, flush=True)


def serve_tcp(conn, peer):
    log(f"client {peer[0]}")
    with conn:
        conn.settimeout(30)
        try:
            data = conn.recv(1024)          # BUG: one recv() is not one line, nor all of them
            conn.sendall(data.upper())
        except OSError:
            pass


def serve_udp(sock):
    while True:
        data, peer = sock.recvfrom(65535)
        log(f"client {peer[0]}")
        sock.sendto(data[::-1], peer)


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
