"""labctl's probe, run for many client hosts at once from one helper.

A check's client side is observed by labctl's probe in the client host's network namespace,
from a process the host cannot replace. One helper per client host costs the engine a
container each; here one helper, in the engine machine's process table, enters each
host's namespace in turn (services/netadmin.py `probe`), giving up every capability but
the probe's before it runs. The host's process is found from the engine's inspect, never
from anything the host says, and entered only if its control group names the container.

An engine that refuses such a helper (a user-namespace remap refuses the machine's process
table) gets one helper per host, as before (`probe_each`).
"""

from __future__ import annotations

import io
import json
import tarfile
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import docker
import docker.errors
import requests.exceptions

from ..errors import EngineError, LabError
from ..model.topology import Topology
from ..names import HOST_LABEL, LAB_LABEL, PKI_PATH, PROBE_MEMORY, PROBE_PIDS, ROLE_LABEL, program
from .archive import archive
from .base import ExecResult, ProbeJob

FOLDER = "/tmp/labctl-probe"   # in the helper's own file system: the jobs, their credentials, outputs
AT_ONCE = 16                   # hosts probed at once (services/netadmin.py PROBE_AT_ONCE)
OUTPUT = 16 << 20              # bytes a probe may write to each of its files (netadmin.py PROBE_OUTPUT)
SLACK = 30.0                   # seconds past the probes' own bounds before the helper is given up

RunOne = Callable[[str, list[str], list[tuple[str, bytes, int]]], ExecResult]


def probe_argv(spec: str) -> list[str]:
    """The probe reading its checks from the file `spec` (an argument has a length limit)."""
    # Not -I: the probe imports its neighbours in services/ (dnszone).
    return ["python3", "-E", "-s", "-S", program("probe"), f"@{spec}"]


def probe_each(jobs: dict[str, ProbeJob], run_one: RunOne) -> dict[str, ExecResult | LabError]:
    """One helper per host, AT_ONCE at a time: `run_one(host, argv, files)` runs it."""
    def one(host: str) -> tuple[str, ExecResult | LabError]:
        job = jobs[host]
        files = [(f"{PKI_PATH}/{name}", data, mode) for name, data, mode in job.credentials]
        files.append((f"{FOLDER}/spec", job.payload.encode(), 0o400))
        try:
            return host, run_one(host, probe_argv(f"{FOLDER}/spec"), files)
        except LabError as exc:
            return host, exc
    with ThreadPoolExecutor(max_workers=AT_ONCE) as pool:
        return dict(pool.map(one, list(jobs)))


def probe_together(client: docker.DockerClient, topology: Topology, image: str,
                   jobs: dict[str, ProbeJob], run_one: RunOne) -> dict[str, ExecResult | LabError]:
    """Every job's probe from one helper; a host that is not running is its own error, and a
    probe that runs over its time is killed alone (services/netadmin.py)."""
    try:
        return _probe_together(client, topology, image, jobs, run_one)
    except (docker.errors.APIError, requests.exceptions.RequestException, tarfile.TarError) as exc:
        reason = getattr(exc, "explanation", None) or exc
        raise EngineError(f"the probe's helper failed: {reason}") from None


