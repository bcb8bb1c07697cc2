"""Impairments, faults, partitions and captures, each measured on the real engine against
what was declared. The fallback mechanism (the one this project's CI kernel needs) is forced
for the whole module, so it is tested on every kernel; the netem path is tested where the
kernel has sch_netem and skipped, with that reason, where it has not."""

from __future__ import annotations

import json
import math
import signal
import statistics
import subprocess
import sys
import textwrap

import pytest

from labctl.checks.pcap import read_pcap
from labctl.names import SERVICES_PATH
from labctl.ops import lifecycle
from labctl.ops.checks import read_transcript, run_checks
from labctl.ops.doctor import probe_kernel

from .conftest import leftovers, load, quiet, run_cli

LAB = """
name: itest-bend
networks:
  net: {subnet: 10.242.0.0/24}
hosts:
  client: {networks: {net: 10.242.0.2}}
  bystander: {networks: {net: 10.242.0.4}}
  server:
    networks: {net: 10.242.0.3}
    services: [{tcp-echo: {port: 7}}, {udp-echo: {port: 7}}, {tcp-echo: {port: 8443}}]
impairments:
  client:net: {delay: 60ms}
checks:
  - name: client echoes
    from: client
    to: server:7
    tcp: {send: "hi\\n", expect: "hi\\n"}
  - name: bystander echoes
    from: bystander
    to: server:7
    tcp: {send: "hi\\n", expect: "hi\\n"}
  # A lab built to break a wire check: plaintext where TLS was promised.
  - name: a secret on the tls port
    from: client
    to: server:8443
    tcp: {send: "secret\\n", expect: "secret\\n"}
  - name: the tls port is really tls
    wire:
      at: net
      during: [a secret on the tls port]
      expect:
        - handshake: client -> server:8443
        - client_hello: server
        - no_plaintext: secret
"""

