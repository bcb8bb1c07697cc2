"""A chat room over TCP with a line protocol (reference solution).

  NICK <name>\n  ->  WELCOME <name>\n, and the client is in the room
  MSG <text>\n   ->  "<name>: <text>\n" to every OTHER client in the room
  QUIT\n         ->  the server closes the connection

Bytes arrive as TCP delivers them, not as the client wrote them: each connection keeps a
buffer and handles a line only once its newline has arrived.
"""
import socket
import sys
import threading

MAX_LINE = 1024      # bytes in one line, newline included; a longer one closes the connection
IDLE = 600           # seconds a client may stay silent, and a send may block, before it is dropped

room = {}                    # connection -> name, for clients that sent NICK
room_lock = threading.Lock() # held while the room changes or a message goes out


def broadcast(sender, data):
    with room_lock:
        for conn in list(room):
            if conn is sender:
                continue
            try:
                conn.sendall(data)
            except OSError:          # gone or stuck: it leaves the room
                room.pop(conn, None)


def lines(conn):
    """Yield each complete line (without its newline) as it arrives, however TCP cut it."""
    buffer = b""
    while True:
        while b"\n" not in buffer:
            if len(buffer) >= MAX_LINE:
                return
            chunk = conn.recv(4096)
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        if len(line) >= MAX_LINE:
            return
        yield line.rstrip(b"\r").decode("utf-8", "replace")


def serve(conn):
    conn.settimeout(IDLE)
    name = None
    try:
        for line in lines(conn):
            command, _, argument = line.partition(" ")
            if command == "NICK" and argument and " " not in argument and name is None:
                name = argument
                with room_lock:      # WELCOME goes out before any message can reach it
                    conn.sendall(f"WELCOME {name}\n".encode())
                    room[conn] = name
            elif command == "MSG" and name is not None:
                broadcast(conn, f"{name}: {argument}\n".encode())
            elif command == "QUIT":
                break
            else:
                with room_lock:
                    conn.sendall(b"ERROR expected NICK <name> once, then MSG <text> or QUIT\n")
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
