"""Deploy a rendered Compose document through the engine's API, all at once.

labctl knows the whole lab before it starts, so it need not wait on Compose's own pace:
every network is created first, then the fabric runs, then every host at once (none
before the fabric's rules stand), and each helper (routes, a network sidecar) as soon as
the host whose namespace it joins has started. The routes helpers are not containers of
their own: one admin helper, started beside the fabric and removed at the end, sets each
host's routes from the host's namespace as it starts (services/netadmin.py `enter`), so
the engine starts no more containers than the lab has hosts. Each container
is confirmed ready as it comes, by a signal that costs nothing once the lab is up: a
built-in server by the line it prints once it listens, a one-shot helper by its exit,
anything else by its probe, run once. The containers carry Compose's own names and
labels, so the rendered file still runs, and goes down, with `docker compose` alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypedDict

import docker
import docker.errors
import docker.types
import requests.exceptions
import yaml

from ..errors import EngineError
from ..model.topology import Topology
from ..names import (CONFIG_LABEL, HELPER_MEMORY, HELPER_PIDS, HOST_LABEL, ROLE_LABEL, SECRET_SOURCE,
                     SERVING_LINE, host_of, program)
from ..progress import Counted
from ..render.compose import KEYS_KEY, readiness_probe, readiness_wait, SIDECAR_READY, unliteral
from .archive import archive
from .base import ExecResult, Progress
from .containers import disk_quota

CREATORS = 8        # containers created and started at once: more only queue in the engine
WATCHERS = 64       # readiness signals awaited at once (each holds one idle connection)
REPORT_EVERY = 1.0  # seconds between progress lines while nothing fails
EARLY_EXIT = 0.5    # a program of the lab's own, with no probe, that ends within this failed
ROUTED_AT_ONCE = 32  # hosts whose routes one exec in the admin helper sets (its argument stays small)
ROUTES_ARGUMENT = 64 << 10   # bytes of routes one exec is handed, at most (one argument: 128 KiB)
ROUTES_GATHER = 1.0  # seconds a routable host may wait for others to join its exec while hosts still start

# The service keys labctl renders, and so knows how to deploy. A key outside these is a
# renderer change this module has not caught up with: refused, not silently dropped.
KNOWN_KEYS = {"image", "hostname", "init", "stop_grace_period", "labels", "sysctls", "environment",
              "command", "healthcheck", "networks", "extra_hosts", "security_opt", "mem_limit",
              "memswap_limit", "pids_limit", "cpus", "volumes", "build", "configs", "network_mode",
              "cap_add", "cap_drop", "restart", "depends_on", "stdin_open", "logging"}


class _Addresses(TypedDict):
    ipv4_address: str | None
    ipv6_address: str | None


def _addresses(options: dict[str, str] | None) -> _Addresses:
    """A service's static addresses on one network, as the endpoint API takes them."""
    return _Addresses(ipv4_address=(options or {}).get("ipv4_address"),
                      ipv6_address=(options or {}).get("ipv6_address"))


def _exit_code(api: docker.APIClient, container: str, timeout: float) -> int:
    """The container's exit code, waited for at most `timeout` seconds: docker-py hands the
    timeout to requests, which takes fractions of a second, though its stubs say whole ones."""
    return api.wait(container, timeout=timeout).get("StatusCode", -1)  # type: ignore[arg-type]


def seconds(duration: str | int | float) -> float:
    """A Compose duration ("2s", "1m30s", "500ms") in seconds."""
    if isinstance(duration, (int, float)):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    if not parts or "".join(a + b for a, b in parts) != duration:
        raise EngineError(f"the rendered document has a duration labctl cannot read: {duration!r}")
    return sum(float(amount) * units[unit] for amount, unit in parts)


def container_name(project: str, service: str) -> str:
    return f"{project}-{service}-1"


def network_name(project: str, network: str) -> str:
    return f"{project}_{network}"


def dependencies(service: dict[str, Any]) -> set[str]:
    """The services that must have started before this one: those it depends on, and the
    one whose network namespace it joins."""
    needed = set(service.get("depends_on") or {})
    mode = service.get("network_mode", "")
    if mode.startswith("service:"):
        needed.add(mode.split(":", 1)[1])
    return needed


