"""The lab's own chat clients. Every run draws a fresh random TAG and puts it in what its
clients say, so a server can pass only by relaying what they really sent, never by
answering with canned lines.

  check_chat.py HOST PORT nick      one client joins as "ada-TAG", expects "WELCOME ada-TAG",
                                    sends QUIT and expects the server to close
  check_chat.py HOST PORT fanout    fanout-a, -b and -c join; a says "hello, room TAG", then QUIT
  check_chat.py HOST PORT together  together-a writes "MSG one TAG\\nMSG two TAG\\n" in ONE send()
  check_chat.py HOST PORT split     split-a writes "MSG half a" and, a moment later, " line TAG\\n"

Each client joins (NICK, then waits for its WELCOME) before anyone speaks. The nick mode
prints "nick ok"; the others print one line "<receiver> <- <line>" for every line their
clients received after WELCOME, the sender's first (fanout only), with this run's TAG shown
as "#" (and a "#" the server sent shown as "##", so no canned line can pass for it). A
client that gets no WELCOME makes it exit 1, saying why on stderr. Lines from nicks that
are not this run's ("<other-nick>: ...") are left out.
"""
import random
import socket
import string
import sys
import time

TIMEOUT = 3.0       # seconds to wait for an expected line
PAUSE = 0.3         # between the two halves of the split line: the server surely reads them apart
MAX_LINE = 4096
TAG = "".join(random.SystemRandom().choice(string.ascii_lowercase + string.digits) for _ in range(10))


def shown(line):
    return line.replace("#", "##").replace(TAG, "#")


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
                continue                   # another client speaking
            return line

    def join(self):
        self.send(f"NICK {self.nick}\n".encode())
        line = self.readline(time.monotonic() + TIMEOUT)
        if line != f"WELCOME {self.nick}":
            got = "no line" if line is None else repr(shown(line))
            sys.exit(f"{shown(self.nick)} sent NICK {shown(self.nick)} and got {got}, not 'WELCOME {shown(self.nick)}'")

    def collect(self, count, deadline):
        """Read until `count` lines came (or EOF, or the deadline)."""
        while len(self.got) < count:
            line = self.readline(deadline)
            if line is None:
                return
            self.got.append(line)

    def report(self):
        for line in self.got:
            print(f"{self.nick} <- {shown(line)}")


def nick(host, port):
    client = Client(host, port, f"ada-{TAG}", "nick")
    client.join()
    client.send(b"QUIT\n")
    deadline = time.monotonic() + TIMEOUT
    while client.readline(deadline) is not None:   # lines after WELCOME, if any, are ignored
        pass
    if time.monotonic() >= deadline:
        sys.exit(f"the connection was still open {TIMEOUT:g}s after QUIT")
    print("nick ok")


def run(host, port, mode):
    clients = [Client(host, port, f"{mode}-{letter}", mode)
               for letter in ("abc" if mode == "fanout" else "ab")]
    for client in clients:
        client.join()
    sender, receiver = clients[0], clients[1]
    deadline = time.monotonic() + TIMEOUT
    if mode == "fanout":
        sender.send(f"MSG hello, room {TAG}\n".encode())
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
        sender.send(f"MSG one {TAG}\nMSG two {TAG}\n".encode())
        receiver.collect(2, deadline)
    else:
        sender.send(b"MSG half a")
        time.sleep(PAUSE)
        sender.send(f" line {TAG}\n".encode())
        receiver.collect(1, deadline + PAUSE)
    sender.send(b"QUIT\n")
    receiver.report()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[3] not in ("nick", "fanout", "together", "split"):
        sys.exit("usage: check_chat.py HOST PORT nick|fanout|together|split")
    try:
        if sys.argv[3] == "nick":
            nick(sys.argv[1], int(sys.argv[2]))
        else:
            run(sys.argv[1], int(sys.argv[2]), sys.argv[3])
    except OSError as exc:
        sys.exit(f"cannot talk to the server: {exc}")
