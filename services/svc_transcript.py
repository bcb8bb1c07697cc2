"""The built-in servers' transcript (services/labsvc.py): one JSON line per exchange served.

Each line is appended to the transcript file (/var/log/labctl/transcript.jsonl) and
repeated on standard output after "transcript ", where labctl reads a check's window
through the engine's log API (labctl.names.TRANSCRIPT_MARK). Both keep going under a
flood, so the newest exchanges are always recorded:

  - the file rotates: when a line would take it past half of TRANSCRIPT_CAP it becomes
    transcript.jsonl.1 (replacing the one before) and a new file starts, so the two hold
    at most TRANSCRIPT_CAP bytes and the newest lines are in transcript.jsonl;
  - every line goes to standard output, which the engine keeps in a bounded log
    (json-file, 10 MB twice), dropping its oldest first;
  - an entry is bounded: its text fields are cut at FIELD_MAX characters, its lists at
    ITEMS_MAX items (the payload preview is PREVIEW bytes already).

Standard library only; the digest is the interpreter's built-in one, not OpenSSL's.
"""

from __future__ import annotations

import json
import os
import time

from inet import endpoint  # beside this file
from svc_loop import limit

try:  # the built-in digest: hashlib would load OpenSSL's libcrypto into every server
    from _sha256 import sha256
except ImportError:
    try:
        from _sha2 import sha256
    except ImportError:
        from hashlib import sha256

TRANSCRIPT = os.environ.get("LABCTL_TRANSCRIPT", "/var/log/labctl/transcript.jsonl")
TRANSCRIPT_CAP = int(limit("LABCTL_SVC_TRANSCRIPT_CAP", 16 << 20))
HEALTH_TOKEN = b"labctl-health"
PREVIEW = 64
FIELD_MAX = 1024   # characters of a text field (an HTTP target, a DNS name, an error)
ITEMS_MAX = 64     # items of a list field (a DNS answer's records)
MARK = b"transcript "  # labctl.names.TRANSCRIPT_MARK: how labctl knows these lines in the output
EMPTY_SHA256 = sha256(b"").hexdigest()


class Transcript:
    """JSON lines appended to `path`, rotated to `path`.1 at half of `cap`, and each
    repeated on standard output. The file is opened per line, so a removed file is simply
    recreated, and a restarted server carries on where the file stands."""

    def __init__(self, path: str, cap: int):
        self.path, self.cap = path, cap
        self.half = max(1, cap // 2)
        self.dropped = 0   # lines the file could not take (the output still had them)

    def append(self, entry: dict) -> None:
        line = (json.dumps(entry) + "\n").encode()
        self._store(line)
        self._announce(line)

    def _store(self, line: bytes) -> None:
        if len(line) > self.half:  # more than a file may hold: the output has it
            self.dropped += 1
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError:
            self.dropped += 1
            return
        try:
            if os.fstat(fd).st_size + len(line) > self.half:
                os.close(fd)
                fd = -1
                os.replace(self.path, self.path + ".1")
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            os.write(fd, line)
        except OSError:  # a full disk costs the line in the file, never the server
            self.dropped += 1
        finally:
            if fd >= 0:
                os.close(fd)

    @staticmethod
    def _announce(line: bytes) -> None:
        """The same line on standard output, marked: the engine keeps it with the host's
        output, where labctl reads a check's window without starting a process here."""
        data = MARK + line
        try:
            while data:
                data = data[os.write(1, data):]
        except OSError:
            pass


transcript = Transcript(TRANSCRIPT, TRANSCRIPT_CAP)


def bounded(value):
    """A field's value as an entry keeps it: long text cut, long lists shortened."""
    if isinstance(value, str) and len(value) > FIELD_MAX:
        return value[:FIELD_MAX - 3] + "..."
    if isinstance(value, list):
        return [bounded(item) for item in value[:ITEMS_MAX]]
    return value


def record(service: str, protocol: str, port: int, peer: tuple, preview: bytes, bytes_in: int,
           bytes_out: int, sha256: str, **extra) -> None:
    """One JSON line per exchange. Health probes (empty or token payloads from loopback)
    are not exchanges."""
    peer = endpoint(peer)
    if peer[0] == "127.0.0.1" and (bytes_in == 0 or (bytes_in == len(HEALTH_TOKEN)
                                                     and preview == HEALTH_TOKEN)):
        return
    entry = {
        "time": round(time.time(), 6),  # labctl keeps a check's window by it
        "service": service,
        "protocol": protocol,
        "port": port,
        "peer": peer[0],
        "peer_port": peer[1],
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "sha256": sha256,
        "preview": preview[:PREVIEW].decode("utf-8", "replace"),
        **{key: bounded(value) for key, value in extra.items() if value is not None or key in KEEP_NONE},
    }
    transcript.append(entry)


KEEP_NONE = {"tls_version", "server_name", "client_subject"}  # tls-echo always shows them


def record_bytes(service: str, protocol: str, port: int, peer: tuple, received: bytes,
                 sent_length: int, **extra) -> None:
    record(service, protocol, port, peer, received[:PREVIEW], len(received), sent_length,
           sha256(received).hexdigest(), **extra)
