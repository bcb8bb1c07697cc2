"""The built-in servers (services/labsvc.py and its svc_* parts) in this process, on real
loopback sockets driven by their own event loop: no two of them can be set ping-ponging by
a spoofed datagram, DNS over TCP holds little output for a client that does not read, and
the transcript keeps the newest exchanges past its cap."""

from __future__ import annotations

import importlib
import json
import socket
import subprocess
import sys
import time
import types

import pytest

from labctl.engines.factory import read_lab
from labctl.render.compose import host_basics

from .test_services_ipv6 import SERVICES


@pytest.fixture
def svc(monkeypatch, tmp_path):
    """The servers' modules, imported as a host imports them, the transcript kept in a list."""
    monkeypatch.setenv("LABCTL_TRANSCRIPT", str(tmp_path / "transcript.jsonl"))
    monkeypatch.syspath_prepend(str(SERVICES))
    names = ("svc_loop", "svc_transcript", "svc_tcp", "svc_udp", "svc_dns", "dnszone", "labsvc")
    modules = types.SimpleNamespace(**{name: importlib.import_module(name) for name in names})
    kept: list[dict] = []
    monkeypatch.setattr(modules.svc_transcript, "transcript",
                        types.SimpleNamespace(append=kept.append))
    modules.kept = kept
    return modules


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spoof(source_port: int, port: int, payload: bytes) -> None:
    """A datagram to 127.0.0.1:`port` claiming to come from `source_port`, where a server
    listens: sent from 127.0.0.2 (the server's socket takes every address, so this one may
    share its port) by a socket closed at once, so that any answer reaches the server."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.2", source_port))
        sock.sendto(payload, ("127.0.0.1", port))


def serve_until_quiet(loop, kept: list, most: int = 400, quiet: float = 0.3) -> None:
    """Turn the loop until nothing happened for `quiet` seconds (the only way to see that
    nothing more comes), or `most` entries are recorded (a ping-pong never goes quiet)."""
    last = time.monotonic()
    while len(kept) < most:
        if loop.turn(0.05):
            last = time.monotonic()
        elif time.monotonic() - last > quiet:
            return


def zone(svc):
    return svc.dnszone.Zone("lab.test", {"web": ["10.0.0.80"]}, [], "ns")


def echoes(svc, loop, quiet):
    """Two udp-echo servers on loopback, on ports of their own."""
    ports = free_port(), free_port()
    for port in ports:
        svc.svc_udp.UdpEcho(loop, port, socket.AF_INET, quiet(ports))
    return ports


# -- no ping-pong ----------------------------------------------------------------------------

def test_without_the_rule_two_echoes_ping_pong_for_ever(svc):
    """The control: the test below sees a loop when there is one."""
    loop = svc.svc_loop.Loop()
    first, second = echoes(svc, loop, lambda ports: svc.svc_udp.NEVER_ANSWERED)
    spoof(second, first, b"ping")
    serve_until_quiet(loop, svc.kept, most=200)
    assert len(svc.kept) >= 200
    assert {entry["port"] for entry in svc.kept} == {first, second}


def test_an_echo_never_answers_a_datagram_from_a_port_the_lab_serves_datagrams_on(svc):
    loop = svc.svc_loop.Loop()
    first, second = echoes(svc, loop, lambda ports: frozenset({0, *ports}))
    spoof(second, first, b"ping")
    serve_until_quiet(loop, svc.kept)
    [entry] = svc.kept
    assert (entry["port"], entry["peer"], entry["peer_port"], entry["bytes_out"]) == (first, "127.0.0.2", second, 0)
    assert entry["error"].startswith(f"not answered: it came from port {second}, where the lab's built-in")
    # An ordinary client is answered as ever.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(b"hello", ("127.0.0.1", first))
        serve_until_quiet(loop, svc.kept)
        client.settimeout(1)
        assert client.recv(100) == b"hello"
    assert svc.kept[-1]["bytes_out"] == 5 and "error" not in svc.kept[-1]


def test_nothing_answers_port_zero(svc):
    quiet = frozenset({0, 53})
    assert svc.svc_udp.unanswerable(("10.0.0.1", 0), quiet) == "not answered: it came from port 0"
    assert svc.svc_udp.unanswerable(("fd00::1", 53, 0, 0), quiet).startswith("not answered: it came from port 53")
    assert svc.svc_udp.unanswerable(("10.0.0.1", 40000), quiet) is None


def dns_and_echo(svc, loop, quiet):
    dns_port, echo_port = free_port(), free_port()
    ports = frozenset(quiet(dns_port, echo_port))
    service = svc.labsvc.Service("dns", dns_port, svc.svc_dns.DnsApp, zone=zone(svc))
    svc.svc_dns.DnsUdp(loop, service, socket.AF_INET, ports)
    svc.svc_udp.UdpEcho(loop, echo_port, socket.AF_INET, ports)
    return dns_port, echo_port


def test_a_spoofed_query_from_the_echo_gets_no_answer(svc):
    loop = svc.svc_loop.Loop()
    dns_port, echo_port = dns_and_echo(svc, loop, lambda *ports: {0, *ports})
    spoof(echo_port, dns_port, svc.dnszone.query("web.lab.test", "A", 1))
    serve_until_quiet(loop, svc.kept)
    [entry] = svc.kept
    assert (entry["service"], entry["peer_port"], entry["bytes_out"], entry["qname"]) == \
        ("dns", echo_port, 0, "web.lab.test")
    assert entry["error"].startswith(f"not answered: it came from port {echo_port}")


def test_dns_never_answers_a_response_so_the_echo_cannot_keep_it_going(svc):
    """Without the port rule, DNS answers the spoofed query and the echo sends the answer
    back: a response, which DNS does not answer. The exchange ends there."""
    loop = svc.svc_loop.Loop()
    dns_port, echo_port = dns_and_echo(svc, loop, lambda *ports: {0})
    spoof(echo_port, dns_port, svc.dnszone.query("web.lab.test", "A", 1))
    serve_until_quiet(loop, svc.kept)
    assert [(e["service"], e.get("rcode"), e.get("error")) for e in svc.kept] == [
        ("dns", "NOERROR", None), ("udp-echo", None, None),
        ("dns", None, "not answered: a response, not a query")]


def test_the_lab_lists_every_answering_datagram_port_to_every_answering_server(svc, write_lab):
    topology = read_lab(write_lab("""
        name: q
        networks: {lan: {subnet: 10.9.1.0/24}}
        hosts:
          a: {networks: [lan], services: [{udp-echo: {port: 7}}, {tcp-echo: {port: 7}}]}
          b: {networks: [lan], services: [{dns: {zone: q.lab, port: 5353}}, {udp-listener: {port: 9}}]}
          c: {networks: [lan], services: [{udp-echo: {port: 4000}}]}
          d: {networks: [lan]}
        """)).topology
    specs = {name: json.loads(host_basics(topology, host, "img")["command"][-1])
             for name, host in topology.hosts.items() if host.services}
    lists = {(name, spec["kind"]): spec.get("never_answer_ports") for name, items in specs.items()
             for spec in items}
    assert lists == {("a", "udp-echo"): [7, 4000, 5353], ("a", "tcp-echo"): None,
                     ("b", "dns"): [7, 4000, 5353], ("b", "udp-listener"): None,
                     ("c", "udp-echo"): [7, 4000, 5353]}
    # A server adds port 0 and its own host's answering ports to what it is given.
    assert svc.labsvc.quiet_ports(specs["b"]) == {0, 7, 4000, 5353}
    assert svc.labsvc.quiet_ports([{"kind": "udp-echo", "port": 7}]) == {0, 7}


# -- DNS over TCP: bounded output ------------------------------------------------------------

def dns_tcp(svc, loop, port):
    service = svc.labsvc.Service("dns", port, svc.svc_dns.DnsApp, zone=zone(svc))
    listener = svc.svc_tcp.Listener(loop, service, socket.AF_INET)
    # Small kernel buffers, so a client that does not read makes the server hold output.
    listener.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    listener.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return listener


def framed(svc, count: int) -> bytes:
    return b"".join(len(q).to_bytes(2, "big") + q for q in
                    (svc.dnszone.query("web.lab.test", "A", i) for i in range(count)))


def test_dns_over_tcp_holds_little_output_for_a_client_that_does_not_read(svc, monkeypatch):
    monkeypatch.setattr(svc.svc_tcp, "IDLE_TIMEOUT", 1.0)
    loop = svc.svc_loop.Loop()
    port = free_port()
    dns_tcp(svc, loop, port)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client.connect(("127.0.0.1", port))
    client.setblocking(False)
    queries = framed(svc, 20000)   # about 600 KB asking for about 1 MB of answers
    sent, most_held, started = 0, 0, time.monotonic()
    while loop.conns or not sent:
        try:
            sent += client.send(queries[sent:sent + 65536])
        except BlockingIOError:
            pass
        loop.turn(0.05)
        most_held = max([most_held, *(len(conn.out) for conn in loop.conns.values())])
        assert time.monotonic() - started < 10, "the server never closed the connection"
    # At most 16 KiB and one answer; the old server held about 7.5 reads' worth of answers
    # per read (480 KB).
    assert most_held <= (16 << 10) + 2 + 512, most_held
    assert sent < len(queries) and len(svc.kept) < 20000, (sent, len(svc.kept))   # it stopped reading
    client.close()


def test_dns_over_tcp_answers_every_query_of_a_client_that_reads(svc):
    loop = svc.svc_loop.Loop()
    port = free_port()
    dns_tcp(svc, loop, port)
    client = socket.create_connection(("127.0.0.1", port))
    client.setblocking(False)
    queries, received, sent, half_closed = framed(svc, 3000), bytearray(), 0, False
    while True:
        if sent < len(queries):
            try:
                sent += client.send(queries[sent:sent + 65536])
            except BlockingIOError:
                pass
        elif not half_closed:
            client.shutdown(socket.SHUT_WR)   # the rest must still be answered
            half_closed = True
        loop.turn(0.05)
        try:
            chunk = client.recv(65536)
        except BlockingIOError:
            continue
        if not chunk:
            break
        received += chunk
    client.close()
    answers, at = [], 0
    while at < len(received):
        size = int.from_bytes(received[at:at + 2], "big")
        answers.append(svc.dnszone.parse_response(bytes(received[at + 2:at + 2 + size])))
        at += 2 + size
    assert [a["id"] for a in answers] == list(range(3000))
    assert all(a["answers"][0]["value"] == "10.0.0.80" for a in answers)


# -- the transcript --------------------------------------------------------------------------

def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_transcript_rotates_and_keeps_the_newest_past_its_cap(svc, tmp_path, capfd):
    path = tmp_path / "t.jsonl"
    transcript = svc.svc_transcript.Transcript(str(path), 4096)
    for index in range(200):
        transcript.append({"time": index, "preview": f"exchange {index}"})
    current, earlier = read_lines(path), read_lines(tmp_path / "t.jsonl.1")
    assert current[-1]["preview"] == "exchange 199"
    assert [e["time"] for e in earlier + current] == list(range(200 - len(earlier) - len(current), 200))
    assert path.stat().st_size <= 2048 and (tmp_path / "t.jsonl.1").stat().st_size <= 2048
    # Every line also went to the output, none left out.
    out = capfd.readouterr().out.splitlines()
    assert [json.loads(line[len("transcript "):])["time"] for line in out] == list(range(200))
    # A restarted server carries on in the same file.
    again = svc.svc_transcript.Transcript(str(path), 4096)
    again.append({"time": 200, "preview": "after a restart"})
    assert read_lines(path)[-1]["preview"] == "after a restart"


def test_an_entry_is_bounded_whatever_its_fields(svc):
    long_path = "/" + "a" * 9000
    svc.svc_transcript.record("http", "http", 80, ("10.0.0.1", 4000), b"x" * 500, 500, 0, "d",
                              path=long_path, answers=[f"TXT {'t' * 2000}"] * 500)
    [entry] = svc.kept
    assert len(entry["path"]) == svc.svc_transcript.FIELD_MAX and entry["path"].endswith("...")
    assert len(entry["answers"]) == svc.svc_transcript.ITEMS_MAX
    assert all(len(answer) == svc.svc_transcript.FIELD_MAX for answer in entry["answers"])
    assert len(entry["preview"]) == 64
    assert len(json.dumps(entry)) < 80_000


# -- what a host loads -----------------------------------------------------------------------

LOADED = """
import json, sys
import labsvc, svc_loop
svc_loop.Loop.run = lambda self: None
labsvc.main(["labsvc.py", sys.argv[1]])
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("specs, absent, present", [
    ([{"kind": "tcp-echo", "port": 0}], {"ssl", "_ssl", "_hashlib", "http", "dnszone", "svc_tls", "svc_http",
                                         "svc_dns", "probe"}, {"svc_tcp", "_sha256"}),
    ([{"kind": "http", "port": 0}], {"ssl", "_ssl", "_hashlib", "dnszone", "svc_tls"}, {"svc_http", "http"}),
    ([{"kind": "dns", "port": 0, "zone": "q.lab"}], {"ssl", "_ssl", "_hashlib", "svc_http"}, {"svc_dns", "dnszone"}),
])
def test_a_host_loads_only_what_its_services_need(tmp_path, specs, absent, present):
    """As a host runs it (`python3 -E -s -S`, the script's folder first on the path); the
    loop's run is replaced by a return, so it stops once every server listens."""
    script = tmp_path / "loaded.py"
    script.write_text(LOADED)
    result = subprocess.run([sys.executable, "-E", "-s", "-S", "-c",
                             f"import sys; sys.path.insert(0, {str(SERVICES)!r}); "
                             f"exec(open({str(script)!r}).read())", json.dumps(specs)],
                            capture_output=True, text=True, timeout=30,
                            env={"LABCTL_TRANSCRIPT": str(tmp_path / "t.jsonl")})
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert not loaded & absent and present <= loaded, (loaded & absent, present - loaded)


def test_an_idle_server_sleeps_until_something_arrives(svc):
    """No connection, nothing paused, nobody waiting: the loop has no deadline to look at,
    so it waits with no timeout at all (a lab that sits idle wakes nothing). With a
    connection open it wakes for the next sweep."""
    loop = svc.svc_loop.Loop()
    echoes(svc, loop, lambda ports: svc.svc_udp.NEVER_ANSWERED)
    asked: list = []
    loop.selector.select = lambda timeout=None: asked.append(timeout) or []
    loop.turn()
    assert asked == [None]
    # a connection that is open (its deadline far off): deadlines must be looked at again
    loop.conns[-1] = types.SimpleNamespace(deadline=float("inf"), closed=False)
    loop.turn()
    assert asked[1] is not None and 0 <= asked[1] <= svc.svc_loop.SWEEP
