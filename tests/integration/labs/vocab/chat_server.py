"""A student's line-protocol server (the kind of exercise labctl grades).

HELLO name -> WELCOME name | MSG text -> OK | SILENT -> no answer | RESET -> connection
reset | BYE -> BYE and close. Logs one line per command: "served <client address> <command>".
"""
import socket
import struct
import threading


def serve(conn: socket.socket, peer: tuple) -> None:
    with conn:
        for line in conn.makefile("rb"):
            command, _, rest = line.decode().strip().partition(" ")
            print(f"served {peer[0]} {command}", flush=True)
            if command == "HELLO":
                conn.sendall(f"WELCOME {rest}\n".encode())
            elif command == "MSG":
                conn.sendall(b"OK\n")
            elif command == "RESET":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            elif command == "BYE":
                conn.sendall(b"BYE\n")
                return


server = socket.create_server(("0.0.0.0", 7000))
while True:
    connection, address = server.accept()
    threading.Thread(target=serve, args=(connection, address), daemon=True).start()
