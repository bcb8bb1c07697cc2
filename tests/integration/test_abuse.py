"""The built-in servers (services/labsvc.py) under abuse, on the real engine.

An attacker host runs tests/integration/labs/abuse/attack.py against the lab's own servers
(slowloris, a 100 MB line, a 3 GB Content-Length, a UDP flood, a failed UDP send) while a
client host runs ordinary checks against the same servers: the checks must still pass,
and the server process must stay under 50 MiB (its peak resident size, read inside the
host from /proc/<pid>/status). A second server host with short limits shows idle
connections closing and the transcript keeping the newest exchanges past its cap; it also
serves the lab's DNS, which spoofed datagrams must not set talking. Every attack is
bounded in connections, bytes and time, and all traffic stays between the lab's containers.

A few tests run labsvc.py on loopback instead: a UDP send error forced by a firewall rule
in a private network namespace, the transcript's rotation across a restart, and HTTP details.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from labctl.ops.checks import read_transcript, run_checks

from .conftest import REPO, running_copy

ABUSE = REPO / "tests" / "integration" / "labs" / "abuse"
LABSVC = REPO / "services" / "labsvc.py"
MIB = 1 << 20
MEMORY_LIMIT = 50 * MIB
ATTACK = "/opt/abuse/attack.py"
CONTROL_PORT = 19999
FIGURES: dict[str, dict] = {}

MEMORY_SCRIPT = r"""
import json, os
for pid in sorted(os.listdir("/proc"), key=lambda p: (not p.isdigit(), p)):
    if not pid.isdigit():
        continue
    try:
        words = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        # python3 [flags] .../labsvc.pyc SPEC (the init process above it names it too)
        if not (os.path.basename(words[0]).startswith(b"python")
                and any(word.endswith(b"/labsvc.pyc") for word in words[1:6])):
            continue
        status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
        maps = open(f"/proc/{pid}/maps").read()
    except OSError:
        continue
    print(json.dumps({"pid": int(pid), "rss": int(status["VmRSS"].split()[0]) * 1024,
                      "peak": int(status["VmHWM"].split()[0]) * 1024,
                      "threads": int(status["Threads"]),
                      "ssl_loaded": "/_ssl." in maps or "libssl" in maps}))
    break
