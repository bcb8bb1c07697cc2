"""The lab's own client: it sends what nobody can know in advance (fresh random text), so a
server can pass only by doing the work, never by answering with canned data.

  checker.py upper HOST PORT   one random line, then the client closes its side: the
                               answer must be that line upper-cased, then the end
  checker.py lines HOST PORT   three random lines on one connection, each answered in
                               upper case before the next is sent
  checker.py split HOST PORT   one random line sent in two pieces, PAUSE apart: the
                               answer must be the whole line upper-cased
  checker.py udp HOST PORT     ten random datagrams, each answered reversed
Prints "<mode> ok" when every answer is right; otherwise exits 1, saying why on stderr.
"""
import random
import socket
import string
import sys
import time

PAUSE = 0.5         # long enough that the server surely reads the first piece on its own
TIMEOUT = 3
MAX_REPLY = 4096
DATAGRAMS = 10
LETTERS = string.ascii_lowercase + string.digits + " .,-"

chance = random.SystemRandom()


def random_line():
    """Lower-case words and digits, never empty, always changed by upper-casing."""
    words = ["".join(chance.choice(LETTERS) for _ in range(chance.randint(8, 24))), chance.choice("abcxyz")]
    return " ".join(words).strip().encode()


def fail(why):
    sys.exit(why)


def connect(host, port):
    conn = socket.create_connection((host, port), timeout=TIMEOUT)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def read_line(conn, sent):
    """The next line the server sends, or fail saying what came instead."""
    reply = b""
    try:
        while not reply.endswith(b"\n") and len(reply) < MAX_REPLY:
            chunk = conn.recv(MAX_REPLY)
            if not chunk:
                fail(f"sent {sent!r}, got {reply!r}, then the server closed the connection")
            reply += chunk
    except socket.timeout:
        fail(f"sent {sent!r}, got {reply!r}, then nothing for {TIMEOUT}s")
    except OSError as exc:
        fail(f"sent {sent!r}, got {reply!r}, then the connection broke ({exc.strerror})")
    return reply


def expect(reply, sent):
    if reply != sent.upper():
        fail(f"sent {sent!r}, got {reply!r}, expected {sent.upper()!r}")


def upper(host, port):
    line = random_line() + b"\n"
    with connect(host, port) as conn:
        conn.sendall(line)
        conn.shutdown(socket.SHUT_WR)
        reply = b""
        try:
            while len(reply) <= MAX_REPLY:
                chunk = conn.recv(MAX_REPLY)
                if not chunk:
                    break
                reply += chunk
        except socket.timeout:
            fail(f"sent {line!r} and closed, got {reply!r}, and the connection stayed open")
        except OSError as exc:
            fail(f"sent {line!r} and closed, got {reply!r}, then the connection broke ({exc.strerror})")
    expect(reply, line)


def lines(host, port):
    with connect(host, port) as conn:
        for _ in range(3):
            line = random_line() + b"\n"
            conn.sendall(line)
            expect(read_line(conn, line), line)


def split(host, port):
    line = random_line() + b"\n"
    cut = chance.randint(2, 6)
    with connect(host, port) as conn:
        conn.sendall(line[:cut])
        time.sleep(PAUSE)
        try:
            conn.sendall(line[cut:])
        except OSError as exc:
            fail(f"the server closed the connection after {line[:cut]!r} ({exc.strerror})")
        expect(read_line(conn, line), line)


def udp(host, port):
    address = (socket.gethostbyname(host), port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        for number in range(1, DATAGRAMS + 1):
            datagram = random_line()
            sock.sendto(datagram, address)
            try:
                reply, peer = sock.recvfrom(MAX_REPLY)
            except socket.timeout:
                fail(f"datagram {number} {datagram!r}: no answer within {TIMEOUT}s")
            except OSError as exc:
                fail(f"datagram {number} {datagram!r}: {exc.strerror}")
            if peer != address or reply != datagram[::-1]:
                fail(f"datagram {number} {datagram!r}: got {reply!r} from {peer[0]}, expected {datagram[::-1]!r}")


MODES = {"upper": upper, "lines": lines, "split": split, "udp": udp}

if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in MODES:
        sys.exit("usage: checker.py upper|lines|split|udp HOST PORT")
    try:
        MODES[sys.argv[1]](sys.argv[2], int(sys.argv[3]))
    except OSError as exc:
        sys.exit(f"cannot talk to the server: {exc}")
    print(f"{sys.argv[1]} ok")
