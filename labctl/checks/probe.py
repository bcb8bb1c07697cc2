"""What a check asks services/probe.py, the client that runs inside the client host: the
common fields here, the kind's own from its module."""

from __future__ import annotations

import base64
from typing import Any

from ..model.topology import Topology
from .judge import target_address
from .spec import CheckSpec


def probe_spec(topology: Topology, check: CheckSpec, index: int) -> dict[str, Any]:
    steps = [{"send": base64.b64encode(step.send).decode(), "read": rule}
             for step, rule in zip(check.steps, check.kind.read_rules(check))]
    spec: dict[str, Any] = {
        "id": index, "protocol": check.protocol, "address": str(target_address(topology, check)),
        "port": check.port, "timeout": check.timeout, "steps": steps,
        **check.kind.probe_request(topology, check),
    }
    if check.transport == "udp" and topology.answering_datagram_ports:
        spec["avoid_ports"] = topology.answering_datagram_ports
    if check.load is not None:
        spec["load"] = {"clients": check.load.clients, "requests": check.load.requests,
                        "duration": check.load.duration}
    return spec
