#!/usr/bin/env python3
"""The client side of checks: run a batch of probes and report what was observed.

Usage: probe.py [--pki FOLDER] BASE64_JSON|@FILE
    (a list of probe specs, built by labctl/checks/probe.py, or a file holding them; the
    credentials in FOLDER, /opt/labctl/pki unless said)
Prints one JSON list of observations. It judges nothing: labctl compares what was
observed with what the check expects. Standard library only.

A spec holds: id, protocol (tcp|tls|udp|http|ping|raw|dns), address (IPv4 or IPv6: the
socket's family follows it), port, timeout, and
  steps      [{send: base64, read: {mode, n, pattern}}]; modes: eof (half-close, then
             read to the end), drain (read to the end), bytes, regex, json, none
  udp_count  datagrams to send (udp); fan_out: broadcast | multicast (IPv4 or IPv6 group),
             with interface_address: an IPv6 group leaves by the interface holding it
  tls        {ca: lab|untrusted, server_name, client_cert: bool}
  http       {method, path, headers, https}
  load       {clients, requests | duration}
An observation holds: id, error, detail, elapsed_ms, local ([address, port] of each
connection, written as the server's transcript writes its peer, so the two can be
matched), replies (base64 per step), and per protocol: tls facts, HTTP status and
headers, UDP counts, load statistics.
"""

from __future__ import annotations

import base64
import errno
import json
import re
import socket
import sys
import threading
import time

from inet import address_text, endpoint, family_of, interface_holding  # beside this file

# ssl and http.client cost tens of milliseconds to import and many batches need neither:
# main() imports them only for batches that do, which keeps a check's overhead close to
# that of a bare `docker exec`.

PKI = "/opt/labctl/pki"   # main() moves it where --pki says
CA_FILES = {"lab": "ca.pem", "untrusted": "untrusted-ca.pem"}
MAX_REPLY = 1 << 20
MAX_BATCH = 64 << 20   # bytes of specs read from a file


# No route to the address (also: IPv6 asked of a host that has no IPv6 address to send from).
UNREACHABLE = (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL)


class ReadTimeout(socket.timeout):  # noqa: N818 (it is a timeout)
    """Timed out while waiting for a reply; carries what had arrived."""

    def __init__(self, received: bytes, rule: dict):
        super().__init__("timed out")
        self.received = received
        self.rule = rule


def _tls():
    import ssl
    return ssl


def classify(exc: BaseException) -> tuple[str, str]:
    """Map an exception to the error vocabulary checks use."""
    ssl = sys.modules.get("ssl")
    if ssl is not None and isinstance(exc, ssl.SSLCertVerificationError):
        return "certificate", exc.verify_message or str(exc)
    if ssl is not None and isinstance(exc, ssl.SSLEOFError):
        return "rejected", "the server closed the connection during TLS"
    if ssl is not None and isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        # An alert from the peer means the server turned the handshake down.
        if "ALERT" in reason.upper():
            return "rejected", reason.lower().replace("_", " ")
        return "tls", reason
    if isinstance(exc, ReadTimeout):
        got = exc.received[:60].decode("utf-8", "replace")
        return "timeout", f"no complete answer in time (received {got!r})"
    if isinstance(exc, ConnectionRefusedError):
        return "refused", "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout", "no answer in time"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset", "connection reset by peer"
    if isinstance(exc, OSError) and exc.errno in UNREACHABLE:
        return "unreachable", exc.strerror or str(exc)
    return "error", f"{exc.__class__.__name__}: {exc}"


def _complete(data: bytes, rule: dict) -> bool:
    mode = rule.get("mode", "eof")
    if mode == "bytes":
        return len(data) >= rule["n"]
    if mode == "regex":
        return re.search(rule["pattern"], data.decode("utf-8", "replace"), re.DOTALL) is not None
    if mode == "json":
        try:
            json.loads(data)
            return True
        except ValueError:
            return False
    return False


def read_reply(conn, rule: dict, deadline: float) -> bytes:
    """Read until the rule is met: EOF, N bytes, a regex matching, or a whole JSON value."""
    if rule.get("mode") == "none":
        return b""
    data = bytearray()
    while len(data) < MAX_REPLY:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ReadTimeout(bytes(data), rule)
        conn.settimeout(remaining)
        try:
            chunk = conn.recv(65536)
        except socket.timeout:
            raise ReadTimeout(bytes(data), rule) from None
        if not chunk:
            break
        data += chunk
        if _complete(bytes(data), rule):
            break
    return bytes(data)


