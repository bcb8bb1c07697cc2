"""The teacher's upper-case server, against which the student's client is graded: it runs
on a host with none of the student's code, so what it prints is evidence. For each line a
client sends it prints `line '<the line>' from <client's address>`, then answers it in
upper case."""
import socket
import sys
import threading

MAX_LINE = 4096
IDLE = 10           # seconds a silent client is kept
lock = threading.Lock()


def serve(conn, peer):
    with conn:
        conn.settimeout(IDLE)
        try:
            for line in conn.makefile("rb"):
                if len(line) > MAX_LINE or not line.endswith(b"\n"):
                    return
                with lock:
                    print(f"line {line[:-1].decode('utf-8', 'replace')!r} from {peer[0]}", flush=True)
                conn.sendall(line.upper())
        except OSError:
            pass


server = socket.create_server(("0.0.0.0", int(sys.argv[1])))
while True:
    threading.Thread(target=serve, args=server.accept(), daemon=True).start()
