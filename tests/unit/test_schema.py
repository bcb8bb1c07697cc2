"""The lab file's JSON Schema: generated, never edited (the committed copy is what
`labctl schema` prints); draft-07, with a description for every key; every lab file in the
repository validates against it; and every bad input it can express is refused by it and
by `labctl validate` alike."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator

from labctl.checks.kinds import check_kinds
from labctl.engines.factory import read_lab
from labctl.errors import LabFileError
from labctl.labfile.schema import MODELINE, lab_schema

from ..conftest import REPO

LAB_FILES = sorted([REPO / "lab.yaml", *REPO.glob("gallery/*/lab.yaml"), *REPO.glob("examples/*/lab.yaml"),
                    *REPO.glob("tests/integration/labs/*/lab.yaml")])


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = lab_schema()
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def test_the_committed_schema_is_the_generated_one():
    assert json.loads((REPO / "labctl.schema.json").read_text()) == lab_schema(), \
        "run: labctl schema -o labctl.schema.json"


def test_labctl_schema_prints_the_committed_schema(tmp_path):
    result = subprocess.run([sys.executable, "-m", "labctl", "schema"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads((REPO / "labctl.schema.json").read_text())


# Keywords of later drafts than 07 that an editor reading draft-07 would ignore.
LATER_KEYWORDS = {"$defs", "prefixItems", "unevaluatedProperties", "unevaluatedItems", "dependentRequired",
                  "dependentSchemas", "$dynamicRef", "$dynamicAnchor", "$anchor", "minContains", "maxContains"}


def walk(node, path=()):
    """Every mapping in the schema, with where it is."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, path + (index,))


def test_the_schema_is_draft_07():
    schema = lab_schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    Draft7Validator.check_schema(schema)
    used = {key for _, node in walk(schema) for key in node} - {"properties", "definitions"}
    assert not used & LATER_KEYWORDS, used & LATER_KEYWORDS
    refs = {node["$ref"] for _, node in walk(schema) if "$ref" in node}
    assert refs and all(ref.startswith("#/definitions/") and ref.split("/")[-1] in schema["definitions"]
                        for ref in refs), refs


def test_every_key_at_every_depth_has_a_description():
    schema = lab_schema()
    keys = [(path + (name,), body) for path, node in walk(schema) if isinstance(node.get("properties"), dict)
            and path[-1:] != ("properties",) for name, body in node["properties"].items()]
    assert len(keys) > 200     # every kind's keys, services, impairments, steps...
    missing = [".".join(map(str, where)) for where, body in keys
               if not isinstance(body.get("description"), str) or not body["description"].strip()
               or "$ref" in body]   # draft-07 ignores what stands beside a $ref
    assert missing == []
    # What the validator declares is what the schema describes, kind by kind.
    branches = {next(k for k in branch["required"] if k in check_kinds()): branch
                for branch in schema["definitions"]["check"]["oneOf"]}
    for name, kind in check_kinds().items():
        block = branches[name]["properties"][name]
        block = next(b for b in block.get("anyOf", [block]) if b.get("type") == "object")
        assert {key: body["description"] for key, body in block["properties"].items()} == dict(kind.keys)
        assert branches[name]["properties"][name]["description"] == kind.summary