def tls_client_context(tls: dict):
    ssl = _tls()
    context = ssl.create_default_context(cafile=f"{PKI}/{CA_FILES[tls.get('ca', 'lab')]}")
    if tls.get("client_cert"):
        context.load_cert_chain(f"{PKI}/host.pem", f"{PKI}/host.key")
    return context


SHORT_NAMES = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
               "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST"}


def distinguished_name(parts) -> str:
    """A distinguished name the way people write it: O=labctl campus,CN=web."""
    return ",".join(f"{SHORT_NAMES.get(key, key)}={value}" for rdn in parts for key, value in rdn)


def tls_facts(conn) -> dict:
    cert = conn.getpeercert() or {}
    return {
        "version": conn.version(),
        "cipher": (conn.cipher() or ("",))[0],
        "subject": distinguished_name(cert.get("subject", ())),
        "issuer": distinguished_name(cert.get("issuer", ())),
        "san": [f"{'IP' if kind == 'IP Address' else kind}:{value}"
                for kind, value in cert.get("subjectAltName", ())],
    }


def _send(conn, payload: bytes) -> None:
    """sendall; if a TLS peer has already hung up, read once so that its alert (the reason
    it refused us) is what gets reported, rather than the bare EOF seen by the write."""
    try:
        conn.sendall(payload)
    except OSError as exc:
        ssl = sys.modules.get("ssl")
        if ssl is not None and isinstance(conn, ssl.SSLSocket):
            conn.settimeout(0.5)
            try:
                conn.recv(1)
            except ssl.SSLError as alert:
                if "ALERT" in (alert.reason or "").upper():
                    raise alert from exc
            except OSError:
                pass
        raise


def probe_stream(spec: dict, deadline: float, observation: dict) -> None:
    sock = socket.create_connection((spec["address"], spec["port"]),
                                    timeout=max(deadline - time.monotonic(), 0.001))
    observation["local"].append(list(endpoint(sock.getsockname())))
    try:
        conn = sock
        if spec["protocol"] == "tls":
            tls = spec.get("tls", {})
            conn = tls_client_context(tls).wrap_socket(sock, server_hostname=tls.get("server_name"))
            observation["tls"] = tls_facts(conn)
        for step in spec.get("steps", []):
            payload = base64.b64decode(step.get("send", ""))
            if payload:
                _send(conn, payload)
            rule = step.get("read", {"mode": "none"})
            if rule.get("mode") == "eof" and spec["protocol"] == "tcp":
                conn.shutdown(socket.SHUT_WR)
            observation["replies"].append(base64.b64encode(read_reply(conn, rule, deadline)).decode())
        if spec["protocol"] == "tls" and not spec.get("steps"):
            # A server that rejects the client's certificate says so on the first read.
            conn.settimeout(0.2)
            try:
                conn.recv(1)
            except socket.timeout:
                pass
    finally:
        sock.close()


def probe_udp(spec: dict, deadline: float, observation: dict) -> None:
    steps = spec.get("steps") or [{"send": ""}]
    payload = base64.b64decode(steps[0].get("send", ""))
    count = int(spec.get("udp_count", 1))
    if spec.get("fan_out"):
        _fan_out(spec, payload, count, observation)
        return
    with datagram_socket(family_of(spec["address"]), spec) as sock:
        sock.connect((spec["address"], spec["port"]))
        observation["local"].append(list(endpoint(sock.getsockname())))
        received: list[bytes] = []
        for _ in range(count):
            sock.send(payload)
        while len(received) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                received.append(sock.recv(65535))
            except socket.timeout:
                break
        observation["udp"] = {"sent": count, "received": len(received)}
        if not received:
            raise socket.timeout()
        observation["replies"].append(base64.b64encode(received[0]).decode())


def datagram_socket(family: int, spec: dict) -> socket.socket:
    """A UDP socket on an ephemeral port where no answering built-in server of the lab
    listens: those servers never answer a datagram from such a port (their guard against
    being set ping-ponging), so a probe sent from one would go unanswered."""
    avoid = set(spec.get("avoid_ports") or ())
    held = []
    try:
        while True:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            if sock.getsockname()[1] not in avoid or len(held) >= 16:
                return sock
            held.append(sock)   # kept open meanwhile, so the next bind gets another port
    finally:
        for sock in held:
            sock.close()


