"""Integration tests run on the real engine. Under CI=true they never skip: no engine
means failure, loudly."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from labctl.assets import host_tag
from labctl.engines.compose import ComposeEngine, compose_command
from labctl.engines.containers import docker_client
from labctl.engines.factory import read_lab
from labctl.engines.images import ensure_host_image
from labctl.errors import LabError
from labctl.labfile.load import Lab
from labctl.model.topology import Topology
from labctl.ops import lifecycle
from labctl.names import LAB_LABEL, fabric_tag

from ..conftest import REPO


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"integration tests need a Docker engine under CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine() -> ComposeEngine:
    try:
        client = docker_client()
    except LabError as exc:
        _unavailable(str(exc))
    if compose_command() is None:
        _unavailable("Docker Compose v2 is not installed (make env installs it)")
    ensure_host_image(client, lambda message: print(f"labctl: {message}", file=sys.stderr))
    return ComposeEngine(client)


@pytest.fixture(scope="session")
def image(engine) -> str:
    return host_tag()


def default_lab_copy(folder: Path, name: str, octet: int) -> Path:
    """The repository's default lab under another name and other subnets, so tests never
    touch a lab the user has running."""
    text = (REPO / "lab.yaml").read_text()
    text = text.replace("name: campus", f"name: {name}").replace("10.10.", f"10.{octet}.")
    text = text.replace(r"10\.10\.", rf"10\.{octet}\.").replace("fd00:10:", f"fd00:{octet}:")
    path = folder / "lab.yaml"
    path.write_text(text)
    return path


def leftovers(engine: ComposeEngine, topology: Topology, image: str) -> dict[str, list[str]]:
    """Everything of the lab still on the engine: by label, by name, and its forwarding rules."""
    client = engine.client
    selector = {"label": f"{LAB_LABEL}={topology.name}"}
    found = {
        # The low-level listing: a container another process removes meanwhile is not inspected.
        "containers": [c["Names"][0] for c in client.api.containers(all=True, filters=selector)],
        "containers by name": [c["Names"][0] for c in client.api.containers(all=True)
                               if c["Names"][0].lstrip("/").startswith(topology.project + "-")],
        "networks": [n.name for n in client.networks.list(filters=selector)],
        "networks by name": [n.name for n in client.networks.list() if n.name.startswith(topology.project + "_")],
        "volumes": [v.name for v in client.volumes.list(filters=selector)],
        "built images": [tag for image in client.images.list(filters=selector) for tag in image.tags
                         if tag.startswith(topology.project + "-")],
    }
    listings = [f"{binary} -S {chain} 2>/dev/null; " for binary, chain in (
        ("iptables-nft", "DOCKER-USER"), ("iptables-legacy", "DOCKER-USER"), ("ip6tables-nft", "FORWARD"),
        ("ip6tables-legacy", "FORWARD"), ("iptables-nft", "INPUT"), ("iptables-legacy", "INPUT"),
        ("ip6tables-nft", "INPUT"), ("ip6tables-legacy", "INPUT"))]
    rules = client.containers.run(image, ["sh", "-c", "".join(listings) + "true"],
                                  network_mode="host", cap_add=["NET_ADMIN"], remove=True)
    found["forwarding rules"] = [line for line in rules.decode().splitlines()
                                 if fabric_tag(topology) in line]
    return {kind: items for kind, items in found.items() if items}


def load(path: Path) -> Lab:
    """The lab file as labctl reads it for this machine's engine: `.topology`, `.checks`,
    `.scenarios`."""
    return read_lab(path)


def running_copy(engine: ComposeEngine, source: Path, folder: Path):
    """Copy the lab folder `source` into `folder`, bring it up, yield the Lab, take it down."""
    for item in source.iterdir():
        if item.is_file():
            shutil.copy(item, folder / item.name)
    lab = load(folder / "lab.yaml")
    lifecycle.up(lab.topology, engine, quiet)
    try:
        yield lab
    finally:
        lifecycle.down(lab.topology, engine, quiet)


def running_text(engine: ComposeEngine, text: str, folder: Path):
    """Write `text` as lab.yaml in `folder`, bring it up, yield the Lab, take it down."""
    (folder / "lab.yaml").write_text(text)
    lab = load(folder / "lab.yaml")
    lifecycle.up(lab.topology, engine, quiet, timeout=60)
    try:
        yield lab
    finally:
        lifecycle.down(lab.topology, engine, quiet)


def quiet(_message: str) -> None:
    pass


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300):
    import subprocess
    return subprocess.run([sys.executable, "-m", "labctl", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)
