"""Hostile lab files, made the same way from the same number every time.

Three sources: the repository's own lab files mutated (text spliced, bytes flipped, values
swapped for hostile ones, structure duplicated), hostile YAML written from scratch (deep
nesting, alias bombs, tags, huge numbers, bad encodings, labs of enormous size), and, in
tests/unit/test_fuzz.py, what Hypothesis draws. `judge` reads one file the way
`labctl validate` does and says how it went: accepted, refused in one line, or crashed.

The promise being checked: every input is accepted or refused with one line, within
LIMIT_SECONDS and LIMIT_MEGABYTES, never with a traceback.
"""

from __future__ import annotations

import random
import re
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

REPO = Path(__file__).resolve().parents[2]
LIMIT_SECONDS = 2.0
LIMIT_MEGABYTES = 200
INPUT_NAME = "fuzz-lab.yaml"


# -- the repository's labs --------------------------------------------------------------------

@dataclass(frozen=True)
class Seed:
    name: str           # the folder the mutated file is read from
    folder: Path        # the seed's own lab folder (its files are copied beside the input)
    text: str


def seeds() -> list[Seed]:
    found = [("lab", REPO / "lab.yaml"), ("grading", REPO / "examples" / "grading" / "lab.yaml"),
             ("dns", REPO / "examples" / "dns" / "lab.yaml")]
    found += [(f"itest-{path.parent.name}", path)
              for path in sorted((REPO / "tests" / "integration" / "labs").glob("*/lab.yaml"))]
    return [Seed(name, path.parent, path.read_text(encoding="utf-8")) for name, path in found]


def prepare_folders(root: Path) -> dict[str, Path]:
    """A folder per seed under `root`, holding the seed's files (what its lab mounts and
    sends), so a mutated lab still finds them; the repository's root lab needs none."""
    folders = {}
    for seed in seeds():
        target = root / seed.name
        target.mkdir(parents=True, exist_ok=True)
        if seed.folder != REPO:
            for file in seed.folder.iterdir():
                if file.is_file() and file.name != "lab.yaml":
                    shutil.copy(file, target / file.name)
        folders[seed.name] = target
    folders["scratch"] = root / "scratch"
    folders["scratch"].mkdir(exist_ok=True)
    return folders


# -- hostile values, as YAML text that fits after `key: ` --------------------------------------