def _fan_out(spec: dict, payload: bytes, count: int, observation: dict) -> None:
    """Datagrams to a network's broadcast address or to a multicast group (which stays on
    the sender's network: TTL 1). Nothing answers; the listeners' transcripts say who heard.
    An IPv6 group goes out of the interface holding `interface_address` when the spec names
    one, else where the kernel's routes send it."""
    family = family_of(spec["address"])
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        if spec["fan_out"] == "broadcast":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        elif family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
            index = interface_holding(spec["interface_address"]) if spec.get("interface_address") else None
            if index is not None:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.connect((spec["address"], spec["port"]))  # the source address the listeners see
        observation["local"].append(list(endpoint(sock.getsockname())))
        for _ in range(count):
            sock.send(payload)
    observation["udp"] = {"sent": count, "received": 0}


def _https_connection(address: str, port: int, timeout: float, tls: dict):
    """HTTPS that dials an address but verifies the certificate for the lab host's name."""
    import http.client

    class LabHTTPSConnection(http.client.HTTPConnection):
        default_port = 443
        tls_facts: dict = {}

        def connect(self):
            sock = socket.create_connection((self.host, self.port), self.timeout)
            self.sock = tls_client_context(tls).wrap_socket(sock, server_hostname=tls.get("server_name"))
            self.tls_facts = tls_facts(self.sock)

    return LabHTTPSConnection(address, port, timeout=timeout)


def probe_http(spec: dict, deadline: float, observation: dict) -> None:
    timeout = max(deadline - time.monotonic(), 0.001)
    request = spec.get("http", {})
    tls = spec.get("tls", {})
    if request.get("https"):
        conn = _https_connection(spec["address"], spec["port"], timeout, tls)
    else:
        import http.client
        conn = http.client.HTTPConnection(spec["address"], spec["port"], timeout=timeout)
    try:
        steps = spec.get("steps") or [{"send": ""}]
        body = base64.b64decode(steps[0].get("send", ""))
        name = tls.get("server_name") or spec["address"]
        host = f"[{name}]" if ":" in name else name  # an IPv6 literal in brackets
        headers = {"Host": f"{host}:{spec['port']}", **request.get("headers", {})}
        conn.connect()
        observation["local"].append(list(endpoint(conn.sock.getsockname())))
        if request.get("https"):
            observation["tls"] = conn.tls_facts
        conn.request(request.get("method", "GET"), request.get("path", "/"), body=body or None,
                     headers=headers)
        response = conn.getresponse()
        observation["status"] = response.status
        observation["headers"] = {k.lower(): v for k, v in response.getheaders()}
        observation["replies"].append(base64.b64encode(response.read(MAX_REPLY)).decode())
    finally:
        conn.close()


# A filter in the client's own namespace (a partition) refuses the send itself: the packet
# is lost, as it would be on the wire, and counts as sent.
DROPPED_ON_THE_WAY_OUT = (errno.EPERM, errno.EACCES, errno.ENOBUFS)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum((data[i] << 8) + data[i + 1] for i in range(0, len(data), 2))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


# Per family: the ICMP protocol number, echo request, echo reply, destination unreachable.
ICMP = {socket.AF_INET: (socket.IPPROTO_ICMP, 8, 0, 3),
        socket.AF_INET6: (socket.IPPROTO_ICMPV6, 128, 129, 1)}


def _ip_header_length(family: int, packet: bytes) -> int:
    """The IP header before an ICMP message: IPv4's says its length; IPv6's is 40 bytes."""
    if not packet:
        return 0
    return (packet[0] & 0x0F) * 4 if family == socket.AF_INET else 40


