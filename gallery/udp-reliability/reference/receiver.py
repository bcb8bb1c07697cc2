"""The lab's own receiver, against which the student's sender is graded (it runs on a host
with none of the student's code, so what it prints is evidence):

  python3 -u receiver.py PORT

Speaks the protocol of README.md. For each file whose end arrives it prints, once,

  received <bytes> bytes sha256 <hex> from <sender's address>

which it can only print if every chunk came, in order, none of them twice."""
import hashlib
import socket
import struct
import sys
import time

HEADER = struct.Struct("!cI")
MAX_CHUNK = 1024
MAX_FILE = 16 << 20        # bytes one transfer may hold
MAX_SESSIONS = 256         # transfers kept at once
IDLE = 60.0                # seconds after which a silent transfer is forgotten


class Session:
    def __init__(self):
        self.expected = 0          # the next seq to accept
        self.size = 0
        self.digest = hashlib.sha256()
        self.finished = None       # the file's SHA-256 once its end came
        self.seen = time.monotonic()


def forget_old(sessions, now):
    for key in [key for key, session in sessions.items() if session.finished or now - session.seen > IDLE]:
        del sessions[key]


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", int(sys.argv[1])))
    sessions = {}
    while True:
        data, peer = sock.recvfrom(2048)
        if len(data) < HEADER.size or data[:1] != b"D" or len(data) > HEADER.size + MAX_CHUNK:
            continue
        _, seq = HEADER.unpack_from(data)
        payload = data[HEADER.size:]
        now = time.monotonic()
        session = sessions.get(peer)
        if seq == 0 and (session is None or session.finished):
            if session is None and len(sessions) >= MAX_SESSIONS:
                forget_old(sessions, now)
                if len(sessions) >= MAX_SESSIONS:
                    continue
            session = sessions[peer] = Session()
        if session is None or seq > session.expected:
            continue
        session.seen = now
        if seq == session.expected and not session.finished:
            if payload and session.size + len(payload) <= MAX_FILE:
                session.digest.update(payload)
                session.size += len(payload)
            elif not payload:
                session.finished = session.digest.digest()
                print(f"received {session.size} bytes sha256 {session.finished.hex()} from {peer[0]}",
                      flush=True)
            else:
                continue
            session.expected += 1
        ack = HEADER.pack(b"A", seq)
        if session.finished and seq == session.expected - 1:
            ack += session.finished
        sock.sendto(ack, peer)


if __name__ == "__main__":
    main()
