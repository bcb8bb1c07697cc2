"""Hostile lab files: each class of input that once crashed, hung or blew up the reader is
now accepted or refused with one line naming the file, the line and the key path, within
2 seconds and 200 MB."""

from __future__ import annotations

import importlib.util
import tracemalloc
from pathlib import Path

import pytest

from labctl.checks.expectation import MAX_REGEX, MAX_REGEX_NESTING
from labctl.checks.spec import MAX_LAB_PAYLOAD, MAX_PAYLOAD
from labctl.engines.factory import read_lab
from labctl.errors import LabError, LabFileError, one_line
from labctl.labfile.load import Lab
from labctl.model.yamlsource import (MAX_ALIASES, MAX_DEPTH, MAX_DURATION, MAX_FILE_BYTES, MAX_NODES,
                                     describe, parse_duration, parse_rate, parse_source)

from ..conftest import REPO

BASE = """\
name: t
networks:
  lan: {subnet: 10.1.1.0/24}
hosts:
  a: {networks: [lan]}
  b: {networks: [lan], services: [{tcp-echo: {port: 7}}, {http: {port: 80}}]}
checks:
  - {name: echo, from: a, to: b:7, tcp: {send: x, expect: x}}
"""
CHECK = "  - {name: echo, from: a, to: b:7, tcp: {send: x, expect: x}}\n"


def read(tmp_path: Path, content: str | bytes) -> tuple[Lab | None, LabError | None]:
    """The lab read from `content`, or the one-line error it gave; within 2 seconds."""
    path = tmp_path / "lab.yaml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    try:
        return read_lab(path), None
    except LabError as exc:
        message = str(exc)
        assert len(message.splitlines()) == 1 and "\n" not in message and "\r" not in message, message
        assert message.startswith(str(path)), message
        return None, exc


def peak_megabytes(tmp_path: Path, content: str) -> float:
    """What reading `content` allocates at its peak, as tracemalloc counts it."""
    path = tmp_path / "peak.yaml"
    path.write_text(content)
    tracemalloc.start()
    try:
        read_lab(path)
    except LabError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / (1 << 20)


def refused(tmp_path: Path, content: str | bytes, *words: str) -> LabFileError:
    lab, error = read(tmp_path, content)
    assert lab is None, "accepted"
    assert isinstance(error, LabFileError), repr(error)
    for word in words:
        assert word in str(error), str(error)
    return error


def accepted(tmp_path: Path, content: str | bytes) -> Lab:
    lab, error = read(tmp_path, content)
    assert error is None, str(error)
    assert lab is not None
    return lab


def with_check(body: str) -> str:
    return BASE.replace(CHECK, body)


def test_the_repositorys_labs_still_load():
    for path in [REPO / "lab.yaml", REPO / "examples" / "grading" / "lab.yaml",
                 *sorted((REPO / "tests" / "integration" / "labs").glob("*/lab.yaml"))]:
        assert read_lab(path).checks


# -- nesting and aliases -----------------------------------------------------------------------

@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 100_000])
def test_deep_nesting_is_refused(tmp_path, depth):
    error = refused(tmp_path, BASE + f"x: {'[' * depth}{']' * depth}\n", f"nested deeper than {MAX_DEPTH}")
    assert error.line == 9
    refused(tmp_path, BASE + "x: " + "{k: " * depth + "1" + "}" * depth + "\n",
            "nested deeper" if depth < 10_000 else "larger than")


def test_deep_block_nesting_is_refused(tmp_path):
    text = BASE + "".join("  " * level + f"k{level}:\n" for level in range(200))
    refused(tmp_path, text, f"nested deeper than {MAX_DEPTH} levels")


def test_nesting_through_aliases_is_bounded(tmp_path):
    inner = "[" * 40 + "x" + "]" * 40
    text = BASE + f"x: &a {inner}\ny: &b [{'[' * 30}*a{']' * 30}]\n"
    refused(tmp_path, text, "nested deeper than", "aliases included")


@pytest.mark.parametrize("cycle", ["a: &a [*a]", "a: &a {k: *a}", "a: &a {<<: *a}", "a: &a [b, [c, [*a]]]"])
def test_an_alias_inside_the_node_it_names_is_refused(tmp_path, cycle):
    error = refused(tmp_path, BASE + cycle + "\n", "alias *a is used inside the node it names")
    assert error.line == 9


def test_billion_laughs_stop_at_the_expansion_limit(tmp_path):
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 10)]
    refused(tmp_path, BASE + "\n".join(lines) + "\n", f"expands to more than {MAX_NODES} values")
    assert peak_megabytes(tmp_path, BASE + "\n".join(lines) + "\n") < 200