"""


@pytest.fixture(scope="module")
def abuse(engine, tmp_path_factory):
    yield from running_copy(engine, ABUSE, tmp_path_factory.mktemp("abuse"))
    if FIGURES:
        print("\nabuse figures: " + json.dumps(FIGURES, indent=1), file=sys.stderr)


def named(lab, name: str):
    return copy.deepcopy(next(check for check in lab.checks if check.name == name))


def assert_checks_pass(lab, engine, image, *names: str) -> None:
    results = run_checks(lab.topology, engine, [named(lab, name) for name in names], image)
    failures = [f"{result.name}: {result.reason}" for result in results if not result.passed]
    assert not failures, failures


def server_process(engine, lab, host: str) -> dict:
    result = engine.exec(lab.topology, host, ["python3", "-c", MEMORY_SCRIPT])
    assert result.exit_code == 0 and result.stdout.strip(), result.stderr
    return json.loads(result.stdout)


def assert_small(engine, lab, label: str, host: str = "srv") -> dict:
    """The server's peak resident size so far (VmHWM) is under the limit: the peak covers
    the whole attack, not just the moment it is read."""
    process = server_process(engine, lab, host)
    FIGURES[label] = {"rss_mib": round(process["rss"] / MIB, 1),
                      "peak_mib": round(process["peak"] / MIB, 1), "threads": process["threads"]}
    assert process["peak"] < MEMORY_LIMIT, (label, process)
    return process


class Attack:
    """attack.py running on the attacker host (bounded by `timeout`), its JSON lines read
    as they are printed, so the test waits on what the attacker says, not on a clock."""

    def __init__(self, engine, lab, *args, limit: int = 120):
        self.engine, self.lab = engine, lab
        self.lines: queue.Queue = queue.Queue()
        self.stderr = b""
        self.argv = ["timeout", str(limit), "python3", ATTACK, *[str(arg) for arg in args]]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        pending = b""
        try:
            for out, err in self.engine.exec_stream(self.lab.topology, "attacker", self.argv):
                self.stderr += err or b""
                pending += out or b""
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        self.lines.put(json.loads(line))
        finally:
            self.lines.put(None)

    def wait(self, event: str, timeout: float = 150) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            item = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if item is None:
                raise AssertionError(f"the attack {self.argv[3:]} ended before '{event}': "
                                     f"{self.stderr.decode(errors='replace')[-2000:]}")
            if item.get("event") == event:
                return item

    def done(self) -> dict:
        result = self.wait("done")
        self.thread.join(30)
        return result


def stop_holding(engine, lab) -> None:
    """Tell a holding attacker to let go: connect to its control port."""
    engine.exec(lab.topology, "attacker", [
        "python3", "-c",
        f"import socket; socket.create_connection(('127.0.0.1', {CONTROL_PORT}), timeout=5).close()"])


# -- against the servers with their default limits -----------------------------------------

NORMAL_CHECK = {7: "tcp echo", 9443: "tls echo", 8080: "http health", 8443: "https echo"}


@pytest.mark.parametrize("service, port, kind", [
    ("tcp-echo", 7, "tcp"),
    ("tls-echo", 9443, "tls"),            # a TLS record header, then nothing
    ("tls-echo", 9443, "tls-hello"),      # a whole ClientHello, then nothing: handshakes held
    ("http", 8080, "http-partial"),       # a request head that never ends
    ("https", 8443, "tls"),
])
def test_slowloris_costs_only_the_idle_connections(engine, image, abuse, service, port, kind):
    attack = Attack(engine, abuse, "hold", "10.243.1.10", port, kind, 500, CONTROL_PORT, 60)
    try:
        ready = attack.wait("ready")
        assert ready["opened"] == 500, ready
        assert_checks_pass(abuse, engine, image, NORMAL_CHECK[port])
        process = assert_small(engine, abuse, f"slowloris {service} ({kind}): 500 connections held")
        assert process["threads"] == 1  # idle connections cost no thread
    finally:
        stop_holding(engine, abuse)
    result = attack.done()
    assert result["stopped"], result
    if kind == "tls-hello":
        # Every handshake slot was held: to let the check in, the server evicted handshakes
        # stalled over a second (the attacker's), never the newcomer.
        assert result["closed_by_server"] >= 1 and result["first_close"] >= 0.9, result
        FIGURES["slowloris tls-echo (tls-hello): handshakes evicted"] = {
            "closed_by_server": result["closed_by_server"], "first_close_s": result["first_close"]}
    else:  # held until told to stop; any the server closed first reached its 10 s timeout
        assert (result["first_close"] or 10) >= 9.5, result
    assert_checks_pass(abuse, engine, image, NORMAL_CHECK[port])


@pytest.mark.parametrize("service, port, kind, answer", [
    ("tcp-echo", 7, "tcp", None),
    ("tls-echo", 9443, "tls", None),
    ("http", 8080, "http-line", "HTTP/1.1 414 "),
    ("http", 8080, "http-header", "HTTP/1.1 431 "),
    ("https", 8443, "https-line", "HTTP/1.1 414 "),
    ("https", 8443, "https-header", "HTTP/1.1 431 "),
])
def test_a_100_megabyte_line_costs_only_its_connection(engine, image, abuse, service, port, kind,
                                                        answer):
    attack = Attack(engine, abuse, "line", "10.243.1.10", port, kind, 100, 90)
    attack.wait("ready")  # a megabyte is on its way
    assert_checks_pass(abuse, engine, image, NORMAL_CHECK[port])
    result = attack.done()
    if answer is None:  # an echo streams it all back without holding it; tcp: to the EOF
        ended = "EOF after everything" if kind == "tcp" else "everything echoed"
        assert result["ended"] == ended and result["received"] == 100 * MIB, result
    else:  # HTTP refuses at the line limit and closes: the rest is never read into memory
        assert result["first"].startswith(answer), result
        assert result["sent"] < 100 * MIB and result["seconds"] < 30, result
    assert_small(engine, abuse, f"100 MB line: {service} ({kind})")
    assert_checks_pass(abuse, engine, image, NORMAL_CHECK[port])


@pytest.mark.parametrize("service, port", [("http", 8080), ("https", 8443)])
@pytest.mark.parametrize("length, answer", [("3000000000", "HTTP/1.1 413 "), ("-1", "HTTP/1.1 400 ")])
def test_a_content_length_out_of_bounds_is_refused(engine, image, abuse, service, port, length, answer):
    attack = Attack(engine, abuse, "length", "10.243.1.10", port, service, length, 50, 60)
    attack.wait("ready")
    assert_checks_pass(abuse, engine, image, NORMAL_CHECK[port])
    result = attack.done()
    assert result["first"].startswith(answer), result
    assert result["sent"] < 50 * MIB + 200 and result["seconds"] < 30, result
    assert_small(engine, abuse, f"Content-Length {length}: {service}")
    assert_checks_pass(abuse, engine, image, NORMAL_CHECK[port], "http echo")
    entries = read_transcript(abuse.topology, engine, "srv")
    refused = [e for e in entries if e.get("port") == port and e.get("peer") == "10.243.1.20"
               and e.get("status") == int(answer.split()[1])]
    assert refused and "Content-Length" in refused[-1]["error"], entries[-3:]


def test_a_udp_flood_costs_only_its_datagrams(engine, image, abuse):
    attack = Attack(engine, abuse, "udp-flood", "10.243.1.10", 7, 20000, 512)
    attack.wait("ready")
    assert_checks_pass(abuse, engine, image, "tcp echo")  # the loop is not starved meanwhile
    result = attack.done()
    assert result["sent"] == 20000 and result["echoed"] > 0, result
    FIGURES["udp flood"] = {"sent": result["sent"], "echoed": result["echoed"],
                            "seconds": result["seconds"]}
    assert_small(engine, abuse, "udp flood: 20000 datagrams of 512 bytes")
    assert_checks_pass(abuse, engine, image, "udp echo")


def _firewall(engine, lab, image, action: str, rule: list[str]) -> str:
    """Add (-I) or delete (-D) an OUTPUT rule in srv's own network namespace, with whichever
    iptables flavour works on this engine's kernel. Returns the flavour that did it."""
    errors = []
    for binary in ("iptables-nft", "iptables-legacy"):
        result = engine.run_in_namespace(lab.topology, "srv", image, [binary, "-w", action, "OUTPUT", *rule],
                                         cap_add=["NET_ADMIN"])
        if result.exit_code == 0:
            return binary
        errors.append(f"{binary}: {result.stderr.decode(errors='replace').strip()}")
    raise AssertionError("; ".join(errors))


