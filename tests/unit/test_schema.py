"""The lab file's JSON Schema: generated, never edited (the committed copy is what
`labctl schema` prints); every lab file in the repository validates against it; and every
bad input it can express is refused by it and by `labctl validate` alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from labctl.engines.factory import read_lab
from labctl.errors import LabFileError
from labctl.labfile.schema import MODELINE, lab_schema

from ..conftest import REPO

LAB_FILES = sorted([REPO / "lab.yaml", *REPO.glob("gallery/*/lab.yaml"), *REPO.glob("examples/*/lab.yaml"),
                    *REPO.glob("tests/integration/labs/*/lab.yaml")])


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = lab_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_the_committed_schema_is_the_generated_one():
    assert json.loads((REPO / "labctl.schema.json").read_text()) == lab_schema(), \
        "run: labctl schema -o labctl.schema.json"


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
]


@pytest.mark.parametrize("what, old, new", BAD, ids=[case[0] for case in BAD])
def test_a_bad_input_is_refused_by_the_schema_and_by_validate(validator, write_lab, what, old, new):
    assert old in BASE, what
    text = BASE.replace(old, new, 1)
    data = yaml.safe_load(text)
    if what == "unknown impairment field":   # scenarios' steps are checked by validate alone
        data = {**data, "impairments": {"lan": {"lose": "20%"}}}
        text = text + "impairments:\n  lan: {lose: 20%}\n"
    assert list(validator.iter_errors(data)), f"the schema took: {what}"
    with pytest.raises(LabFileError) as caught:
        read_lab(write_lab(text))
    assert "\n" not in str(caught.value)
