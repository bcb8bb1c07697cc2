"""The student's exercise: a TCP server that answers each line in upper case."""
import socket
import sys
import threading


def serve(conn, peer):
    print(f"client {peer[0]} connected", flush=True)
    with conn:
        for line in conn.makefile("rb"):
            conn.sendall(line.upper())


server = socket.create_server(("0.0.0.0", int(sys.argv[1])))
while True:
    threading.Thread(target=serve, args=server.accept(), daemon=True).start()