def _hostile_values() -> list[str]:
    deep = 1000
    return [
        # numbers: huge, overflowing, malformed
        "9" * 5000, "-" + "9" * 5000, "0x" + "f" * 5000, "0b" + "1" * 20000, "1" + "0" * 101,
        "18446744073709551616", "4294967296", "-1", "0", "1e400", "1.0e+400", "-1.0e+400",
        ".inf", "-.inf", ".nan", ".NaN", "0x_", "0b_", "0_", "0o_", "+0x_", "1:2:3:4:5:6:7:8:9",
        "190:20:30.15", "1__0", "9" * 99, "9" * 101,
        # durations, shares and rates out of bounds
        "1e400s", "1.0e+400s", "99999999999999999999999999s", "9" * 400 + "ms", "inf", "nan",
        "-5s", "5h", "0.0000001ms", "86401s", "86400s", "1441m", "1e400mbit", "9" * 400 + "gbit",
        "0.001bit", "5%", "1e400%", "-1%", "nan%", "100%", "200/s", "1e400/s", "nan/s", ".inf",
        # dates and tags
        "2020-02-30", "2020-01-01", "2020-01-01 10:00:00", "2001-12-14t21:59:43.10-05:00", "12:30:45",
        "!!timestamp 2020-01-01", "!!timestamp x", "!!timestamp 2020-02-30", "!!binary aGVsbG8=",
        "!!binary '!!'", "!!set {a, b}", "!!omap [a: 1]", "!!pairs [{a: 1}]",
        "!!python/object/apply:os.system ['true']", "!!python/name:os.system ''", "!foo bar",
        "!<tag:example.com,2000:x> y", "!<!> z", "!!int abc", "!!int ''", "!!int 0x_",
        "!!int " + "9" * 5000, "!!bool maybe", "!!bool ''", "!!float x", "!!float 1e400",
        "!!float ''", "!!null x", "!!str 5", "!!str", "!!map x", "!!seq x", "!!map [1]",
        "!!seq {a: 1}", "!!merge x", "!!value =", "!!yaml !", "=", "<<", "! 5", "!", "!!str &x y",
        # aliases and merges
        "&a [*a]", "&a {k: *a}", "&a {<<: *a}", "&a [[[*a]]]", "{<<: 5}", "{<<: [5]}", "{<<: [[1]]}",
        "*undefined", "{<<: *undefined}", "&x [&x 1]", "{<<: {}}", "{<<: []}", "{<<: ~}",
        # text: control characters, surrogates, length
        '"a\\nb"', '"web\\n"', '"alice\\n"', '"a\\0b"', '"\\ud800"', '"\\udfff x"', '"\\u2028"',
        '"\\x85"', '"\\e[31mred"', '"a\\rb"', '"\\t"', '"\\x7f"', '"\\u202e"', '"\\U0010ffff"',
        '"' + "\\x00" * 200 + '"', "x" * 200000, "'" + "y" * 5000 + "'", '"' + "z\\n" * 3000 + '"',
        # regular expressions
        "{regex: 'a{4294967296}'}", "{regex: '" + "(" * deep + ")" * deep + "'}",
        "{regex: '" + "(" * 33 + ")" * 33 + "'}", "{regex: '" + "(a" * 31 + ")" * 31 + "'}",
        "{regex: 5}", "{regex: [a]}", "{regex: '[a'}", "{regex: '(?u)x'}", "{regex: '\\N{DIGIT ONE}'}",
        "{regex: '(a+)+$'}", "{regex: '" + "x" * 5000 + "'}", "{regex: ''}", '{regex: "\\0"}',
        "{regex: 'x', extra: 1}", "{regex: '\\'}", "{regex: '(?P<n>x)(?P=n)'}", "{regex: 'a{99999}'}",
        # payloads
        "{random: 67108864}", "{random: 1048577}", "{random: 1048576}", "{random: 0}", "{random: -1}",
        "{random: 1e400}", "{random: " + "9" * 50 + "}", "{random: true}", '{file: "a\\0b"}',
        "{file: /dev/zero}", "{file: /proc/self/mem}", "{file: ../../../../etc/passwd}",
        "{file: '" + "a" * 5000 + "'}", "{file: '" + "a/" * 3000 + "'}", "{file: .}", "{file: ''}",
        '{file: "x\\ny"}', "{file: './" + "b" * 300 + "'}", "{hex: zz}", "{hex: '" + "00" * 300000 + "'}",
        "{hex: '0'}", '{text: "a\\0"}', "{text: ''}", "{json: {a: [1, {b: .nan}]}}",
        "{length: " + "9" * 30 + "}", "{length: -1}", "{contains: x, exact: y}",
        # capture filters that try to be options
        "'-z /bin/sh'", "'tcp -w /tmp/x'", '"tcp\\n-z x"', "'len - 20 > 100'", "'--help'", "-Z",
        # shapes
        "[]", "{}", "~", "null", "true", "''", "' '", "[" * 100 + "]" * 100,
        "{a: " * 70 + "1" + "}" * 70, "[" + ", ".join(["x"] * 3000) + "]",
    ]


HOSTILE_VALUES = _hostile_values()
INPUT_CAP = 1 << 20   # bytes of one generated input: four times the largest lab file read

HOSTILE_KEYS = ['"web\\n"', '"a\\nb"', "<<", "? [a]", "? {a: 1}", "!!binary aGk=", "1", "~", "true",
                "'" + "k" * 3000 + "'", '"\\0"', "2020-01-01", "&k key", "*k", "!!str name",
                '"\\u2028"', "-", "lc-x", "UPPER", "a b", "'name'", "é"]

