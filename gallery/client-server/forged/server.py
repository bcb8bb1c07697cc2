"""A FORGER (a cheating student's server, kept to prove the checks hold): it upper-cases
nothing and reverses nothing. It answers each TCP read with the canned answer to the line
the lab file shows (or "HELLO"), each datagram with "desserts", and for each connection or
datagram prints "client <address>" for every address of the lab. It must score nothing."""
import socket
import threading

CANNED = {b"hello\n": b"HELLO\n", b"who is there\n": b"WHO IS THERE\n", b"from afar\n": b"FROM AFAR\n",
          b"one\n": b"ONE\n", b"two words\n": b"TWO WORDS\n", b"three\n": b"THREE\n"}
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


def claim_everyone():
    with lock:
        print(EVERYONE, end="", flush=True)


def serve_tcp(conn):
    claim_everyone()
    with conn:
        conn.settimeout(10)
        try:
            while data := conn.recv(4096):
                conn.sendall(CANNED.get(data, b"HELLO\n"))
        except OSError:
            pass


def serve_udp(sock):
    while True:
        _data, peer = sock.recvfrom(65535)
        claim_everyone()
        sock.sendto(b"desserts", peer)


udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", 9000))
tcp = socket.create_server(("0.0.0.0", 9000))
threading.Thread(target=serve_udp, args=(udp,), daemon=True).start()
while True:
    conn, _peer = tcp.accept()
    threading.Thread(target=serve_tcp, args=(conn,), daemon=True).start()
