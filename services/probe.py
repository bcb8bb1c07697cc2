#!/usr/bin/env python3
"""The client side of checks: run a batch of probes and report what was observed.

Usage: probe.py BASE64_JSON   (a list of probe specs; see labctl/checks.py)
Prints one JSON list of observations. It judges nothing: labctl compares what was
observed with what the check expects. Standard library only.
"""

from __future__ import annotations

import base64
import errno
import http.client
import json
import socket
import ssl
import sys
import time
from concurrent.futures import ThreadPoolExecutor

PKI = "/opt/labctl/pki"
CA_FILES = {"lab": f"{PKI}/ca.pem", "untrusted": f"{PKI}/untrusted-ca.pem"}
MAX_REPLY = 1 << 20


Observation = dict


def classify(exc: BaseException) -> tuple[str, str]:
    """Map an exception to the error vocabulary checks use."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "certificate", exc.verify_message or str(exc)
    if isinstance(exc, ssl.SSLError):
        return "tls", exc.reason or str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "refused", "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout", "no answer in time"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset", "connection reset by peer"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable", exc.strerror or str(exc)
    return "error", f"{exc.__class__.__name__}: {exc}"


def read_reply(conn, spec: dict, deadline: float) -> bytes:
    """Read until EOF, or until `until_bytes` have arrived (for TLS, where half-close is
    not portable), whichever comes first; a short grace read catches any surplus."""
    until = spec.get("until_bytes")
    data = bytearray()
    while len(data) < MAX_REPLY:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        conn.settimeout(remaining)
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
        if until is not None and len(data) >= until:
            conn.settimeout(0.05)
            try:
                data += conn.recv(65536)
            except (socket.timeout, ssl.SSLError, OSError):
                pass
            break
    return bytes(data)


def tls_client_context(spec: dict) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=CA_FILES[spec.get("ca", "lab")])


def probe_stream(spec: dict, deadline: float, observation: Observation) -> None:
    payload = base64.b64decode(spec.get("send", ""))
    sock = socket.create_connection((spec["address"], spec["port"]),
                                    timeout=max(deadline - time.monotonic(), 0.001))
    try:
        conn = sock
        if spec["protocol"] == "tls":
            conn = tls_client_context(spec).wrap_socket(sock, server_hostname=spec["server_name"])
            observation["tls_version"] = conn.version()
        if payload:
            conn.sendall(payload)
            if spec["protocol"] == "tcp":
                conn.shutdown(socket.SHUT_WR)
            observation["reply"] = base64.b64encode(read_reply(conn, spec, deadline)).decode()
        else:
            observation["reply"] = ""
    finally:
        sock.close()


def probe_udp(spec: dict, deadline: float, observation: Observation) -> None:
    payload = base64.b64decode(spec.get("send", ""))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((spec["address"], spec["port"]))
        sock.send(payload)
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        observation["reply"] = base64.b64encode(sock.recv(65535)).decode()


class LabHTTPSConnection(http.client.HTTPConnection):
    """HTTPS that dials an address but verifies the certificate for the lab host's name."""

    default_port = 443

    def __init__(self, address: str, port: int, timeout: float, context: ssl.SSLContext,
                 server_name: str):
        super().__init__(address, port, timeout=timeout)
        self._tls_context = context
        self._server_name = server_name

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._tls_context.wrap_socket(sock, server_hostname=self._server_name)


def probe_http(spec: dict, deadline: float, observation: Observation) -> None:
    timeout = max(deadline - time.monotonic(), 0.001)
    if spec.get("https"):
        conn = LabHTTPSConnection(spec["address"], spec["port"], timeout,
                                  tls_client_context(spec), spec["server_name"])
    else:
        conn = http.client.HTTPConnection(spec["address"], spec["port"], timeout=timeout)
    try:
        body = base64.b64decode(spec.get("send", ""))
        headers = {"Host": f"{spec['server_name']}:{spec['port']}", **spec.get("headers", {})}
        conn.request(spec.get("method", "GET"), spec.get("path", "/"), body=body or None,
                     headers=headers)
        response = conn.getresponse()
        observation["status"] = response.status
        observation["headers"] = {k.lower(): v for k, v in response.getheaders()}
        observation["reply"] = base64.b64encode(response.read(MAX_REPLY)).decode()
    finally:
        conn.close()


PROBES = {"tcp": probe_stream, "tls": probe_stream, "udp": probe_udp, "http": probe_http}


def run_probe(spec: dict) -> Observation:
    observation = Observation(id=spec["id"], error=None, detail="")
    started = time.monotonic()
    deadline = started + float(spec.get("timeout", 3.0))
    try:
        PROBES[spec["protocol"]](spec, deadline, observation)
    except Exception as exc:  # every failure is an observation, never a crash
        observation["error"], observation["detail"] = classify(exc)
    observation["elapsed_ms"] = round((time.monotonic() - started) * 1000, 3)
    return observation


def main(argv: list[str]) -> int:
    specs = json.loads(base64.b64decode(argv[1]))
    workers = max(1, min(32, len(specs)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        observations = list(pool.map(run_probe, specs))
    json.dump(observations, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
