"""Topology -> a stack file that `docker stack deploy` runs on a Swarm.

What differs from the Compose document, and why:
- networks are overlays, attachable (so labctl's helpers can join them) and optionally
  encrypted; Swarm assigns every address, so none is written here;
- the lab's CA and each host's certificate travel as configs and its key as a secret, since
  a bind mount would need the files on every machine;
- every host runs `endpoint_mode: dnsrr`: labctl talks to tasks by their own addresses, and a
  virtual IP would need IPVS, which some kernels lack;
- placement pins a host to a machine (by the label `labctl cluster up` gives each node) or
  to machines with given labels;
- the network helpers cannot be services (a service cannot join another's namespace), so
  they are listed under `x-labctl-helpers`, which Docker ignores; the Swarm engine runs
  each one on the machine of its host. Routes name their router, which resolves to its
  address once the lab runs. Network sidecars (impairments, partitions) name addresses,
  which the Swarm gives only once the lab runs, so they appear when the topology holds
  the addresses read back from it (`live` given).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..model.addressing import routes_by_name
from ..model.shaping import LiveState, sidecar_specs
from ..model.topology import Host, Topology
from ..names import (HOST_LABEL, MACHINE_LABEL, SPEC_LABEL, labels, program, net_service,
                     routes_service)
from .compose import copied_files, host_basics, relative_path, sidecar_command
from .pki import LabPki

HELPERS_KEY = "x-labctl-helpers"
STACK_LABEL = "com.docker.stack.namespace"


def render_stack(topology: Topology, image: str, pki: LabPki, output: Path,
                 live: LiveState | None = None) -> dict[str, Any]:
    base = output.parent
    services: dict[str, Any] = {}
    configs: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    helpers: dict[str, Any] = {}
    for host in topology.hosts.values():
        service = host_basics(topology, host, image)
        service["networks"] = list(host.networks)
        service["configs"], service["secrets"] = [], []
        for copy in copied_files(host, pki):
            kind = secrets if copy.secret else configs
            # Configs and secrets are immutable; a content hash in the name lets a changed
            # file be deployed as a new one instead of failing the update.
            digest = hashlib.sha256(copy.source.read_bytes()).hexdigest()[:10]
            kind[copy.name] = {"name": f"{topology.project}-{copy.name}-{digest}",
                               "file": relative_path(copy.source, base), "labels": labels(topology)}
            service["secrets" if copy.secret else "configs"].append(
                {"source": copy.name, "target": copy.target, "mode": copy.mode})
        service["deploy"] = _deploy(topology, host)
        services[host.name] = service
        routes = routes_by_name(topology, host)
        if routes:
            helpers[routes_service(host.name)] = {
                "host": host.name, "role": "routes", "image": image,
                "command": ["python3", program("netadmin"), "routes",
                            *[f"{destination}={router}" for destination, router in routes]]}
    for host_name, spec in (sidecar_specs(topology, live).items() if live is not None else ()):
        helpers[net_service(host_name)] = {
            "host": host_name, "role": "net", "image": image, "command": sidecar_command(spec),
            "labels": {SPEC_LABEL: json.dumps(spec, separators=(",", ":"))}}
    networks = {
        name: {
            "driver": "overlay",
            "attachable": True,
            "internal": network.internal,
            **({"driver_opts": {"encrypted": ""}} if network.encrypted else {}),
            "ipam": {"config": [{"subnet": str(network.subnet)}]},
            "labels": labels(topology),
        }
        for name, network in topology.networks.items()
    }
    return {"version": "3.8", "services": services, "networks": networks, "configs": configs,
            "secrets": secrets, HELPERS_KEY: helpers}


def _deploy(topology: Topology, host: Host) -> dict[str, Any]:
    deploy: dict[str, Any] = {
        "endpoint_mode": "dnsrr",
        "replicas": 1,
        "labels": labels(topology, **{HOST_LABEL: host.name}),
        # A lab host that stops stays stopped, as on one machine: faults are the lab's to
        # make, and a silent restart would hide one.
        "restart_policy": {"condition": "none"},
        # A stack caps memory and CPUs (Docker 20.10 has no process cap for services).
        "resources": {"limits": {"memory": str(host.limits.memory), "cpus": f"{host.limits.cpus:g}"}},
    }
    constraints = []
    if host.placement.machine:
        constraints.append(f"node.labels.{MACHINE_LABEL} == {host.placement.machine}")
    constraints += [f"node.labels.{key} == {value}" for key, value in host.placement.labels]
    if constraints:
        deploy["placement"] = {"constraints": constraints}
    return deploy


def helpers_of(document: dict[str, Any]) -> dict[str, Any]:
    return document.get(HELPERS_KEY) or {}