def probe_ping(spec: dict, deadline: float, observation: dict) -> None:
    """ICMP (or ICMPv6) echo requests, one at a time, each waiting up to a second for its
    reply. An unprivileged ICMP socket where the kernel allows one (Docker's default), else
    a raw one (NET_RAW, a default capability). The kernel sums ICMPv6 itself."""
    icmp = spec["icmp"]
    count, size, address = int(icmp["count"]), int(icmp["size"]), spec["address"]
    family = family_of(address)
    protocol, request, reply, unreachable_type = ICMP[family]
    target = address_text(address)
    try:
        sock, raw = socket.socket(family, socket.SOCK_DGRAM, protocol), False
    except OSError:
        sock, raw = socket.socket(family, socket.SOCK_RAW, protocol), True
    ident = threading.get_ident() & 0xFFFF
    sent, rtts, unreachable, dropped = 0, [], "", ""
    payload = (b"labctl-ping-" * (size // 12 + 1))[:size]
    with sock:
        for sequence in range(1, count + 1):
            if time.monotonic() >= deadline:
                break
            header = bytes([request, 0, 0, 0]) + ident.to_bytes(2, "big") + sequence.to_bytes(2, "big")
            checksum = _checksum(header + payload) if family == socket.AF_INET else 0
            packet = header[:2] + checksum.to_bytes(2, "big") + header[4:] + payload
            started = time.monotonic()
            sent += 1
            try:
                sock.sendto(packet, (address, 0))
            except OSError as exc:
                if exc.errno in UNREACHABLE:
                    sent -= 1
                    unreachable = exc.strerror
                    break
                if exc.errno in DROPPED_ON_THE_WAY_OUT:
                    dropped = exc.strerror  # a filter on the way out: lost, as ping counts it
                    continue
                raise
            if not observation["local"]:
                observation["local"].append(list(endpoint(sock.getsockname())))
            wait_until = min(deadline, started + 1.0)
            while True:
                left = wait_until - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                try:
                    data, peer = sock.recvfrom(65535)
                except socket.timeout:
                    break
                except OSError as exc:
                    if exc.errno in UNREACHABLE or exc.errno == errno.ECONNREFUSED:
                        unreachable = exc.strerror
                        break
                    raise
                if raw and family == socket.AF_INET:  # IPv6 raw sockets give no IP header
                    data = data[_ip_header_length(family, data):]
                if len(data) < 8 or data[0] == reply and address_text(peer[0]) != target:
                    continue
                if data[0] == unreachable_type and raw:  # about our request if it quotes our id
                    quoted = data[8:]
                    quoted = quoted[_ip_header_length(family, quoted):]
                    if quoted[4:6] == ident.to_bytes(2, "big"):
                        unreachable = "destination unreachable"
                        break
                    continue
                replied = int.from_bytes(data[6:8], "big")
                if data[0] == reply and replied == sequence and (not raw or data[4:6] == ident.to_bytes(2, "big")):
                    rtts.append(round((time.monotonic() - started) * 1000, 3))
                    break
    observation["icmp"] = {"sent": sent, "received": len(rtts), "rtt_ms": rtts}
    if not rtts:
        observation["error"], observation["detail"] = (
            ("unreachable", unreachable) if unreachable else
            ("timeout", f"no echo reply to {sent} request{'s' if sent != 1 else ''}"
                        + (f" (dropped on the way out: {dropped})" if dropped else "")))


def probe_raw(spec: dict, deadline: float, observation: dict) -> None:
    """IP packets of one protocol number, with a payload; raw IP has no answer."""
    raw = spec["raw"]
    payload = base64.b64decode(raw["payload"])
    with socket.socket(family_of(spec["address"]), socket.SOCK_RAW, int(raw["protocol"])) as sock:
        sock.connect((spec["address"], 0))   # so the source address is known, as the server sees it
        observation["local"].append([endpoint(sock.getsockname())[0], None])
        sent = 0
        for _ in range(int(raw["count"])):
            if time.monotonic() >= deadline:
                break
            try:
                sock.send(payload)
            except OSError as exc:
                if exc.errno not in DROPPED_ON_THE_WAY_OUT:
                    raise
                observation["raw_dropped"] = exc.strerror  # a filter on the way out, as on the wire
            sent += 1
    observation["raw"] = {"sent": sent}


def probe_dns(spec: dict, deadline: float, observation: dict) -> None:
    """One query, over UDP or TCP; the answer's rcode and records, as text."""
    import random

    import dnszone  # beside this file
    ask = spec["dns"]
    ident = random.randrange(1 << 16)
    message = dnszone.query(ask["name"], ask["type"], ident)
    address = (spec["address"], spec["port"])
    if ask.get("tcp"):
        with socket.create_connection(address, timeout=max(0.01, deadline - time.monotonic())) as sock:
            observation["local"].append(list(endpoint(sock.getsockname())))
            sock.sendall(len(message).to_bytes(2, "big") + message)
            size = int.from_bytes(_read_exactly(sock, 2, deadline), "big")
            answer = _read_exactly(sock, size, deadline)
    else:
        with datagram_socket(family_of(spec["address"]), spec) as sock:
            sock.connect(address)
            observation["local"].append(list(endpoint(sock.getsockname())))
            sock.send(message)
            while True:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                answer = sock.recv(65535)
                if answer[:2] == ident.to_bytes(2, "big"):
                    break
    parsed = dnszone.parse_response(answer)
    parsed.pop("id", None)
    observation["dns"] = parsed
    observation["replies"].append(base64.b64encode(answer[:MAX_REPLY]).decode())


def _read_exactly(sock: socket.socket, size: int, deadline: float) -> bytes:
    data = b""
    while len(data) < size:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("the server closed the connection mid-answer")
        data += chunk
    return data


PROBES = {"tcp": probe_stream, "tls": probe_stream, "udp": probe_udp, "http": probe_http,
          "ping": probe_ping, "raw": probe_raw, "dns": probe_dns}


def run_once(spec: dict) -> dict:
    observation = {"id": spec["id"], "error": None, "detail": "", "local": [], "replies": []}
    started = time.monotonic()
    deadline = started + float(spec.get("timeout", 3.0))
    try:
        PROBES[spec["protocol"]](spec, deadline, observation)
    except Exception as exc:  # every failure is an observation, never a crash
        observation["error"], observation["detail"] = classify(exc)
    observation["elapsed_ms"] = round((time.monotonic() - started) * 1000, 3)
    return observation


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(share * len(ordered) + 0.5)) - 1))]


