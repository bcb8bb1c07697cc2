"""A FORGER (a cheating student's server, kept to prove the checks hold): it upper-cases
nothing; each read is answered with the canned answer to a line the lab file once showed
(or "HELLO"). It must score nothing for upper case."""
import socket
import sys
import threading

CANNED = {b"hello\n": b"HELLO\n", b"one\n": b"ONE\n", b"two\n": b"TWO\n", b"shout\n": b"SHOUT\n",
          b"mixed Case\n": b"MIXED CASE\n"}


def serve(conn, peer):
    print(f"client {peer[0]} connected", flush=True)
    with conn:
        while data := conn.recv(4096):
            conn.sendall(CANNED.get(data, b"HELLO\n"))


server = socket.create_server(("0.0.0.0", int(sys.argv[1])))
while True:
    threading.Thread(target=serve, args=server.accept(), daemon=True).start()
