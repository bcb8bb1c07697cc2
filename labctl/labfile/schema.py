"""The lab file's JSON Schema, for editors (`labctl schema`), generated from the
definitions the validator itself reads: the keys each mapping allows and requires, the
service and check kinds, their keys and expected errors, the impairment fields, the
scenario steps, each key with the text its declaration gives it (its description, which
editors show). A key the validator learns appears here with it. Only what a value of a
key looks like (a port is an integer, a subnet a text) is said here; what the schema
cannot say (a subnet that overlaps another, an unknown host) only `labctl validate` does.
Draft-07, the draft editors' YAML support reads best."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..checks.kind import COMMON_KEYS
from ..checks.kinds import check_kinds
from ..checks.spec import LOAD_KEYS, SERVER_KEYS
from ..model.impairment import KINDS as IMPAIRMENT_FIELDS, TEXTS as IMPAIRMENT_TEXTS
from ..model.topology import (BUILD_KEYS, DNS_RECORD_TYPES, HOST_KEYS, LIMIT_KEYS, NETWORK_KEYS, READY_KEYS,
                              RECORD_KEYS, ROUTE_KEYS, SERVICE_FIELDS, SERVICE_KEYS, SERVICE_KINDS, SERVICE_TEXTS)
from .load import TOP_KEYS
from .scenarios import FAULT_ACTIONS, STEP_KINDS, WAIT_KEYS

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


def _object(keys: Mapping[str, str], required: Iterable[str] = (), values: dict[str, dict[str, Any]] | None = None,
            typed: bool = True) -> dict[str, Any]:
    """A mapping the validator reads with these keys (each with the text its declaration
    gives it): nothing else is allowed. `typed`: its values look as VALUES says (a kind's
    own block reads its keys its own way)."""
    chosen = {**(VALUES if typed else {}), **(values or {})}
    return {"type": "object",
            "properties": {key: {**chosen.get(key, ANY), "description": text} for key, text in keys.items()},
            "required": list(required), "additionalProperties": False}


def _one_of_kinds(kinds: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """A one-key mapping naming its kind: {http: {port: 8080}}; `kinds` gives each its text
    and its body."""
    return {"oneOf": [{"type": "object", "properties": {kind: {**body, "description": text}}, "required": [kind],
                       "additionalProperties": False} for kind, (text, body) in kinds.items()]}


def _service(kind: str) -> dict[str, Any]:
    allowed, required = SERVICE_KEYS[kind]
    records = {"type": "array", "items": _object(RECORD_KEYS, RECORD_KEYS, {"type": {"enum": list(DNS_RECORD_TYPES)}})}
    return _object({key: SERVICE_FIELDS[key] for key in allowed}, required,
                   {"records": records} if kind == "dns" else None)


def _host() -> dict[str, Any]:
    attachments = {"anyOf": [NAMES, {"type": "object", "additionalProperties": {
        "anyOf": [TEXT, {"type": "null"}, {"type": "array", "items": TEXT, "maxItems": 2}]}}]}
    services = {kind: (SERVICE_TEXTS[kind], _service(kind)) for kind in SERVICE_KINDS}
    return _object(HOST_KEYS, ["networks"], {
        "networks": attachments,
        "services": {"type": "array", "items": _one_of_kinds(services)},
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
        keys = {key: COMMON_KEYS[key] for key in kind.check_keys if key in COMMON_KEYS}
        branch = _object({**keys, name: kind.summary}, [key for key in kind.required if key != "to"] + [name], {
            name: block,
            "server": {"anyOf": [FLAG, _object(SERVER_KEYS)]},
            "load": _object(LOAD_KEYS, ["clients"]),
        })
        branches.append(branch)
    return {"oneOf": branches}


CHECK = {"$ref": "#/definitions/check"}


def _step() -> dict[str, Any]:
    """One step of a scenario: a one-key mapping naming what it does."""
    impairment = _impairment()
    checks = {"anyOf": [TEXT, CHECK, {"type": "array", "items": {"anyOf": [TEXT, CHECK]}}]}
    fault = _object(FAULT_ACTIONS, values={action: TEXT for action in FAULT_ACTIONS})
    values: dict[str, dict[str, Any]] = {
        "impair": {"type": "object", "additionalProperties": impairment},
        "fault": {**fault, "minProperties": 1, "maxProperties": 1},
        "check": checks,
        "wait-for": {"anyOf": [*checks["anyOf"], _object(WAIT_KEYS, ["check"], {"check": checks})]},
    }
    return {**_object(STEP_KINDS, values=values, typed=False), "minProperties": 1, "maxProperties": 1}


def _impairment() -> dict[str, Any]:
    return {"anyOf": [{"const": "clear"}, _object({key: IMPAIRMENT_TEXTS[key] for key in IMPAIRMENT_FIELDS})]}


def lab_schema() -> dict[str, Any]:
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "labctl lab file",
        "description": "A lab: networks, hosts and their services, the exchanges checked between them, "
                       "impairments and scenarios. Generated by `labctl schema`.",
        **_object(TOP_KEYS, ["name", "networks", "hosts"], {
            "networks": {"type": "object", "additionalProperties": _object(NETWORK_KEYS)},
            "hosts": {"type": "object", "additionalProperties": _host()},
            "checks": {"type": "array", "items": CHECK},
            "impairments": {"type": "object", "additionalProperties": _impairment()},
            "scenarios": {"type": "object", "additionalProperties": {"type": "array", "items": _step()}},
        }),
        "definitions": {"check": _check()},
    }
