"""A lab's containers on one Docker engine, found by their labels: state, exec, logs,
faults and helpers. Compose deploys on top of it; a Swarm keeps one per machine."""

from __future__ import annotations

import io
import os
import queue
import re
import tarfile
import threading
import time
from typing import Any, Callable, Iterator

import docker
import docker.errors
import requests.exceptions

from ..errors import EngineError, LabError
from ..model.topology import Topology
from ..names import (HELPER_MEMORY, HELPER_PIDS, HOST_LABEL, LAB_LABEL, PROBE_MEMORY, PROBE_PIDS, ROLE_LABEL,
                     SIDECAR_GRACE, SIDECAR_MEMORY, SIDECAR_PIDS, SOURCE_LABEL, helper_service, program)
from .archive import archive
from .base import (READY_TIMEOUT, EngineEvent, ExecResult, Found, HostState, LabSummary, ProbeJob, Progress,
                   Terminal, epoch, put_last, summarize)
from .bounded import BoundedDockerClient, engine_timeout, stuck_engine
from .probing import probe_together
from .readiness import Confirmations
from .versions import engine_notes

HELPER_OUTPUT = 1 << 20   # bytes kept of each stream of a helper's or a readiness probe's exec
EXEC_MARGIN = 10.0        # seconds past such an exec's own bound before labctl stops reading it