def completions(service: dict[str, Any]) -> set[str]:
    """The one-shot services that must have ended well before this one starts: a host
    waits for the fabric, so its program never runs before the rules that keep it in."""
    depends = service.get("depends_on") or {}
    return {name for name, condition in depends.items()
            if (condition or {}).get("condition") == "service_completed_successfully"} \
        if isinstance(depends, dict) else set()


def batched_routes(service: dict[str, Any]) -> list[str] | None:
    """The `routes ...` arguments of a routes helper the admin helper can run instead of
    it (services/netadmin.py `enter`), or None for any other service."""
    command = service.get("command") or []
    if (service.get("labels") or {}).get(ROLE_LABEL) == "routes" \
            and str(service.get("network_mode", "")).startswith("service:") \
            and command[:3] == ["python3", program("netadmin"), "routes"]:
        return [str(word) for word in command[2:]]
    return None


@dataclass
class Pending:
    """Where each wanted service stands during one deployment."""
    wanted: list[str]
    submitted: set[str] = field(default_factory=set)
    started: dict[str, str] = field(default_factory=dict)     # service -> container id
    ready: set[str] = field(default_factory=set)


class Deployment:
    """One `up` (every service of the document) or `update` (only some), on one engine."""

    def __init__(self, client: docker.DockerClient, topology: Topology, document: dict[str, Any],
                 base: Path, progress: Progress, timeout: float,
                 run: Callable[[str, list[str], float], ExecResult],
                 failure: Callable[[str], str]):
        self.api = client.api
        self.client = client
        self.sized_disks = False   # whether the engine bounds a host's writable layer: see run_all
        self.topology = topology
        self.project = document.get("name") or topology.project
        self.document = document
        self.services: dict[str, dict[str, Any]] = document.get("services") or {}
        self.base = base
        self.progress = progress
        self.timeout = timeout
        self.run, self.failure = run, failure
        for name, service in self.services.items():
            unknown = sorted(set(service) - KNOWN_KEYS)
            if unknown:
                raise EngineError(f"service '{name}' of the rendered document has '{unknown[0]}', "
                                  "which labctl cannot deploy")
            if "healthcheck" in service and _healthcheck(service["healthcheck"]) is None:
                raise EngineError(f"service '{name}' of the rendered document declares a healthcheck, "
                                  "which would run in the lab while it sits idle; labctl runs none")
        self._image_ids: dict[str, str] = {}
        self.batched = {name: argv for name, service in self.services.items()
                        if (argv := batched_routes(service)) is not None}

    # -- the whole run --------------------------------------------------------------------

    def run_all(self, only: list[str] | None = None, recreate: bool = False) -> None:
        deadline = time.monotonic() + self.timeout
        wanted = list(self.services) if only is None else [name for name in only if name in self.services]
        self._images(wanted)
        hosts = [name for name in wanted if name in self.topology.hosts]
        if hosts:
            self.sized_disks = disk_quota(self.client, self.services[hosts[0]]["image"])[0]
        networks = self._networks()
        existing = self._existing()
        if only is None:
            self._remove_orphans(existing)
        pending = Pending(wanted)
        # Services outside this run that a wanted one joins, or waits for, are used as
        # they stand.
        finished: set[str] = set()
        for name, summary in existing.items():
            if name not in wanted and summary.get("State") == "running":
                pending.started[name] = summary["Id"]
            elif name not in wanted and "Exited (0)" in summary.get("Status", ""):
                pending.started[name] = summary["Id"]
                finished.add(name)
        # A host waits for the fabric to have ended before it starts, not before it is
        # created: it is created while the fabric runs, and started once that has ended.
        one_shots = {other for name in wanted for other in completions(self.services[name]) if other in wanted}
        creating: dict[Future, str] = {}
        held: dict[str, str] = {}   # created, not started: service -> container id
        creators = ThreadPoolExecutor(max_workers=CREATORS, thread_name_prefix="labctl-create")
        watchers = ThreadPoolExecutor(max_workers=WATCHERS, thread_name_prefix="labctl-ready")
        starting: dict[Future, str] = {}
        confirming: dict[Future, str] = {}
        routing: dict[Future, list[str]] = {}
        routed = [name for name in wanted if name in self.batched]
        admin: Future | None = None
        admin_id: str | None = None
        routable_since: dict[str, float] = {}   # routes helper -> when its host had started
        last_report, reported_at = "", 0.0
        try:
            if routed:
                admin = creators.submit(self._start_admin, self.services[routed[0]])
            while len(pending.ready) < len(wanted):
                if admin is not None and admin.done():
                    admin_id, admin = admin.result(), None
                    if admin_id is None:
                        self.batched = {}   # the engine refused it: one container per host's routes, as rendered
                for name in sorted(wanted, key=lambda name: name not in one_shots):   # those awaited first
                    awaited = completions(self.services[name])
                    if name in pending.submitted or name in self.batched \
                            or not dependencies(self.services[name]) - awaited <= set(pending.started):
                        continue
                    if awaited <= pending.ready | finished:
                        pending.submitted.add(name)
                        starting[creators.submit(self._bring, name, existing.get(name), networks,
                                                 pending.started, recreate)] = name
                    elif awaited <= one_shots:
                        pending.submitted.add(name)
                        creating[creators.submit(self._bring, name, existing.get(name), networks,
                                                 pending.started, recreate, False)] = name
                for name, container in list(held.items()):
                    if completions(self.services[name]) <= pending.ready | finished:
                        del held[name]
                        starting[creators.submit(self._start, name, container, pending.started)] = name
                # One exec at a time, gathering hosts while others still start: an exec
                # costs the engine about what a tenth of a container's start does, and it
                # runs beside the starts, on the same cores.
                if admin_id is not None and not routing:
                    routable = [name for name in wanted if name in self.batched and name not in pending.submitted
                                and dependencies(self.services[name]) <= set(pending.started)]
                    now = time.monotonic()
                    for name in routable:
                        routable_since.setdefault(name, now)
                    batch = self._batch(routable)
                    if batch and (len(batch) < len(routable) or len(batch) >= ROUTED_AT_ONCE
                                  or not (starting or creating or held)
                                  or now - min(routable_since[name] for name in batch) >= ROUTES_GATHER):
                        pending.submitted.update(batch)
                        routing[watchers.submit(self._route, batch, admin_id, dict(pending.started))] = batch
                blocked = [name for name in wanted if name not in pending.submitted]
                if blocked and not starting and not creating and not confirming and not routing and admin is None:
                    service = self.services[blocked[0]]
                    missing = sorted((dependencies(service) - set(pending.started))
                                     | (completions(service) - pending.ready - finished))
                    raise EngineError(f"'{blocked[0]}' joins '{missing[0]}', which is not running")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    waiting = [name for name in wanted if name not in pending.ready]
                    raise EngineError(f"lab not ready after {self.timeout:.0f}s; still waiting for "
                                      + _some(waiting))
                gathered = [routable_since[name] for name in routable_since if name not in pending.submitted]
                gathering = ROUTES_GATHER - (time.monotonic() - min(gathered)) if gathered and not routing \
                    else REPORT_EVERY
                done, _ = wait([*starting, *creating, *confirming, *routing, *([admin] if admin else [])],
                               timeout=max(0.01, min(remaining, REPORT_EVERY, gathering)),
                               return_when=FIRST_COMPLETED)
                for future in done:
                    if future in creating:
                        name = creating.pop(future)
                        container, running = future.result()
                        if running:   # kept as it stood
                            pending.started[name] = container
                            confirming[watchers.submit(self._confirm, name, container, deadline)] = name
                        else:
                            held[name] = container
                    elif future in starting:
                        name = starting.pop(future)
                        pending.started[name] = future.result()
                        confirming[watchers.submit(self._confirm, name, pending.started[name], deadline)] = name
                    elif future in routing:
                        for name in routing.pop(future):
                            pending.started[name] = admin_id or ""
                            pending.ready.add(name)
                        future.result()
                    elif future in confirming:
                        name = confirming.pop(future)
                        future.result()
                        pending.ready.add(name)
                report = self._report(pending)
                now = time.monotonic()
                if report != last_report and (now - reported_at >= REPORT_EVERY
                                              or len(pending.ready) == len(wanted)):
                    self.progress(report)
                    last_report, reported_at = report, now
        finally:
            # Creations under way finish (so whatever cleans up after a failure sees their
            # containers); confirmations end with their containers.
            creators.shutdown(wait=True, cancel_futures=True)
            watchers.shutdown(wait=False, cancel_futures=True)
            if admin is not None and admin.done() and not admin.cancelled() and not admin.exception():
                admin_id = admin.result()
            if admin_id is not None:
                try:
                    self._remove_admin(admin_id)
                except (docker.errors.APIError, EngineError, requests.exceptions.RequestException):
                    pass   # labelled with the lab, it ends itself, and `down` removes it
        self._none_exited(pending)

    def _none_exited(self, pending: Pending) -> None:
        """A host with no readiness probe is ready once started; one whose program ended
        meanwhile (a crash at start) fails the run, as it would have failed its checks."""
        hosts = {pending.started[name] for name in pending.wanted if name in self.topology.hosts}
        for summary in self.api.containers(all=True, filters={"label": f"com.docker.compose.project={self.project}"}):
            if summary["Id"] in hosts and summary.get("State") not in ("running", "created"):
                raise EngineError(self.failure(summary["Id"]))

    def _images(self, wanted: list[str]) -> None:
        """Every image the run needs, pulled where the engine lacks it (as Compose would)."""
        for image in sorted({self.services[name]["image"] for name in wanted}):
            try:
                self._image_ids[image] = self.api.inspect_image(image)["Id"]
                continue
            except docker.errors.ImageNotFound:
                pass
            users = sorted(name for name in wanted if self.services[name]["image"] == image)
            self.progress(f"pulling image {image}")
            try:
                self.api.pull(image)
                self._image_ids[image] = self.api.inspect_image(image)["Id"]
            except docker.errors.APIError as exc:
                reason = (exc.explanation or str(exc)).strip().splitlines()[0]
                raise EngineError(f"image {image} of host '{users[0]}' is not on the engine and "
                                  f"cannot be pulled: {reason}") from None

    def _report(self, pending: Pending) -> str:
        hosts = [name for name in pending.wanted if name in self.topology.hosts]
        helpers = [name for name in pending.wanted if name not in self.topology.hosts]
        counts = ([f"{sum(n in pending.ready for n in hosts)}/{len(hosts)} hosts"] if hosts else []) \
            + ([f"{sum(n in pending.ready for n in helpers)}/{len(helpers)} network helpers"] if helpers else [])
        waiting = [name for name in pending.wanted if name not in pending.ready]
        return Counted("ready: " + ", ".join(counts) + (f" (waiting for {_some(waiting)})" if waiting else ""),
                       "ready", len(pending.wanted) - len(waiting), len(pending.wanted))

    # -- networks -------------------------------------------------------------------------

    def _networks(self) -> dict[str, str]:
        """Each document network's engine name, created where it does not exist yet."""
        names = {}
        for key, definition in (self.document.get("networks") or {}).items():
            name = network_name(self.project, key)
            found = [n for n in self.api.networks(names=[name]) if n.get("Name") == name]
            labels = {**(definition.get("labels") or {}),
                      "com.docker.compose.project": self.project, "com.docker.compose.network": key}
            if found:
                theirs = found[0].get("Labels") or {}
                if any(theirs.get(label) != value for label, value in labels.items()
                       if label.startswith("com.docker.compose.")):
                    raise EngineError(f"a network named {name} exists and is not this lab's; "
                                      "remove it or rename the lab")
            else:
                pools = [docker.types.IPAMPool(subnet=pool.get("subnet"), gateway=pool.get("gateway"))
                         for pool in (definition.get("ipam") or {}).get("config") or []]
                try:
                    self.api.create_network(
                        name, driver=definition.get("driver", "bridge"), internal=bool(definition.get("internal")),
                        options=definition.get("driver_opts") or None, labels=labels, check_duplicate=True,
                        enable_ipv6=bool(definition.get("enable_ipv6")),
                        ipam=docker.types.IPAMConfig(pool_configs=pools) if pools else None)
                except docker.errors.APIError as exc:
                    raise EngineError(f"cannot create network {name}: {exc.explanation or exc}") from None
            names[key] = name
        return names

    # -- containers -----------------------------------------------------------------------

    def _existing(self) -> dict[str, dict[str, Any]]:
        summaries = self.api.containers(all=True, filters={"label": f"com.docker.compose.project={self.project}"})
        return {(s.get("Labels") or {}).get("com.docker.compose.service", ""): s for s in summaries}

    def _remove_orphans(self, existing: dict[str, dict[str, Any]]) -> None:
        for name, summary in list(existing.items()):
            if name not in self.services:
                self._remove(summary["Id"])
                del existing[name]

    def _remove(self, container: str) -> None:
        try:
            self.api.stop(container)  # its own grace period: a sidecar undoes its work
            self.api.remove_container(container, force=True, v=True)
        except docker.errors.NotFound:
            pass

    def _config_hash(self, name: str) -> str:
        service = self.services[name]
        text = json.dumps([service, self._image_ids[service["image"]]], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _bring(self, name: str, summary: dict[str, Any] | None, networks: dict[str, str],
               started: dict[str, str], recreate: bool, start: bool = True) -> Any:
        """Make `name`'s container match the document and be started; its id. With `start`
        False, it is created only: (its id, whether it runs already, kept as it stood)."""
        digest = self._config_hash(name)
        if summary is not None:
            same = (summary.get("Labels") or {}).get(CONFIG_LABEL) == digest
            one_shot_done = self.services[name].get("restart") == "no" and "Exited (0)" in summary.get("Status", "")
            if same and not recreate and (summary.get("State") == "running" or one_shot_done):
                return summary["Id"] if start else (summary["Id"], True)
            self._remove(summary["Id"])
        try:
            container = self._create(name, digest, networks, started)
        except docker.errors.APIError as exc:
            raise self._refused(name, started, exc) from None
        return self._start(name, container, started) if start else (container, False)

    def _start(self, name: str, container: str, started: dict[str, str]) -> str:
        try:
            self.api.start(container)
        except docker.errors.APIError as exc:
            raise self._refused(name, started, exc) from None
        return container

    def _refused(self, name: str, started: dict[str, str], exc: docker.errors.APIError) -> EngineError:
        joined = (self.services[name].get("network_mode") or "").partition("service:")[2]
        if joined in started and not self._running(started[joined]):
            # A helper that joins a host's namespace fails when the host has already
            # ended: the host's own failure is what to say.
            return EngineError(self.failure(started[joined]))
        return EngineError(f"cannot start '{name}': {exc.explanation or exc}")

    def _running(self, container: str) -> bool:
        try:
            return bool(self.api.inspect_container(container).get("State", {}).get("Running"))
        except docker.errors.NotFound:
            return False

    def _create(self, name: str, digest: str, networks: dict[str, str], started: dict[str, str]) -> str:
        service = self.services[name]
        attached = list((service.get("networks") or {}).items())
        mode = service.get("network_mode")
        if mode and mode.startswith("service:"):
            mode = f"container:{started[mode.split(':', 1)[1]]}"
        elif attached:
            mode = networks[attached[0][0]]
        host_config = self.api.create_host_config(
            init=service.get("init"),
            network_mode=mode,
            binds=[self._bind(volume) for volume in service.get("volumes") or []] or None,
            extra_hosts=service.get("extra_hosts") or None,
            security_opt=service.get("security_opt") or None,
            mem_limit=service.get("mem_limit"),
            memswap_limit=service.get("memswap_limit"),
            pids_limit=service.get("pids_limit"),
            nano_cpus=int(float(service["cpus"]) * 1e9) if service.get("cpus") else None,
            sysctls={key: str(value) for key, value in (service.get("sysctls") or {}).items()} or None,
            cap_add=service.get("cap_add") or None,
            cap_drop=service.get("cap_drop") or None,
            restart_policy={"Name": service["restart"]} if service.get("restart") else None,
            log_config=docker.types.LogConfig(type=service["logging"].get("driver", "json-file"),
                                              config=service["logging"].get("options") or {})
            if service.get("logging") else None,
            storage_opt=self._disk(name),
        )
        networking = None
        if attached and not (mode or "").startswith("container:"):
            first, options = attached[0]
            # docker-py takes the endpoints by network name; its stubs say one endpoint
            networking = self.api.create_networking_config({  # type: ignore[arg-type]
                networks[first]: self.api.create_endpoint_config(**_addresses(options), aliases=[name])})
        environment = service.get("environment") or {}
        labels = {**(service.get("labels") or {}), CONFIG_LABEL: digest,
                  "com.docker.compose.project": self.project, "com.docker.compose.service": name,
                  "com.docker.compose.oneoff": "False", "com.docker.compose.container-number": "1",
                  # Compose lists only containers with a hash of their own; ours differs from
                  # the one Compose would compute, so its own `up` recreates rather than keeps.
                  "com.docker.compose.config-hash": digest}
        container = self.api.create_container(
            service["image"], command=service.get("command"), hostname=service.get("hostname"),
            name=container_name(self.project, name), labels=labels, detach=True,
            stdin_open=bool(service.get("stdin_open")),
            environment=[f"{key}={value}" for key, value in environment.items()] or None,
            healthcheck=_healthcheck(service.get("healthcheck")),
            stop_timeout=int(seconds(service["stop_grace_period"])) if "stop_grace_period" in service else None,
            host_config=host_config, networking_config=networking)["Id"]
        for network, options in attached[1:]:
            self.api.connect_container_to_network(container, networks[network], aliases=[name],
                                                  **_addresses(options))
        self._put_files(container, name)
        return container

    def _disk(self, name: str) -> dict[str, str] | None:
        """A host's writable layer bounded by its limits, where the engine can (a Compose
        file says nothing of it: only some storage drivers take the option at all)."""
        host = self.topology.hosts.get(name)
        if not self.sized_disks or host is None or \
                (self.services[name].get("labels") or {}).get(ROLE_LABEL) != "host":
            return None
        return {"size": str(host.limits.disk)}

    def _bind(self, volume: str) -> str:
        source, _, rest = volume.partition(":")
        if not os.path.isabs(source):
            source = os.path.normpath(self.base / source)
        return f"{source}:{rest}"

    def _put_files(self, container: str, name: str) -> None:
        """Configs (a document for an engine elsewhere) and keys go into the created
        container through the API before it starts: no key passes through the document."""
        files: list[tuple[str, bytes, int]] = []
        definitions = self.document.get("configs") or {}
        for reference in self.services[name].get("configs") or []:
            content = definitions[reference["source"]]["content"].encode()
            files.append((reference["target"], content, int(reference.get("mode", 0o444))))
        for item in (self.document.get(KEYS_KEY) or {}).get(name) or []:
            files.append((item["target"], (self.base / item[SECRET_SOURCE]).read_bytes(), int(item["mode"])))
        if files:
            self.api.put_archive(container, "/", archive(files))

    # -- routes, from the admin helper ---------------------------------------------------

    def _start_admin(self, routes: dict[str, Any]) -> str | None:
        """Start the helper that enters hosts' namespaces to set their routes: in the
        engine machine's process table (to find a host's namespace by its process), with
        no network of its own, and nothing of the lab's but the routes it is handed. It
        ends itself after the run's bound should labctl die first. None if the engine
        refuses it (a user namespace remap refuses the machine's process table)."""
        labels = {key: value for key, value in (routes.get("labels") or {}).items() if key != HOST_LABEL}
        try:
            container = self.api.create_container(
                routes["image"], ["sleep", str(int(self.timeout) + 60)], detach=True,
                labels={**labels, ROLE_LABEL: "helper"},
                host_config=self.api.create_host_config(
                    # SYS_PTRACE: a host whose init runs as another user keeps its namespace
                    # from root without it.
                    network_mode="none", pid_mode="host", cap_add=["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"],
                    security_opt=["no-new-privileges:true"], mem_limit=HELPER_MEMORY,
                    memswap_limit=HELPER_MEMORY, pids_limit=HELPER_PIDS))["Id"]
        except docker.errors.APIError:
            return None
        try:
            self.api.start(container)
        except docker.errors.APIError:
            self._remove_admin(container)
            return None
        except BaseException:
            self._remove_admin(container)
            raise
        return container

    def _batch(self, routable: list[str]) -> list[str]:
        """The next routes for one exec: at most ROUTED_AT_ONCE hosts, and an argument well
        under the kernel's 128 KiB for one."""
        batch: list[str] = []
        size = 0
        for name in routable[:ROUTED_AT_ONCE]:
            size += sum(len(word) + 8 for word in self.batched[name]) + 200
            if batch and size > ROUTES_ARGUMENT:
                break
            batch.append(name)
        return batch

    def _remove_admin(self, container: str) -> None:
        try:
            self.api.remove_container(container, force=True)
        except docker.errors.NotFound:
            pass

    def _route(self, names: list[str], admin: str, started: dict[str, str]) -> None:
        """Set the routes of each routes helper in `names` from the admin helper, in its
        host's namespace; raise, naming the host and why, if any could not be set."""
        jobs, containers = [], {}
        for name in names:
            host = self.services[name]["network_mode"].split(":", 1)[1]
            state = self.api.inspect_container(started[host])
            if not (state.get("State") or {}).get("Pid"):
                raise EngineError(self.failure(state["Id"]))   # it ended at start: say why
            containers[host] = state["Id"]
            jobs.append({"host": host, "pid": state["State"]["Pid"], "container": state["Id"],
                         "argv": self.batched[name]})
        result = self.run(admin, ["python3", program("netadmin"), "enter",
                                  json.dumps(jobs, separators=(",", ":"))], self.timeout)
        if result.exit_code == 0:
            return
        said = (result.stdout + result.stderr).decode("utf-8", "replace").splitlines()
        for host, container in containers.items():
            if not self._running(container):
                raise EngineError(self.failure(container))
        problems = [line for line in said if line.startswith("netadmin: ")]
        raise EngineError("could not set the routes of "
                          + (problems[0].removeprefix("netadmin: ") if problems else
                             f"{_some(list(containers))}: {said[-1] if said else 'no output'}"))

    # -- readiness ------------------------------------------------------------------------

    def _confirm(self, name: str, container: str, deadline: float) -> None:
        """Return once `name` is ready; raise, naming why, if it never will be."""
        service = self.services[name]
        host = self.topology.hosts.get(name) if (service.get("labels") or {}).get(ROLE_LABEL) == "host" else None
        if host is not None and host.services and not host.ready:
            if not self._says_serving(container, deadline):
                if self._running(container):
                    raise EngineError(f"host '{name}' did not become ready within {self.timeout:.0f}s "
                                      "(its built-in servers never said they listen)")
                raise EngineError(self.failure(container))
            return
        probe = readiness_probe(host) if host is not None else \
            (["CMD", *SIDECAR_READY] if host_of(name, "net") else None)
        if probe is not None:
            seconds = max(1.0, deadline - time.monotonic())
            result = self.run(container, readiness_wait(probe, seconds), seconds)
            if result.exit_code != 0:
                if not self._running(container) or self._ends_soon(container):
                    raise EngineError(self.failure(container))  # it ended: say why, not "not ready"
                what = f"host '{name}'" if host is not None else f"helper '{name}'"
                raise EngineError(f"{what} did not become ready within {self.timeout:.0f}s "
                                  f"(its probe: {' '.join(probe[1:])})")
            return
        if host is not None and (host.command or not host.runs_lab_image):
            # A program of the lab's own with nothing to say it is ready: it counts as
            # started unless it ends at once (a crash at start fails `up`, not its checks).
            try:
                _exit_code(self.api, container, EARLY_EXIT)
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                return
            raise EngineError(self.failure(container))
        if service.get("restart") == "no":  # a one-shot helper: its exit says it all
            code = _exit_code(self.api, container, max(1.0, deadline - time.monotonic()))
            if code != 0:
                raise EngineError(self.failure(container))

    def _ends_soon(self, container: str) -> bool:
        """Whether a container whose probe just failed is ending: the engine records a
        program's exit a moment after the probe running beside it was killed with it."""
        try:
            _exit_code(self.api, container, EARLY_EXIT)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            return False
        return True

    def _says_serving(self, container: str, deadline: float) -> bool:
        """Follow the container's output until its built-in servers say they listen; False
        if it ends (the container exited) first, or `deadline` passes: the engine reads a
        followed log with no timeout, so a host that neither ends nor says it listens would
        hold this thread, and labctl's exit, for good."""
        stream = self.api.logs(container, stdout=True, stderr=False, stream=True, follow=True)

        def cut() -> None:
            try:
                stream.close()
            except docker.errors.DockerException:
                pass  # an engine over SSH cannot cut a stream short: it goes with its response

        timer = threading.Timer(max(0.0, deadline - time.monotonic()), cut)
        timer.daemon = True
        timer.start()
        seen = b""
        try:
            for chunk in stream:
                seen = (seen + chunk)[-4096:]
                if SERVING_LINE.encode() in seen:
                    return True
        except (OSError, ValueError, requests.exceptions.RequestException):
            pass   # the stream cut at the deadline
        finally:
            timer.cancel()
            cut()
        return False


def _healthcheck(definition: dict[str, Any] | None) -> dict[str, Any] | None:
    """The only healthcheck a lab's document holds turns off the one its image declares
    (`disable: true`): the engine's {"test": ["NONE"]}. Anything else is None."""
    if definition and (definition.get("disable") is True or definition.get("test") == ["NONE"]):
        return {"test": ["NONE"]}
    return None


def _some(names: list[str], shown: int = 8) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def read_document(path: Path) -> dict[str, Any]:
    """The rendered document as written, its `$$` escapes undone: the API takes values
    literally, as Compose does once it has read them."""
    # libyaml's loader where PyYAML has it: the same document, read several times faster.
    return unliteral(yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {})