def test_a_merge_bomb_stops_at_the_expansion_limit(tmp_path):
    base = "{" + ", ".join(f"k{i}: {i}" for i in range(500)) + "}"
    text = BASE + f"a: &a {base}\nb: {{<<: [{', '.join(['*a'] * 500)}]}}\n"
    refused(tmp_path, text, "expands to more than")


def test_too_many_aliases_and_values_are_refused(tmp_path):
    refused(tmp_path, BASE + f"a: &a x\nb: [{', '.join(['*a'] * (MAX_ALIASES + 1))}]\n",
            f"more than {MAX_ALIASES} aliases")
    refused(tmp_path, BASE + "a: [" + ",".join(["0"] * MAX_NODES) + "]\n", f"more than {MAX_NODES} values")


def test_undefined_and_twice_defined_anchors_are_refused(tmp_path):
    refused(tmp_path, BASE + "a: *nowhere\n", "alias *nowhere names no anchor")
    refused(tmp_path, BASE + "a: &x 1\nb: &x 2\n", "anchor &x is defined twice (first on line 9)")


def test_merges_work_and_bad_merges_are_refused(tmp_path):
    lab = accepted(tmp_path, BASE.replace(CHECK, "  - &echo {name: echo, from: a, to: b:7, tcp: {send: x, expect: x}}\n"
                                                 "  - {<<: *echo, name: echo again}\n"))
    assert [check.name for check in lab.checks] == ["echo", "echo again"]
    assert lab.checks[1].target == "b" and lab.checks[1].port == 7
    refused(tmp_path, BASE + "a: {<<: 5}\n", "'<<' merges a mapping or a list of mappings, got a number (5)")
    refused(tmp_path, BASE + "a: {<<: [[1]]}\n", "'<<' merges a mapping or a list of mappings, got a list")


# -- tags and implicit types -------------------------------------------------------------------

@pytest.mark.parametrize("value, tag", [
    ("!!timestamp 2020-01-01", "!!timestamp"), ("!!binary aGk=", "!!binary"), ("!!set {a}", "!!set"),
    ("!!omap [a: 1]", "!!omap"), ("!!python/object/apply:os.system ['true']", "!!python/object/apply:os.system"),
    ("!local x", "!local"),
])
def test_tags_other_than_the_plain_ones_are_refused_by_name(tmp_path, value, tag):
    error = refused(tmp_path, BASE.replace("name: t", f"name: {value}"),
                    f"tag {tag} is not allowed; write the value plainly (quote it for text)")
    assert error.line == 1 and error.path == "name"


@pytest.mark.parametrize("value, words", [
    ("!!int abc", "cannot read 'abc' as !!int"), ("!!int 0x_", "cannot read '0x_' as !!int"),
    ("0x_", "cannot read '0x_' as !!int; quote it for text"), ("!!bool maybe", "cannot read 'maybe' as !!bool"),
    ("!!float x", "cannot read 'x' as !!float"), ("!!int ''", "cannot read '' as !!int"),
    ("!!map x", "tag !!map marks a mapping, but it is on a single value"),
    ("!!str [x]", "tag !!str marks a single value, but it is on a list"),
])
def test_plain_tags_with_values_they_cannot_read_are_refused(tmp_path, value, words):
    refused(tmp_path, BASE + f"x: {value}\n", words)


def test_plain_tags_still_read(tmp_path):
    source = parse_source("a: !!int 5\nb: !!str 5\nc: !!float 1.5\nd: !!bool true\ne: !!null ''\n"
                          "f: !!map {k: v}\ng: !!seq [1]\nh: ! 7\n", "x")
    assert source.data == {"a": 5, "b": "5", "c": 1.5, "d": True, "e": None, "f": {"k": "v"}, "g": [1], "h": 7}


def test_an_implicit_date_is_just_text(tmp_path):
    lab = accepted(tmp_path, BASE.replace("name: t", "name: 2020-02-30"))
    assert lab.name == "2020-02-30"
    assert parse_source("a: 2020-01-01\nb: 2020-01-01 10:00:00\n", "x").data == {
        "a": "2020-01-01", "b": "2020-01-01 10:00:00"}


# -- numbers -----------------------------------------------------------------------------------