def _probe_together(client: docker.DockerClient, topology: Topology, image: str,
                    jobs: dict[str, ProbeJob], run_one: RunOne) -> dict[str, ExecResult | LabError]:
    results: dict[str, ExecResult | LabError] = {}
    entered: list[tuple[str, str, int]] = []   # host, container id, process id
    for host, container in _host_containers(client, topology, list(jobs)).items():
        if container is None:
            results[host] = LabError(f"host '{host}' of lab '{topology.name}' is not running; run 'labctl up'")
            continue
        try:
            state = client.api.inspect_container(container)
        except docker.errors.NotFound:
            state = {}
        pid = (state.get("State") or {}).get("Pid") or 0
        if not pid:
            results[host] = LabError(f"host '{host}' is not running")
        else:
            entered.append((host, state["Id"], int(pid)))
    if not entered:
        return results
    helper = _create(client, topology, image, len(entered))
    if helper is None:   # the engine refuses the machine's process table: one helper per host
        return {**results, **probe_each({host: jobs[host] for host, _, _ in entered}, run_one)}
    waves = -(-len(entered) // AT_ONCE)
    bound = waves * max(jobs[host].seconds for host, _, _ in entered) + SLACK
    try:
        files = [(f"{FOLDER}/jobs.json",
                  json.dumps([{"host": host, "container": container, "pid": pid, "seconds": jobs[host].seconds}
                              for host, container, pid in entered]).encode(), 0o400)]
        for index, (host, _, _) in enumerate(entered):
            files.append((f"{FOLDER}/{index}/spec", jobs[host].payload.encode(), 0o400))
            files += [(f"{FOLDER}/{index}/pki/{name}", data, mode) for name, data, mode in jobs[host].credentials]
        client.api.put_archive(helper, "/", archive(files))
        client.api.start(helper)
        code = client.api.wait(helper, timeout=bound).get("StatusCode", -1)  # type: ignore[arg-type]
        said = client.api.logs(helper, stdout=True, stderr=True)
        outputs = _outputs(client, helper, sum(len(data) for _, data, _ in files) + 2 * OUTPUT * len(entered))
    except requests.exceptions.ReadTimeout:
        raise EngineError(f"the probe's helper ran over {bound:.0f}s") from None
    finally:
        try:
            client.api.remove_container(helper, force=True)
        except docker.errors.NotFound:
            pass
    lines = said.decode("utf-8", "replace").strip().splitlines()
    try:
        statuses = json.loads(lines[-1])
        if not isinstance(statuses, dict):
            raise ValueError(statuses)
    except (ValueError, IndexError):
        raise EngineError(f"the probe's helper ended ({code}) with no result: "
                          f"{lines[-1] if lines else 'no output'}") from None
    for index, (host, _, _) in enumerate(entered):
        status = statuses.get(str(index))
        out, err = outputs.get(f"{index}/out", b""), outputs.get(f"{index}/err", b"")
        results[host] = ExecResult(status if isinstance(status, int) else -1, out, err)
    return results


def _host_containers(client: docker.DockerClient, topology: Topology, hosts: list[str]) -> dict[str, str | None]:
    """Each host's container id (None where it has none), from one listing."""
    found = client.api.containers(all=True, filters={"label": [f"{LAB_LABEL}={topology.name}", f"{ROLE_LABEL}=host"]})
    by_host: dict[str, str] = {}
    # The engine lists the newest first; a running one goes before any that ended (a
    # Swarm keeps a redeployed host's old tasks).
    for summary in sorted(found, key=lambda summary: summary.get("State") != "running"):
        by_host.setdefault((summary.get("Labels") or {}).get(HOST_LABEL, ""), summary["Id"])
    for host in hosts:
        if host not in topology.hosts:
            raise topology.unknown_host(host)
    return {host: by_host.get(host) for host in hosts}


def _create(client: docker.DockerClient, topology: Topology, image: str, count: int) -> str | None:
    """The helper, created (not started): the machine's process table to find each host's
    namespace by its process, no network of its own, capped as the probes it runs are."""
    probes = min(count, AT_ONCE)
    try:
        return client.api.create_container(
            image, ["python3", program("netadmin"), "probe", FOLDER], detach=True,
            labels={LAB_LABEL: topology.name, ROLE_LABEL: "helper"},
            host_config=client.api.create_host_config(
                # SYS_ADMIN to enter a namespace; SYS_PTRACE for a host whose init is not root.
                network_mode="none", pid_mode="host", cap_add=["SYS_ADMIN", "SYS_PTRACE"],
                security_opt=["no-new-privileges:true"], mem_limit=PROBE_MEMORY * probes,
                memswap_limit=PROBE_MEMORY * probes, pids_limit=PROBE_PIDS * probes))["Id"]
    except docker.errors.APIError:
        return None


def _outputs(client: docker.DockerClient, helper: str, limit: int) -> dict[str, bytes]:
    """The helper's output files (`N/out`, `N/err`), read back through the engine: at most
    `limit` bytes (its own files, and each probe's capped at OUTPUT)."""
    try:
        stream, _ = client.api.get_archive(helper, FOLDER)
    except docker.errors.NotFound:
        return {}
    buffer = bytearray()
    for chunk in stream:
        buffer += chunk
        if len(buffer) > limit:
            raise EngineError(f"the probe's helper returned over {limit >> 20} MiB")
    outputs = {}
    with tarfile.open(fileobj=io.BytesIO(bytes(buffer))) as read:
        for member in read:
            name = member.name.partition("/")[2]   # below the folder's own name
            if member.isfile() and name.endswith(("/out", "/err")):
                extracted = read.extractfile(member)
                outputs[name] = extracted.read() if extracted else b""
    return outputs
