"""Multi-machine tests on one computer: three Docker engines in containers, each behind
sshd with a host key labctl generated, joined into a Swarm over SSH. Under CI=true they
never skip: with no engine to start them on, they fail."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from labctl.engines import cluster
from labctl.engines.containers import docker_client
from labctl.engines.images import ensure_host_image
from labctl.engines.machines import machine_names, start_machines, stop_machines
from labctl.errors import LabError
from labctl.names import LAB_LABEL

SANDBOX = "lc-multihost"
SUBNET = "10.248.0.0/24"


def report(message: str) -> None:
    print(f"labctl: {message}", file=sys.stderr)


@pytest.fixture(scope="session")
def local_engine():
    try:
        client = docker_client()
    except LabError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"multihost tests need a Docker engine under CI: {exc}", pytrace=False)
        pytest.skip(str(exc))
    ensure_host_image(client, report)
    return client


@pytest.fixture(scope="module")
def machines(local_engine, tmp_path_factory) -> Path:
    """The cluster file of three machines joined into one Swarm; removed afterwards, and
    nothing of them may be left on this machine's engine."""
    folder = tmp_path_factory.mktemp("machines")
    stop_machines(local_engine, SANDBOX, report)  # what an interrupted run left
    file = start_machines(local_engine, SANDBOX, 3, SUBNET, folder, report)
    try:
        cluster.up(cluster.load_cluster(file), report)
        yield file
    finally:
        stop_machines(local_engine, SANDBOX, report)
    selector = {"label": f"{LAB_LABEL}={SANDBOX}"}
    assert not local_engine.containers.list(all=True, filters=selector)
    assert not local_engine.networks.list(filters=selector)
    assert not local_engine.volumes.list(filters=selector)


def names() -> list[str]:
    return machine_names(SANDBOX, 3)