@pytest.fixture(scope="module")
def bent(engine, image, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bend")
    (folder / "lab.yaml").write_text(textwrap.dedent(LAB).lstrip())
    lab = load(folder / "lab.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LABCTL_SHAPER", "fallback")
        lifecycle.up(lab.topology, engine, quiet)
        try:
            yield lab
        finally:
            lifecycle.down(lab.topology, engine, quiet)
    assert leftovers(engine, lab.topology, image) == {}


def cli(lab, *args: str):
    result = run_cli("-f", str(lab.file), *args)
    assert result.returncode == 0, result.stderr
    return result


def measure(engine, topology, host: str, what: str, amount: int):
    """services/measure.py in `host`, against the server's echo on port 7."""
    result = engine.exec(topology, host, ["python3", f"{SERVICES_PATH}/measure.py", what,
                                          "10.242.0.3", "7", str(amount)])
    assert result.exit_code == 0, result.stderr.decode()
    return json.loads(result.stdout)


def median_rtt(engine, topology, host: str, count: int = 25) -> float:
    return statistics.median(measure(engine, topology, host, "rtt", count))


def binomial_bound(count: int, share: float) -> float:
    """Half-width of the interval an observed share over `count` trials falls outside of about
    once in 16,000 runs (4 standard deviations). With 99% intervals, the five such assertions
    failed about one run in twenty on a correct shaper; 4 sigma still tells 30% from none."""
    return 4 * math.sqrt(share * (1 - share) / count)


def only(lab, **values: str) -> None:
    """Exactly these impairments on client:net, nothing else anywhere."""
    cli(lab, "impair", "--clear")
    if values:
        cli(lab, "impair", "client:net", *[f"--{key}={value}" for key, value in values.items()])


def test_declared_delay_is_applied_by_up_and_live_changes_keep_the_rest(engine, bent):
    baseline = median_rtt(engine, bent.topology, "bystander")
    added = median_rtt(engine, bent.topology, "client") - baseline
    assert abs(added - 0.060) <= 0.2 * 0.060, f"declared 60ms, measured {added * 1000:.1f}ms"

    cli(bent, "impair", "client:net", "--jitter", "10ms")
    cli(bent, "impair", "client:net", "--delay", "30ms")
    shown = json.loads(cli(bent, "impair", "--show", "--json").stdout)
    assert shown == [{"interface": "client:net", "delay": 0.03, "jitter": 0.01, "loss": None, "rate": None,
                      "duplicate": None, "corrupt": None, "reorder": None, "slice": None, "slice_delay": None,
                      "limit": None, "reset": None, "mechanism": "fallback", "applied": "yes"}]
    rtts = measure(engine, bent.topology, "client", "rtt", 40)
    added = statistics.median(rtts) - baseline
    assert abs(added - 0.030) <= 0.2 * 0.030, f"asked 30ms, measured {added * 1000:.1f}ms"
    assert max(rtts) - min(rtts) > 0.010, "10ms of jitter should spread round trips over more than 10ms"
    assert min(rtts) - baseline >= 0.019, "jitter never takes more than 10ms off the 30ms delay"


def test_loss_ratio_is_within_the_binomial_interval(engine, bent):
    only(bent, loss="20%")
    sent = 600
    received = len(measure(engine, bent.topology, "client", "udp", sent))
    lost = 1 - received / sent
    assert abs(lost - 0.20) <= binomial_bound(sent, 0.20), f"declared 20% loss, measured {lost:.1%}"


def test_tcp_delivers_every_byte_under_loss_while_udp_loses(engine, bent):
    only(bent, loss="20%")
    received = len(measure(engine, bent.topology, "client", "udp", 300))
    assert received < 300 * 0.9
    bulk = measure(engine, bent.topology, "client", "bulk", 1_000_000)
    assert bulk["intact"]
    entries = [entry for entry in read_transcript(bent.topology, engine, "server")
               if entry["peer_port"] == bulk["port"] and entry["protocol"] == "tcp"]
    assert [(entry["bytes_in"], entry["sha256"]) for entry in entries] == [(1_000_000, bulk["sha256"])]


def test_throughput_under_a_rate_limit_is_within_20_percent(engine, bent):
    only(bent, rate="8mbit")
    bulk = measure(engine, bent.topology, "client", "bulk", 2_000_000)
    rate = 2_000_000 * 8 / bulk["seconds"]
    assert bulk["intact"]
    assert abs(rate - 8e6) <= 0.2 * 8e6, f"declared 8mbit, measured {rate / 1e6:.2f}mbit"


def test_duplication_reordering_and_corruption(engine, bent):
    only(bent, duplicate="50%")
    replies = measure(engine, bent.topology, "client", "udp", 200)
    assert abs(len(replies) / 200 - 1.5) <= binomial_bound(200, 0.5), f"{len(replies)} replies to 200"
    assert len(set(replies)) == 200

    only(bent, delay="20ms", reorder="50%")
    replies = measure(engine, bent.topology, "client", "udp", 100)
    overtaken = sum(1 for earlier, later in zip(replies, replies[1:]) if later < earlier)
    assert sorted(replies) == list(range(100)) and overtaken >= 10, replies

    only(bent, corrupt="30%")
    received = len(measure(engine, bent.topology, "client", "udp", 800))
    assert abs(received / 800 - 0.70) <= binomial_bound(800, 0.30), \
        f"declared 30% corruption: corrupted datagrams fail their checksum, yet {received} of 800 were answered"
    assert measure(engine, bent.topology, "client", "bulk", 300_000)["intact"]


def test_partition_times_out_and_heal_restores(engine, image, bent):
    only(bent)
    cli(bent, "partition", "client", "--", "server")
    status = json.loads(cli(bent, "status", "--json").stdout)
    faults = {entry["name"]: entry["faults"] for entry in status if entry["role"] == "host"}
    assert faults["client"] == ["partitioned from server"] and faults["bystander"] == []
    by_name = {check.name: check for check in bent.checks}
    client, bystander = run_checks(bent.topology, engine, [by_name["client echoes"], by_name["bystander echoes"]], image)
    assert not client.passed and client.reason.startswith("timeout")
    assert bystander.passed
    cli(bent, "heal")
    assert run_checks(bent.topology, engine, [by_name["client echoes"]], image)[0].passed


def test_host_faults_are_shown_and_reversible(engine, image, bent):
    only(bent, delay="60ms")
    check = next(check for check in bent.checks if check.name == "client echoes")

    def status() -> dict[str, dict]:
        return {entry["name"]: entry for entry in json.loads(cli(bent, "status", "--json").stdout)
                if entry["role"] == "host"}

    for fault, undo, state in (("stop", "start", "exited"), ("kill", "start", "exited"),
                               ("pause", "unpause", "paused")):
        cli(bent, fault, "server")
        assert status()["server"]["state"] == state
        assert not run_checks(bent.topology, engine, [check], image)[0].passed
        cli(bent, undo, "server")
        assert status()["server"]["state"] == "running"
        assert run_checks(bent.topology, engine, [check], image)[0].passed

    cli(bent, "disconnect", "client")
    assert status()["client"]["faults"] == ["disconnected from net", "net: delay 60ms"]
    assert not run_checks(bent.topology, engine, [check], image)[0].passed
    cli(bent, "reconnect", "client")
    # A reconnected or restarted host gets its impairment back from a fresh sidecar.
    assert median_rtt(engine, bent.topology, "client", 10) > 0.05
    cli(bent, "restart", "client")
    assert median_rtt(engine, bent.topology, "client", 10) > 0.05

    cli(bent, "stop", "server")
    cli(bent, "pause", "bystander")
    cli(bent, "heal")
    assert {name: entry["state"] for name, entry in status().items()} == {
        "client": "running", "bystander": "running", "server": "running"}
    assert run_checks(bent.topology, engine, [check], image)[0].passed


def test_capture_file_reads_back_with_tcpdump(engine, image, bent, tmp_path):
    only(bent)
    pcap = tmp_path / "net.pcap"
    capture = subprocess.Popen([sys.executable, "-m", "labctl", "-f", str(bent.file), "capture", "net",
                                "-w", str(pcap), "--for", "3s", "--filter", "tcp port 7"],
                               stderr=subprocess.PIPE, text=True)
    assert "capturing on network net" in capture.stderr.readline()
    check = next(check for check in bent.checks if check.name == "bystander echoes")
    assert run_checks(bent.topology, engine, [check], image)[0].passed
    assert capture.wait(timeout=30) == 0
    shown = engine.client.containers.run(image, ["tcpdump", "-nr", "/capture.pcap"], remove=True,
                                         network_mode="none",
                                         volumes={str(pcap): {"bind": "/capture.pcap", "mode": "ro"}})
    lines = shown.decode().splitlines()
    assert any("10.242.0.4." in line and "> 10.242.0.3.7: Flags [S]," in line for line in lines), lines
    assert any("10.242.0.3.7 > 10.242.0.4." in line and "Flags [S.]" in line for line in lines), lines
    assert all(" 10.242.0.3.7" in line or ".7 >" in line for line in lines)

    host_pcap = tmp_path / "server.pcap"
    # Ended by Ctrl-C once the check is done, not by a clock a loaded machine can outrun.
    capture = subprocess.Popen([sys.executable, "-m", "labctl", "-f", str(bent.file), "capture", "server",
                                "-w", str(host_pcap)], stderr=subprocess.PIPE, text=True)
    assert "capturing on server" in capture.stderr.readline()
    assert run_checks(bent.topology, engine, [check], image)[0].passed
    capture.send_signal(signal.SIGINT)
    assert capture.wait(timeout=30) == 0
    packets = list(read_pcap(host_pcap.read_bytes()))
    assert any(p.syn and p.source == "10.242.0.4" and p.destination_port == 7 for p in packets)


def test_wire_check_fails_on_plaintext_where_tls_was_promised(engine, image, bent):
    only(bent)
    wire = next(check for check in bent.checks if check.name == "the tls port is really tls")
    result = run_checks(bent.topology, engine, [wire], image)[0]
    assert not result.passed
    assert "expected a TLS ClientHello naming server: saw no ClientHello" in result.reason
    assert "plaintext matching 'secret' crossed the wire" in result.reason
    assert "handshake" not in result.reason  # that part of the check holds


def test_netem_path_where_the_kernel_has_it(engine, bent, monkeypatch):
    if not probe_kernel(engine.client).get("netem"):
        pytest.skip("this kernel has no sch_netem; the fallback is tested instead")
    monkeypatch.setenv("LABCTL_SHAPER", "netem")
    only(bent, delay="40ms")
    shown = json.loads(cli(bent, "impair", "--show", "--json").stdout)
    assert shown[0]["mechanism"] == "netem"
    added = median_rtt(engine, bent.topology, "client") - median_rtt(engine, bent.topology, "bystander")
    assert abs(added - 0.040) <= 0.2 * 0.040
    only(bent, loss="20%")
    received = len(measure(engine, bent.topology, "client", "udp", 600))
    assert abs(1 - received / 600 - 0.20) <= binomial_bound(600, 0.20)



def test_stream_faults_cut_segments_and_reset_connections_on_the_wire(engine, image, bent, tmp_path):
    """slice: every segment the client sends is 1 byte on the wire, 10 ms apart,
    and the echo still comes back whole; limit and reset end connections at both ends."""
    only(bent)
    cli(bent, "impair", "client:net", "--slice", "1", "--slice-delay", "10ms")
    pcap = tmp_path / "sliced.pcap"
    capture = subprocess.Popen([sys.executable, "-m", "labctl", "-f", str(bent.file), "capture", "net",
                                "-w", str(pcap), "--filter", "tcp port 7"], stderr=subprocess.PIPE, text=True)
    assert "capturing on network net" in capture.stderr.readline()
    check = next(check for check in bent.checks if check.name == "client echoes")
    result = run_checks(bent.topology, engine, [check], image)[0]
    capture.send_signal(signal.SIGINT)
    assert capture.wait(timeout=30) == 0
    assert result.passed, result.reason          # "hi\n" in pieces, echoed whole
    sent = [p for p in read_pcap(pcap.read_bytes()) if p.source == "10.242.0.2" and p.payload]
    assert len(sent) >= 3 and max(len(p.payload) for p in sent) == 1, [len(p.payload) for p in sent]
    # In order, though a piece held back 10 ms may also be sent again by TCP's own timers.
    assert sent[0].payload == b"h" and set(b"".join(p.payload for p in sent)) == set(b"hi\n")
    # Three pieces, 10 ms apart: the last leaves at least 20 ms after the first.
    assert sent[-1].time - sent[0].time >= 0.018, [round(p.time - sent[0].time, 4) for p in sent]

    only(bent, limit="100")
    long = engine.exec(bent.topology, "client", ["python3", "-c", textwrap.dedent("""
        import socket
        s = socket.create_connection(("10.242.0.3", 7), timeout=5)
        try:
            for _ in range(20):
                s.sendall(b"x" * 50); s.recv(100)
            print("all sent")
        except OSError as exc:
            print("ended:", exc.__class__.__name__)
    """)])
    assert "ended: ConnectionResetError" in long.stdout.decode() or "ended: BrokenPipeError" in long.stdout.decode(), long

    only(bent, reset="1s")
    timed = engine.exec(bent.topology, "client", ["python3", "-c", textwrap.dedent("""
        import socket, time
        s = socket.create_connection(("10.242.0.3", 7), timeout=5)
        s.sendall(b"early\\n"); assert s.recv(100) == b"early\\n"
        time.sleep(1.5)
        try:
            s.sendall(b"late\\n"); data = s.recv(100)
            print("still open", data)
        except OSError as exc:
            print("ended:", exc.__class__.__name__)
    """)])
    assert "ended: ConnectionResetError" in timed.stdout.decode() or "ended: BrokenPipeError" in timed.stdout.decode(), timed
    only(bent)
