"""The machines a Swarm lab runs on: a small inventory (cluster.yaml) and the verbs that
join them into a Swarm, show them and take them out of it.

    known_hosts: known_hosts        # optional; default ~/.ssh/known_hosts
    machines:                       # the first one manages the Swarm
      m1: {ssh: root@192.0.2.11, key: keys/id_ed25519, labels: {zone: a}}
      m2: {ssh: root@192.0.2.12:2222, key: keys/id_ed25519}

Every machine is reached over SSH (labctl.ssh), one connection each, kept for the run.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import docker
import docker.errors

from ..errors import EngineError, LabError
from ..names import MACHINE_LABEL
from .ssh import SshTarget, parse_ssh_url, remote_client
from ..model.yamlsource import KeyPath, load_source

SWARM_PORT = 2377
CLUSTER_KEYS = ["known_hosts", "machines"]
MACHINE_KEYS = ["ssh", "key", "labels", "advertise"]
LABEL_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Machine:
    name: str
    target: SshTarget
    labels: dict[str, str] = field(default_factory=dict)
    advertise: str | None = None  # the address other machines reach it on; default: its SSH host

    @property
    def swarm_address(self) -> str:
        return self.advertise or self.target.host


@dataclass(frozen=True)
class Cluster:
    file: Path
    machines: dict[str, Machine]

    @property
    def manager(self) -> Machine:
        return next(iter(self.machines.values()))


def load_cluster(path: Path) -> Cluster:
    source = load_source(path, display=str(path))
    top = source.mapping(source.data, (), CLUSTER_KEYS, required=["machines"])
    folder = path.resolve().parent
    known_hosts = None
    if "known_hosts" in top:
        known_hosts = folder / source.text(top["known_hosts"], ("known_hosts",))
        if not known_hosts.exists():
            raise source.error(("known_hosts",), f"no such file: {known_hosts}")
    items = source.named_mapping(top["machines"], ("machines",), "machine")
    if not items:
        raise source.error(("machines",), "expected at least one machine")
    machines: dict[str, Machine] = {}
    for name, body in items.items():
        at: KeyPath = ("machines", name)
        spec = source.mapping(body, at, MACHINE_KEYS, required=["ssh"])
        address = source.text(spec["ssh"], at + ("ssh",), r"^(ssh://)?[^\s/]+$",
                              "an SSH address such as root@192.0.2.11 or user@host:2222")
        key = None
        if "key" in spec:
            key = folder / os.path.expanduser(source.text(spec["key"], at + ("key",)))
            if not key.exists():
                raise source.error(at + ("key",), f"no such key file: {key}")
        try:
            target = parse_ssh_url(address if address.startswith("ssh://") else f"ssh://{address}",
                                   key, known_hosts)
        except LabError as exc:
            raise source.error(at + ("ssh",), str(exc)) from None
        labels = {}
        for label, value in (spec.get("labels") or {}).items():
            source.text(str(label), at + ("labels", str(label)), LABEL_PATTERN, "a label name")
            if isinstance(value, (dict, list)) or value is None:
                raise source.error(at + ("labels", str(label)), "expected a plain value")
            labels[str(label)] = str(value)
        if MACHINE_LABEL in labels:
            raise source.error(at + ("labels", MACHINE_LABEL), f"'{MACHINE_LABEL}' is set by labctl")
        advertise = source.text(spec["advertise"], at + ("advertise",)) if "advertise" in spec else None
        machines[name] = Machine(name, target, labels, advertise)
    return Cluster(path.resolve(), machines)


def connect(cluster: Cluster) -> tuple[dict[str, docker.DockerClient], dict[str, str]]:
    """One engine connection per machine, opened in parallel: (clients, why others failed)."""
    def attempt(machine: Machine) -> tuple[str, docker.DockerClient | str]:
        try:
            return machine.name, remote_client(machine.target)
        except LabError as exc:
            return machine.name, str(exc)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = dict(pool.map(attempt, cluster.machines.values()))
    clients = {name: value for name, value in results.items() if not isinstance(value, str)}
    failures = {name: value for name, value in results.items() if isinstance(value, str)}
    return clients, failures


def connect_all(cluster: Cluster) -> dict[str, docker.DockerClient]:
    clients, failures = connect(cluster)
    if failures:
        for client in clients.values():
            client.close()
        name, reason = next(iter(failures.items()))
        raise EngineError(f"machine '{name}' of {cluster.file.name}: {reason}")
    return clients


def _swarm_info(client: docker.DockerClient) -> dict:
    return client.info().get("Swarm") or {}


def up(cluster: Cluster, progress: Progress) -> None:
    """Join every machine into one Swarm managed by the first, and label each node with its
    machine name and labels. Machines already in that Swarm are left as they are."""
    clients = connect_all(cluster)
    try:
        manager = cluster.manager
        boss = clients[manager.name]
        info = _swarm_info(boss)
        if info.get("LocalNodeState") != "active":
            progress(f"{manager.name}: starting a Swarm (advertising {manager.swarm_address})")
            boss.swarm.init(advertise_addr=manager.swarm_address, listen_addr=f"0.0.0.0:{SWARM_PORT}")
            info = _swarm_info(boss)
        elif not info.get("ControlAvailable"):
            raise EngineError(f"machine '{manager.name}' is in a Swarm but does not manage it; "
                              "the first machine of the cluster file must be a manager")
        cluster_id = info.get("Cluster", {}).get("ID")
        boss.swarm.reload()
        token = boss.swarm.attrs["JoinTokens"]["Worker"]
        for machine in list(cluster.machines.values())[1:]:
            client = clients[machine.name]
            theirs = _swarm_info(client)
            if theirs.get("LocalNodeState") == "active":
                if theirs.get("Cluster", {}).get("ID") not in (None, cluster_id) and theirs.get("ControlAvailable"):
                    raise EngineError(f"machine '{machine.name}' manages another Swarm; "
                                      "run 'docker swarm leave --force' there first")
                managed_here = any(node.attrs["ID"] == theirs.get("NodeID") for node in boss.nodes.list())
                if managed_here:
                    continue
                raise EngineError(f"machine '{machine.name}' is in another Swarm; "
                                  "run 'labctl cluster down' or 'docker swarm leave' there first")
            progress(f"{machine.name}: joining the Swarm")
            client.swarm.join(remote_addrs=[f"{manager.swarm_address}:{SWARM_PORT}"],
                              join_token=token, advertise_addr=machine.swarm_address,
                              listen_addr=f"0.0.0.0:{SWARM_PORT}")
        for machine in cluster.machines.values():
            node_id = _swarm_info(clients[machine.name]).get("NodeID")
            node = boss.nodes.get(node_id)
            spec = node.attrs["Spec"]
            spec["Labels"] = {**(spec.get("Labels") or {}), **machine.labels, MACHINE_LABEL: machine.name}
            node.update(spec)
        progress(f"the Swarm has {len(cluster.machines)} machines")
    finally:
        for client in clients.values():
            client.close()


@dataclass
class MachineStatus:
    machine: str
    address: str
    role: str           # manager | worker | - (not in the Swarm)
    state: str          # ready | down | unreachable | not in a swarm
    availability: str
    engine: str
    labels: dict[str, str]
    reason: str = ""


def status(cluster: Cluster) -> list[MachineStatus]:
    clients, failures = connect(cluster)
    try:
        nodes: dict[str, dict] = {}
        for client in clients.values():
            if _swarm_info(client).get("ControlAvailable"):
                nodes = {node.attrs["Spec"].get("Labels", {}).get(MACHINE_LABEL, node.id): node.attrs
                         for node in client.nodes.list()}
                break
        rows = []
        for machine in cluster.machines.values():
            address = machine.target.url
            if machine.name in failures:
                last = nodes.get(machine.name, {})   # what the manager last saw of it
                rows.append(MachineStatus(machine.name, address,
                                          last.get("Spec", {}).get("Role", "-"), "unreachable",
                                          last.get("Spec", {}).get("Availability", "-"), "-",
                                          machine.labels, failures[machine.name]))
                continue
            info = clients[machine.name].info()
            node = nodes.get(machine.name)
            if node is None:
                state = "not in a swarm" if _swarm_info(clients[machine.name]).get("LocalNodeState") != "active" \
                    else "in the swarm, not labelled (run labctl cluster up)"
                rows.append(MachineStatus(machine.name, address, "-", state, "-",
                                          info.get("ServerVersion", "?"), machine.labels))
                continue
            labels = {k: v for k, v in (node["Spec"].get("Labels") or {}).items() if k != MACHINE_LABEL}
            rows.append(MachineStatus(machine.name, address, node["Spec"].get("Role", "?"),
                                      node.get("Status", {}).get("State", "?"),
                                      node["Spec"].get("Availability", "?"),
                                      info.get("ServerVersion", "?"), labels))
        return rows
    finally:
        for client in clients.values():
            client.close()


def down(cluster: Cluster, progress: Progress) -> None:
    """Every machine leaves the Swarm: workers first, the manager last."""
    clients, failures = connect(cluster)
    try:
        for name, reason in failures.items():
            progress(f"{name}: unreachable, left as it is ({reason})")
        ordered = [m for m in reversed(list(cluster.machines.values())) if m.name in clients]
        for machine in ordered:
            client = clients[machine.name]
            if _swarm_info(client).get("LocalNodeState") != "active":
                continue
            progress(f"{machine.name}: leaving the Swarm")
            try:
                client.swarm.leave(force=machine is cluster.manager)
            except docker.errors.APIError as exc:
                raise EngineError(f"{machine.name}: could not leave the Swarm: {exc.explanation or exc}") from None
    finally:
        for client in clients.values():
            client.close()
