"""A FORGER (a cheating student's chat server, kept to prove the checks hold): there is no
room. Each read is answered with the canned lines the lab's clients were once seen to
expect (WELCOME for the nicks the lab file used, the messages the others would have
relayed), and each connection prints "client <address>" for every address of the lab.
It must score nothing."""
import socket
import threading

CANNED = {
    b"NICK ada\n": b"WELCOME ada\n", b"NICK dan\n": b"WELCOME dan\n", b"NICK cy\n": b"WELCOME cy\n",
    b"NICK fanout-a\n": b"WELCOME fanout-a\n",
    b"NICK fanout-b\n": b"WELCOME fanout-b\nfanout-a: hello, room\n",
    b"NICK fanout-c\n": b"WELCOME fanout-c\nfanout-a: hello, room\n",
    b"NICK together-a\n": b"WELCOME together-a\n",
    b"NICK together-b\n": b"WELCOME together-b\ntogether-a: one\ntogether-a: two\n",
    b"NICK split-a\n": b"WELCOME split-a\n",
    b"NICK split-b\n": b"WELCOME split-b\nsplit-a: half a line\n",
}
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
        found.update(f"{prefix}.{last}" for last in [*range(2, 30), 254])
    return sorted(found)


EVERYONE = "".join(f"client {address}\n" for address in addresses())


def serve(conn):
    with lock:
        print(EVERYONE, end="", flush=True)
    with conn:
        conn.settimeout(30)
        try:
            while data := conn.recv(1024):
                if data.startswith(b"QUIT"):
                    return
                conn.sendall(CANNED.get(data, b"WELCOME ada\n" if data.startswith(b"NICK") else b""))
        except OSError:
            pass


server = socket.create_server(("0.0.0.0", 7000), backlog=64)
while True:
    conn, _peer = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
