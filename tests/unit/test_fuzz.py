"""The lab-file reader as a property, under Hypothesis: whatever file it is given, it returns
a Lab or raises a LabError whose text is one line, within 2 seconds; never anything else.

Inputs: the repository's lab files (lab.yaml, examples/grading, tests/integration/labs)
mutated, hostile values spliced into them, and hostile YAML written from scratch (deep
nesting, anchors and aliases, tags, huge numbers, NUL and non-UTF-8 bytes, regexes, long
text, newlines in names). This is the short fixed run `make test` makes (derandomized, about
200 examples); `make fuzz` runs 10,000 inputs of the same kinds (tests/fuzz/run.py).
"""

from __future__ import annotations

import json
import random

import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from labctl.errors import LabFileError
from labctl.model import yamlsource

from ..fuzz import hostile

SEEDS = hostile.seeds()
FIXED = settings(derandomize=True, deadline=None, database=None, print_blob=False,
                 suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return hostile.prepare_folders(tmp_path_factory.mktemp("fuzz"))


def holds(folders, name: str, data: bytes) -> None:
    """The property: accepted, or refused in one line; under the time limit."""
    path = folders[name] / hostile.INPUT_NAME
    path.write_bytes(data)
    outcome = hostile.judge(path)
    note(f"{outcome.kind} in {outcome.seconds:.3f}s: {outcome.detail[:300]}")
    assert outcome.kind in ("accepted", "refused"), outcome.detail
    assert outcome.seconds < hostile.LIMIT_SECONDS, f"took {outcome.seconds:.2f}s"


# -- strategies --------------------------------------------------------------------------------

def _flow_float(number: float) -> str:
    return yaml.safe_dump(number).splitlines()[0]


REGEX_ALPHABET = "()[]{}|*+?\\^$.-,:aZ09<>=!PN"

hostile_values = st.one_of(
    st.sampled_from(hostile.HOSTILE_VALUES),
    st.integers(min_value=1, max_value=6000).map(lambda digits: "9" * digits),
    st.integers(min_value=-(2 ** 80), max_value=2 ** 80).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(_flow_float),
    st.text(max_size=40).map(json.dumps),                      # any character, escaped
    st.text(max_size=20).map(lambda text: json.dumps(text + "\n")),
    st.text(alphabet=REGEX_ALPHABET, max_size=60).map(lambda regex: "{regex: " + json.dumps(regex) + "}"),
    st.integers(min_value=-(2 ** 40), max_value=2 ** 40).map(lambda size: f"{{random: {size}}}"),
    st.tuples(st.sampled_from(["!!timestamp", "!!int", "!!bool", "!!float", "!!binary", "!!str", "!!null",
                               "!!map", "!!seq", "!x", "!!python/tuple", "!!merge"]),
              st.text(max_size=12)).map(lambda pair: f"{pair[0]} {json.dumps(pair[1])}"),
    st.sampled_from(["2020-02-30", "2020-01-01", "1e400", "1.0e+400", ".inf", "0x_", "&a [*a]", "*a"]),
)


@st.composite
def mutated_labs(draw):
    """A repository lab with one to four mutations, each from its own number."""
    seed = draw(st.sampled_from(SEEDS))
    chosen = draw(st.lists(st.sampled_from(hostile.MUTATIONS), min_size=1, max_size=4))
    salt = draw(st.integers(min_value=0, max_value=2 ** 32 - 1))
    return seed.name, hostile.mutate(random.Random(salt), seed.text.encode(), chosen)


@st.composite
def spliced_labs(draw):
    """A repository lab with one or two of its values replaced by hostile ones."""
    seed = draw(st.sampled_from(SEEDS))
    text = seed.text
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        spots = list(hostile.VALUE.finditer(text))
        spot = spots[draw(st.integers(min_value=0, max_value=len(spots) - 1))]
        text = text[:spot.start()] + draw(hostile_values) + text[spot.end():]
    return seed.name, text.encode("utf-8", "surrogatepass")


yaml_trees = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30)


@st.composite
def hostile_documents(draw):
    """Hostile YAML from scratch."""
    kind = draw(st.sampled_from(["generator", "nesting", "laughs", "bytes", "text", "tree", "lab tree"]))
    if kind == "generator":
        generator = draw(st.sampled_from(hostile.GENERATORS))
        return "scratch", generator(random.Random(draw(st.integers(min_value=0, max_value=2 ** 32 - 1))))
    if kind == "nesting":
        depth = draw(st.integers(min_value=1, max_value=3000))
        opener, closer = draw(st.sampled_from([("[", "]"), ("{k: ", "}"), ("[{a: ", "}]")]))
        return "scratch", f"name: {opener * depth}x{closer * depth}\n".encode()
    if kind == "laughs":
        levels = draw(st.integers(min_value=1, max_value=12))
        width = draw(st.integers(min_value=1, max_value=12))
        lines = ["l0: &l0 [lol]"] + [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * width)}]" for n in range(1, levels)]
        return "scratch", ("\n".join(lines) + "\n").encode()
    if kind == "bytes":
        return "scratch", draw(st.binary(max_size=2000))
    if kind == "text":
        return "scratch", draw(st.text(max_size=2000)).encode("utf-8", "surrogatepass")
    tree = draw(yaml_trees)
    if kind == "lab tree":              # hostile data where a lab's parts go
        section = draw(st.sampled_from(["networks", "hosts", "checks", "scenarios", "impairments", "name"]))
        lab = yaml.safe_load(SEEDS[0].text)
        lab[section] = tree
        tree = lab
    flow = draw(st.sampled_from([None, True, False]))
    return "lab" if kind == "lab tree" else "scratch", yaml.safe_dump(tree, default_flow_style=flow).encode()


# -- the property, three ways ------------------------------------------------------------------

@settings(FIXED, max_examples=90)
@given(mutated_labs())
def test_mutated_labs_are_read_or_refused_in_one_line(folders, case):
    holds(folders, *case)


@settings(FIXED, max_examples=60)
@given(spliced_labs())
def test_labs_with_hostile_values_are_read_or_refused_in_one_line(folders, case):
    holds(folders, *case)


@settings(FIXED, max_examples=50)
@given(hostile_documents())
def test_hostile_yaml_is_refused_in_one_line(folders, case):
    holds(folders, *case)



def _read(data: bytes, fast: bool) -> str:
    """What parse_source makes of `data`, as text: its data, or its one-line refusal."""
    kept = yamlsource.CParser
    if not fast:
        yamlsource.CParser = None
    try:
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        return repr(yamlsource.parse_source(text, "lab.yaml").data)
    except UnicodeDecodeError:
        return "not UTF-8"
    except LabFileError as exc:
        return f"refused: {exc}"
    finally:
        yamlsource.CParser = kept


@settings(FIXED, max_examples=150)
@given(st.one_of(mutated_labs(), spliced_labs(), hostile_documents()))
def test_libyaml_reads_a_lab_file_as_the_pure_python_parser_does(case):
    assert yamlsource.CParser is not None, "PyYAML here was built without libyaml"
    _name, data = case
    assert _read(data, True) == _read(data, False)
