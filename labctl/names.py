"""The names labctl gives things: Docker labels, helper names, paths inside hosts and
beside the lab file. Every layer reads them from here, so they are said once.

Functions take anything with a lab's `name` and `folder` (a Topology), so this module
stays at the bottom and imports nothing of labctl.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

# Docker labels. Every container, network, volume and image a lab creates carries LAB_LABEL;
# `down` and failure cleanup find the lab's resources by it and by nothing else.
LAB_LABEL = "io.labctl.lab"
HOST_LABEL = "io.labctl.host"
ROLE_LABEL = "io.labctl.role"          # host | routes | fabric | net | helper | doctor
SPEC_LABEL = "io.labctl.spec"          # a network sidecar's spec, as `impair --show` reports it
IMAGE_LABEL = "io.labctl.image"        # base | host | node
MACHINE_LABEL = "io.labctl.machine"    # the Swarm node label placement uses
SOURCE_LABEL = "io.labctl.source"      # which lab file a lab came from (a digest of its path)
CONFIG_LABEL = "io.labctl.config"      # a digest of the service a container was made from
FOLDER_LABEL = "io.labctl.folder"      # the lab's folder, where `labctl ls` says it came from

# Image repositories; tags are content hashes (see assets.py).
BASE_REPOSITORY = "labctl-base"
HOST_REPOSITORY = "labctl-host"
NODE_REPOSITORY = "labctl-node"

# Paths inside a lab host.
SERVICES_PATH = "/opt/labctl/services"
PKI_PATH = "/opt/labctl/pki"
TRANSCRIPT = "/var/log/labctl/transcript.jsonl"
# Each transcript line also goes to the host's output after this mark (services/labsvc.py
# says it too): the engine's log API reads a check's window without a process in the host.
TRANSCRIPT_MARK = "transcript "
SIDECAR_APPLIED = "/tmp/lc-applied"    # written by shaper.py once its spec is applied
# What services/labsvc.py prints once every built-in server listens: a host's readiness.
SERVING_LINE = "labsvc: serving"

# Helpers: names of the services that do network administration for hosts.
RESERVED_PREFIX = "lc-"                # hosts may not take names starting with it
SIDECAR_GRACE = 5                      # seconds a sidecar has to undo its work when stopped
# What each container labctl starts beside the hosts may use (memory with swap included,
# processes and threads), so no helper can take the engine's machine down with it. Measured:
# a one-shot helper runs one small program (under 10 MiB; a capture's tcpdump 1 MiB, its
# file's page cache reclaimed at the cap); a check's probe runs up to 32 checks at once, a
# load check on up to 256 threads (19 MiB), each reply up to 1 MiB; a network sidecar's
# delayer peaked at 38 MiB with its queue full of corrupted, duplicated, 2 s-delayed packets.
HELPER_MEMORY, HELPER_PIDS = 64 << 20, 64
PROBE_MEMORY, PROBE_PIDS = 256 << 20, 1024
SIDECAR_MEMORY, SIDECAR_PIDS = 128 << 20, 64
SECRET_SOURCE = "x-labctl-file"        # a copied secret's file, relative to the document
SHIPPED_FILE = "shipped.json"          # in a lab's state folder: images copied to other engines


class NamedLab(Protocol):
    name: str
    file: Path

    @property
    def folder(self) -> Path: ...


def program(name: str) -> str:
    """Where a program of services/ runs from: compiled when the image is built, since
    Python compiles a script it is given anew at every start (time in every check's probe,
    and memory kept for a server's whole life)."""
    return f"{SERVICES_PATH}/{name}.pyc"


def project(lab: NamedLab) -> str:
    """The Compose project (and stack) name, which also prefixes container and network names."""
    return f"lab-{lab.name}"


STATE_FOLDER = ".labctl"   # beside a lab file; labctl writes a .gitignore of `*` into it


def state_folder(lab: NamedLab) -> Path:
    """What a lab generates (CA, keys, live changes) lives beside lab.yaml, never committed."""
    return lab.folder / STATE_FOLDER / lab.name


def compose_path(lab: NamedLab) -> Path:
    return lab.folder / "compose" / f"{lab.name}.yaml"


def stack_path(lab: NamedLab) -> Path:
    return lab.folder / "compose" / f"{lab.name}.stack.yaml"


def bridge_name(lab: NamedLab, network: str) -> str:
    """A stable Linux bridge name (at most 15 characters) so helpers can address it."""
    return "lc" + hashlib.sha1(f"{lab.name}/{network}".encode()).hexdigest()[:11]


def fabric_tag(lab: NamedLab) -> str:
    """The comment on the lab's DOCKER-USER rules."""
    return f"labctl:{lab.name}"


def helper_service(role: str, host: str | None = None) -> str:
    """A helper's service name: lc-ROLE-HOST for one host's, lc-ROLE for the lab's."""
    return f"{RESERVED_PREFIX}{role}" + (f"-{host}" if host else "")


def net_service(host: str) -> str:
    return helper_service("net", host)


def routes_service(host: str) -> str:
    return helper_service("routes", host)


def host_of(service: str, role: str) -> str | None:
    """The host a helper service named by `helper_service(role, host)` serves, if it is one."""
    prefix = helper_service(role) + "-"
    return service[len(prefix):] if service.startswith(prefix) else None


FABRIC_SERVICE = helper_service("fabric")
IMAGE_SOURCE_LABEL = "io.labctl.from"   # registry | mirror: where an image's base came from


def source_digest(lab: NamedLab) -> str:
    """Names the lab file without writing its path into the engine's labels."""
    return hashlib.sha256(str(lab.file).encode()).hexdigest()[:16]


def labels(lab: NamedLab, **extra: str) -> dict[str, str]:
    # The folder, unlike the file's digest, is written out: `labctl ls` shows where each
    # running lab came from, and `labctl down NAME` clears its state there if it remains.
    return {LAB_LABEL: lab.name, SOURCE_LABEL: source_digest(lab), FOLDER_LABEL: str(lab.folder), **extra}