def test_udp_echo_carries_on_after_a_send_error(engine, image, abuse):
    # Drop srv's answers to one port of the attacker in srv's OUTPUT chain: that sendto
    # fails at once (EPERM), deterministically. The old loop died of it for good.
    rule = ["-p", "udp", "--sport", "7", "-d", "10.243.1.20", "--dport", "40000", "-j", "DROP"]
    _firewall(engine, abuse, image, "-I", rule)
    try:
        doomed = Attack(engine, abuse, "udp-from", "10.243.1.10", 7, 40000, "doomed", 1).done()
        assert doomed["echoed"] is None, doomed
        assert_checks_pass(abuse, engine, image, "udp echo")
        again = Attack(engine, abuse, "udp-from", "10.243.1.10", 7, 40001, "again", 3).done()
        assert again["echoed"] == "again", again
    finally:
        _firewall(engine, abuse, image, "-D", rule)
    entries = read_transcript(abuse.topology, engine, "srv")
    failed = [e for e in entries if e["service"] == "udp-echo" and e.get("peer_port") == 40000]
    assert failed and failed[-1]["error"].startswith("send failed:") and failed[-1]["bytes_out"] == 0, failed
    assert failed[-1]["preview"] == "doomed"


def test_a_thousand_concurrent_connections_are_served(engine, image, abuse):
    result = Attack(engine, abuse, "concurrent", "10.243.1.10", 7, 1000).done()
    assert result["opened"] == 1000 and result["complete"] == 1000, result
    FIGURES["1000 concurrent tcp-echo exchanges"] = {"seconds": result["seconds"]}
    process = assert_small(engine, abuse, "after 1000 concurrent connections")
    assert process["threads"] == 1
    assert_checks_pass(abuse, engine, image, "64 KiB come back", "udp echo", "http echo")


def test_a_plain_tcp_echo_host_stays_small(engine, image, abuse):
    assert_checks_pass(abuse, engine, image, "the small host echoes")
    process = server_process(engine, abuse, "small")
    FIGURES["small host (tcp-echo only)"] = {"rss_mib": round(process["rss"] / MIB, 1),
                                             "threads": process["threads"],
                                             "ssl_loaded": process["ssl_loaded"]}
    assert process["threads"] == 1 and not process["ssl_loaded"], process
    assert server_process(engine, abuse, "srv")["ssl_loaded"]  # where TLS is configured, it is


# -- the limits acting (host `tight`: 2 s timeouts, a 64 KiB transcript) --------------------

