"""Stop-and-wait receiver: python3 receiver.py PORT OUTDIR

DATA is b"D" + seq (4 bytes, big-endian) + 0..1024 bytes; an empty one ends the file.
Each DATA is answered with ACK b"A" + the same seq; the ACK of the empty DATA also carries
the 32-byte SHA-256 of the whole file as received. Transfers are told apart by the
sender's (address, port); each starts at seq 0 and is written to OUTDIR/ADDRESS-PORT.bin."""
import hashlib
import os
import socket
import struct
import sys
import time

HEADER = struct.Struct("!cI")
MAX_CHUNK = 1024
MAX_FILE = 16 << 20        # bytes one transfer may hold
MAX_SESSIONS = 256         # transfers in progress at once
IDLE = 60.0                # seconds after which an unfinished transfer is forgotten


class Session:
    def __init__(self, path):
        self.path = path
        self.expected = 0          # the next seq to accept
        self.size = 0
        self.digest = hashlib.sha256()
        self.out = open(path, "wb")
        self.finished = None       # the file's SHA-256 (bytes) once its end has come
        self.seen = time.monotonic()

    def close(self):
        if not self.out.closed:
            self.out.close()


def main():
    port, outdir = int(sys.argv[1]), sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    sessions = {}
    while True:
        data, peer = sock.recvfrom(2048)
        if len(data) < HEADER.size or data[:1] != b"D" or len(data) > HEADER.size + MAX_CHUNK:
            continue                                   # not ours: ignore it
        _, seq = HEADER.unpack_from(data)
        payload = data[HEADER.size:]
        now = time.monotonic()
        session = sessions.get(peer)
        if seq == 0 and (session is None or session.finished):
            if session is None and len(sessions) >= MAX_SESSIONS:
                for key in [k for k, s in sessions.items() if s.finished or now - s.seen > IDLE]:
                    sessions.pop(key).close()
                if len(sessions) >= MAX_SESSIONS:
                    continue
            if session is not None:
                session.close()
            session = sessions[peer] = Session(os.path.join(outdir, f"{peer[0]}-{peer[1]}.bin"))
        if session is None or seq > session.expected:
            continue                                   # not a transfer we know: no ack
        session.seen = now
        if seq == session.expected and not session.finished:
            if payload and session.size + len(payload) <= MAX_FILE:
                session.out.write(payload)
                session.digest.update(payload)
                session.size += len(payload)
            elif not payload:
                session.close()
                session.finished = session.digest.digest()
                print(f"received {session.size} bytes sha256 {session.finished.hex()} from {peer[0]}",
                      flush=True)
            else:
                continue                               # too large: never acknowledged
            session.expected += 1
        # a new chunk, or a duplicate (its ack was lost): acknowledge it either way, and the
        # end with what was received, so that the sender knows the file arrived intact
        ack = HEADER.pack(b"A", seq)
        if session.finished and seq == session.expected - 1:
            ack += session.finished
        sock.sendto(ack, peer)


if __name__ == "__main__":
    main()
