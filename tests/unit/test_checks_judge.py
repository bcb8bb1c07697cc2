"""The check vocabulary, judged against observations, and the report formats."""

from __future__ import annotations

import base64
import json
import textwrap
import xml.etree.ElementTree as ET

import pytest

from labctl.checks.judge import judge, server_problems
from labctl.checks.probe import probe_spec
from labctl.checks.result import CheckResult, summary
from labctl.cli.formats import result_formats
from labctl.engines.factory import read_lab
from labctl.errors import LabFileError

LAB = """
name: j
networks:
  lan: {subnet: 10.7.1.0/24}
  dmz: {subnet: 10.7.2.0/24}
hosts:
  gw: {networks: {lan: 10.7.1.254, dmz: 10.7.2.254}, router: true}
  a: {networks: {lan: 10.7.1.5}}
  b: {networks: {dmz: 10.7.2.6}, services: [{tcp-echo: {port: 7}}, {http: {port: 80}}, {udp-echo: {port: 7}}]}
checks:
"""


@pytest.fixture
def lab_with(write_lab):
    def load(check: str):
        text = LAB + textwrap.indent(textwrap.dedent(check).strip(), "  ") + "\n"
        return read_lab(write_lab(text))
    return load


def reply(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def observed(*replies: str | bytes, **fields):
    return {"id": 0, "error": None, "detail": "", "local": [["10.7.1.5", 40000]],
            "replies": [reply(r) for r in replies], "elapsed_ms": 3.0, **fields}


def test_expectation_kinds(lab_with):
    cases = {
        '"hi\\n"': ("hi\n", "ho\n", "expected exactly 'hi\\n'"),
        "{contains: ell}": ("hello", "hallo", "containing 'ell'"),
        "{regex: '^h.l+o$'}": ("hello", "yellow", "matching"),
        "{json: {user: {name: al}}}": ('{"user": {"name": "al", "id": 1}}', '{"user": {"name": "bo"}}',
                                       "at $.user.name: expected \"al\""),
        "{length: 4}": ("abcd", "abc", "expected 4 bytes, got 3"),
    }
    for expect, (good, bad, words) in cases.items():
        lab = lab_with(f"- {{from: a, to: b:7, tcp: {{send: x, expect: {expect}}}}}")
        check = lab.checks[0]
        assert judge(check, observed(good)) == (True, ""), expect
        passed, reason = judge(check, observed(bad))
        assert not passed and words in reason, (expect, reason)


def test_send_forms_and_steps(lab_with, tmp_path):
    (tmp_path / "payload.bin").write_bytes(b"\x00\x01file")
    lab = lab_with("""
        - {name: hex, from: a, to: b:7, tcp: {send: {hex: "00ff10"}, expect: {length: 3}}}
        - {name: file, from: a, to: b:7, tcp: {send: {file: ./payload.bin}}}
        - name: chat
          from: a
          to: b:7
          tcp:
            steps:
              - {send: "HELLO\\n", expect: {contains: WELCOME}}
              - {send: "BYE\\n", expect: "OK\\n"}
        """)
    hex_check, file_check, chat = lab.checks
    assert hex_check.steps[0].send == b"\x00\xff\x10"
    assert file_check.steps[0].send == b"\x00\x01file"
    spec = probe_spec(lab.topology, chat, 0)
    assert spec["steps"][0]["read"] == {"mode": "regex", "pattern": "WELCOME"}
    assert spec["steps"][1]["read"] == {"mode": "bytes", "n": 3}
    assert spec["address"] == "10.7.2.6"
    assert judge(chat, observed("WELCOME alice\n", "OK\n"))[0]
    passed, reason = judge(chat, observed("WELCOME alice\n", "NO\n"))
    assert not passed and reason.startswith("step 2: expected exactly 'OK\\n'")


def test_expected_errors_and_reasons(lab_with):
    lab = lab_with("""
        - {name: refused, from: a, to: b:9, tcp: {expect_error: refused}}
        - {name: rejected, from: a, to: b:7, tls: {expect_error: rejected, reason: {contains: certificate required}}}
        """)
    refused, rejected = lab.checks
    assert judge(refused, observed(error="refused", detail="connection refused")) == (True, "")
    passed, reason = judge(refused, observed(error="timeout", detail="no answer in time"))
    assert not passed and "expected refused, got timeout" in reason
    passed, reason = judge(refused, observed("fine"))
    assert not passed and "succeeded" in reason
    assert judge(rejected, observed(error="rejected", detail="tlsv13 alert certificate required"))[0]
    passed, reason = judge(rejected, observed(error="rejected", detail="handshake failure"))
    assert not passed and "the reason expected containing" in reason


def test_latency_udp_share_tls_facts_and_http(lab_with):
    lab = lab_with("""
        - {name: fast, from: a, to: b:7, latency: 50ms, tcp: {send: x, expect: x}}
        - {name: udp, from: a, to: b:7, udp: {send: x, count: 100, min_share: 90%}}
        - {name: tls, from: a, to: b:7, tls: {min_version: 1.3, subject: {contains: CN=b}, san: [DNS:b, IP:10.7.2.6]}}
        - name: http
          from: a
          to: b:80
          http: {method: POST, path: /echo, body: hi, expect: hi, response_headers: {Content-Type: {contains: text/plain}}}
        """)
    fast, udp, tls, http = lab.checks
    assert judge(fast, observed("x", elapsed_ms=10.0))[0]
    passed, reason = judge(fast, observed("x", elapsed_ms=80.0))
    assert not passed and "over the 50ms bound" in reason
    assert judge(udp, observed("x", udp={"sent": 100, "received": 95}))[0]
    passed, reason = judge(udp, observed("x", udp={"sent": 100, "received": 80}))
    assert not passed and "80/100 datagrams came back (80%), below 90%" in reason
    facts = {"version": "TLSv1.3", "subject": "O=labctl j,CN=b", "san": ["DNS:b", "IP:10.7.2.6"]}
    assert judge(tls, observed(tls=facts))[0]
    passed, reason = judge(tls, observed(tls={**facts, "version": "TLSv1.2", "san": ["DNS:b"]}))
    assert not passed and "below TLSv1.3" in reason and "SAN lacks IP:10.7.2.6" in reason
    good = observed("hi", status=200, headers={"content-type": "text/plain; charset=utf-8"})
    assert judge(http, good)[0]
    passed, reason = judge(http, {**good, "status": 500, "headers": {}})
    assert not passed and "expected status 200, got 500" in reason and "no response header content-type" in reason


def test_load_and_run(lab_with):
    lab = lab_with("""
        - name: load
          from: a
          to: b:80
          http: {path: /health}
          load: {clients: 4, requests: 100, min_throughput: 50/s, max_error_rate: 1%, max_p99: 20ms}
        - {name: run, from: a, to: b:7, run: {command: "./client b 7", exit_code: 0, stdout: {contains: done}}}
        """)
    load, run = lab.checks
    stats = {"requests": 100, "errors": 0, "throughput": 400.0, "p99_ms": 5.0}
    assert judge(load, observed(load=stats))[0]
    passed, reason = judge(load, observed(load={**stats, "errors": 5, "throughput": 10.0, "p99_ms": 30.0}))
    assert not passed and "error rate 5.0% over 1.0%" in reason and "below 50/s" in reason and "p99 30.0ms" in reason
    assert run.options.command == ["sh", "-c", "./client b 7"]
    ok = {"exit_code": 0, "stdout": reply("all done\n"), "stderr": reply("")}
    assert judge(run, ok)[0]
    passed, reason = judge(run, {**ok, "exit_code": 2, "stderr": reply("boom\n")})
    assert not passed and "exit code 2, expected 0 (stderr: boom)" in reason


def test_server_side_matches_the_clients_port_and_address(lab_with):
    lab = lab_with("- {name: echo, from: a, to: b:7, tcp: {send: x, expect: x}, server: {count: 1, received: x}}")
    check = lab.checks[0]
    entry = {"port": 7, "protocol": "tcp", "peer": "10.7.1.5", "peer_port": 40000, "bytes_in": 1,
             "sha256": "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881", "preview": "x"}
    problems, mine = server_problems(lab.topology, check, observed("x"), [entry], None)
    assert problems == [] and mine == [entry]
    # Through a NAT the server sees the router's address: the check must fail on that.
    natted = {**entry, "peer": "10.7.2.254"}
    problems, _ = server_problems(lab.topology, check, observed("x"), [natted], None)
    assert problems == ["the server saw it from 10.7.2.254, expected a (10.7.1.5)"]
    problems, _ = server_problems(lab.topology, check, observed("x"), [{**entry, "peer_port": 1}], None)
    assert problems and "saw no such exchange from a (10.7.1.5); it saw 10.7.1.5" in problems[0]


def test_bad_check_vocabulary_is_a_one_line_error(lab_with):
    for check, words in [
        ("- {from: a, to: b:7, udp: {send: x, min_share: 120%}}", "expected a share"),
        ("- {from: a, to: b:7, tcp: {send: {hex: zz}}}", "expected hexadecimal bytes"),
        ("- {from: a, to: b:7, tcp: {send: {file: ./absent}}}", "is not a file inside the lab folder"),
        ("- {from: a, to: b:7, tcp: {send: x}, load: {clients: 2}}", "exactly one of requests"),
        ("- {from: a, to: b:7, tls: {min_version: 1.1}}", "expected 1.2 or 1.3"),
        ("- {from: a, to: b:7, tcp: {reason: x}}", "reason goes with expect_error"),
    ]:
        with pytest.raises(LabFileError) as caught:
            lab_with(check)
        assert words in str(caught.value) and "\n" not in str(caught.value)


def test_reports():
    results = [CheckResult("one", "a", "b", 7, "tcp", True, 3.2),
               CheckResult("two", "a", "b", 9, "tcp", False, 1.0, "refused: connection refused")]
    formats = result_formats()
    text, last = formats["table"].render(results, 1.5, "lab").rsplit("\n", 1)
    assert last == summary(results, 1.5)
    assert "a → b:9" in text and "FAIL" in text and "refused" in text
    assert summary(results, 1.5) == "1 passed, 1 failed in 1.50s; score 1/2"
    payload = json.loads(formats["json"].render(results, 1.5, "lab"))
    assert payload["passed"] == 1 and payload["failed"] == 1
    assert payload["checks"][1]["reason"] == "refused: connection refused"
    suite = ET.fromstring(formats["junit"].render(results, 1.5, "lab").split("\n", 1)[1]).find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    failure = suite.findall("testcase")[1].find("failure")
    assert failure is not None and failure.get("message") == "refused: connection refused"


def test_ping_reads_as_a_sentence_and_judges_its_replies(lab_with):
    lab = lab_with("""
        - {name: reaches, from: a, to: b, ping: {count: 4, min_share: 75%, max_rtt: 50ms, size: 100}}
        - {name: plain, from: a, to: b, ping: {}}
        - {name: cut off, from: a, to: b, ping: {expect_error: timeout}}
        """)
    reaches, plain, cut_off = lab.checks
    assert (reaches.target, reaches.port, plain.options.count) == ("b", None, 3)
    spec = probe_spec(lab.topology, reaches, 0)
    assert spec["protocol"] == "ping" and spec["address"] == "10.7.2.6"
    assert spec["icmp"] == {"count": 4, "size": 100}
    three_of_four = {"error": None, "icmp": {"sent": 4, "received": 3, "rtt_ms": [1.0, 2.0, 3.0]}}
    assert judge(reaches, three_of_four) == (True, "")
    two_of_four = {"error": None, "icmp": {"sent": 4, "received": 2, "rtt_ms": [1.0, 2.0]}}
    assert "2/4 echo replies came back (50%), below 75%" in judge(reaches, two_of_four)[1]
    slow = {"error": None, "icmp": {"sent": 4, "received": 4, "rtt_ms": [1.0, 2.0, 3.0, 80.0]}}
    assert "the slowest reply took 80.0ms, over the 50ms bound" in judge(reaches, slow)[1]
    silent = {"error": "timeout", "detail": "no echo reply to 3 requests"}
    assert judge(cut_off, silent) == (True, "")
    assert judge(plain, silent) == (False, "timeout: no echo reply to 3 requests")
    assert reaches.kind.counted(three_of_four) == 3
    assert CheckResult("p", "a", "b", None, "ping", True, 0.2).route == "a → b"


def test_bad_ping_vocabulary_is_a_one_line_error(lab_with):
    for check, words in [
        ("- {from: a, to: b:7, ping: {}}", "a ping check reaches a host, not a port: write to: b"),
        ("- {from: a, to: nowhere, ping: {}}", "unknown host 'nowhere'"),
        ("- {from: a, to: b, ping: {count: 0}}", "ping.count"),
        ("- {from: a, to: b, ping: {size: 70000}}", "ping.size"),
        ("- {from: a, to: b, ping: {min_share: 2}}", "expected a share"),
        ("- {from: a, to: b, ping: {expect_error: refused}}", "expected one of unreachable, timeout"),
        ("- {from: a, to: b, ping: {send: x}}", "unknown key 'send'"),
        ("- {from: a, ping: {}}", "missing required key 'to' (the host it reaches)"),
    ]:
        with pytest.raises(LabFileError) as caught:
            lab_with(check)
        assert words in str(caught.value) and "\n" not in str(caught.value), (check, str(caught.value))


def test_a_reach_matrix_is_a_ping_per_pair_and_knows_which_must_fail(lab_with, write_lab):
    lab = lab_with("- {name: m, reach: {from: [a, b], to: all, count: 2, fail: [[b, gw]]}}")
    rows = {check.name: check for check in lab.checks}
    assert set(rows) == {"m: a → gw", "m: a → b", "m: b → gw", "m: b → a"}
    assert all(check.kind.name == "ping" and check.options.count == 2 for check in rows.values())
    assert rows["m: a → b"].options.fails == ""            # routed through gw
    assert rows["m: b → gw"].options.fails == "listed under fail"
    no_reply = {"error": "timeout", "detail": "no echo reply to 2 requests"}
    replied = {"error": None, "icmp": {"sent": 2, "received": 2, "rtt_ms": [0.1, 0.1]}}
    assert judge(rows["m: b → gw"], no_reply) == (True, "")
    assert judge(rows["m: b → gw"], replied)[1] == \
        "expected no reply (listed under fail), but 2/2 echo replies came back"
    assert judge(rows["m: a → b"], replied) == (True, "")
    assert not rows["m: b → gw"].kind.proves_by_counter(rows["m: b → gw"])
    islanded = LAB.replace("  dmz: {subnet: 10.7.2.0/24}\n", "  dmz: {subnet: 10.7.2.0/24}\n  isle: {subnet: 10.7.3.0/24}\n") \
        .replace("\nchecks:\n", "\n  c: {networks: [isle]}\nchecks:\n") + "  - {name: i, reach: {from: [a], to: [c, b]}}\n"
    unrouted = {check.name: check for check in read_lab(write_lab(islanded)).checks}
    assert unrouted["i: a → c"].options.fails == "no routed path" and unrouted["i: a → b"].options.fails == ""


def test_bad_reach_vocabulary_is_a_one_line_error(lab_with):
    for check, words in [
        ("- {reach: {from: [a], to: [a]}}", "the matrix has no pair of two different hosts"),
        ("- {reach: {from: [a], to: [nowhere]}}", "unknown host 'nowhere'"),
        ("- {reach: {from: [], to: all}}", "expected at least one host, or all"),
        ("- {reach: {from: [a], to: all, fail: [a, b]}}", "expected a pair [from, to]"),
        ("- {reach: {to: all}}", "from"),
        ("- {from: a, reach: {from: [a], to: all}}", "unknown key 'from'"),
    ]:
        with pytest.raises(LabFileError) as caught:
            lab_with(check)
        assert words in str(caught.value) and "\n" not in str(caught.value), (check, str(caught.value))


def test_raw_ip_reads_as_a_sentence(write_lab):
    lab = read_lab(write_lab(LAB.replace("{udp-echo: {port: 7}}]", "{udp-echo: {port: 7}}, {raw-listener: {protocol: 253}}]")
                             + "  - {name: r, from: a, to: b, raw: {protocol: 253, send: hello, count: 2}}\n"))
    [check] = lab.checks
    assert (check.target, check.port, check.transport) == ("b", 253, "raw")
    spec = probe_spec(lab.topology, check, 0)
    assert spec["raw"] == {"protocol": 253, "count": 2, "payload": base64.b64encode(b"hello").decode()}
    assert lab.topology.hosts["b"].service_at("raw", 253) is not None
    assert judge(check, {"error": None, "raw": {"sent": 1}}) == (False, "only 1 of 2 packets left")


def test_bad_raw_vocabulary_is_a_one_line_error(lab_with, write_lab):
    for check, words in [
        ("- {from: a, to: b, raw: {protocol: 6, send: x}}", "protocol 6 is TCP: use a tcp check"),
        ("- {from: a, to: b, raw: {protocol: 300, send: x}}", "expected an IP protocol number from 1 to 254"),
        ("- {from: a, to: b, raw: {send: x}}", "protocol"),
        ("- {from: a, to: b:7, raw: {protocol: 253, send: x}}", "a raw check reaches a host, not a port"),
    ]:
        with pytest.raises(LabFileError) as caught:
            lab_with(check)
        assert words in str(caught.value) and "\n" not in str(caught.value), (check, str(caught.value))
    with pytest.raises(LabFileError) as caught:
        read_lab(write_lab(LAB.replace("{udp-echo: {port: 7}}]", "{raw-listener: {protocol: 17}}]")))
    assert "protocol 17 is UDP" in str(caught.value)
    with pytest.raises(LabFileError) as caught:
        read_lab(write_lab(LAB.replace("{udp-echo: {port: 7}}]",
                                       "{raw-listener: {protocol: 253}}, {raw-listener: {protocol: 253}}]")))
    assert "raw protocol 253 is already used" in str(caught.value)


CAST = LAB.replace("{udp-echo: {port: 7}}]", "{udp-echo: {port: 7}}, {udp-listener: {port: 5000}}, "
                   "{udp-listener: {port: 5001, group: 239.1.2.3}}]") \
    .replace("\nchecks:\n", "\n  c: {networks: [lan], services: [{udp-listener: {port: 5000}}]}\nchecks:\n")


def test_broadcast_and_multicast_read_as_sentences(write_lab):
    lab = read_lab(write_lab(CAST + "  - {name: bc, from: a, to: dmz:5000, udp: {send: hi, heard_by: [b], not_heard_by: [c]}}\n"
                             "  - {name: mc, from: a, to: 239.1.2.3:5001, udp: {send: hi, heard_by: [b]}}\n"))
    broadcast, multicast = lab.checks
    assert (broadcast.target, broadcast.port, broadcast.fan_out) == (None, 5000, ("broadcast", "dmz"))
    spec = probe_spec(lab.topology, broadcast, 0)
    assert (spec["fan_out"], spec["address"], spec["port"]) == ("broadcast", "10.7.2.255", 5000)
    assert probe_spec(lab.topology, multicast, 1)["address"] == "239.1.2.3"
    assert broadcast.kind.witnesses(broadcast) == ["b", "c"]
    observation = {"error": None, "local": [["10.7.1.5", 40000]], "udp": {"sent": 1, "received": 0}}
    heard = {"port": 5000, "peer": "10.7.1.5", "peer_port": 40000}
    assert broadcast.kind.witness_problems(broadcast, observation, {"b": [heard], "c": []}) == []
    assert broadcast.kind.witness_problems(broadcast, observation, {"b": [], "c": [heard]}) == \
        ["b did not hear the broadcast", "c heard the broadcast, and must not"]
    assert judge(broadcast, observation) == (True, "")


def test_bad_broadcast_and_multicast_vocabulary_is_a_one_line_error(write_lab):
    for check, words in [
        ("{from: a, to: 10.7.1.9:5000, udp: {send: x, heard_by: [b]}}", "10.7.1.9 is not a multicast group"),
        ("{from: a, to: dmz:5000, udp: {send: x}}", "says who hears it: heard_by, not_heard_by or both"),
        ("{from: a, to: dmz:5000, udp: {send: x, expect: x, heard_by: [b]}}", "a broadcast gets no answer"),
        ("{from: a, to: dmz:5000, udp: {send: x, heard_by: [gw]}}", "gw has no udp-listener on port 5000"),
        ("{from: a, to: 239.1.2.3:5000, udp: {send: x, heard_by: [b]}}", "joins no group, not 239.1.2.3"),
        ("{from: a, to: b:7, udp: {send: x, heard_by: [b]}}", "heard_by goes with a broadcast"),
        ("{from: a, to: dmz:5000, udp: {send: x, heard_by: [b], not_heard_by: [b]}}", "both in heard_by and not_heard_by"),
    ]:
        with pytest.raises(LabFileError) as caught:
            read_lab(write_lab(CAST + f"  - {check}\n"))
        assert words in str(caught.value) and "\n" not in str(caught.value), (check, str(caught.value))
    with pytest.raises(LabFileError) as caught:
        read_lab(write_lab(CAST.replace("group: 239.1.2.3", "group: 10.0.0.1")))
    assert "10.0.0.1 is not a multicast group: IPv4 groups are in 224.0.0.0/4" in str(caught.value)


def test_a_reach_pair_split_by_a_partition_in_force_must_fail(lab_with):
    from labctl.model.shaping import LiveState, save_live
    lab = lab_with("- {name: m, reach: {from: [a], to: [b, gw]}}")
    to_b, to_gw = lab.checks
    assert to_b.kind.at_run(lab.topology, to_b) is to_b
    save_live(lab.topology, LiveState(partitions=[[["b"], ["a"]]]))
    split = to_b.kind.at_run(lab.topology, to_b)
    assert split.options.fails == "partitioned now" and to_b.options.fails == ""
    assert to_gw.kind.at_run(lab.topology, to_gw) is to_gw


def test_hints_and_points_reach_every_output(lab_with, tmp_path):
    lab = lab_with('- {name: worth three, from: a, to: b:7, tcp: {send: x}, points: 3, hint: "read until the newline"}\n'
                   '- {name: worth one, from: a, to: b:7, tcp: {send: x}}')
    [three, one] = lab.checks
    assert (three.points, three.hint, one.points, one.hint) == (3.0, "read until the newline", 1.0, None)
    results = [CheckResult("worth three", "a", "b", 7, "tcp", False, 2.0, "timeout: no answer in time",
                           server=[{"peer": "10.0.0.2", "peer_port": 40000, "bytes_in": 2, "bytes_out": 0,
                                    "preview": "x\n"}], hint="read until the newline", points=3.0),
               CheckResult("worth one", "a", "b", 7, "tcp", True, 1.0)]
    formats = result_formats()
    table = formats["table"].render(results, 1.0, "lab")
    assert "timeout: no answer in time (hint: read until the newline)" in table
    assert table.endswith("1 passed, 1 failed in 1.00s; score 1/4")
    payload = json.loads(formats["json"].render(results, 1.0, "lab"))
    assert (payload["score"], payload["points"]) == (1.0, 4.0)
    assert payload["checks"][0]["hint"] == "read until the newline" and payload["checks"][0]["points"] == 3.0
    suite = ET.fromstring(formats["junit"].render(results, 1.0, "lab").split("\n", 1)[1]).find("testsuite")
    assert {p.get("name"): p.get("value") for p in suite.find("properties")} == {"score": "1", "points": "4"}
    case = suite.findall("testcase")[0]
    assert {p.get("name"): p.get("value") for p in case.find("properties")} == \
        {"points": "3", "hint": "read until the newline"}
    assert "hint: read until the newline" in case.find("failure").text
    markdown = formats["markdown"].render(results, 1.0, "lab")
    assert markdown.startswith("# lab: 1 of 4 points")
    assert "## FAIL: worth three (0/3)" in markdown and "- hint: read until the newline" in markdown
    assert "- the server saw: from 10.0.0.2:40000, 2 bytes in, 0 out: 'x\\n'" in markdown
    page = formats["html"].render(results, 1.0, "lab <script>")
    assert "lab &lt;script&gt;: 1 of 4 points" in page and "<script>" not in page
    assert "hint: read until the newline" in page and page.count("<tr>") == 3
    from labctl.cli.formats import format_for_file
    assert format_for_file("report.HTML").name == "html" and format_for_file("r.md").name == "markdown"
    assert format_for_file("report.pdf") is None


def test_bad_points_and_hints_are_one_line_errors(lab_with):
    for check, words in [
        ("- {from: a, to: b:7, tcp: {send: x}, points: -1}", "points: expected points from 0 to 1000"),
        ("- {from: a, to: b:7, tcp: {send: x}, points: true}", "points: expected points from 0 to 1000"),
        ("- {from: a, to: b:7, tcp: {send: x}, hint: [a]}", "hint: expected"),
    ]:
        with pytest.raises(LabFileError) as caught:
            lab_with(check)
        assert words in str(caught.value) and "\n" not in str(caught.value), str(caught.value)