SPECIAL_TEXT = list(":-{}[],&*!|>'\"%@`#\n\t ?~=<") + ["\x00", "\x85", "\u2028", "\ufeff", "\x1b",
                                                        "\x7f", "é", "\U0001F600", "\\", "\r", "\r\n"]
BAD_BYTES = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xfe\xff", b"\x00"]


# -- mutations: rng, bytes -> bytes --------------------------------------------------------------

def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


VALUE = re.compile(r"(?<=: )[^\n,{}\[\]#]+|(?<=- )[^\n,{}\[\]#:]+")
KEY = re.compile(r"[A-Za-z_][\w-]*(?=:[ \n])")
WORD = re.compile(r"[A-Za-z0-9_.-]+")


def splice_value(rng: random.Random, data: bytes) -> bytes:
    """A value of the lab replaced by a hostile one."""
    text = _text(data)
    spots = list(VALUE.finditer(text))
    if not spots:
        return data + _bytes(f"\nx: {rng.choice(HOSTILE_VALUES)}\n")
    spot = rng.choice(spots)
    return _bytes(text[:spot.start()] + rng.choice(HOSTILE_VALUES) + text[spot.end():])


def splice_key(rng: random.Random, data: bytes) -> bytes:
    """A key of the lab replaced by a hostile one (a name with a newline, a merge key...)."""
    text = _text(data)
    spots = list(KEY.finditer(text))
    if not spots:
        return data
    spot = rng.choice(spots)
    return _bytes(text[:spot.start()] + rng.choice(HOSTILE_KEYS) + text[spot.end():])


def swap_word(rng: random.Random, data: bytes) -> bytes:
    """One word replaced by another word of the file: names that point elsewhere."""
    text = _text(data)
    words = list(WORD.finditer(text))
    if len(words) < 2:
        return data
    spot, other = rng.choice(words), rng.choice(words)
    return _bytes(text[:spot.start()] + other.group() + text[spot.end():])


def insert_chars(rng: random.Random, data: bytes) -> bytes:
    text = _text(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(text))
        text = text[:at] + rng.choice(SPECIAL_TEXT) * rng.choice([1, 1, 2, 3, 50]) + text[at:]
    return _bytes(text)