def run_load(spec: dict) -> dict:
    """C clients repeat the exchange for N requests in all, or for T seconds."""
    load = spec["load"]
    single = {key: value for key, value in spec.items() if key != "load"}
    total = load.get("requests")
    duration = load.get("duration")
    lock = threading.Lock()
    issued = [0]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    started = time.monotonic()
    stop_at = started + duration if duration else None

    def client() -> None:
        while True:
            with lock:
                if total is not None and issued[0] >= total:
                    return
                if stop_at is not None and time.monotonic() >= stop_at:
                    return
                issued[0] += 1
            result = run_once(single)
            with lock:
                if result["error"]:
                    errors[result["error"]] = errors.get(result["error"], 0) + 1
                else:
                    latencies.append(result["elapsed_ms"])

    threads = [threading.Thread(target=client) for _ in range(int(load.get("clients", 1)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    count = len(latencies) + sum(errors.values())
    return {
        "id": spec["id"], "error": None, "detail": "", "local": [], "replies": [],
        "elapsed_ms": round(seconds * 1000, 3),
        "load": {"requests": count, "errors": sum(errors.values()), "error_kinds": errors,
                 "seconds": round(seconds, 3),
                 "throughput": round(count / seconds, 1) if seconds else 0.0,
                 "p50_ms": round(percentile(latencies, 0.50), 3),
                 "p99_ms": round(percentile(latencies, 0.99), 3)},
    }


def run_probe(spec: dict) -> dict:
    return run_load(spec) if spec.get("load") else run_once(spec)


def run_all(specs: list[dict], workers: int = 32) -> list[dict]:
    """Run specs concurrently on at most `workers` threads, results in the given order."""
    observations: list = [None] * len(specs)
    pending = list(enumerate(specs))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not pending:
                    return
                index, spec = pending.pop()
            try:
                observations[index] = run_probe(spec)
            except BaseException as exc:  # a bug here must still yield an observation
                observations[index] = {"id": spec.get("id"), "error": "error", "local": [],
                                       "replies": [], "elapsed_ms": 0.0,
                                       "detail": f"probe crashed: {exc.__class__.__name__}: {exc}"}

    if len(specs) == 1:
        worker()
    else:
        threads = [threading.Thread(target=worker) for _ in range(min(workers, len(specs)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return observations


def import_what_is_needed(specs: list[dict]) -> None:
    """Import ssl and http.client before any thread starts, and only if the batch needs
    them: a module imported lazily from two threads at once can be seen half-built."""
    protocols = {spec["protocol"] for spec in specs}
    if protocols & {"tls", "http"}:
        import http.client  # noqa: F401
        import ssl  # noqa: F401


def main(argv: list[str]) -> int:
    global PKI
    arguments = argv[1:]
    if arguments[:1] == ["--pki"]:
        PKI, arguments = arguments[1], arguments[2:]
    if arguments[0].startswith("@"):
        with open(arguments[0][1:], "rb") as batch:
            specs = json.loads(base64.b64decode(batch.read(MAX_BATCH)))
    else:
        specs = json.loads(base64.b64decode(arguments[0]))
    import_what_is_needed(specs)
    observations = run_all(specs)
    json.dump(observations, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
