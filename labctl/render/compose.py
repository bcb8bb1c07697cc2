"""Topology -> a standard Compose document that `docker compose up` runs without labctl.

Besides one service per lab host, the document holds short-lived helpers (names start with
`lc-`) that do network administration with NET_ADMIN so the hosts never need it:
`lc-routes-<host>` joins a host's namespace and sets its routes (labctl's own `up` runs
them all from one helper instead: labctl.engines.apply); `lc-fabric` lets routed
traffic cross the lab's internal bridges and keeps every lab bridge off the engine machine's
own services, before any host starts (see services/netadmin.py); `lc-net-<host>` is a
sidecar in a host's namespace that applies its impairments and partitions and removes them
when it stops (see services/shaper.py).
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import LabError
from ..checks.evidence import submission_mount
from ..model.addressing import (computed_routes, hosts_table, inside_ipv6, needs_routing_helper,
                                refuses_embedded_dns, resolver_addresses)
from ..model.shaping import LiveState, sidecar_specs
from ..model.topology import Host, Service, Topology
from ..names import (FABRIC_SERVICE, HELPER_MEMORY, HELPER_PIDS, HOST_LABEL, PKI_PATH, ROLE_LABEL, SECRET_SOURCE,
                     SIDECAR_APPLIED, SIDECAR_GRACE, SIDECAR_MEMORY, SIDECAR_PIDS, SPEC_LABEL, bridge_name,
                     fabric_tag, labels, net_service, program, routes_service)
from ..files import write_file
from .pki import LabPki

# No container of a lab declares a healthcheck: `up` confirms each one's readiness itself,
# once (readiness_wait), and `status` runs the same probe once when asked (probe_once), so
# a lab that sits idle starts no process in any host. The rendered file is the lab labctl
# runs, and run with `docker compose` alone it stays as idle.
SIDECAR_READY = ["test", "-f", SIDECAR_APPLIED]
READY_POLL = 0.05   # seconds between tries of a readiness probe, while `up` waits for it


def sidecar_command(spec: dict[str, Any]) -> list[str]:
    return ["python3", program("shaper"), json.dumps(spec, separators=(",", ":"))]


@dataclass(frozen=True)
class CopiedFile:
    """A file a host gets as a copy (a config, or a secret for its key) rather than a bind
    mount: on a Swarm, and on an engine reached over SSH."""
    name: str     # unique in the lab; shared files (the CA) share it
    source: Path
    target: str
    secret: bool = False

    @property
    def mode(self) -> int:
        if self.secret:
            return 0o400
        return 0o555 if os.access(self.source, os.X_OK) else 0o444


def copied_files(host: Host, pki: LabPki) -> list[CopiedFile]:
    """What `host` needs in its file system: the lab's CAs, its certificate and key, and its
    `files:` (a directory becomes one copy per file in it)."""
    credentials = pki.host(host.name)
    copies = [CopiedFile("ca", pki.ca_certificate, f"{PKI_PATH}/ca.pem"),
              CopiedFile("untrusted-ca", pki.untrusted_ca_certificate, f"{PKI_PATH}/untrusted-ca.pem"),
              CopiedFile(f"{host.name}-cert", credentials.certificate, f"{PKI_PATH}/host.pem"),
              CopiedFile(f"{host.name}-key", credentials.key, f"{PKI_PATH}/host.key", secret=True)]
    for index, mount in enumerate(host.files):
        if mount.source.is_dir():
            inside = sorted(path for path in mount.source.rglob("*") if path.is_file())
            copies += [CopiedFile(f"{host.name}-file-{index}-{number}", path,
                                  f"{mount.target.rstrip('/')}/{path.relative_to(mount.source).as_posix()}")
                       for number, path in enumerate(inside)]
        else:
            copies.append(CopiedFile(f"{host.name}-file-{index}", mount.source, mount.target))
    return copies


def render(topology: Topology, image: str, pki: LabPki, output: Path,
           live: LiveState | None = None, copies_files: bool = False) -> dict[str, Any]:
    """The lab as Compose sees it. `live` adds the impairments and partitions that live
    commands made, so re-rendering keeps them. `copies_files` (for an engine on another
    machine, where this machine's paths mean nothing) gives hosts their files as configs
    and their keys as secrets instead of bind mounts."""
    base = output.parent
    services: dict[str, Any] = {}
    copies: dict[str, dict[str, Any]] = {"configs": {}}
    for host in topology.hosts.values():
        services[host.name] = _host_service(topology, host, image, pki, base)
        if copies_files:
            services[host.name].pop("volumes")
            services[host.name].update(_copied(topology, host, pki, base, copies))
        routes = computed_routes(topology, host)
        if needs_routing_helper(topology, host):
            services[routes_service(host.name)] = _helper(
                topology, image, "routes", host=host.name,
                network_mode=f"service:{host.name}",
                command=["python3", program("netadmin"), "routes",
                         *(["--no-default6"] if inside_ipv6(topology, host) else []),
                         *(["--no-dns"] if refuses_embedded_dns(topology, host) else []),
                         *[f"{route.destination}={route.via}" for route in routes]],
                depends_on={host.name: {"condition": "service_started"}})
    for host_name, spec in sidecar_specs(topology, live).items():
        # Long-running: the fallback's delayer lives here, and stopping it (SIGTERM)
        # removes what it set. Its spec label is what `impair --show` reports.
        sidecar = _helper(topology, image, "net", host=host_name, network_mode=f"service:{host_name}",
                          command=sidecar_command(spec),
                          depends_on={host_name: {"condition": "service_started"}},
                          memory=SIDECAR_MEMORY, pids=SIDECAR_PIDS)
        sidecar["labels"][SPEC_LABEL] = json.dumps(spec, separators=(",", ":"))
        sidecar["stop_grace_period"] = f"{SIDECAR_GRACE}s"
        services[net_service(host_name)] = sidecar
    if topology.needs_fabric:
        services[FABRIC_SERVICE] = _helper(
            topology, image, "fabric", network_mode="host",
            command=["python3", program("netadmin"), "fabric-add", fabric_tag(topology),
                     *[bridge_name(topology, name) + (":6i" if network.internal else ":6") * bool(network.subnet6)
                       for name, network in topology.networks.items()]])
        # No host's program runs before the rules that keep it off the engine's machine.
        for host in topology.hosts.values():
            services[host.name]["depends_on"] = {FABRIC_SERVICE: {"condition": "service_completed_successfully"}}
    networks = {
        name: {
            "driver": "bridge",
            "internal": network.internal,
            "driver_opts": {"com.docker.network.bridge.name": bridge_name(topology, name)},
            "ipam": {"config": [{"subnet": str(subnet), "gateway": str(network.gateway_for(subnet.version))}
                                for subnet in network.subnets]},
            **({"enable_ipv6": True} if network.subnet6 else {}),
            "labels": labels(topology),
        }
        for name, network in topology.networks.items()
    }
    document = {"name": topology.project, "services": services, "networks": networks}
    if copies_files:
        document.update({kind: entries for kind, entries in copies.items() if entries})
    return document


KEYS_KEY = "x-labctl-keys"   # keys labctl itself puts into hosts on an engine elsewhere


def _copied(topology: Topology, host: Host, pki: LabPki, base: Path,
            copies: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A host's configs for Compose, adding their definitions to `copies`: Compose copies
    each into the container before it starts. Its key goes under KEYS_KEY instead, naming
    the file labctl keeps it in: labctl copies it into the created container itself, so no
    key passes through the document or Compose's environment."""
    references: dict[str, list[dict[str, Any]]] = {"configs": []}
    for copy in copied_files(host, pki):
        if copy.secret:
            copies.setdefault(KEYS_KEY, {}).setdefault(host.name, []).append(
                {SECRET_SOURCE: relative_path(copy.source, base), "target": copy.target, "mode": copy.mode})
            continue
        try:
            definition = {"content": copy.source.read_text()}
        except UnicodeDecodeError:
            raise LabError(f"{copy.source}: only text files can be copied to an engine on "
                           "another machine") from None
        copies["configs"][copy.name] = {"name": f"{topology.project}-{copy.name}", **definition}
        references["configs"].append({"source": copy.name, "target": copy.target, "mode": copy.mode})
    return {kind: entries for kind, entries in references.items() if entries}


def relative_path(path: Path, base: Path) -> str:
    relative = os.path.relpath(path, base)
    return relative if relative.startswith(".") else f"./{relative}"


def _host_service(topology: Topology, host: Host, image: str, pki: LabPki, base: Path) -> dict[str, Any]:
    credentials = pki.host(host.name)
    service = host_basics(topology, host, image)
    service.update({
        "networks": {attachment.network: {key: str(address) for key, address in
                                          (("ipv4_address", attachment.address),
                                           ("ipv6_address", attachment.address6)) if address}
                     for attachment in host.attachments},
        "extra_hosts": [f"{name}:{address}" for name, address in
                        sorted(hosts_table(topology, host), key=lambda pair: pair[0])],
        "security_opt": ["no-new-privileges:true"],
        # A student's code writes no frames past netfilter (impairments, the resolver's
        # refusal) unless the lab gives it raw sockets (labctl.checks.evidence).
        **({"cap_drop": ["NET_RAW"]} if submission_mount(topology, host) is not None
           and not host.raw_sockets else {}),
        # What one host may use: a runaway program fails its own host only.
        "mem_limit": host.limits.memory,
        "memswap_limit": host.limits.memory,
        "pids_limit": host.limits.pids,
        "cpus": host.limits.cpus,
        "volumes": [
            f"{relative_path(pki.ca_certificate, base)}:{PKI_PATH}/ca.pem:ro",
            f"{relative_path(pki.untrusted_ca_certificate, base)}:{PKI_PATH}/untrusted-ca.pem:ro",
            f"{relative_path(credentials.certificate, base)}:{PKI_PATH}/host.pem:ro",
            f"{relative_path(credentials.key, base)}:{PKI_PATH}/host.key:ro",
            *[f"{relative_path(mount.source, base)}:{mount.target}:{'rw' if mount.writable else 'ro'}"
              for mount in host.files],
        ],
    })
    # On an engine elsewhere this machine's files cannot be mounted, and the engine owns
    # /etc/resolv.conf: hosts keep their hosts table there.
    resolv = None if topology.traits.copies_files else resolv_conf(topology, host)
    if resolv is not None:
        # Names resolve through the lab's DNS, so it sees (and records) every lookup.
        path = write_file(topology.folder, topology.state_folder / "resolv" / f"{host.name}.conf", resolv)
        service.pop("extra_hosts", None)
        service["volumes"].append(f"{relative_path(path, base)}:/etc/resolv.conf:ro")
    # A program that floods its output fills a bounded log, never the engine's disk.
    service["logging"] = {"driver": "json-file", "options": {"max-size": "10m", "max-file": "2"}}
    if host.build:
        build: dict[str, Any] = {"context": relative_path(Path(host.build["context"]), base),
                                 "labels": labels(topology)}
        if "dockerfile" in host.build:
            build["dockerfile"] = host.build["dockerfile"]
        if submission_mount(topology, host) is not None:
            build["network"] = "none"   # a student's recipe reaches nothing while it builds
        service["build"] = build
        service["image"] = f"{topology.project}-{host.name}"
    return service


def host_basics(topology: Topology, host: Host, image: str) -> dict[str, Any]:
    """What a host's service is on any engine: its image, program and labels.
    Networks, files and placement differ between Compose and a Swarm stack."""
    service: dict[str, Any] = {
        "image": host.image or image,
        "hostname": host.name,
        "init": True,
        "stop_grace_period": "2s",
        "labels": labels(topology, **{HOST_LABEL: host.name, ROLE_LABEL: "host"}),
    }
    if host.router:
        service["sysctls"] = {"net.ipv4.ip_forward": 1}
        if any(topology.networks[name].subnet6 for name in host.networks):
            service["sysctls"]["net.ipv6.conf.all.forwarding"] = 1
    if host.env:
        service["environment"] = dict(host.env)
    if host.services:
        quiet = topology.answering_datagram_ports
        spec = [{"kind": s.kind, "port": s.port,
                 **({"client_cert": s.client_cert} if s.client_cert != "none" else {}),
                 **({"group": s.group} if s.group else {}),
                 **(dns_zone(topology, host, s) if s.kind == "dns" else {}),
                 **({"never_answer_ports": quiet} if s.kind in ("udp-echo", "dns") else {})}
                for s in host.services]
        # No site, no user paths: a smaller process; the script's own folder stays importable.
        service["command"] = ["python3", "-E", "-s", "-S", program("labsvc"),
                              json.dumps(spec, separators=(",", ":"))]
    elif host.command and host.runs_lab_image and refuses_embedded_dns(topology, host):
        service["command"] = isolated(host.command)
    elif host.command:
        service["command"] = host.command
    elif host.runs_lab_image:
        service["command"] = ["sleep", "infinity"]
    if not host.runs_lab_image:
        # An image of the lab's own may declare a healthcheck: it would start a process in
        # the host every interval for the lab's life. A `ready:` probe runs once instead.
        service["healthcheck"] = {"disable": True}
    return service


# Docker's resolver answers a host's lookups until its routes helper refuses it (in the
# host's namespace, which must exist first); a program of the lab's starts only once a TCP
# connection to it is refused, so not even its first lookup leaves the lab. Started once, at
# the host's start, and bounded: a host whose refusal never comes runs nothing.
ISOLATION_WAIT = ("end=$(( $(date +%s) + 60 )); while nc -z -w 1 127.0.0.11 53 2>/dev/null; do "
                  "[ $(date +%s) -ge $end ] && { echo 'labctl: the host was never isolated' >&2; exit 1; }; "
                  "sleep 0.02; done; exec \"$@\"")


def isolated(command: list[str]) -> list[str]:
    """`command`, started once Docker's resolver is refused to the host."""
    return ["sh", "-c", ISOLATION_WAIT, "labctl-isolated", *command]


def dns_zone(topology: Topology, host: Host, service: Service) -> dict[str, Any]:
    """What a dns service answers: its zone, every host's addresses (those known when the
    document is written), and the records the lab declares."""
    return {"zone": service.zone, "server": host.name,
            "hosts": {name: [str(address) for a in other.attachments for address in a.addresses]
                      for name, other in topology.hosts.items()},
            "records": [{"name": name, "type": rtype, "value": value} for name, rtype, value in service.records]}


def resolv_conf(topology: Topology, host: Host) -> str | None:
    """The host's /etc/resolv.conf when the lab has a resolver: its dns service, reached at
    the address this host uses for it in each family it has a way by (IPv4 first), and the
    lab's zone to complete short names."""
    found = topology.resolver
    if found is None:
        return None
    server, service = found
    servers = "".join(f"nameserver {address}\n" for address in resolver_addresses(topology, host))
    return (f"# Written by labctl: the lab's own DNS ({server.name}) answers for {service.zone}.\n"
            f"{servers}search {service.zone}\noptions ndots:1 timeout:2 attempts:2\n")


# How services/health.py asks a service that does not echo whether it is there.
HEALTH_TRANSPORT = {"udp-listener": "udp-listener", "dns": "tcp"}


def readiness_probe(host: Host) -> list[str] | None:
    """How to tell that the host's program is ready, as Compose writes a test (CMD or
    CMD-SHELL first), or None: run once, never on an interval."""
    if host.ready and host.ready.tcp_port:
        # User images may lack Python, so probe the port with the shell's /dev/tcp if bash
        # exists, else nc; both are in labctl's own image.
        port = host.ready.tcp_port
        return ["CMD-SHELL", f"nc -z 127.0.0.1 {port} || bash -c '</dev/tcp/127.0.0.1/{port}'"]
    if host.ready and host.ready.command:
        return ["CMD-SHELL", host.ready.command]
    if host.services:
        return ["CMD", "python3", "-I", "-S", program("health"),
                *[f"{HEALTH_TRANSPORT.get(s.kind, s.transport)}:{s.port}" for s in host.services]]
    return None


def probe_once(probe: list[str]) -> list[str]:
    """A readiness probe as a command to run once."""
    return list(probe[1:]) if probe[0] == "CMD" else ["sh", "-c", probe[1]]


def readiness_wait(probe: list[str], seconds: float) -> list[str]:
    """A command that tries a readiness probe until it passes, at most `seconds`: run once
    in the container by `up`, it ends when the program is ready (or it gives up)."""
    test = shlex.join(probe[1:]) if probe[0] == "CMD" else probe[1]
    return ["sh", "-c", f"end=$(( $(date +%s) + {max(1, int(seconds))} )); "
            f"until ( {test} ) >/dev/null 2>&1; do [ $(date +%s) -ge $end ] && exit 1; "
            f"sleep {READY_POLL}; done"]


def _helper(topology: Topology, image: str, role: str, command: list[str], network_mode: str,
            host: str | None = None, depends_on: dict[str, Any] | None = None,
            memory: int = HELPER_MEMORY, pids: int = HELPER_PIDS) -> dict[str, Any]:
    helper: dict[str, Any] = {
        "image": image,
        "network_mode": network_mode,
        "cap_add": ["NET_ADMIN"],
        "restart": "no",
        "labels": labels(topology, **{ROLE_LABEL: role, **({HOST_LABEL: host} if host else {})}),
        "command": command,
        # A helper holds NET_ADMIN on the engine's machine or in a host: capped, so that
        # nothing it is fed can take the machine down with it.
        "mem_limit": memory,
        "memswap_limit": memory,
        "pids_limit": pids,
    }
    if depends_on:
        helper["depends_on"] = depends_on
    return helper


def write_compose(document: dict[str, Any], output: Path, source_file: Path) -> None:
    """Write the document beside the lab file. Every `$` in it is doubled: Compose reads
    `$NAME` and `${NAME}` from the environment of whoever runs it, and a lab's values are
    literal, so the lab runs the same for everyone and reads nothing of theirs."""
    header = (f"# Rendered by labctl from {os.path.relpath(source_file, output.parent)}; "
              "edit the lab file, not this one.\n")
    # libyaml's emitter where PyYAML has it: the same text, written several times faster.
    text = yaml.dump(literal(document), Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                     sort_keys=False, default_flow_style=False, width=100)
    write_file(source_file.parent, output, header + text)


def literal(value: Any, key: str = "") -> Any:
    """`value` with `$` escaped as `$$` in every string Compose interpolates. Extension
    fields (`x-…`) are labctl's own and read back by labctl, so they stay as they are."""
    if isinstance(value, dict):
        return {name: item if str(name).startswith("x-") else literal(item, str(name))
                for name, item in value.items()}
    if isinstance(value, list):
        return [literal(item, key) for item in value]
    if isinstance(value, str):
        return value.replace("$", "$$")
    return value


def unliteral(value: Any) -> Any:
    """The inverse of `literal`: the values as labctl meant them, for a reader that does
    not interpolate (the engine's API)."""
    if isinstance(value, dict):
        return {name: item if str(name).startswith("x-") else unliteral(item) for name, item in value.items()}
    if isinstance(value, list):
        return [unliteral(item) for item in value]
    if isinstance(value, str):
        return value.replace("$$", "$")
    return value
