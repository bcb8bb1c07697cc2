"""Machines in containers: Docker engines, each behind sshd, on one computer, so a
multi-machine lab (and tests/multihost) runs where there is only one machine.

Each machine gets the host key and the authorized key labctl generates here, and the
cluster file written beside them pins those host keys, so nothing is accepted blindly.
Everything is labelled with the sandbox's name and removed by `stop_machines`.
"""

from __future__ import annotations

import io
import ipaddress
import tarfile
import time
from pathlib import Path
from typing import Callable

import docker
import docker.errors
import yaml

from ..errors import EngineError, LabError
from .cluster import load_cluster
from .images import ensure_node_image
from ..names import LAB_LABEL, ROLE_LABEL
from .ssh import SshTarget, generate_key, known_hosts_line, remote_client

Progress = Callable[[str], None]


def machine_names(sandbox: str, count: int) -> list[str]:
    return [f"{sandbox}-m{index}" for index in range(1, count + 1)]


def start_machines(client: docker.DockerClient, sandbox: str, count: int, subnet: str,
                   folder: Path, progress: Progress, timeout: float = 90.0) -> Path:
    """Start `count` machines on a network of their own and write `folder`/cluster.yaml
    naming them. On any failure, what was started is removed."""
    image = ensure_node_image(client, progress)
    network_range = ipaddress.ip_network(subnet)
    key = folder / "keys" / "id_ed25519"
    authorized = generate_key(key, comment=f"labctl@{sandbox}")
    labels = {LAB_LABEL: sandbox, ROLE_LABEL: "machine"}
    try:
        network = client.networks.create(
            f"lc-{sandbox}", driver="bridge", internal=True, labels=labels,
            ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)]))
        machines = {}
        known_hosts = []
        for index, name in enumerate(machine_names(sandbox, count)):
            address = str(network_range.network_address + 11 + index)
            host_key = folder / "hostkeys" / name
            host_public = generate_key(host_key, comment=name)
            target = SshTarget(address, "root", 22, key, folder / "known_hosts")
            known_hosts.append(known_hosts_line(target, host_public))
            volume = client.volumes.create(f"lc-{name}-engine", labels=labels)
            container = client.containers.create(
                image, name=name, hostname=name, labels=labels, detach=True,
                volumes={volume.name: {"bind": "/var/lib/docker", "mode": "rw"},
                         "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
                network=network.name,
                # What a Docker engine in a container needs, short of --privileged (which fails
                # on some hosts): every capability but SYS_RESOURCE, no seccomp or AppArmor,
                # the host's cgroups.
                cap_add=["ALL"], cap_drop=["SYS_RESOURCE"],
                security_opt=["seccomp=unconfined", "apparmor=unconfined"], cgroupns="host")
            network.disconnect(container)
            network.connect(container, ipv4_address=address)
            container.put_archive("/", _keys_archive(host_key, authorized))
            container.start()
            machines[name] = {"ssh": f"root@{address}", "key": str(key.relative_to(folder))}
        (folder / "known_hosts").write_text("\n".join(known_hosts) + "\n")
        cluster_file = folder / "cluster.yaml"
        cluster_file.write_text(f"# Machines in containers, started by labctl ({sandbox}).\n"
                                + yaml.safe_dump({"known_hosts": "known_hosts", "machines": machines},
                                                 sort_keys=False))
        progress(f"started {count} machines; waiting for their engines")
        for machine in load_cluster(cluster_file).machines.values():
            wait_for_engine(machine.target, timeout)
        return cluster_file
    except BaseException:
        stop_machines(client, sandbox, progress)
        raise


def _keys_archive(host_key: Path, authorized: str) -> bytes:
    files = [("etc/ssh/ssh_host_ed25519_key", host_key.read_bytes(), 0o600),
             ("etc/ssh/ssh_host_ed25519_key.pub", host_key.with_name(host_key.name + ".pub").read_bytes(), 0o644),
             ("root/.ssh/authorized_keys", (authorized + "\n").encode(), 0o600)]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folder = tarfile.TarInfo("root/.ssh")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o700
        archive.addfile(folder)
        for name, data, mode in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def wait_for_engine(target: SshTarget, timeout: float = 90.0) -> None:
    """Ready means what labctl will do next works: SSH with the pinned key, then the engine."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            remote_client(target).close()
            return
        except LabError as exc:
            if time.monotonic() > deadline:
                raise EngineError(f"{target.url} did not answer within {timeout:.0f}s: {exc}") from None
            time.sleep(0.5)  # a poll: the next connection attempt is the signal


def stop_machines(client: docker.DockerClient, sandbox: str, progress: Progress) -> int:
    selector: dict[str, str | list[str] | bool] = {"label": [f"{LAB_LABEL}={sandbox}", f"{ROLE_LABEL}=machine"]}
    containers = client.containers.list(all=True, filters=selector)
    for container in containers:
        container.remove(force=True, v=True)
    for volume in client.volumes.list(filters=selector):
        volume.remove(force=True)
    for network in client.networks.list(filters=selector):
        network.remove()
    if containers:
        progress(f"removed {len(containers)} machines")
    return len(containers)