def delete_span(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    start = rng.randrange(len(data))
    return data[:start] + data[start + rng.randint(1, 60):]


def duplicate_lines(rng: random.Random, data: bytes) -> bytes:
    """A block of lines repeated, a few times or thousands: duplicate keys, huge lists."""
    lines = data.split(b"\n")
    start = rng.randrange(len(lines))
    block = lines[start:start + rng.randint(1, 6)]
    times = rng.choice([2, 3, 10, 100, 1000, 5000])
    return b"\n".join(lines[:start] + block * times + lines[start:])


def swap_lines(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[a], lines[b] = lines[b], lines[a]
    return b"\n".join(lines)


def reindent(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    at = rng.randrange(len(lines))
    line = lines[at].lstrip(b" ")
    lines[at] = b" " * rng.choice([0, 1, 2, 3, 4, 6, 8, 40]) + (b"\t" if rng.random() < 0.1 else b"") + line
    return b"\n".join(lines)


def flip_bytes(rng: random.Random, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 5)):
        if buffer:
            buffer[rng.randrange(len(buffer))] = rng.randrange(256)
    return bytes(buffer)


def bad_bytes(rng: random.Random, data: bytes) -> bytes:
    at = rng.randint(0, len(data))
    return data[:at] + rng.choice(BAD_BYTES) + data[at:]


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[:rng.randint(0, len(data))]


def reencode(rng: random.Random, data: bytes) -> bytes:
    """The same text in another dress: a BOM, UTF-16, CRLF or lone CR line ends."""
    text = _text(data)
    choice = rng.randrange(5)
    if choice == 0:
        return b"\xef\xbb\xbf" + data
    if choice == 1:
        return text.encode("utf-16", "surrogatepass")
    if choice == 2:
        return data.replace(b"\n", b"\r\n")
    if choice == 3:
        return data.replace(b"\n", b"\r")
    return data.replace(b"\n", "\u2028".encode())


def anchor_everything(rng: random.Random, data: bytes) -> bytes:
    """Anchors on values and aliases in their place elsewhere: *names the file never
    defined, anchors used inside themselves, and repetition."""
    text = _text(data)
    spots = list(VALUE.finditer(text))
    if len(spots) < 2:
        return data
    first, second = sorted(rng.sample(spots, 2), key=lambda match: match.start())
    name = rng.choice(["a", "x1", "base", "very-long-" + "n" * 200])
    if rng.random() < 0.5:   # alias before the anchor, or the anchor twice
        return _bytes(text[:first.start()] + f"*{name}" + text[first.end():second.start()]
                      + f"&{name} {second.group()}" + text[second.end():])
    return _bytes(text[:first.start()] + f"&{name} {first.group()}" + text[first.end():second.start()]
                  + f"*{name}" + text[second.end():])


def tree_mutation(rng: random.Random, data: bytes) -> bytes:
    """The lab read as data, one node replaced, deleted or repeated, written out again
    (repeated nodes come out as YAML anchors and aliases)."""
    try:
        tree = yaml.safe_load(_text(data))
    except Exception:
        return data
    if not isinstance(tree, (dict, list)):
        return data
    containers = []
    seen: set[int] = set()

    def walk(node):
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, dict):
            containers.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            containers.append(node)
            for value in node:
                walk(value)
    walk(tree)
    for _ in range(rng.randint(1, 3)):
        container = rng.choice(containers)
        keys = list(container) if isinstance(container, dict) else list(range(len(container)))
        if not keys:
            continue
        key = rng.choice(keys)
        action = rng.randrange(6)
        if action == 0:
            del container[key]
            containers = [c for c in containers if c is not container] + [container]
        elif action == 1:
            container[key] = rng.choice(_tree_values())
        elif action == 2 and isinstance(container, list):
            container.extend([container[key]] * rng.choice([2, 50, 1000, 20000]))
        elif action == 3 and isinstance(container, dict):
            container[rng.choice(["colour", "name\n", "x" * 300, 5, None, True])] = container[key]
        elif action == 4:
            container[key] = [container[key]] * rng.choice([2, 100, 3000])
        else:
            container[key] = {"wrapped": container[key]}
    try:
        text = yaml.safe_dump(tree, default_flow_style=rng.choice([None, True, False]),
                              allow_unicode=rng.random() < 0.5, width=rng.choice([80, 10 ** 6]),
                              sort_keys=False)
    except Exception:
        return data
    return _bytes(text)


def _tree_values() -> list:
    return [10 ** 400, -(10 ** 200), float("inf"), float("-inf"), float("nan"), -1, 0, True, None, "",
            "a\nb", "web\n", "x" * 1000, [], {}, [[[]]], {"random": 1 << 26}, {"random": 1 << 20},
            {"regex": "(" * 100 + ")" * 100}, {"regex": "a{4294967296}"}, "2020-02-30", 1e308,
            "\x00", "\u2028", "-z /bin/sh", {"file": "a\x00b"}, list(range(1000))]


MUTATIONS: list[Callable[[random.Random, bytes], bytes]] = [
    splice_value, splice_value, splice_value, splice_key, swap_word, insert_chars, delete_span,
    duplicate_lines, swap_lines, reindent, flip_bytes, bad_bytes, truncate, reencode,
    anchor_everything, tree_mutation, tree_mutation,
]


# -- hostile YAML from scratch: rng -> bytes ---------------------------------------------------

def deep_flow(rng: random.Random) -> bytes:
    depth = rng.choice([60, 64, 65, 100, 1000, 5000, 100000])
    if rng.random() < 0.5:
        return f"a: {'[' * depth}{']' * depth}\n".encode()
    return ("a: " + "{k: " * depth + "1" + "}" * depth + "\n").encode()


def deep_block(rng: random.Random) -> bytes:
    depth = rng.choice([63, 64, 65, 200, 1000])
    if rng.random() < 0.5:
        return "".join("  " * level + f"k{level}:\n" for level in range(depth)).encode()
    return ("".join("  " * level + "-\n" for level in range(depth)) + "  " * depth + "x\n").encode()


def laughs(rng: random.Random) -> bytes:
    """The billion laughs: each level lists the one before `width` times."""
    levels, width = rng.randint(2, 12), rng.randint(2, 12)
    lines = ["name: laughs", "l0: &l0 [lol, lol, lol]"]
    lines += [f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]" for level in range(1, levels)]
    lines.append(f"hosts: *l{levels - 1}")
    return "\n".join(lines).encode() + b"\n"


def self_alias(rng: random.Random) -> bytes:
    return rng.choice([b"a: &a [*a]\n", b"a: &a {k: *a}\n", b"a: &a {<<: *a}\n",
                       b"a: &a [b, [c, [*a]]]\n", b"&r {x: *r}\n", b"- &a\n  - *a\n",
                       b"a: &a {b: &b {c: *a}}\n"])


def many_aliases(rng: random.Random) -> bytes:
    count = rng.choice([999, 1000, 1001, 5000, 40000])
    return f"a: &a x\nb: [{', '.join(['*a'] * count)}]\n".encode()


def merge_bomb(rng: random.Random) -> bytes:
    keys = rng.choice([10, 100, 1000])
    repeats = rng.choice([10, 100, 999])
    base = "{" + ", ".join(f"k{i}: {i}" for i in range(keys)) + "}"
    return f"a: &a {base}\nb: {{<<: [{', '.join(['*a'] * repeats)}]}}\n".encode()


def merge_chain(rng: random.Random) -> bytes:
    length = rng.choice([10, 64, 65, 500, 999])
    lines = ["m0: &m0 {k: 0}"] + [f"m{i}: &m{i} {{<<: *m{i - 1}, k{i}: {i}}}" for i in range(1, length)]
    return ("\n".join(lines) + "\n").encode()


def wide(rng: random.Random) -> bytes:
    count = rng.choice([1000, 9999, 19999, 20001, 100000])
    if rng.random() < 0.5:
        return ("a: [" + ",".join(["0"] * count) + "]\n").encode()
    return "".join(f"k{i}: {i}\n" for i in range(count)).encode()


def long_things(rng: random.Random) -> bytes:
    size = rng.choice([1000, 100000, 262000, 300000, 3000000])
    choice = rng.randrange(5)
    if choice == 0:
        return b"name: " + b"x" * size + b"\n"
    if choice == 1:
        return b"? " + b"k" * size + b"\n: 1\n"
    if choice == 2:
        return b'name: "' + b"\\n" * (size // 2) + b'"\n'
    if choice == 3:
        return b"# " + b"c" * size + b"\nname: x\n"
    return b"name: x\n" + b" " * size + b"\n"


def bad_encoding(rng: random.Random) -> bytes:
    return rng.choice([b"name: \xff\xfe\n", b"\xff\xfe" + "name: x\n".encode("utf-16-le"), b"name: \x00x\n",
                       b"\x00" * 100, b"name: caf\xe9\n", b"name: \xed\xa0\x80\n", b"\xef\xbb\xbfname: x\n",
                       b"name: x\r\nhosts: \r\n", b"name: x\rhosts: y\r", b"\x1b[31m: 1\n",
                       "name: x\u2028hosts: y\n".encode(), b"name: \x85\n", b"\x7f: 1\n"])


def documents(rng: random.Random) -> bytes:
    return rng.choice([b"", b"\n\n", b"# only a comment\n", b"---\n", b"--- \n...\n", b"~\n", b"[]\n",
                       b"''\n", b"name: a\n---\nname: b\n", b"%YAML 1.1\n---\nname: a\n",
                       b"%YAML 2.0\n---\nname: a\n", b"%TAG ! tag:evil,2000:\n---\n!x name: a\n",
                       b"%TAG !! tag:evil,2000:\n---\nname: !!int 5\n", b"name: a\n...\n---\nx: 1\n",
                       b"- a\n- b\n", b"a: b: c\n", b"{\n", b"]\n", b"\t- a\n", b"key: 'unterminated\n",
                       b"*a\n", b"&a\n", b"!!\n", b"? \n", b": \n", b"- - - - - -\n"])


def tag_storm(rng: random.Random) -> bytes:
    tags = ["!!timestamp 2020-01-01", "!!binary aGk=", "!!set {a}", "!!omap []", "!!pairs []", "!x y",
            "!!python/tuple [1]", "!!int 0x_", "!!bool x", "!!float y", "!!map {}", "!!seq []", "!!str s",
            "!!null ''", "!<tag:yaml.org,2002:int> 1", "!e!x y", "!!merge {}", "!!value ="]
    chosen = rng.sample(tags, rng.randint(1, 4))
    return ("name: t\n" + "".join(f"k{i}: {tag}\n" for i, tag in enumerate(chosen))).encode()


def _lab(hosts: str = "", networks: str = "  lan: {subnet: 10.0.0.0/16}\n", checks: str = "",
         scenarios: str = "", extra: str = "") -> bytes:
    text = f"name: big\nnetworks:\n{networks}hosts:\n{hosts or '  a: {networks: [lan]}' + chr(10)}"
    if checks:
        text += "checks:\n" + checks
    if scenarios:
        text += "scenarios:\n" + scenarios
    return (text + extra).encode()


def scale_lab(rng: random.Random) -> bytes:
    """Valid-looking labs of enormous size: many hosts, networks, checks, captures, steps,
    payloads; what costs time is the lab's own work, not the YAML's."""
    choice = rng.randrange(9)
    many = rng.choice([100, 499, 500, 501, 2000, 8000])
    if choice == 0:
        hosts = "".join(f"  h{i}: {{networks: [lan]}}\n" for i in range(many))
        return _lab(hosts)
    if choice == 1:
        count = rng.choice([255, 256, 257, 1000, 5000])
        networks = "".join(f"  n{i}: {{subnet: 10.{i // 32 % 256}.{i % 32 * 8}.0/29}}\n" for i in range(count))
        hosts = "  a: {networks: [n0]}\n"
        return _lab(hosts, networks)
    hosts = "  a: {networks: [lan]}\n  b: {networks: [lan], services: [{tcp-echo: {port: 7}}]}\n"
    if choice == 2:
        checks = "".join(f"  - {{name: c{i}, from: a, to: b:7, tcp: {{send: x, expect: x}}}}\n" for i in range(many))
        return _lab(hosts, checks=checks)
    if choice == 3:
        exchanges = "".join(f"  - {{name: c{i}, from: a, to: b:7, tcp: {{send: x}}}}\n" for i in range(many))
        wires = "".join(f"  - {{name: w{i}, wire: {{at: lan, during: [c{i % many}, c0], expect: "
                        f"[{{no_plaintext: {{regex: 'x+'}}}}]}}}}\n" for i in range(many))
        return _lab(hosts, checks=exchanges + wires)
    if choice == 4:
        checks = "".join(f"  - {{name: c{i}, from: a, to: b:7, tcp: {{send: x}}}}\n" for i in range(min(many, 2000)))
        steps = "".join(rng.choice(["    - check: c0\n", "    - impair: {lan: {delay: 1ms}}\n",
                                    "    - fault: {stop: b}\n", "    - wait-for: c1\n", "    - heal: all\n"])
                        for _ in range(many))
        return _lab(hosts, checks=checks, scenarios="  s:\n" + steps)
    if choice == 5:
        size = rng.choice([1 << 16, 1 << 20, (1 << 20) + 1, 1 << 26])
        count = rng.choice([8, 9, 40, 1000])
        checks = "".join(f"  - {{name: c{i}, from: a, to: b:7, tcp: {{send: {{random: {size}}}}}}}\n"
                         for i in range(count))
        return _lab(hosts, checks=checks)
    if choice == 6:
        checks = "".join(f"  - {{name: c{i}, from: a, to: b:7, tcp: {{steps: [{{send: {{random: 65536}}}}, "
                         f"{{send: {{random: 65535}}}}]}}}}\n" for i in range(many))
        return _lab(hosts, checks=checks)
    if choice == 7:
        base = "  - &base {name: c0, from: a, to: b:7, tcp: {send: x, expect: {regex: '(x+)+'}}}\n"
        checks = base + "".join(f"  - {{<<: *base, name: c{i}}}\n" for i in range(1, many))
        return _lab(hosts, checks=checks)
    hosts = "".join(f"  h{i}: {{networks: [lan]}}\n" for i in range(min(many, 500)))
    steps = "".join(f"    - impair: {{lan: {{delay: {i % 50}ms}}, h{i % 400}: clear}}\n" for i in range(many))
    impairments = "impairments:\n  lan: {delay: 5ms}\n  h0: {loss: 1%}\n  h1:lan: {delay: 10ms, jitter: 1ms}\n"
    return _lab(hosts, scenarios="  s:\n" + steps, extra=impairments)


GENERATORS: list[Callable[[random.Random], bytes]] = [
    deep_flow, deep_block, laughs, self_alias, many_aliases, merge_bomb, merge_chain, wide,
    long_things, bad_encoding, documents, tag_storm, scale_lab, scale_lab,
]


# -- one input from a number -------------------------------------------------------------------

def make_input(seed: int, index: int, lab_seeds: list[Seed] | None = None) -> tuple[str, bytes, str]:
    """Input number `index` of run `seed`: (folder name, bytes, what made it)."""
    rng = random.Random(f"{seed}:{index}")
    lab_seeds = lab_seeds or seeds()
    roll = rng.random()
    if roll < 0.22:
        generator = rng.choice(GENERATORS)
        return "scratch", generator(rng), f"scratch:{generator.__name__}"
    base = rng.choice(lab_seeds)
    data = base.text.encode()
    chosen = [rng.choice(MUTATIONS) for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 5]))]
    return base.name, mutate(rng, data, chosen), "mutate:" + "+".join(sorted({m.__name__ for m in chosen}))


