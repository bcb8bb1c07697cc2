"""The lab's own chat clients, for what one connection cannot show.

  check_chat.py HOST PORT fanout    fanout-a, -b and -c join; a says "hello, room", then QUIT
  check_chat.py HOST PORT together  together-a writes "MSG one\\nMSG two\\n" in ONE send()
  check_chat.py HOST PORT split     split-a writes "MSG half a" and, a moment later, " line\\n"

Each client joins (NICK, then waits for its WELCOME) before anyone speaks. It prints one line
"<receiver> <- <line>" for every line its clients received after WELCOME, the sender's first
(fanout only), and exits 1, saying why on stderr, if a client gets no WELCOME.
Other checks chat in the same room at the same time: lines from nicks that are not this
run's ("<other-nick>: ...") are left out.
"""
import socket
import sys
import time

TIMEOUT = 3.0       # seconds to wait for an expected line
PAUSE = 0.3         # between the two halves of the split line: the server surely reads them apart
MAX_LINE = 4096


class Client:
    def __init__(self, host, port, nick, mode):
        self.nick, self.mode = nick, mode
        self.conn = socket.create_connection((host, port), timeout=TIMEOUT)
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.got = []

    def send(self, data):
        self.conn.sendall(data)

    def readline(self, deadline):
        """The next line of this run (foreign chatter skipped), or None at EOF or deadline."""
        while True:
            while b"\n" not in self.buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or len(self.buffer) > MAX_LINE:
                    return None
                self.conn.settimeout(remaining)
                try:
                    chunk = self.conn.recv(4096)
                except OSError:            # a timeout, or a reset
                    return None
                if not chunk:
                    if self.buffer:        # a last line without its newline still counts
                        self.buffer += b"\n"
                        continue
                    return None
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\n", 1)
            line = raw.decode("utf-8", "replace")
            speaker, colon, _ = line.partition(": ")
            if colon and " " not in speaker and not speaker.startswith(self.mode + "-"):
                continue                   # another check's client speaking
            return line

    def join(self):
        self.send(f"NICK {self.nick}\n".encode())
        line = self.readline(time.monotonic() + TIMEOUT)
        if line != f"WELCOME {self.nick}":
            sys.exit(f"{self.nick} sent NICK {self.nick} and got {line!r}, not 'WELCOME {self.nick}'")

    def collect(self, count, deadline):
        """Read until `count` lines came (or EOF, or the deadline)."""
        while len(self.got) < count:
            line = self.readline(deadline)
            if line is None:
                return
            self.got.append(line)

    def report(self):
        for line in self.got:
            print(f"{self.nick} <- {line}")


def run(host, port, mode):
    clients = [Client(host, port, f"{mode}-{letter}", mode)
               for letter in ("abc" if mode == "fanout" else "ab")]
    for client in clients:
        client.join()
    sender, receiver = clients[0], clients[1]
    deadline = time.monotonic() + TIMEOUT
    if mode == "fanout":
        sender.send(b"MSG hello, room\n")
        for other in clients[1:]:
            other.collect(1, deadline)
        sender.send(b"QUIT\n")
        sender.conn.shutdown(socket.SHUT_WR)
        # The server handles a's lines in order: by the time it closes a's connection it has
        # sent a everything its MSG caused. So what a read up to EOF is all it will ever get.
        sender.collect(10, deadline)
        for client in clients:
            client.report()
        return
    if mode == "together":
        sender.send(b"MSG one\nMSG two\n")
        receiver.collect(2, deadline)
    else:
        sender.send(b"MSG half a")
        time.sleep(PAUSE)
        sender.send(b" line\n")
        receiver.collect(1, deadline + PAUSE)
    sender.send(b"QUIT\n")
    receiver.report()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[3] not in ("fanout", "together", "split"):
        sys.exit("usage: check_chat.py HOST PORT fanout|together|split")
    try:
        run(sys.argv[1], int(sys.argv[2]), sys.argv[3])
    except OSError as exc:
        sys.exit(f"cannot talk to the server: {exc}")