@pytest.mark.parametrize("service, port, kind, answer", [
    ("tcp-echo", 7, "tcp", None),                # idle timeout
    ("tls-echo", 9443, "tcp", None),             # handshake timeout, nothing sent
    ("tls-echo", 9443, "tls", None),             # handshake timeout, half a record sent
    ("http", 8080, "tcp", None),                 # idle timeout before a request
    ("http", 8080, "http-partial", "HTTP/1.1 408 Request Timeout"),  # head timeout
    ("https", 8443, "tcp", None),                # handshake timeout
])
def test_idle_connections_close_after_their_timeout(engine, abuse, service, port, kind, answer):
    attack = Attack(engine, abuse, "hold", "10.243.1.11", port, kind, 500, CONTROL_PORT, 30)
    result = attack.done()  # it ends when the server has closed every connection
    assert result["opened"] == 500 and result["closed_by_server"] == 500, result
    assert 1.5 <= result["first_close"] and result["last_close"] <= 6, result
    if answer:
        assert result["answers"] == {answer: 500}, result
    FIGURES[f"timeout {service} ({kind})"] = {"first_close_s": result["first_close"],
                                              "last_close_s": result["last_close"]}


def test_a_slow_but_live_client_is_not_cut(engine, abuse):
    # One byte a second for 4 s on a 2 s idle timeout: every byte moves, so it stays.
    result = Attack(engine, abuse, "paced", "10.243.1.11", 7, 5, 1.0).done()
    assert result == {"event": "done", "echoed": "01234", "closed_cleanly": True}


def _cat(engine, lab, host: str, path: str) -> str:
    result = engine.exec(lab.topology, host, ["cat", path])
    assert result.exit_code == 0, result.stderr
    return result.stdout.decode()


def test_the_transcript_keeps_the_newest_past_its_cap(engine, abuse):
    path = "/var/log/labctl/transcript.jsonl"
    flood = Attack(engine, abuse, "udp-flood", "10.243.1.11", 7, 2000, 64).done()
    assert flood["echoed"] > 0, flood
    # 2000 entries of about 330 bytes each passed the 64 KiB cap many times over: the file
    # rotated, the two halves hold at most the cap, every line whole.
    current, earlier = _cat(engine, abuse, "tight", path), _cat(engine, abuse, "tight", path + ".1")
    assert len(current.encode()) <= 32768 and len(earlier.encode()) <= 32768 and earlier
    entries = [json.loads(line) for line in (earlier + current).splitlines()]
    assert all(next(iter(entry)) == "time" for entry in entries)
    assert [e["time"] for e in entries] == sorted(e["time"] for e in entries)
    # A later exchange is recorded: in the file, and in the output labctl reads.
    since = time.time()
    after = Attack(engine, abuse, "udp-from", "10.243.1.11", 7, 40002, "after the flood", 3).done()
    assert after["echoed"] == "after the flood"
    last = json.loads(_cat(engine, abuse, "tight", path).splitlines()[-1])
    assert (last["preview"], last["peer_port"], last["bytes_out"]) == ("after the flood", 40002, 15)
    seen = [e for e in read_transcript(abuse.topology, engine, "tight", since=since)
            if e.get("peer_port") == 40002]
    assert [e["preview"] for e in seen] == ["after the flood"], seen
    flooded = [e for e in read_transcript(abuse.topology, engine, "tight", since=since - 600)
               if e.get("peer") == "10.243.1.20" and e.get("preview", "").startswith("FFFF")]
    assert len(flooded) >= flood["echoed"]   # the output kept every flooded exchange too
    assert_small(engine, abuse, "tight host after every limit test", host="tight")


def _entries_from(engine, lab, host: str, since: float, **fields) -> list[dict]:
    return [e for e in read_transcript(lab.topology, engine, host, since=since)
            if all(e.get(key) == value for key, value in fields.items())]


def test_a_spoofed_dns_response_gets_no_answer(engine, abuse):
    since = time.time()
    result = Attack(engine, abuse, "dns-response", "10.243.1.11", 53, 2).done()
    assert result["to_response"] is None, result
    assert result["to_query"] and int(result["to_query"][4:8], 16) & 0x8000, result   # the control
    entries = _entries_from(engine, abuse, "tight", since, service="dns", peer="10.243.1.20",
                            peer_port=result["port"])
    assert len(entries) == 2, entries
    response, query = entries
    assert (response["error"], response["bytes_out"]) == ("not answered: a response, not a query", 0)
    assert query["rcode"] == "NOERROR" and query["answers"] == ["A 10.243.1.10"], entries