def test_a_huge_integer_is_refused_without_formatting_it(tmp_path):
    refused(tmp_path, with_check("  - {name: echo, from: a, to: b:7, tcp: {send: x}, load: {clients: "
                                 + "9" * 5000 + ", requests: 1}}\n"), "a number of 5000 characters")
    refused(tmp_path, BASE + "x: 0x" + "f" * 5000 + "\n", "a number of 5002 characters")
    assert describe(10 ** 5000) == "a number (<about 5001 digits>)"
    assert describe(-(16 ** 5000)).startswith("a number (-<about")
    refused(tmp_path, with_check("  - {name: echo, from: a, to: b:" + "9" * 5000 + ", tcp: {send: x}}\n"),
            "expected host:port")


@pytest.mark.parametrize("value", ["1.0e+400", ".inf", "-.inf", ".nan", "!!float 1e400", "1e400", "9" * 99,
                                   "'" + "9" * 400 + "s'", "86401s", "-1s"])
def test_durations_are_finite_and_bounded(tmp_path, value):
    refused(tmp_path, with_check(f"  - {{name: echo, from: a, to: b:7, timeout: {value}, tcp: {{send: x}}}}\n"),
            "checks[0].timeout: expected a duration such as 2s or 500ms")
    refused(tmp_path, BASE + f"impairments: {{lan: {{delay: {value}}}}}\n", "impairments.lan.delay")


def test_duration_and_rate_parsers_refuse_infinity():
    for value in (float("inf"), float("nan"), 10 ** 400, "1" * 400, MAX_DURATION + 1, -1):
        assert parse_duration(value) is None
    assert parse_duration("1440m") == 86400.0 and parse_duration("500ms") == 0.5
    assert parse_rate("9" * 400 + "gbit") is None and parse_rate("10mbit") == 1e7


def test_throughput_must_be_finite(tmp_path):
    for value in (".inf", "1e400/s", "nan/s"):
        refused(tmp_path, with_check("  - {name: echo, from: a, to: b:7, tcp: {send: x}, "
                                     f"load: {{clients: 1, requests: 1, min_throughput: '{value}'}}}}\n"),
                "expected exchanges per second")


# -- regular expressions -----------------------------------------------------------------------

def test_a_regex_that_overflows_is_refused(tmp_path):
    refused(tmp_path, with_check("  - {name: echo, from: a, to: b:7, tcp: {send: x, expect: {regex: 'a{4294967296}'}}}\n"),
            "checks[0].tcp.expect.regex: bad regular expression: OverflowError")


def test_a_regex_too_long_or_nested_too_deep_is_refused(tmp_path):
    nested = "(" * (MAX_REGEX_NESTING + 1) + ")" * (MAX_REGEX_NESTING + 1)
    refused(tmp_path, with_check(f"  - {{name: echo, from: a, to: b:7, tcp: {{send: x, expect: {{regex: '{nested}'}}}}}}\n"),
            f"nesting groups more than {MAX_REGEX_NESTING} deep")
    thousand = "(" * 1000 + ")" * 1000
    refused(tmp_path, with_check(f"  - {{name: echo, from: a, to: b:7, tcp: {{send: x, expect: {{regex: '{thousand}'}}}}}}\n"),
            f"at most {MAX_REGEX}")
    escaped = "\\\\(" * 100      # escaped parentheses are no groups
    accepted(tmp_path, with_check(f'  - {{name: echo, from: a, to: b:7, tcp: {{send: x, expect: {{regex: "{escaped}"}}}}}}\n'))


WIRE = """\
  - {name: echo, from: a, to: b:7, tcp: {send: x, expect: x}}
  - name: on the wire
    wire: {at: lan, during: [echo], expect: [{no_plaintext: %s}]}
"""


@pytest.mark.parametrize("value, words", [
    ("{regex: 5}", "no_plaintext.regex: expected text"),
    ("{regex: [a]}", "expected text"),
    ("{regex: x, other: 1}", "unknown key 'other'"),
    ("{regex: '(?u)x'}", "bad regular expression"),        # the capture is searched as bytes
    ("{regex: 'a{4294967296}'}", "OverflowError"),
    ("5", "no_plaintext: expected text"),
])
def test_wire_regexes_must_be_text_that_compiles_for_bytes(tmp_path, value, words):
    refused(tmp_path, with_check(WIRE % value), words)


def test_wire_plaintext_and_regex_still_read(tmp_path):
    lab = accepted(tmp_path, with_check(WIRE % "{regex: 'se+cret'}"))
    assert lab.checks[1].options.expectations[0].pattern == "se+cret"


# -- paths, names and one-line errors ----------------------------------------------------------

