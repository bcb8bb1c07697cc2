"""The Swarm engine: one lab across several machines.

`docker stack deploy` runs the rendered stack on the manager. Everything that reaches a
host afterwards (state, exec, logs, helpers, checks) goes to the engine of the machine its
task runs on, through that machine's one SSH connection (a `ContainerEngine` each). A
machine that does not answer makes its hosts unreachable, with that reason, and leaves the
rest of the lab working.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import docker
import docker.errors
import yaml

from ..assets import host_tag
from ..errors import EngineError, LabError
from ..files import remove_file, write_file
from ..model.topology import Topology
from ..names import (HOST_LABEL, LAB_LABEL, MACHINE_LABEL, ROLE_LABEL, SHIPPED_FILE, program,
                     SOURCE_LABEL, SPEC_LABEL)
from ..render.stack import helpers_of
from .base import (READY_TIMEOUT, ExecResult, Found, HostState, LabSummary, ProbeJob, Progress, Terminal, epoch,
                   summarize)
from .cluster import Cluster, connect
from .compose import die_with_parent
from .containers import EXEC_MARGIN, HELPER_OUTPUT, ContainerEngine, DockerEvents
from .readiness import Confirmations
from .versions import engine_notes
from .images import record_shipped, remove_shipped, ship_image
from .ssh import CONNECTION_ERRORS, CliForward, is_ssh

LOCAL = "local"  # the machine name of a Swarm on the engine labctl runs beside
PLACEMENT_MEMORY = 5.0  # seconds


@dataclass(frozen=True)
class Task:
    """Where a lab host runs now: its newest task, its machine and its service."""
    machine: str
    task_id: str
    service_id: str


class SwarmEngine:
    def __init__(self, machines: dict[str, docker.DockerClient], manager: str,
                 unreachable: dict[str, str] | None = None,
                 image_source: docker.DockerClient | None = None):
        self.machines = {name: ContainerEngine(client) for name, client in machines.items()}
        self.manager_name = manager
        self.unreachable = dict(unreachable or {})
        if manager not in self.machines:
            raise EngineError(f"the Swarm manager '{manager}' does not answer: "
                              f"{self.unreachable.get(manager, 'not connected')}")
        # Images are built where labctl runs if an engine answers there, else on the manager.
        self.image_client = image_source or self.manager
        self.last_exit_code = 0
        self._placed: dict[str, tuple[float, dict[str, Task]]] = {}

    @classmethod
    def for_cluster(cls, cluster: Cluster, image_source: docker.DockerClient | None) -> "SwarmEngine":
        clients, failures = connect(cluster)
        return cls(clients, cluster.manager.name, failures, image_source)


    @property
    def manager(self) -> docker.DockerClient:
        return self.machines[self.manager_name].client

    def close(self) -> None:
        for machine in self.machines.values():
            machine.client.close()

    # -- lifecycle -------------------------------------------------------------------------

    def deploy(self, topology: Topology, document: Path, progress: Progress,
               timeout: float = READY_TIMEOUT) -> None:
        self._refuse_if_incomplete()
        stack = yaml.safe_load(document.read_text())
        info = self.manager.info().get("Swarm") or {}
        if not info.get("ControlAvailable"):
            raise EngineError(f"machine '{self.manager_name}' is not a Swarm manager; "
                              "run 'labctl cluster up' (or 'docker swarm init' on one machine)")
        images = sorted({service["image"] for service in stack["services"].values()}
                        | {helper["image"] for helper in helpers_of(stack).values()})
        shipped: dict[str, list[str]] = {}
        for image in images:
            for machine in ship_image(self.image_client, {name: engine.client for name, engine in self.machines.items()},
                                      image, progress):
                shipped.setdefault(machine, []).append(image)
        record_shipped(topology.folder, topology.state_folder / SHIPPED_FILE, shipped)
        progress(f"deploying {len(topology.hosts)} hosts and {len(topology.networks)} overlay "
                 f"networks on {len(self.machines)} machines")
        self._stack_deploy(topology, document)
        self._placed.clear()
        self.wait_ready(topology, progress, timeout)
        self._run_helpers(topology, {name: helper for name, helper in helpers_of(stack).items()
                                     if helper["role"] == "routes"}, progress)

    def _refuse_if_incomplete(self) -> None:
        if self.unreachable:
            name, reason = next(iter(self.unreachable.items()))
            raise EngineError(f"machine '{name}' does not answer ({reason}); a lab cannot be "
                              "deployed on part of its cluster")

    def _stack_deploy(self, topology: Topology, document: Path) -> None:
        docker_cli = shutil.which("docker")
        if docker_cli is None:
            raise EngineError("the docker command-line client is not installed (docker stack "
                              "deploy needs it); run 'labctl doctor --install'")
        document = self._by_id(document)
        with ExitStack() as stack:
            env = dict(os.environ)
            if is_ssh(self.manager):
                forward = stack.enter_context(CliForward(
                    self.manager, topology.state_folder / "manager.sock"))
                env["DOCKER_HOST"] = forward.docker_host
            result = subprocess.run(
                [docker_cli, "stack", "deploy", "--compose-file", str(document),
                 "--resolve-image", "never", "--prune", topology.project],
                cwd=document.parent, env=env, capture_output=True, text=True, timeout=300,
                preexec_fn=die_with_parent)
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise EngineError(f"docker stack deploy failed: {lines[-1] if lines else 'no output'}")

    def _by_id(self, document: Path) -> Path:
        """The stack file as deployed: each service's image named by its id. A Swarm's
        agent tries a registry for every image named by a tag before it starts a task,
        even one the machine holds; where no registry answers, each try costs the task
        seconds (about 10 s a task, one after another on each machine). Named by its id
        (the same on every machine: ship_image copies it whole), it starts at once."""
        stack = yaml.safe_load(document.read_text())
        ids: dict[str, str] = {}
        for service in (stack.get("services") or {}).values():
            image = service.get("image")
            if image and not image.startswith("sha256:"):
                if image not in ids:
                    ids[image] = self.image_client.api.inspect_image(image)["Id"]
                service["image"] = ids[image]
        # Beside the stack file, so that what it names relative to its folder stays found.
        return write_file(document.parent, document.with_name(f"{document.stem}.by-id{document.suffix}"),
                          yaml.safe_dump(stack, sort_keys=False, width=200))

    def _run_helpers(self, topology: Topology, helpers: dict[str, dict], progress: Progress) -> None:
        """Run one-shot helpers (routes) in their hosts' namespaces, each on its host's machine."""
        if not helpers:
            return
        progress(f"running {len(helpers)} network helpers on their hosts' machines")

        def run(item: tuple[str, dict]) -> str | None:
            name, helper = item
            result = self.run_in_namespace(topology, helper["host"], helper["image"],
                                           helper["command"], cap_add=["NET_ADMIN"])
            if result.exit_code != 0:
                return f"helper '{name}' failed: {result.last_line}"
            return None
        with ThreadPoolExecutor(max_workers=8) as pool:
            failures = [failure for failure in pool.map(run, helpers.items()) if failure]
        if failures:
            raise EngineError(failures[0])

    def wait_ready(self, topology: Topology, progress: Progress, timeout: float = READY_TIMEOUT,
                   only: set[str] | None = None) -> None:
        """Every host's task running on its machine, and its readiness probe answered once
        (labctl.engines.readiness). A task the Swarm cannot place or start fails at once,
        with its reason."""
        confirmations = Confirmations(topology, lambda state, argv: self._probe(topology, state, argv, timeout), timeout)
        try:
            self._wait_ready(topology, progress, timeout, only, confirmations)
        finally:
            confirmations.close()

    def _probe(self, topology: Topology, state: HostState, argv: list[str], seconds: float) -> ExecResult:
        try:
            # Read with a deadline: an engine that removes the task's container mid-exec
            # may never close the stream.
            return self.exec_bounded(topology, state.name, argv, HELPER_OUTPUT, seconds + EXEC_MARGIN)[0]
        except LabError as exc:  # its task stopped meanwhile, or its machine went away
            return ExecResult(-1, b"", str(exc).encode())

    def _wait_ready(self, topology: Topology, progress: Progress, timeout: float,
                    only: set[str] | None, confirmations: Confirmations) -> None:
        deadline = time.monotonic() + timeout
        last_report = ""
        expected = set(topology.hosts) if only is None else set(topology.hosts) & only
        while True:
            problem = self._task_problem(topology)
            if problem:
                raise EngineError(problem)
            states = {s.name: s for s in self.states(topology) if s.role == "host" and s.name in expected}
            failed = [s for s in states.values() if s.failed]
            if failed:
                raise EngineError(f"host '{failed[0].name}' on machine '{failed[0].machine}' "
                                  f"{failed[0].state}" + (f" ({failed[0].health})" if failed[0].health else ""))
            pending = sorted(name for name in expected
                             if name not in states or not confirmations.ready(states[name]))
            report = (f"ready: {len(expected) - len(pending)}/{len(expected)} hosts"
                      + (f" (waiting for {', '.join(pending)})" if pending else ""))
            if report != last_report:
                progress(report)
                last_report = report
            if not pending:
                return
            if time.monotonic() > deadline:
                raise EngineError(f"lab not ready after {timeout:.0f}s; still waiting for {', '.join(pending)}")
            time.sleep(0.5)  # a poll of the engines' own state, not a guess

    def _task_problem(self, topology: Topology) -> str | None:
        for service in self._services(topology):
            host = service.attrs["Spec"].get("Labels", {}).get(HOST_LABEL, service.name)
            tasks = service.tasks()
            if not tasks:
                continue
            newest = max(tasks, key=lambda task: task.get("CreatedAt", ""))
            status = newest.get("Status", {})
            message = status.get("Err") or ""
            if status.get("State") in ("failed", "rejected") or "no suitable node" in message:
                return f"host '{host}': the Swarm cannot run it: {message or status.get('Message', status.get('State'))}"
        return None

    def _services(self, topology: Topology):
        return self.manager.services.list(filters={"label": f"{LAB_LABEL}={topology.name}"})

    def destroy(self, topology: Topology, progress: Progress) -> dict[str, int]:
        """Remove the lab's services, then (once their tasks are gone from every machine)
        its networks, configs and secrets, any helper left on a machine, and the images
        labctl copied to machines that no container uses any more."""
        self._placed.clear()
        services = self._services(topology)
        if services:
            progress(f"removing {len(services)} services")
        for service in services:
            try:
                service.remove()
            except docker.errors.NotFound:
                pass
        selector = {"label": f"{LAB_LABEL}={topology.name}"}
        deadline = time.monotonic() + 60
        containers = 0
        for name, machine in self.machines.items():
            while True:
                # The plain listing: the Swarm removes tasks' containers meanwhile, and
                # inspecting one that just went would fail.
                left = machine.client.api.containers(all=True, filters=selector)
                helpers = [c for c in left if (c.get("Labels") or {}).get(ROLE_LABEL) != "host"]
                for container in helpers:
                    try:
                        machine.client.api.remove_container(container["Id"], force=True, v=True)
                        containers += 1
                    except docker.errors.NotFound:
                        pass
                if not [c for c in left if c not in helpers] or time.monotonic() > deadline:
                    break
                time.sleep(0.3)  # the Swarm removes tasks' containers on its own schedule
        networks = self._remove_when_free(self.manager.networks.list(filters=selector), deadline)
        configs = self._remove_when_free(self.manager.configs.list(filters=selector), deadline)
        secrets = self._remove_when_free(self.manager.secrets.list(filters=selector), deadline)
        images = remove_shipped(topology.folder, topology.state_folder / SHIPPED_FILE, {name: m.client for name, m in self.machines.items()})
        remove_file(topology.folder, _disconnected_file(topology))
        for name in self.unreachable:
            progress(f"machine '{name}' does not answer; anything of the lab left there stays")
        return {"containers": containers, "services": len(services), "networks": networks,
                "volumes": 0, "configs": configs + secrets, "copied images": images}

    @staticmethod
    def _remove_when_free(resources, deadline: float) -> int:
        removed = 0
        for resource in resources:
            while True:
                try:
                    resource.remove()
                    removed += 1
                    break
                except docker.errors.NotFound:
                    break
                except docker.errors.APIError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)  # still in use by a task being removed
        return removed

    # -- where each host runs ------------------------------------------------------------

    def _placements(self, topology: Topology) -> dict[str, Task]:
        """host -> its newest task and the machine it is on, from the manager's view (which
        still places a task on a machine that stopped answering). Remembered for a few
        seconds: every exec asks, and each answer costs the manager several requests."""
        remembered = self._placed.get(topology.name)
        if remembered and time.monotonic() - remembered[0] < PLACEMENT_MEMORY:
            return remembered[1]
        placed = self._ask_placements(topology)
        self._placed[topology.name] = (time.monotonic(), placed)
        return placed

    def _ask_placements(self, topology: Topology) -> dict[str, Task]:
        machine_of_node = {node.id: node.attrs["Spec"].get("Labels", {}).get(MACHINE_LABEL, LOCAL)
                           for node in self.manager.nodes.list()}
        placed: dict[str, Task] = {}
        for service in self._services(topology):
            host = service.attrs["Spec"].get("Labels", {}).get(HOST_LABEL)
            tasks = [t for t in service.tasks() if t.get("NodeID")]
            if host and tasks:
                newest = max(tasks, key=lambda task: task.get("CreatedAt", ""))
                placed[host] = Task(machine_of_node.get(newest["NodeID"], "?"), newest["ID"], service.id)
        return placed

    def snapshot(self, topology: Topology) -> set[str]:
        return {f"service {service.id}" for service in self._services(topology)}

    def discard(self, topology: Topology, kept: set[str]) -> None:
        """Remove the lab's services that are not in `kept` (a snapshot taken before)."""
        for service in self._services(topology):
            if f"service {service.id}" not in kept:
                try:
                    service.remove()
                except docker.errors.NotFound:
                    pass

    def labs_from(self, source: str) -> set[str]:
        return {service.attrs["Spec"].get("Labels", {}).get(LAB_LABEL, "?") for service in
                self.manager.services.list(filters={"label": f"{SOURCE_LABEL}={source}"})}

    def labs(self) -> list[LabSummary]:
        """Every lab of which the Swarm holds anything: its services (a host is ready while
        its task runs), networks, configs and secrets, and helpers left on a machine."""
        selector = {"label": LAB_LABEL}
        api = self.manager.api
        running = {task.get("ServiceID") for task in api.tasks(filters={"desired-state": "running"})
                   if (task.get("Status") or {}).get("State") == "running"}
        found: list[Found] = []
        for service in api.services(filters=selector):
            labels = (service.get("Spec") or {}).get("Labels") or {}
            found.append((labels, epoch(service.get("CreatedAt")),
                          service.get("ID") in running if HOST_LABEL in labels else None))
        for listed in (api.networks(filters=selector), api.configs(filters=selector), api.secrets(filters=selector)):
            found += [(item.get("Labels") or (item.get("Spec") or {}).get("Labels") or {},
                       epoch(item.get("Created") or item.get("CreatedAt")), None) for item in listed]
        for name, machine in self.machines.items():
            try:
                left = machine.client.api.containers(all=True, filters=selector)
            except CONNECTION_ERRORS as exc:
                self.unreachable.setdefault(name, str(exc).splitlines()[0][:120])
                continue
            found += [(c.get("Labels") or {}, epoch(c.get("Created")), None) for c in left
                      if (c.get("Labels") or {}).get(ROLE_LABEL, "host") != "host"]
        return summarize(found)

    def identity(self) -> str:
        """The Swarm's cluster ID (its manager's engine ID before it is in one)."""
        info = self.manager.info()
        return str((info.get("Swarm") or {}).get("Cluster", {}).get("ID") or info.get("ID"))

    def differences(self) -> list[str]:
        """One line for each way a machine of the Swarm differs from what labctl expects."""
        return engine_notes([machine.client for machine in self.machines.values()], stack_deploy=True)

    def unreachable_hosts(self, topology: Topology) -> dict[str, str]:
        """Hosts whose machine does not answer, each with that reason."""
        return {host: f"it runs on machine '{task.machine}', which does not answer"
                for host, task in self._placements(topology).items() if task.machine in self.unreachable}

    def _machine_of(self, topology: Topology, host: str) -> ContainerEngine:
        return self.machines[self._machine_name_of(topology, host)]

    def _machine_name_of(self, topology: Topology, host: str) -> str:
        if host not in topology.hosts:
            raise topology.unknown_host(host)
        task = self._placements(topology).get(host)
        if task is None:
            raise LabError(f"host '{host}' of lab '{topology.name}' is not running; run 'labctl up'")
        machine = task.machine
        if machine in self.unreachable:
            raise EngineError(f"host '{host}' runs on machine '{machine}', which does not answer "
                              f"({self.unreachable[machine]})")
        if machine not in self.machines:
            raise EngineError(f"host '{host}' runs on machine '{machine}', which is not in the cluster file")
        return machine

    def states(self, topology: Topology) -> list[HostState]:
        placements = self._placements(topology)
        states: list[HostState] = []

        def of(item: tuple[str, ContainerEngine]) -> list[HostState]:
            name, machine = item
            try:
                found = machine.states(topology)
            except CONNECTION_ERRORS as exc:
                self.unreachable[name] = str(exc).splitlines()[0][:120]
                return []
            for state in found:
                state.machine = name
            return found
        def current(state: HostState) -> bool:
            # A host's earlier tasks may leave containers behind; its newest task is the host.
            task = placements.get(state.name)
            return task is not None and task.machine == state.machine and state.container.endswith(task.task_id)
        with ThreadPoolExecutor(max_workers=8) as pool:
            for found in pool.map(of, list(self.machines.items())):
                states += [s for s in found if s.role != "host" or current(s)]
        seen = {s.name for s in states if s.role == "host"}
        for host, task in placements.items():
            if host not in seen and task.machine in self.unreachable:
                states.append(HostState(host, "host", "-", "unreachable", None, None, host, task.machine,
                                        f"machine '{task.machine}' does not answer"))
        return sorted(states, key=lambda s: (s.role != "host", s.name))

    def addresses(self, topology: Topology) -> dict[str, dict[str, str]]:
        """host -> network -> the address the Swarm gave its task."""
        prefix = f"{topology.project}_"
        found: dict[str, dict[str, str]] = {}
        for name, machine in self.machines.items():
            try:
                containers = machine.client.containers.list(filters={"label": [
                    f"{LAB_LABEL}={topology.name}", f"{ROLE_LABEL}=host"]})
            except CONNECTION_ERRORS as exc:
                self.unreachable.setdefault(name, str(exc).splitlines()[0][:120])
                continue
            for container in containers:
                networks = container.attrs.get("NetworkSettings", {}).get("Networks") or {}
                found[container.labels[HOST_LABEL]] = {
                    network[len(prefix):]: settings.get("IPAddress")
                    for network, settings in networks.items()
                    if network.startswith(prefix) and settings.get("IPAddress")}
        return found

    # -- access, through the host's machine ----------------------------------------------

    def exec(self, topology: Topology, host: str, argv: list[str]) -> ExecResult:
        return self._machine_of(topology, host).exec(topology, host, argv)

    def exec_bounded(self, topology: Topology, host: str, argv: list[str], limit: int,
                     seconds: float) -> tuple[ExecResult, bool]:
        return self._machine_of(topology, host).exec_bounded(topology, host, argv, limit, seconds)

    def terminal(self, topology: Topology, host: str, argv: list[str], environment: dict[str, str]) -> Terminal:
        return self._machine_of(topology, host).terminal(topology, host, argv, environment)

    def exec_stream(self, topology: Topology, host: str, argv: list[str]) -> Iterator[tuple[bytes | None, bytes | None]]:
        machine = self._machine_of(topology, host)
        yield from machine.exec_stream(topology, host, argv)
        self.last_exit_code = machine.last_exit_code

    def logs(self, topology: Topology, host: str, follow: bool = False, tail: int | str = "all",
             since: float | None = None) -> Iterator[bytes]:
        return self._machine_of(topology, host).logs(topology, host, follow, tail, since)

    def run_in_namespace(self, topology: Topology, host: str | None, image: str, argv: list[str],
                         cap_add: list[str] | None = None,
                         files: list[tuple[str, bytes, int]] | None = None) -> ExecResult:
        if host is None:
            raise EngineError(_HOSTS_ONLY.format(what="a helper outside every host"))
        return self._machine_of(topology, host).run_in_namespace(topology, host, image, argv, cap_add, files)

    def probe_hosts(self, topology: Topology, image: str,
                    jobs: dict[str, ProbeJob]) -> dict[str, ExecResult | LabError]:
        """Each machine probes its own hosts, the machines at once."""
        results: dict[str, ExecResult | LabError] = {}
        by_machine: dict[str, dict[str, ProbeJob]] = {}
        for host, job in jobs.items():
            try:
                by_machine.setdefault(self._machine_name_of(topology, host), {})[host] = job
            except LabError as exc:
                results[host] = exc
        def on(machine: str, probed: dict[str, ProbeJob]) -> dict[str, ExecResult | LabError]:
            try:
                return self.machines[machine].probe_hosts(topology, image, probed)
            except LabError as exc:   # that machine's hosts, not the others'
                return {host: exc for host in probed}
        with ThreadPoolExecutor(max_workers=max(1, len(by_machine))) as pool:
            for found in pool.map(lambda item: on(*item), list(by_machine.items())):
                results.update(found)
        return results

    def helper_logs(self, topology: Topology, name: str) -> str:
        for state in self.states(topology):
            if state.name == name and state.role != "host" and state.machine in self.machines:
                return self.machines[state.machine].helper_logs(topology, name)
        return ""

    # -- changes to the running lab ------------------------------------------------------

    def update(self, topology: Topology, document: Path, services: list[str], progress: Progress,
               recreate: bool = False, timeout: float = READY_TIMEOUT) -> None:
        """Run the named helpers of the stack file: route helpers once, network sidecars as
        containers beside their host's task (restarted where their spec changed, or all
        with `recreate`), then wait until the sidecars say they have applied it."""
        if not services:
            return
        helpers = helpers_of(yaml.safe_load(document.read_text()))
        unknown = [name for name in services if name not in helpers]
        if unknown:
            raise EngineError(f"{document} has no helper '{unknown[0]}'")
        self._run_helpers(topology, {name: helpers[name] for name in services
                                     if helpers[name]["role"] != "net"}, progress)
        current = {state.name: state for state in self.states(topology) if state.role == "net"}
        started: dict[str, set[str]] = {}
        for name in services:
            helper = helpers[name]
            if helper["role"] != "net":
                continue
            machine = self._machine_name_of(topology, helper["host"])
            running = current.get(name)
            if running is not None and running.machine in self.machines:
                if (not recreate and running.machine == machine and running.state == "running"
                        and self._labels(running).get(SPEC_LABEL) == helper["labels"][SPEC_LABEL]):
                    continue
                if running.machine != machine:  # its host's task moved
                    self.machines[running.machine].remove(topology, [name])
            self.machines[machine].start_sidecar(topology, helper["host"], "net", helper["image"],
                                                 helper["command"], helper["labels"])
            started.setdefault(machine, set()).add(name)
        for machine, names in started.items():
            self.machines[machine].wait_ready(topology, progress, timeout, only=names)

    def _labels(self, state: HostState) -> dict[str, str]:
        if state.machine not in self.machines:
            return {}
        try:
            return self.machines[state.machine].client.containers.get(state.container).labels
        except docker.errors.NotFound:
            return {}

    def remove(self, topology: Topology, names: list[str]) -> None:
        for state in self.states(topology):
            if state.name in names and state.role != "host" and state.machine in self.machines:
                self.machines[state.machine].remove(topology, [state.name])

    def act(self, topology: Topology, host: str, action: str) -> None:
        """stop, kill, pause and unpause act on the host's task container. A Swarm task
        stopped once cannot run again (the Swarm releases its network attachment), so
        start and restart replace it with a new task: on the same machine where the host
        is pinned, with an address the Swarm chooses."""
        machine = self._machine_of(topology, host)
        self._placed.clear()
        if action not in ("start", "restart"):
            machine.act(topology, host, action)
            return
        container = machine.host_container(topology, host)
        if action == "start" and container.status in ("running", "paused"):
            return
        try:
            container.stop(timeout=2)
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise EngineError(f"{action} {host}: {exc.explanation or exc}") from None
        task = self._placements(topology)[host]
        self.manager.services.get(task.service_id).force_update()
        self._placed.clear()
        record = _disconnected(topology)
        if record.pop(host, None) is not None:
            _save_disconnected(topology, record)

    # Detaching a task from an overlay and attaching it again can hand it an address another
    # task holds, so on a Swarm a disconnection takes the host's interface down instead, and
    # is remembered here (a new task, after start or restart, comes with every link up).

    def attached(self, topology: Topology, host: str) -> list[str]:
        down = _disconnected(topology).get(host, [])
        return [network for network in topology.hosts[host].networks if network not in down]

    def disconnect(self, topology: Topology, host: str, network: str) -> None:
        self._set_link(topology, host, network, "down")
        record = _disconnected(topology)
        record[host] = sorted(set(record.get(host, [])) | {network})
        _save_disconnected(topology, record)

    def connect(self, topology: Topology, host: str, network: str) -> None:
        self._set_link(topology, host, network, "up")
        record = _disconnected(topology)
        record[host] = [name for name in record.get(host, []) if name != network]
        _save_disconnected(topology, record)

    def _set_link(self, topology: Topology, host: str, network: str, state: str) -> None:
        address = str(topology.hosts[host].address_on(network))
        result = self.run_in_namespace(topology, host, host_tag(),
                                       ["python3", program("netadmin"), "link", address, state],
                                       cap_add=["NET_ADMIN"])
        if result.exit_code != 0:
            what = f"disconnect {host} from {network}" if state == "down" else f"reconnect {host} to {network}"
            raise EngineError(f"{what}: {result.last_line}")

    def start_helper(self, topology: Topology, host: str | None, image: str, argv: list[str],
                     cap_add: list[str], ready_text: str, timeout: float = 20.0) -> str:
        if host is None:
            raise EngineError(_HOSTS_ONLY.format(what="a capture of a whole network"))
        machine_name = self._machine_name_of(topology, host)
        helper = self.machines[machine_name].start_helper(topology, host, image, argv, cap_add,
                                                          ready_text, timeout)
        return f"{machine_name}/{helper}"

    def stop_helper(self, helper: str, path: str, signal_name: str = "SIGINT") -> tuple[str, bytes]:
        machine_name, _, container = helper.partition("/")
        return self.machines[machine_name].stop_helper(container, path, signal_name)

    def events(self, topology: Topology) -> DockerEvents:
        """Every answering machine's event stream at once: a host's events come from the
        machine its task runs on, a network's from each machine it spans."""
        return DockerEvents(topology, [machine.client for machine in self.machines.values()])


_HOSTS_ONLY = ("{what} is not available on a Swarm lab: there, helpers run beside a lab host, "
            "on its machine")


def _disconnected_file(topology: Topology) -> Path:
    return topology.state_folder / "disconnected.json"


def _disconnected(topology: Topology) -> dict[str, list[str]]:
    """host -> the networks whose interface labctl took down."""
    try:
        return json.loads(_disconnected_file(topology).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise LabError(f"{_disconnected_file(topology)}: unreadable ({exc}); 'labctl down' removes it") from None


def _save_disconnected(topology: Topology, record: dict[str, list[str]]) -> None:
    record = {host: networks for host, networks in record.items() if networks}
    path = _disconnected_file(topology)
    if not record:
        remove_file(topology.folder, path)
        return
    write_file(topology.folder, path, json.dumps(record, indent=1))

