"""A FORGER (a cheating student's server, kept to prove the checks hold). It listens on
every address, so every client reaches it, but it echoes nothing and keeps no clock: each
read is answered with the canned line the lab file once showed for it (or the time it was
written), and each connection prints "client <address>" for every address of the lab.
It must score nothing for being served."""
import socket
import threading

CANNED = {b"hello from a\n": b"hello from a\n", b"hello from b\n": b"hello from b\n",
          b"hello from c\n": b"hello from c\n"}
WRITTEN = b"2024-05-01T12:00:00Z\n"
lock = threading.Lock()


def addresses():
    """Every address /etc/hosts names, and the first few of each subnet it shows."""
    found = set()
    with open("/etc/hosts") as hosts:
        for line in hosts:
            words = line.split()
            if words and words[0].count(".") == 3 and not words[0].startswith("127."):
                found.add(words[0])
    for address in list(found):
        prefix = address.rsplit(".", 1)[0]
        found.update(f"{prefix}.{last}" for last in [*range(2, 30), 253, 254])
    return sorted(found)


EVERYONE = "".join(f"client {address}\n" for address in addresses())


def serve(conn):
    with lock:
        print(EVERYONE, end="", flush=True)
    with conn:
        conn.settimeout(10)
        try:
            while data := conn.recv(1024):
                conn.sendall(CANNED.get(data, WRITTEN))
        except OSError:
            pass


server = socket.create_server(("0.0.0.0", 9000), backlog=64)
while True:
    conn, _peer = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