@pytest.mark.parametrize("where", ['files: ["./a\\0b:/x"]', 'build: "ctx\\0"', 'files: ["./a\\nb:/x"]'])
def test_a_nul_or_newline_in_a_path_is_refused(tmp_path, where):
    refused(tmp_path, BASE.replace("a: {networks: [lan]}", f"a: {{networks: [lan], {where}}}"),
            "hosts.a.")


def test_a_nul_in_a_payload_file_is_refused(tmp_path):
    refused(tmp_path, with_check('  - {name: echo, from: a, to: b:7, tcp: {send: {file: "./p\\0"}}}\n'),
            "checks[0].tcp.send.file", "NUL")


def test_a_very_long_path_reads_as_one_short_line(tmp_path):
    long_path = "a/" * 3000
    error = refused(tmp_path, BASE.replace("a: {networks: [lan]}", f"a: {{networks: [lan], files: ['./{long_path}:/x']}}"),
                    "is too long")
    assert len(str(error)) < 800
    error = refused(tmp_path, BASE.replace("a: {networks: [lan]}", "a: {networks: [lan], files: ['./" + "b" * 300 + ":/x']}"),
                    "too long")
    error = refused(tmp_path, BASE.replace("  a: {networks", "  " + "k" * 900 + ": {networks"), "bad host name")
    assert len(error.path) < 250


@pytest.mark.parametrize("old, new, words", [
    ("name: t", 'name: "t\\n"', "a lab name"),
    ("  a: {networks", '  "a\\n": {networks', "bad host name 'a\\n'"),
    ("  lan: {subnet", '  "lan\\n": {subnet', "bad network name"),
    ("name: echo,", 'name: "echo\\n",', "checks[0].name: expected text (a check name) on one line"),
    ("name: echo,", 'name: "ec\\rho",', "on one line"),
    ("name: echo,", 'name: "echo\\u2028",', "on one line"),
])
def test_names_may_not_hold_or_end_with_newlines(tmp_path, old, new, words):
    refused(tmp_path, BASE.replace(old, new, 1), words)


def test_scenario_names_and_step_names_are_one_line(tmp_path):
    refused(tmp_path, BASE + 'scenarios:\n  "s\\n": [{check: echo}]\n', "bad scenario name")
    refused(tmp_path, BASE + 'scenarios:\n  s: [{check: "echo\\n"}]\n', "no check named 'echo\\n'")


def test_every_error_is_one_line_whatever_it_quotes(tmp_path):
    error = refused(tmp_path, BASE.replace("  a: {networks: [lan]}", '  a: {networks: [lan], "co\\nlour\\r\\u2028\\x85": 1}'),
                    "unknown key 'co\\nlour\\r\\u2028\\x85'")
    assert error.path == "hosts.a.co\\nlour\\r\\u2028\\x85"
    made = LabFileError("dir\nfile.yaml", 3, "a\nb", "line one\nline two\u2029\x00\x1b[31m")
    assert str(made) == "dir\\nfile.yaml:3: a\\nb: line one\\nline two\\u2029\\x00\\x1b[31m"
    assert len(str(LabFileError("f", 1, "p" * 1000, "m" * 10_000)).splitlines()) == 1
    assert len(str(LabFileError("f", 1, "p", "m" * 10_000))) < 1000
    assert one_line("a\ud800b") == "a\\ud800b"


def test_an_escaped_surrogate_is_refused(tmp_path):
    refused(tmp_path, BASE.replace("name: echo,", 'name: "\\ud800",'), "surrogate")


# -- files: size and encoding ------------------------------------------------------------------

def test_a_file_too_large_is_refused_before_it_is_read(tmp_path):
    error = refused(tmp_path, BASE + "# " + "x" * MAX_FILE_BYTES + "\n", f"larger than {MAX_FILE_BYTES // 1024} KiB")
    assert error.line is None


@pytest.mark.parametrize("content, words", [
    (b"name: caf\xe9\n", "not UTF-8 text (byte 0xe9)"),
    (b"name: x\x00\n", "malformed YAML: unacceptable character #x0000"),
    (b"\xff\xfe" + "name: x\n".encode("utf-16-le"), "not UTF-8"),
    (b"name: a\n---\nname: b\n", "found a second document"),
])
def test_bad_bytes_and_streams_are_refused(tmp_path, content, words):
    refused(tmp_path, content, words)


def test_crlf_and_a_bom_still_read(tmp_path):
    lab = accepted(tmp_path, b"\xef\xbb\xbf" + BASE.replace("\n", "\r\n").encode())
    assert lab.name == "t" and lab.checks[0].name == "echo"