def test_a_spoofed_datagram_cannot_set_dns_and_udp_echo_ping_ponging(engine, abuse):
    """A query to tight's DNS claiming to come from srv's udp-echo, and an answer to srv's
    udp-echo claiming to come from tight's DNS: answering either would start an endless
    exchange between the two servers. Neither is answered."""
    since = time.time()
    Attack(engine, abuse, "spoof", "10.243.1.11", 53, "10.243.1.10", 7, "query").done()
    Attack(engine, abuse, "spoof", "10.243.1.10", 7, "10.243.1.11", 53, "response").done()
    # A control from the attacker's own address, afterwards: once it is echoed, whatever
    # an answer to the spoofed datagrams would have started has had its time to show.
    control = Attack(engine, abuse, "udp-from", "10.243.1.10", 7, 40003, "control", 3).done()
    assert control["echoed"] == "control"
    [query] = _entries_from(engine, abuse, "tight", since, service="dns", peer="10.243.1.10", peer_port=7)
    assert query["bytes_out"] == 0 and query["qname"] == "srv.abuse.lab", query
    assert query["error"].startswith("not answered: it came from port 7, where the lab's built-in"), query
    [echo] = _entries_from(engine, abuse, "srv", since, service="udp-echo", peer="10.243.1.11")
    assert echo["peer_port"] == 53 and echo["bytes_out"] == 0, echo
    assert echo["error"].startswith("not answered: it came from port 53"), echo


# -- on loopback ---------------------------------------------------------------------------

def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_line(process: subprocess.Popen, text: str) -> None:
    line = process.stdout.readline()  # the server says it serves once every port is bound
    assert text in line, (line, process.stderr.read() if process.poll() is not None else "")


