"""The engine's own limit for a lab: its containers created, started and removed through the
engine's API, 8 at a time, with nothing else: no readiness, no checks, no fabric, no files.

The containers are the floor's (bench/labs.py floor_compose): the same image, hosts,
networks and static addresses as the lab labctl brings up, `init: true`, the servers'
standard-library echo, the clients' `sleep infinity`. The lab's networks are created
before the containers and removed after them, and count in `create+start` and `remove`
(labctl's `up` and `down` create and remove them too). The API client is labctl's own
(labctl.engines.containers.docker_client: API version negotiated, every call bounded).

    limit(plan, image) -> {"create+start": s, "remove": s, "total": s} or {"error": ...}

Used by bench/floor.py, in the same run as the floor and labctl.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import docker.errors
import docker.types

import labs  # bench/labs.py (bench/ is on sys.path when this runs)

THREADS = 8
LIMIT_LABEL = "io.labctl.bench-limit"   # what remove_all finds, whatever else runs


def _create_network(api: docker.APIClient, project: str, key: str, definition: dict[str, Any]) -> str:
    name = f"{project}_{key}"
    pools = [docker.types.IPAMPool(subnet=pool["subnet"]) for pool in definition["ipam"]["config"]]
    api.create_network(name, driver=definition.get("driver", "bridge"), internal=bool(definition.get("internal")),
                       labels={LIMIT_LABEL: project}, check_duplicate=True,
                       ipam=docker.types.IPAMConfig(pool_configs=pools))
    return name


def _bring(api: docker.APIClient, project: str, name: str, service: dict[str, Any], networks: dict[str, str]) -> str:
    """Create and start one service's container; its id."""
    attached = list(service["networks"].items())
    first, options = attached[0]
    host_config = api.create_host_config(
        init=service.get("init"), network_mode=networks[first],
        sysctls={key: str(value) for key, value in (service.get("sysctls") or {}).items()} or None,
        cap_add=service.get("cap_add") or None)
    networking = api.create_networking_config({
        networks[first]: api.create_endpoint_config(ipv4_address=options["ipv4_address"], aliases=[name])})
    container = api.create_container(service["image"], command=service["command"], hostname=service["hostname"],
                                     name=f"{project}-{name}-1", labels={LIMIT_LABEL: project}, detach=True,
                                     host_config=host_config, networking_config=networking)["Id"]
    for network, extra in attached[1:]:
        api.connect_container_to_network(container, networks[network], aliases=[name],
                                         ipv4_address=extra["ipv4_address"])
    api.start(container)
    return container


def _remove(api: docker.APIClient, container: str) -> None:
    try:
        api.remove_container(container, force=True)
    except docker.errors.NotFound:
        pass


def remove_all(client: docker.DockerClient, project: str, passes: int = 5) -> list[str]:
    """Remove whatever of `project` is left (after a failure or a hang); what the engine
    refuses to remove. A step given up on may still be removing its containers (the engine
    then says "already in progress"): another pass, a moment later, finds what is left."""
    api = client.api
    refused: list[str] = []
    for attempt in range(passes):
        if attempt:
            time.sleep(1.0)
        refused = []
        for summary in api.containers(all=True, filters={"label": f"{LIMIT_LABEL}={project}"}):
            try:
                _remove(api, summary["Id"])
            except docker.errors.APIError as exc:
                refused.append(f"container {summary['Names'][0].lstrip('/')}: {exc.explanation or exc}")
        for network in api.networks(filters={"label": f"{LIMIT_LABEL}={project}"}):
            try:
                api.remove_network(network["Id"])
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                refused.append(f"network {network['Name']}: {exc.explanation or exc}")
        if not refused:
            break
    return refused


def limit(client: docker.DockerClient, plan: labs.Plan, image: str, while_up=None) -> dict:
    """Create and start the plan's containers, then remove them; the times of each.
    `while_up({name: pid of its init})`, if given, runs between the two, outside the timing;
    what it returns joins the figures (the engine's own containers sitting idle)."""
    api = client.api
    document = labs.floor_compose(plan, image)
    project = plan.name
    figures: dict = {}
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        started = time.perf_counter()
        networks = {key: _create_network(api, project, key, definition)
                    for key, definition in document["networks"].items()}
        containers = list(pool.map(lambda item: _bring(api, project, item[0], item[1], networks),
                                   document["services"].items()))
        figures["create+start"] = time.perf_counter() - started
        states = [api.inspect_container(c)["State"] for c in containers]
        running = sum(state["Running"] for state in states)
        if running != len(containers):   # outside the timing: a host that ended is no limit
            figures["error"] = f"{len(containers) - running} of {len(containers)} containers ended at once"
        elif while_up is not None:
            figures.update(while_up({name: state["Pid"] for name, state in zip(document["services"], states)}))
        started = time.perf_counter()
        list(pool.map(lambda container: _remove(api, container), containers))
        for name in networks.values():
            api.remove_network(name)
        figures["remove"] = time.perf_counter() - started
    figures["total"] = figures["create+start"] + figures["remove"]
    return figures