@pytest.mark.parametrize("path", LAB_FILES, ids=lambda path: str(path.relative_to(REPO)))
def test_every_lab_file_in_the_repository_validates(validator, path: Path):
    errors = [f"{list(error.absolute_path)}: {error.message[:200]}"
              for error in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []
    if "gallery" in path.parts or path == REPO / "lab.yaml" or "examples" in path.parts:
        assert path.read_text().startswith(MODELINE), "editors find the schema through the first line"


BASE = (REPO / "lab.yaml").read_text()

# Each bad input is a change to the default lab the schema can express: a key the validator
# does not know, or a value of the wrong kind.
BAD = [
    ("unknown top key", "scenarios:", "scenarioz:"),
    ("unknown network key", "dmz: {subnet: 10.10.2.0/24,", "dmz: {subnet: 10.10.2.0/24, mtu: 9000,"),
    ("internal not a flag", "dmz: {subnet: 10.10.2.0/24,", "dmz: {internal: maybe, subnet: 10.10.2.0/24,"),
    ("a network without its mapping", 'lan: {subnet: 10.10.1.0/24, subnet6: "fd00:10:1::/64"}', "lan: 10.10.1.0/24"),
    ("unknown host key", "    router: true", "    router: true\n    privileged: true"),
    ("router not a flag", "    router: true", "    router: yes please"),
    ("a host without networks", "  alice:\n    networks: [lan]", "  alice:\n    image: busybox"),
    ("unknown service", "      - http: {port: 8080}", "      - ftp: {port: 21}"),
    ("port not a number", "      - http: {port: 8080}", "      - http: {port: eighty}"),
    ("port out of range", "      - http: {port: 8080}", "      - http: {port: 70000}"),
    ("unknown service key", "      - http: {port: 8080}", "      - http: {port: 8080, root: /srv}"),
    ("client_cert not a choice", "client_cert: required}", "client_cert: always}"),
    ("unknown check key", "    http: {path: /health, status: 200", "    retries: 3\n    http: {path: /health, status: 200"),
    ("two kinds in one check", "    tcp: {send: \"hello\\n\", expect: \"hello\\n\"}\n    server: {from: alice, count: 1,",
     "    tcp: {send: \"hello\\n\", expect: \"hello\\n\"}\n    udp: {send: x}\n    server: {from: alice, count: 1,"),
    ("unknown key in a kind's block", "http: {path: /health, status: 200", "http: {verb: GET, path: /health, status: 200"),
    ("an error the kind cannot expect", "tcp: {expect_error: refused}", "tcp: {expect_error: certificate}"),
    ("family not 4 or 6", "    family: 6", "    family: 5"),
    ("negative points", "  - name: tcp echo over ipv6\n", "  - name: tcp echo over ipv6\n    points: -1\n"),
    ("unknown server key", "server: {from: alice, count: 1, received: \"hello\\n\"}",
     "server: {from: alice, count: 1, sees: \"hello\\n\"}"),
    ("unknown impairment field", "    - impair: {lan: {loss: 20%}}", "    - impair: {lan: {lose: 20%}}"),
    ("unknown step", "    - heal: all", "    - mend: all"),
    ("two steps in one", "    - heal: all", "    - {heal: all, check: tcp echo}"),
    ("unknown fault", "    - fault: {partition: alice -- web}", "    - fault: {crash: web}"),
    ("an inline check with an unknown key", "        http: {path: /health, expect_error: timeout}",
     "        http: {path: /health, expect_error: timeout}\n        retries: 3"),
    ("wait-for with an unknown key", "    - wait-for: web health via the router",
     "    - wait-for: {check: web health via the router, before: 30s}"),
]


@pytest.mark.parametrize("what, old, new", BAD, ids=[case[0] for case in BAD])
def test_a_bad_input_is_refused_by_the_schema_and_by_validate(validator, write_lab, what, old, new):
    assert old in BASE, what
    text = BASE.replace(old, new, 1)
    data = yaml.safe_load(text)
    assert list(validator.iter_errors(data)), f"the schema took: {what}"
    with pytest.raises(LabFileError) as caught:
        read_lab(write_lab(text))
    assert "\n" not in str(caught.value)


def test_an_unknown_impairment_field_at_the_top_is_refused_by_both(validator, write_lab):
    text = BASE + "impairments:\n  lan: {lose: 20%}\n"
    assert list(validator.iter_errors(yaml.safe_load(text)))
    with pytest.raises(LabFileError) as caught:
        read_lab(write_lab(text))
    assert "impairments.lan.lose" in str(caught.value) and "\n" not in str(caught.value)
