"""The lab file's JSON Schema, for editors (`labctl schema`), generated from the
definitions the validator itself reads: the keys each mapping allows and requires, the
service and check kinds, their keys and expected errors, the impairment fields, the
scenario steps. A key the validator learns appears here with it. Only what a value of a
key looks like (a port is an integer, a subnet a text) is said here; what the schema
cannot say (a subnet that overlaps another, an unknown host) only `labctl validate` does."""

from __future__ import annotations

from typing import Any

from ..checks.kind import COMMON_KEYS
from ..checks.kinds import check_kinds
from ..checks.spec import LOAD_KEYS, SERVER_KEYS
from ..model.impairment import KINDS as IMPAIRMENT_FIELDS
from ..model.topology import (BUILD_KEYS, DNS_RECORD_TYPES, HOST_KEYS, LIMIT_KEYS, NETWORK_KEYS, READY_KEYS,
                              RECORD_KEYS, ROUTE_KEYS, SERVICE_KEYS, SERVICE_KINDS)
from .load import TOP_KEYS
from .scenarios import STEP_KINDS

SCHEMA_ID = "labctl.schema.json"
MODELINE = "# yaml-language-server: $schema="   # what an editor reads on a lab file's first line
TEXT: dict[str, Any] = {"type": "string"}
NUMBER: dict[str, Any] = {"type": "number"}
FLAG: dict[str, Any] = {"type": "boolean"}
PORT: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 65535}
SCALAR: dict[str, Any] = {"type": ["string", "number", "boolean"]}
NAMES: dict[str, Any] = {"type": "array", "items": TEXT}
DURATION: dict[str, Any] = {"type": ["string", "number"]}
ANY: dict[str, Any] = {}

# What a value looks like, by key; a key not named here may hold anything the validator takes.
VALUES: dict[str, dict[str, Any]] = {
    "name": TEXT, "engine": TEXT, "subnet": TEXT, "subnet6": TEXT, "internal": FLAG, "encrypted": FLAG,
    "router": FLAG, "raw_sockets": FLAG, "image": TEXT, "port": PORT, "client_cert": {"enum": ["none", "optional", "required"]},
    "group": TEXT, "zone": TEXT, "resolver": FLAG, "protocol": {"type": "integer", "minimum": 1, "maximum": 254},
    "memory": {"type": ["string", "integer"]}, "disk": {"type": ["string", "integer"]}, "pids": {"type": "integer"},
    "cpus": NUMBER,
    "context": TEXT, "dockerfile": TEXT, "to": TEXT, "via": TEXT, "tcp": {"type": ["integer", "boolean"]},
    "from": TEXT, "family": {"enum": [4, 6, "4", "6", "ipv4", "ipv6"]}, "timeout": DURATION,
    "latency": DURATION, "within": DURATION, "overlap": FLAG, "hint": TEXT, "points": {"type": "number", "minimum": 0},
    "count": {"type": "integer", "minimum": 0}, "clients": {"type": "integer"}, "requests": {"type": "integer"},
    "duration": DURATION, "type": TEXT, "value": SCALAR, "files": NAMES,
    "env": {"type": "object", "additionalProperties": SCALAR},
    "command": {"type": ["string", "array"]},
}


def _object(keys: list[str] | tuple[str, ...], required: list[str] | tuple[str, ...] = (),
            values: dict[str, dict[str, Any]] | None = None, typed: bool = True) -> dict[str, Any]:
    """A mapping the validator reads with these keys: nothing else is allowed. `typed`:
    its values look as VALUES says (a kind's own block reads its keys its own way)."""
    chosen = {**(VALUES if typed else {}), **(values or {})}
    return {"type": "object", "properties": {key: chosen.get(key, ANY) for key in keys},
            "required": list(required), "additionalProperties": False}


def _one_of_kinds(kinds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A one-key mapping naming its kind: {http: {port: 8080}}."""
    return {"oneOf": [{"type": "object", "properties": {kind: body}, "required": [kind],
                       "additionalProperties": False} for kind, body in kinds.items()]}


def _service(kind: str) -> dict[str, Any]:
    allowed, required = SERVICE_KEYS[kind]
    records = {"type": "array", "items": _object(RECORD_KEYS, RECORD_KEYS, {"type": {"enum": list(DNS_RECORD_TYPES)}})}
    return _object(allowed, required, {"records": records} if kind == "dns" else None)


def _host() -> dict[str, Any]:
    attachments = {"anyOf": [NAMES, {"type": "object", "additionalProperties": {
        "anyOf": [TEXT, {"type": "null"}, {"type": "array", "items": TEXT, "maxItems": 2}]}}]}
    return _object(HOST_KEYS, ["networks"], {
        "networks": attachments,
        "services": {"type": "array", "items": _one_of_kinds({kind: _service(kind) for kind in SERVICE_KINDS})},
        "build": {"anyOf": [TEXT, _object(BUILD_KEYS, ["context"])]},
        "routes": {"type": "array", "items": _object(ROUTE_KEYS, ROUTE_KEYS)},
        "ready": _object(READY_KEYS, values={"tcp": PORT}),
        "limits": _object(LIMIT_KEYS),
        "placement": {"anyOf": [TEXT, {"type": "object", "additionalProperties": SCALAR}]},
    })


def _check() -> dict[str, Any]:
    """One branch per check kind: its own block, and the keys a check of it may carry."""
    branches = []
    for name, kind in check_kinds().items():
        block = _object(kind.keys, values={"expect_error": {"enum": list(kind.expected_errors)}} if
                        kind.expected_errors else None, typed=False)
        if name == "ping":
            block = {"anyOf": [{"type": "null"}, block]}
        keys = [key for key in kind.check_keys if key in COMMON_KEYS or key == "name"]
        branch = _object([*keys, name], [key for key in kind.required if key != "to"] + [name], {
            name: block,
            "server": {"anyOf": [FLAG, _object(SERVER_KEYS)]},
            "load": _object(LOAD_KEYS, ["clients"]),
        })
        branches.append(branch)
    return {"oneOf": branches}


def lab_schema() -> dict[str, Any]:
    impairment = {"anyOf": [{"const": "clear"}, _object(list(IMPAIRMENT_FIELDS))]}
    step = {"type": "object", "minProperties": 1, "maxProperties": 1,
            "propertyNames": {"enum": list(STEP_KINDS)}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "labctl lab file",
        "description": "A lab: networks, hosts and their services, the exchanges checked between them, "
                       "impairments and scenarios. Generated by `labctl schema`.",
        **_object(TOP_KEYS, ["name", "networks", "hosts"], {
            "networks": {"type": "object", "additionalProperties": _object(NETWORK_KEYS)},
            "hosts": {"type": "object", "additionalProperties": _host()},
            "checks": {"type": "array", "items": _check()},
            "impairments": {"type": "object", "additionalProperties": impairment},
            "scenarios": {"type": "object", "additionalProperties": {"type": "array", "items": step}},
        }),
    }