def _labsvc(tmp_path: Path, specs: list[dict], **env: str) -> subprocess.Popen:
    environment = {**os.environ, "LABCTL_TRANSCRIPT": str(tmp_path / "transcript.jsonl"),
                   "LABCTL_PKI": str(tmp_path), **env}
    process = subprocess.Popen([sys.executable, str(LABSVC), json.dumps(specs)], env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_line(process, "labsvc: serving")
    return process


def _stop(process: subprocess.Popen) -> str:
    process.terminate()
    _out, err = process.communicate(timeout=10)
    return err


def _udp_exchange(port: int, payload: bytes, source: tuple[str, int] = ("127.0.0.1", 0)) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(source)
        sock.settimeout(2)
        sock.sendto(payload, ("127.0.0.1", port))
        try:
            return sock.recv(65535)
        except socket.timeout:
            return None


UNSHARE_SCRIPT = r"""
set -e
ip link set lo up
iptables -w -A OUTPUT -p udp --sport "$PORT" --dport 40000 -j DROP
exec "$PYTHON" "$TESTER"
"""

TESTER = r"""
import json, os, socket, subprocess, sys
port = int(os.environ["PORT"])
server = subprocess.Popen([sys.executable, os.environ["LABSVC"],
                           json.dumps([{"kind": "udp-echo", "port": port}])],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
assert "labsvc: serving" in server.stdout.readline()
def exchange(source_port, payload):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", source_port))
        sock.settimeout(1)
        sock.sendto(payload, ("127.0.0.1", port))
        try:
            return sock.recv(100).decode()
        except socket.timeout:
            return None
results = [exchange(40000, b"doomed"), exchange(0, b"after"), exchange(40000, b"doomed again"),
           exchange(0, b"still")]
server.terminate()
server.wait(10)
print(json.dumps(results))
"""


def test_udp_echo_survives_send_errors_on_loopback(tmp_path):
    """A firewall rule in a private network namespace (unshare: no privilege needed) makes
    every answer to port 40000 fail in sendto; the echo must go on for everyone else."""
    if not (shutil.which("unshare") and shutil.which("iptables") and shutil.which("ip")):
        pytest.skip("needs unshare, ip and iptables on this machine")
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unprivileged network namespaces are not available: {probe.stderr.decode().strip()}")
    transcript = tmp_path / "transcript.jsonl"
    env = {**os.environ, "PORT": "17007", "LABSVC": str(LABSVC), "PYTHON": sys.executable,
           "TESTER": str(tmp_path / "tester.py"), "LABCTL_TRANSCRIPT": str(transcript)}
    (tmp_path / "tester.py").write_text(TESTER)
    result = subprocess.run(["unshare", "-rn", "sh", "-c", UNSHARE_SCRIPT], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == [None, "after", None, "still"]
    entries = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert [(e["preview"], e.get("error")) for e in entries] == [
        ("doomed", "send failed: Operation not permitted"), ("after", None),
        ("doomed again", "send failed: Operation not permitted"), ("still", None)]


def test_the_transcript_keeps_the_newest_across_a_restart(tmp_path):
    port = _free_port(socket.SOCK_DGRAM)
    specs = [{"kind": "udp-echo", "port": port}]
    for run in range(2):
        server = _labsvc(tmp_path, specs, LABCTL_SVC_TRANSCRIPT_CAP="4096")
        try:
            for index in range(40):
                payload = b"run %d datagram %d" % (run, index)
                assert _udp_exchange(port, payload) == payload
        finally:
            assert _stop(server) == ""
    current, earlier = tmp_path / "transcript.jsonl", tmp_path / "transcript.jsonl.1"
    assert current.stat().st_size <= 2048 and earlier.stat().st_size <= 2048
    entries = [json.loads(line) for line in (earlier.read_text() + current.read_text()).splitlines()]
    previews = [entry["preview"] for entry in entries]
    everything = [f"run {run} datagram {index}" for run in range(2) for index in range(40)]
    assert previews == everything[-len(previews):] and previews[-1] == "run 1 datagram 39"


def _http(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_http_keeps_its_manners(tmp_path):
    """Pipelined requests answered in order on one connection, 100-continue, HEAD, and the
    refusals that replace what used to crash or hang the server."""
    port = _free_port()
    server = _labsvc(tmp_path, [{"kind": "http", "port": port}])
    try:
        pipelined = _http(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                                b"GET /status/201 HTTP/1.1\r\nHost: x\r\n\r\n"
                                b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        statuses = re.findall(rb"HTTP/1\.1 \d{3} [^\r]*", pipelined)
        assert statuses == [b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK", b"HTTP/1.1 201 Created",
                            b"HTTP/1.1 200 OK"], pipelined
        assert b"\r\n\r\nok\n" in pipelined and b"\r\n\r\nhello" in pipelined
        assert pipelined.endswith(b"\r\n\r\n")  # HEAD: no body
        continued = _http(port, b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                b"Content-Length: 2\r\nConnection: close\r\n\r\nhi")
        assert continued.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK") and continued.endswith(b"hi")
        refusals = {
            b"POST /echo HTTP/1.1\r\nContent-Length: 3000000000\r\n\r\n": b"HTTP/1.1 413 ",
            b"POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n": b"HTTP/1.1 400 ",
            b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n": b"HTTP/1.1 501 ",
            b"BREW /pot HTTP/1.1\r\n\r\n": b"HTTP/1.1 501 ",
            b"GET / HTTP/2.0\r\n\r\n": b"HTTP/1.1 505 ",
            b"nonsense\r\n\r\n": b"HTTP/1.1 400 ",
            b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n": b"HTTP/1.1 414 ",
            b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n": b"HTTP/1.1 431 ",
        }
        for request, status in refusals.items():
            answer = _http(port, request)
            assert answer.startswith(status) and b"Connection: close\r\n" in answer, (request[:40], answer)
        assert _http(port, b"GET /health HTTP/1.0\r\n\r\n").endswith(b"\r\n\r\nok\n")
    finally:
        assert _stop(server) == ""
    entries = [json.loads(line) for line in (tmp_path / "transcript.jsonl").read_text().splitlines()]
    # Loopback requests without a body are health probes and not recorded; the rest are.
    assert [e["preview"] for e in entries if e.get("status") == 200] == ["hello", "hi"]
    assert {e["status"] for e in entries if e.get("error")} >= {413, 400, 414, 431}


def test_tcp_echo_returns_a_million_bytes_after_a_half_close(tmp_path):
    """What a check does: send everything, half-close, read to the EOF."""
    port = _free_port()
    server = _labsvc(tmp_path, [{"kind": "tcp-echo", "port": port}])
    payload = os.urandom(1_000_000)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            echoed = bytearray()
            while chunk := sock.recv(65536):
                echoed += chunk
            assert echoed == payload
    finally:
        assert _stop(server) == ""
    [entry] = [json.loads(line) for line in (tmp_path / "transcript.jsonl").read_text().splitlines()]
    assert (entry["bytes_in"], entry["bytes_out"]) == (1_000_000, 1_000_000)
    assert entry["sha256"] == hashlib.sha256(payload).hexdigest()