def _read_exactly(connection, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise EOFError("the engine closed the connection")
        data += chunk
    return data


def docker_client() -> docker.DockerClient:
    """A client for DOCKER_HOST (or the local socket), or a one-line error saying how to get one."""
    timeout = engine_timeout()
    try:
        # Negotiated, never pinned; every call bounded (labctl.engines.bounded).
        client = BoundedDockerClient.from_env(version="auto", timeout=timeout, max_pool_size=64)
        client.ping()
        return client
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        stuck = stuck_engine(exc)   # it answers no call: say which, not that there is none
        if stuck is not None:
            raise stuck from None
        reason = str(exc).split("(")[0].strip() or exc.__class__.__name__
        raise EngineError(f"no Docker engine answers ({reason}); run 'labctl doctor' "
                          "(or 'labctl doctor --install' as root)") from None


def helper_caps(argv: list[str]) -> tuple[int, int]:
    """(memory, processes) a one-shot helper may use: a check's probe runs many checks and
    load clients at once; any other helper runs one small program."""
    return (PROBE_MEMORY, PROBE_PIDS) if program("probe") in argv else (HELPER_MEMORY, HELPER_PIDS)


# Storage drivers that bound a container's writable layer (--storage-opt size) as they are;
# overlay2 does on xfs mounted with project quotas (pquota) only, which the engine's info
# does not say: a trial creation tells.
SIZED_DRIVERS = ("btrfs", "zfs", "devicemapper")


def disk_quota(client: docker.DockerClient, image: str | None) -> tuple[bool, str]:
    """Whether the engine can bound a host's disk, and its storage as `overlay2 on xfs`.
    `image` (one the engine has) is what a trial creation uses, where one is needed."""
    info = client.info()
    driver = str(info.get("Driver") or "?")
    backing = dict(info.get("DriverStatus") or []).get("Backing Filesystem", "")
    storage = f"{driver} on {backing}" if backing else driver
    if driver in SIZED_DRIVERS:
        return True, storage
    if driver != "overlay2" or backing != "xfs" or image is None:
        return False, storage
    try:
        trial = client.api.create_container(image, ["true"], labels={ROLE_LABEL: "doctor"},
                                            host_config=client.api.create_host_config(storage_opt={"size": "64m"}))
    except docker.errors.APIError:
        return False, f"{storage} without pquota"
    client.api.remove_container(trial["Id"], force=True)
    return True, f"{storage} with pquota"


def parse_summary(summary: dict) -> HostState:
    labels = summary.get("Labels") or {}
    status = summary.get("Status", "")
    health = None
    for word in ("healthy", "unhealthy", "health: starting"):
        if f"({word})" in status:
            health = "starting" if word == "health: starting" else word
    exit_match = re.search(r"Exited \((-?\d+)\)", status)
    role = labels.get(ROLE_LABEL, "host")
    host = labels.get(HOST_LABEL)
    # Compose names its services; a helper labctl started itself is named by role and host.
    service = labels.get("com.docker.compose.service") or (helper_service(role, host) if host and role != "host" else "")
    return HostState(
        name=host or service if role == "host" else service,
        role=role,
        container=(summary.get("Names") or ["?"])[0].lstrip("/"),
        state=summary.get("State", "unknown"),
        health=health,
        exit_code=int(exit_match.group(1)) if exit_match else None,
        host=labels.get(HOST_LABEL),
    )


class ContainerEngine:
    """A lab's containers on one Docker engine, found by label: state, exec, logs, faults
    and helpers. Compose deploys on top of it; a Swarm keeps one per machine."""

    def __init__(self, client: docker.DockerClient | None = None,
                 image_source: docker.DockerClient | None = None):
        self.client = client or docker_client()
        # An engine over SSH gets images built where labctl runs, if an engine answers there.
        self.image_client = image_source or self.client
        self.last_exit_code = 0  # of the last exec_stream, once its stream is exhausted
        self._identity: str | None = None

    def snapshot(self, topology: Topology) -> set[str]:
        """What of the lab exists now, by kind and name, for `discard`."""
        selector = {"label": f"{LAB_LABEL}={topology.name}"}
        return ({f"container {c['Id']}" for c in self.client.api.containers(all=True, filters=selector)}
                | {f"network {n['Id']}" for n in self.client.api.networks(filters=selector)})

    def discard(self, topology: Topology, kept: set[str]) -> None:
        """Remove what of the lab is not in `kept` (a snapshot taken before)."""
        for item in sorted(self.snapshot(topology) - kept):  # containers before networks
            kind, identifier = item.split(" ", 1)
            try:
                if kind == "container":
                    self.client.api.remove_container(identifier, force=True, v=True)
                else:
                    self.client.api.remove_network(identifier)
            except docker.errors.APIError:
                pass

    def labs_from(self, source: str) -> set[str]:
        """The names of the labs whose containers came from the lab file `source` names."""
        return {(c.get("Labels") or {}).get(LAB_LABEL, "?")
                for c in self.client.api.containers(all=True, filters={"label": f"{SOURCE_LABEL}={source}"})}

    def labs(self) -> list[LabSummary]:
        """Every lab of which this engine holds anything (a container, network, volume or
        built image), found by its labels."""
        selector = {"label": LAB_LABEL}
        api = self.client.api
        found: list[Found] = []
        for summary in api.containers(all=True, filters=selector):
            labels = summary.get("Labels") or {}
            state = parse_summary(summary)
            found.append((labels, epoch(summary.get("Created")), state.ready if state.role == "host" else None))
        found += [(network.get("Labels") or {}, epoch(network.get("Created")), None)
                  for network in api.networks(filters=selector)]
        found += [(volume.get("Labels") or {}, epoch(volume.get("CreatedAt")), None)
                  for volume in (api.volumes(filters=selector) or {}).get("Volumes") or []]
        found += [(image.get("Labels") or {}, epoch(image.get("Created")), None)
                  for image in api.images(filters=selector)]
        return summarize(found)

    def identity(self) -> str:
        """The engine's own ID: the same engine, reached from any folder, has the same one."""
        if self._identity is None:
            self._identity = str(self.client.info().get("ID") or self.client.api.base_url)
        return self._identity

    def differences(self) -> list[str]:
        """One line for each way this engine differs from what labctl expects, for `up` to
        say; none where all is as expected (labctl.engines.versions)."""
        return engine_notes([self.client], stack_deploy=False)

    def addresses(self, topology: Topology) -> dict[str, dict[str, str]]:
        """Addresses the engine assigned, where the lab file could not say them: none here."""
        return {}

    def unreachable_hosts(self, topology: Topology) -> dict[str, str]:
        """Hosts labctl cannot reach at all (on a Swarm, their machine is down): none here."""
        return {}

    def wait_ready(self, topology: Topology, progress: Progress, timeout: float = READY_TIMEOUT,
                   only: set[str] | None = None) -> None:
        """Wait until every host and sidecar runs and its readiness probe has answered once
        (labctl.engines.readiness), and every one-shot helper exited 0; or, with `only`,
        just those containers. Fails fast on the first failure."""
        deadline = time.monotonic() + timeout
        confirmations = Confirmations(topology, lambda state, argv: self._exec_in(state.container, argv, timeout), timeout)
        try:
            self._wait_ready(topology, progress, timeout, deadline, only, confirmations)
        finally:
            confirmations.close()

    def _wait_ready(self, topology: Topology, progress: Progress, timeout: float, deadline: float,
                    only: set[str] | None, confirmations: Confirmations) -> None:
        last_report = ""
        expected_hosts = set(topology.hosts) if only is None else set(topology.hosts) & only
        while True:
            states = [s for s in self.states(topology) if only is None or s.name in only]
            failed = [s for s in states if s.failed]
            if failed:
                raise EngineError(self._failure_reason(failed[0]))
            ready = {s.container for s in states if confirmations.ready(s)}
            hosts = [s for s in states if s.role == "host"]
            helpers = [s for s in states if s.role != "host"]
            pending = [s.name for s in states if s.container not in ready]
            missing = sorted((expected_hosts | ((only or set()) - set(topology.hosts)))
                             - {s.name for s in states})
            counts = ([f"{sum(s.container in ready for s in hosts)}/{len(expected_hosts)} hosts"]
                      if expected_hosts else []) \
                + ([f"{sum(s.container in ready for s in helpers)}/{len(helpers)} network helpers"]
                   if helpers or only is None else [])
            report = ("ready: " + ", ".join(counts)
                      + (f" (waiting for {', '.join(pending + missing)})" if pending or missing else ""))
            if report != last_report:
                progress(report)
                last_report = report
            if not pending and not missing:
                return
            if time.monotonic() > deadline:
                raise EngineError(f"lab not ready after {timeout:.0f}s; still waiting for "
                                  + ", ".join(pending + missing))
            time.sleep(0.2)

    def _exec_in(self, container: str, argv: list[str], seconds: float) -> ExecResult:
        """A helper's or a readiness probe's program, over within `seconds` (its own bound
        and a margin) whatever becomes of its container."""
        try:
            result, ended = self._exec_within(container, argv, HELPER_OUTPUT, seconds + EXEC_MARGIN)
        except docker.errors.APIError as exc:  # it stopped or went away meanwhile
            return ExecResult(-1, b"", str(exc).encode())
        if not ended:
            return ExecResult(-1, result.stdout, result.stderr + f"labctl: gave up after {seconds:.0f}s".encode())
        return result

    def _failure_reason(self, state: HostState) -> str:
        what = f"host '{state.name}'" if state.role == "host" else f"helper '{state.name}'"
        try:
            container = self.client.containers.get(state.container)
            tail = container.logs(tail=3).decode("utf-8", "replace").strip().splitlines()
        except docker.errors.NotFound:
            tail = []
        code = f" with code {state.exit_code}" if state.exit_code is not None else ""
        return f"{what} exited{code}" + (f": {tail[-1]}" if tail else "")

    def remove(self, topology: Topology, names: list[str]) -> None:
        """Stop (gracefully: sidecars undo their work on SIGTERM) and remove helpers by name."""
        for state in self.states(topology):
            if state.name in names and state.role != "host":
                container = self.client.containers.get(state.container)
                try:
                    container.stop(timeout=SIDECAR_GRACE)
                    container.remove(force=True)
                except docker.errors.NotFound:
                    pass

    # -- inspection and access -------------------------------------------------------------

    def states(self, topology: Topology) -> list[HostState]:
        summaries = self.client.api.containers(all=True, filters={"label": f"{LAB_LABEL}={topology.name}"})
        return sorted((parse_summary(s) for s in summaries), key=lambda s: (s.role != "host", s.name))

    def host_container(self, topology: Topology, host: str):
        if host not in topology.hosts:
            raise topology.unknown_host(host)
        found = self.client.containers.list(all=True, filters={"label": [
            f"{LAB_LABEL}={topology.name}", f"{HOST_LABEL}={host}", f"{ROLE_LABEL}=host"]})
        if not found:
            raise LabError(f"host '{host}' of lab '{topology.name}' is not running; run 'labctl up'")
        return found[0]

    def exec(self, topology: Topology, host: str, argv: list[str]) -> ExecResult:
        container = self.host_container(topology, host)
        try:
            result = container.exec_run(argv, demux=True)
        except docker.errors.APIError as exc:
            raise EngineError(f"exec on '{host}' failed: {exc.explanation or exc}") from None
        stdout, stderr = result.output if result.output else (b"", b"")
        return ExecResult(result.exit_code if result.exit_code is not None else -1,
                          stdout or b"", stderr or b"")

    def exec_bounded(self, topology: Topology, host: str, argv: list[str], limit: int,
                     seconds: float) -> tuple[ExecResult, bool]:
        """`argv` on the host, keeping at most `limit` bytes of each stream and waiting at
        most `seconds`: a program that floods or never ends costs labctl neither memory nor
        the run. Returns the result and whether it ended in time (if not, exit code -1;
        what it left running goes with the host)."""
        container = self.host_container(topology, host)
        try:
            return self._exec_within(container.id, argv, limit, seconds)
        except docker.errors.APIError as exc:
            raise EngineError(f"exec on '{host}' failed: {exc.explanation or exc}") from None

    def _exec_within(self, container: str, argv: list[str], limit: int, seconds: float) -> tuple[ExecResult, bool]:
        """exec_bounded in a container by id. Its output is read with a deadline: an engine
        that removes the container mid-exec (Docker 20.10) may never close the stream."""
        deadline = time.monotonic() + seconds
        kept = {1: bytearray(), 2: bytearray()}
        ended = False
        exec_id = self.client.api.exec_create(container, argv)["Id"]
        wrapped = self.client.api.exec_start(exec_id, socket=True)
        connection: Any = getattr(wrapped, "_sock", wrapped)  # a socket, or an SSH channel
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                connection.settimeout(remaining)
                header = _read_exactly(connection, 8)    # the engine's frame: stream, size
                data = _read_exactly(connection, int.from_bytes(header[4:], "big"))
                room = kept.get(header[0])
                if room is not None and len(room) < limit:
                    room += data[:limit - len(room)]
        except EOFError:
            ended = True
        except OSError:   # socket.timeout among them
            pass
        finally:
            try:
                connection.close()
            except OSError:
                pass
        code = -1
        while ended:
            state = self.client.api.exec_inspect(exec_id)
            if not state.get("Running") or time.monotonic() > deadline + 2:
                exit_code = state.get("ExitCode")
                code = exit_code if isinstance(exit_code, int) else -1
                break
            time.sleep(0.01)   # the engine records the exit a moment after the stream ends
        return ExecResult(code, bytes(kept[1]), bytes(kept[2])), ended

    def terminal(self, topology: Topology, host: str, argv: list[str], environment: dict[str, str]) -> Terminal:
        """`argv` on the host with a terminal of its own, its input and output one connection."""
        container = self.host_container(topology, host)
        if container.status != "running":
            raise EngineError(f"host '{host}' is {container.status}; start it first (labctl start {host})")
        api = self.client.api
        try:
            exec_id = api.exec_create(container.id, argv, stdin=True, tty=True,
                                      environment=[f"{key}={value}" for key, value in environment.items()])["Id"]
            wrapped = api.exec_start(exec_id, tty=True, socket=True)
        except docker.errors.APIError as exc:
            raise EngineError(f"cannot open a shell on '{host}': {exc.explanation or exc}") from None
        connection: Any = getattr(wrapped, "_sock", wrapped)   # a socket, or an SSH channel
        # The request was bounded; the shell waits on its user for as long as they like.
        connection.settimeout(None)

        def resize(rows: int, columns: int) -> None:
            try:
                api.exec_resize(exec_id, height=rows, width=columns)
            except docker.errors.APIError:
                pass   # the shell has ended meanwhile

        return Terminal(connection, resize,
                        lambda: api.exec_inspect(exec_id).get("ExitCode") or 0)

    def exec_stream(self, topology: Topology, host: str, argv: list[str]) -> Iterator[tuple[bytes | None, bytes | None]]:
        """Stream (stdout, stderr) chunks; the exit code is available from `last_exit_code`."""
        container = self.host_container(topology, host)
        try:
            exec_id = self.client.api.exec_create(container.id, argv)["Id"]
            for chunk in self.client.api.exec_start(exec_id, stream=True, demux=True):
                yield chunk
            self.last_exit_code = self.client.api.exec_inspect(exec_id).get("ExitCode", -1)
        except docker.errors.APIError as exc:
            raise EngineError(f"exec on '{host}' failed: {exc.explanation or exc}") from None

    def logs(self, topology: Topology, host: str, follow: bool = False, tail: int | str = "all",
             since: float | None = None) -> Iterator[bytes]:
        container = self.host_container(topology, host)
        options = {"tail": tail, **({"since": since} if since is not None else {})}
        if follow:
            yield from container.logs(stream=True, follow=True, **options)
        else:
            yield container.logs(**options)

    def helper_logs(self, topology: Topology, name: str) -> str:
        """What a helper or sidecar (by service name) has printed so far, or ''."""
        for state in self.states(topology):
            if state.name == name and state.role != "host":
                try:
                    return self.client.containers.get(state.container).logs().decode("utf-8", "replace")
                except docker.errors.NotFound:
                    return ""
        return ""

    # -- faults --------------------------------------------------------------------------

    def act(self, topology: Topology, host: str, action: str) -> None:
        """stop | start | kill | pause | unpause | restart one host's container."""
        container = self.host_container(topology, host)
        operations = {"stop": lambda: container.stop(timeout=2), "start": container.start,
                      "kill": container.kill, "pause": container.pause,
                      "unpause": container.unpause, "restart": lambda: container.restart(timeout=2)}
        try:
            operations[action]()
        except docker.errors.APIError as exc:
            raise EngineError(f"{action} {host}: {exc.explanation or exc}") from None

    def _network(self, topology: Topology, network: str):
        found = self.client.networks.list(filters={"label": [
            f"{LAB_LABEL}={topology.name}", f"com.docker.compose.network={network}"]})
        if not found:
            raise LabError(f"network '{network}' of lab '{topology.name}' does not exist; run 'labctl up'")
        return found[0]

    def attached(self, topology: Topology, host: str) -> list[str]:
        """The lab networks a host's container is connected to right now."""
        container = self.host_container(topology, host)
        names = set((container.attrs.get("NetworkSettings", {}).get("Networks") or {}))
        return [network for network in topology.hosts[host].networks
                if self._network(topology, network).name in names]

    def disconnect(self, topology: Topology, host: str, network: str) -> None:
        try:
            self._network(topology, network).disconnect(self.host_container(topology, host))
        except docker.errors.APIError as exc:
            raise EngineError(f"disconnect {host} from {network}: {exc.explanation or exc}") from None

    def connect(self, topology: Topology, host: str, network: str) -> None:
        attachment = topology.hosts[host].attachment(network)
        addresses = {"ipv4_address": attachment.address, "ipv6_address": attachment.address6}
        try:
            self._network(topology, network).connect(
                self.host_container(topology, host), aliases=[host],
                **{key: str(value) for key, value in addresses.items() if value is not None})
        except docker.errors.APIError as exc:
            raise EngineError(f"reconnect {host} to {network}: {exc.explanation or exc}") from None

    def run_in_namespace(self, topology: Topology, host: str | None, image: str, argv: list[str],
                         cap_add: list[str] | None = None,
                         files: list[tuple[str, bytes, int]] | None = None) -> ExecResult:
        """Run a short-lived helper in `host`'s network namespace (or the engine's, when
        host is None), labelled with the lab so no failure can leak it; `files` (path,
        content, mode) are put into it before it starts. A host that is stopped or gone is
        an EngineError naming it (a failed check, not a failed run)."""
        try:
            return self._run_helper(topology, image, argv, network_mode=self._namespace(topology, host),
                                    cap_add=cap_add or [], files=files)
        except docker.errors.APIError as exc:
            raise EngineError(f"cannot run in the namespace of '{host or 'the engine'}': "
                              f"{exc.explanation or exc}") from None
        except requests.exceptions.RequestException as exc:
            raise EngineError(f"no answer from the engine running in '{host or 'the engine'}': {exc}") from None

    def probe_hosts(self, topology: Topology, image: str,
                    jobs: dict[str, ProbeJob]) -> dict[str, ExecResult | LabError]:
        """labctl's probe in each job's host namespace, all from one helper (engines.probing)."""
        return probe_together(self.client, topology, image, jobs,
                              lambda host, argv, files: self.run_in_namespace(topology, host, image, argv,
                                                                              files=files))

    def _namespace(self, topology: Topology, host: str | None) -> str:
        return "host" if host is None else f"container:{self.host_container(topology, host).id}"

    def _create_helper(self, topology: Topology, image: str, argv: list[str], network_mode: str,
                       cap_add: list[str]):
        memory, pids = helper_caps(argv)
        return self.client.containers.create(
            image, argv, network_mode=network_mode, cap_add=cap_add,
            labels={LAB_LABEL: topology.name, ROLE_LABEL: "helper"}, detach=True,
            mem_limit=memory, memswap_limit=memory, pids_limit=pids)

    def _run_helper(self, topology: Topology, image: str, argv: list[str], network_mode: str,
                    cap_add: list[str], files: list[tuple[str, bytes, int]] | None = None) -> ExecResult:
        container = self._create_helper(topology, image, argv, network_mode, cap_add)
        try:
            if files:
                self.client.api.put_archive(container.id, "/", archive(files))
            container.start()
            code = container.wait(timeout=300).get("StatusCode", -1)
            return ExecResult(code, container.logs(stdout=True, stderr=False),
                              container.logs(stdout=False, stderr=True))
        finally:
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass

    def start_sidecar(self, topology: Topology, host: str, role: str, image: str, argv: list[str],
                      labels: dict[str, str]) -> None:
        """Start a long-running helper with NET_ADMIN in `host`'s namespace (on a Swarm,
        where it cannot be a service), replacing the one of the same role there was. It
        declares no healthcheck: wait_ready confirms it once (labctl.engines.readiness)."""
        name = f"{topology.project}-{helper_service(role, host)}"
        try:
            previous = self.client.containers.get(name)
            previous.stop(timeout=SIDECAR_GRACE)  # SIGTERM: it undoes its work
            previous.remove(force=True)
        except docker.errors.NotFound:
            pass
        container = self.client.containers.create(
            image, argv, name=name, network_mode=self._namespace(topology, host), cap_add=["NET_ADMIN"],
            labels={LAB_LABEL: topology.name, ROLE_LABEL: role, HOST_LABEL: host, **labels},
            mem_limit=SIDECAR_MEMORY, memswap_limit=SIDECAR_MEMORY, pids_limit=SIDECAR_PIDS, detach=True)
        container.start()

    def start_helper(self, topology: Topology, host: str | None, image: str, argv: list[str],
                     cap_add: list[str], ready_text: str, timeout: float = 20.0) -> str:
        """Start a helper that runs until stopped (a capture), and return once its output
        shows `ready_text`. Returns its id for `stop_helper`."""
        container = self._create_helper(topology, image, argv, self._namespace(topology, host), cap_add)
        try:
            container.start()
            deadline = time.monotonic() + timeout
            while True:
                container.reload()
                output = container.logs().decode("utf-8", "replace")
                if ready_text in output:
                    return container.id
                if container.status == "exited" or time.monotonic() > deadline:
                    lines = output.strip().splitlines()
                    raise EngineError("the helper did not start: "
                                      + (lines[-1] if lines else f"no sign of '{ready_text}'"))
                time.sleep(0.05)
        except BaseException:
            container.remove(force=True)
            raise

    def stop_helper(self, helper: str, path: str, signal_name: str = "SIGINT") -> tuple[str, bytes]:
        """Signal a helper to finish, then return its output and the file at `path` in it."""
        container = self.client.containers.get(helper)
        try:
            try:
                container.kill(signal=signal_name)
            except docker.errors.APIError:
                pass  # it had already exited
            container.wait(timeout=30)
            output = container.logs().decode("utf-8", "replace")
            try:
                stream, _ = container.get_archive(path)
            except docker.errors.NotFound:
                return output, b""
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
                member = archive.next()
                extracted = archive.extractfile(member) if member else None
                return output, extracted.read() if extracted else b""
        finally:
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass

    # -- events ----------------------------------------------------------------------------

    def events(self, topology: Topology) -> DockerEvents:
        """The lab's hosts' and networks' events, from the engine's own stream (DockerEvents)."""
        return DockerEvents(topology, [self.client])


# The engine's actions on a lab host's container and on a lab network, as labctl's events
# name them. The rest (exec_*, kill, attach, health_status: ...) says nothing new.
HOST_EVENTS = {"create": "created", "start": "started", "die": "exited", "restart": "restarting",
               "stop": "stopped", "pause": "paused", "unpause": "unpaused", "destroy": "removed", "oom": "oom"}
NETWORK_EVENTS = {"create": "created", "destroy": "removed", "remove": "removed", "connect": "connected",
                  "disconnect": "disconnected"}
KNOWN_CONTAINERS = 4096   # container ids remembered per engine, to name who a network event is about


def event_filters(topology: Topology) -> list[dict[str, list[str]]]:
    """What the engine sends of its events, as two streams: its filters are ANDed, and a
    network's events carry no labels. Containers: the lab's hosts only (role=host), so a
    check's probe or a capture's helper never shows. Networks: the lab's, by their engine
    names (as labctl.engines.apply names them), each a prefix the engine matches."""
    return [{"type": ["container"], "label": [f"{LAB_LABEL}={topology.name}", f"{ROLE_LABEL}=host"]},
            {"type": ["network"], "network": sorted(f"{topology.project}_{name}" for name in topology.networks)}]


class EventTranslator:
    """One engine's events (as its API decodes them) into EngineEvents of the lab; None for
    what is not about the lab's hosts or networks. `inspect` gives a container's labels by
    id, for a network event about a container not seen yet."""

    def __init__(self, topology: Topology, inspect: Callable[[str], dict[str, str]]):
        self.lab = topology.name
        self.networks = {f"{topology.project}_{name}": name for name in topology.networks}
        self.inspect = inspect
        self.hosts: dict[str, str | None] = {}   # container id -> the lab host it is (None: not one)

    def _host(self, labels: dict[str, Any]) -> str | None:
        host = labels.get(HOST_LABEL)
        return host if (labels.get(LAB_LABEL) == self.lab and labels.get(ROLE_LABEL) == "host"
                        and isinstance(host, str) and host) else None

    def host_of(self, container: str) -> str | None:
        if container not in self.hosts:
            try:
                labels = self.inspect(container)
            except Exception:   # gone already: nobody to name
                return None
            if len(self.hosts) >= KNOWN_CONTAINERS:
                self.hosts.clear()
            self.hosts[container] = self._host(labels if isinstance(labels, dict) else {})
        return self.hosts[container]

    def __call__(self, raw: Any) -> EngineEvent | None:
        if not isinstance(raw, dict):
            return None
        actor = _mapping(raw.get("Actor"))
        attributes = _mapping(actor.get("Attributes"))
        action, nanoseconds = raw.get("Action"), raw.get("timeNano")
        when = (nanoseconds / 1e9 if isinstance(nanoseconds, int) and not isinstance(nanoseconds, bool)
                else epoch(raw.get("time")) or time.time())
        if raw.get("Type") == "container":
            host = self._host(attributes)
            if host is None or action not in HOST_EVENTS:
                return None
            if isinstance(actor.get("ID"), str) and len(self.hosts) < KNOWN_CONTAINERS:
                self.hosts[actor["ID"]] = host
            code = str(attributes.get("exitCode", ""))
            detail = {"exit_code": int(code)} if action == "die" and code.lstrip("-").isdigit() else {}
            return EngineEvent("host", HOST_EVENTS[action], host, when, detail)
        if raw.get("Type") == "network":
            network = self.networks.get(attributes.get("name", ""))
            if network is None or action not in NETWORK_EVENTS:
                return None
            if action in ("connect", "disconnect"):
                host = self.host_of(str(attributes.get("container", "")))
                if host is None:   # a helper joining the network, or another lab's container
                    return None
                return EngineEvent("network", NETWORK_EVENTS[action], network, when, {"host": host})
            return EngineEvent("network", NETWORK_EVENTS[action], network, when)
        return None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


_END = object()


def _cancel(stream: Any) -> None:
    """End an engine's event stream from another thread."""
    try:
        stream.close()
    except Exception:
        # docker-py cannot cancel a stream over SSH; closing its channel ends it.
        try:
            getattr(getattr(getattr(stream._response.raw, "_fp", None), "fp", None), "channel").close()
        except Exception:
            pass
        try:
            stream._response.close()
        except Exception:
            pass


def _labels_of(client: docker.DockerClient) -> Callable[[str], dict[str, str]]:
    def labels(container: str) -> dict[str, str]:
        return _mapping(_mapping(client.api.inspect_container(container)).get("Config")).get("Labels") or {}
    return labels


class DockerEvents:
    """A lab's engine events, from the event streams of one or more engines (a Swarm's
    machines, each about the containers it runs), as they happen, until closed. Nothing
    polls: each stream waits in a thread of its own. A stream that ends while this is open
    (the engine restarted, its connection dropped) is opened again from the last event it
    gave, later each time it fails."""

    def __init__(self, topology: Topology, clients: list[docker.DockerClient]):
        self._queue: queue.Queue[Any] = queue.Queue(10_000)
        self._closed = threading.Event()
        self._guard = threading.Lock()
        self._streams: list[Any] = []
        threads = []
        try:
            for client in clients:
                translate = EventTranslator(topology, _labels_of(client))
                for filters in event_filters(topology):
                    stream = self._open(client, filters, None)
                    threads.append(threading.Thread(target=self._follow, args=(client, filters, stream, translate),
                                                    name="labctl-engine-events", daemon=True))
        except BaseException:
            self.close()
            raise
        for thread in threads:
            thread.start()

    def _open(self, client: docker.DockerClient, filters: dict[str, list[str]], since: int | None) -> Any:
        try:
            stream = client.api.events(since=since, filters=filters, decode=True)
        except Exception as exc:   # docker's, requests' or SSH's: the engine does not answer
            reason = str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
            raise EngineError(f"cannot follow the engine's events: {reason}") from None
        with self._guard:
            if self._closed.is_set():
                _cancel(stream)
            self._streams.append(stream)
        return stream

    def _follow(self, client: docker.DockerClient, filters: dict[str, list[str]], stream: Any,
                translate: EventTranslator) -> None:
        last = 0       # the engine's time of the last event read, in nanoseconds
        pause = 1.0
        while not self._closed.is_set():
            try:
                for raw in stream:
                    nanoseconds = raw.get("timeNano") if isinstance(raw, dict) else None
                    if isinstance(nanoseconds, int):
                        if nanoseconds <= last:
                            continue   # given again by a stream opened again
                        last = nanoseconds
                    pause = 1.0
                    event = translate(raw)
                    if event is not None:
                        try:
                            self._queue.put_nowait(event)
                        except queue.Full:
                            pass   # nobody reads them: dropped, the memory stays bounded
            except Exception:
                pass
            with self._guard:
                if stream in self._streams:
                    self._streams.remove(stream)
            if self._closed.wait(pause):
                return
            pause = min(pause * 2, 30.0)
            try:
                stream = self._open(client, filters, last // 1_000_000_000 if last else int(time.time()) - 1)
            except EngineError:
                stream = iter(())

    def __iter__(self) -> Iterator[EngineEvent]:
        while True:
            item = self._queue.get()
            if item is _END:
                self._say_ended()   # for whoever else iterates
                return
            yield item

    def close(self) -> None:
        with self._guard:
            self._closed.set()
            streams, self._streams = self._streams, []
        for stream in streams:
            _cancel(stream)
        self._say_ended()

    def _say_ended(self) -> None:
        put_last(self._queue, _END)


def local_engine() -> docker.DockerClient | None:
    """This machine's engine, where images are built before they are copied to another,
    if one answers here."""
    if os.environ.get("DOCKER_HOST", "").startswith("ssh://"):
        return None
    try:
        return docker_client()
    except LabError:
        return None
