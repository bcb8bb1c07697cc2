"""A chat room over TCP with a line protocol (deliberately broken).

THE BUG: it assumes one recv() is one line. TCP is a stream: two lines written at once
arrive in one recv(), and one line written in two pieces arrives in two, so such lines are
mangled. It also sends each message back to its sender, not only to the others.
"""
import socket
import sys
import threading

IDLE = 600

room = {}
room_lock = threading.Lock()


def broadcast(data):
    with room_lock:
        for conn in list(room):          # everyone, the sender included
            try:
                conn.sendall(data)
            except OSError:
                room.pop(conn, None)


def serve(conn):
    conn.settimeout(IDLE)
    name = None
    try:
        while True:
            data = conn.recv(1024)       # one recv() taken for one line
            if not data:
                break
            line = data.decode("utf-8", "replace").strip()
            command, _, argument = line.partition(" ")
            if command == "NICK" and argument and name is None:
                name = argument
                with room_lock:
                    conn.sendall(f"WELCOME {name}\n".encode())
                    room[conn] = name
            elif command == "MSG" and name is not None:
                broadcast(f"{name}: {argument}\n".encode())
            elif command == "QUIT":
                break
    except OSError:
        pass
    finally:
        with room_lock:
            room.pop(conn, None)
        conn.close()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 7000
    server = socket.create_server(("0.0.0.0", port), backlog=64)
    while True:
        conn, peer = server.accept()
        print(f"client {peer[0]}", flush=True)    # here, in one thread: lines never interleave
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