# -- payloads ----------------------------------------------------------------------------------

def test_big_random_payloads_are_refused(tmp_path):
    refused(tmp_path, with_check("  - {name: echo, from: a, to: b:7, tcp: {send: {random: 67108864}}}\n"),
            f"expected a byte count from 1 to {MAX_PAYLOAD}")
    refused(tmp_path, with_check(f"  - {{name: echo, from: a, to: b:7, tcp: {{send: {{random: {MAX_PAYLOAD + 1}}}}}}}\n"),
            "expected a byte count")
    accepted(tmp_path, with_check(f"  - {{name: echo, from: a, to: b:7, tcp: {{send: {{random: {MAX_PAYLOAD}}}}}}}\n"))


def test_payloads_add_up_to_a_bounded_total(tmp_path):
    count = MAX_LAB_PAYLOAD // MAX_PAYLOAD + 1
    checks = "".join(f"  - {{name: c{i}, from: a, to: b:7, tcp: {{send: {{random: {MAX_PAYLOAD}}}}}}}\n"
                     for i in range(count))
    error = refused(tmp_path, with_check(checks), "payloads add up to more than")
    assert f"checks[{count - 1}]" in error.path
    forty = "".join(f"  - {{name: c{i}, from: a, to: b:7, tcp: {{send: {{random: 67108864}}}}}}\n" for i in range(40))
    refused(tmp_path, with_check(forty), "expected a byte count")
    assert peak_megabytes(tmp_path, with_check(checks)) < 200


def test_a_big_payload_file_is_refused(tmp_path):
    (tmp_path / "big.bin").write_bytes(b"x" * (MAX_PAYLOAD + 1))
    (tmp_path / "small.bin").write_bytes(b"x" * 10)
    refused(tmp_path, with_check("  - {name: echo, from: a, to: b:7, tcp: {send: {file: ./big.bin}}}\n"),
            f"holds more than {MAX_PAYLOAD} bytes")
    lab = accepted(tmp_path, with_check("  - {name: echo, from: a, to: b:7, tcp: {send: {file: ./small.bin}}}\n"))
    assert lab.checks[0].steps[0].send == b"x" * 10


def test_the_default_labs_largest_payload_still_fits():
    lab = read_lab(REPO / "lab.yaml")
    sizes = [len(step.send) for scenario in lab.scenarios.values() for item in scenario.steps
             for check in item.checks for step in check.steps]
    assert max(sizes) == 65536


# -- capture filters ---------------------------------------------------------------------------

FILTERED = """\
  - {name: echo, from: a, to: b:7, tcp: {send: x, expect: x}}
  - name: on the wire
    wire: {at: lan, during: [echo], filter: %s, expect: [{no_plaintext: x}]}
"""


@pytest.mark.parametrize("value", ["'-z /bin/sh'", "'tcp -w /tmp/x'", "'--help'", '"tcp\\n-z x"'])
def test_a_capture_filter_cannot_carry_tcpdump_options(tmp_path, value):
    refused(tmp_path, with_check(FILTERED % value), "checks[1].wire.filter")


@pytest.mark.parametrize("value", ["'tcp port 7'", "'len - 20 > 100'", "'host 10.1.1.2 and not arp'"])
def test_bpf_expressions_are_still_filters(tmp_path, value):
    lab = accepted(tmp_path, with_check(FILTERED % value))
    assert lab.checks[1].options.filter == value.strip("'")


def test_netadmin_hands_tcpdump_the_filter_after_its_options():
    spec = importlib.util.spec_from_file_location("netadmin", REPO / "services" / "netadmin.py")
    netadmin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(netadmin)
    argv = netadmin.tcpdump_argv("eth0", "/tmp/c.pcap", ["-z", "/bin/sh", "tcp"])
    assert argv[-2:] == ["--", "-z /bin/sh tcp"]
    assert argv.index("--") == len(argv) - 2 and "-z" not in argv
    assert "--" not in netadmin.tcpdump_argv("eth0", "/tmp/c.pcap", [])


# -- sizes of the lab itself -------------------------------------------------------------------

def test_too_many_hosts_are_refused_quickly(tmp_path):
    hosts = "".join(f"  h{i}: {{networks: [lan]}}\n" for i in range(600))
    text = "name: t\nnetworks:\n  lan: {subnet: 10.0.0.0/16}\nhosts:\n" + hosts
    refused(tmp_path, text, "expected at most 500 hosts, got 600")