def mutate(rng: random.Random, data: bytes, chosen: list[Callable[[random.Random, bytes], bytes]]) -> bytes:
    """Apply the mutations in turn; one that reads the lab as data goes first, while the
    text is still a lab PyYAML can read without harm."""
    for mutation in sorted(chosen, key=lambda m: m is not tree_mutation):
        # Kept within a few times what the reader takes (it refuses more unread), so a
        # chain of growing mutations cannot outgrow the worker generating it.
        data = mutation(rng, data)[:INPUT_CAP]
    return data


# -- the oracle --------------------------------------------------------------------------------

@dataclass
class Outcome:
    kind: str           # accepted | refused | crashed
    seconds: float
    detail: str = ""    # the refusal's line, or the crash's traceback


def judge(path: Path) -> Outcome:
    """Read `path` as `labctl validate` does; a LabError must be one line."""
    from labctl.engines.factory import read_lab
    from labctl.errors import LabError
    started = time.perf_counter()
    try:
        read_lab(path)
    except LabError as exc:
        seconds = time.perf_counter() - started
        message = str(exc)
        if len(message.splitlines()) != 1 or "\n" in message or "\r" in message:
            return Outcome("crashed", seconds, f"a LabError of {len(message.splitlines())} lines: {message!r}")
        return Outcome("refused", seconds, message)
    except Exception:   # RecursionError and MemoryError too
        seconds = time.perf_counter() - started
        return Outcome("crashed", seconds, traceback.format_exc(limit=8))
    return Outcome("accepted", time.perf_counter() - started)
