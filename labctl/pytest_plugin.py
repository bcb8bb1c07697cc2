"""pytest plugin (registered through the `pytest11` entry point).

- The `lab` fixture brings the lab.yaml beside the test (or `--lab FILE`) up once per
  session and tears it down at the end, on failure or Ctrl-C too. A lab that was already
  running before the session is used as it is and left running.
- `pytest lab.yaml` (or any `*.lab.yaml`) collects each check in the file as a test item.

The lab runs on the engine its file (or $LABCTL_ENGINE, $LABCTL_CLUSTER) names, opened
through the same factory as the CLI's: Compose, a Swarm, or an engine over SSH.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from .assets import host_tag
from .checks.kinds import check_kinds
from .checks.result import CheckResult, points, reason_with_hint
from .checks.spec import CheckParser, CheckSpec
from .engines.base import Engine, ExecResult
from .engines.factory import choose, open_engine, read_lab
from .errors import LabError
from .labfile.load import Lab
from .model.topology import Topology
from .model.yamlsource import Source
from .ops import lifecycle
from .ops.checks import read_transcript, run_checks
from .ops.lock import hold
from .ops.reaper import Reaper


def _progress(message: str) -> None:
    print(f"labctl: {message}", file=sys.stderr, flush=True)


class RunningLab:
    """A running lab, as tests see it."""

    def __init__(self, lab: Lab, engine: Engine):
        self.lab = lab
        self.topology: Topology = lab.topology
        self.engine = engine
        self.image = host_tag()

    @property
    def hosts(self) -> list[str]:
        return list(self.topology.hosts)

    def exec(self, host: str, command: str | list[str]) -> ExecResult:
        """Run a command on a host; a string goes through sh -c."""
        argv = ["sh", "-c", command] if isinstance(command, str) else command
        return self.engine.exec(self.topology, host, argv)

    def check(self, name: str) -> CheckResult:
        """Run one of the lab file's checks by name."""
        [spec] = lifecycle.select_checks(self.lab.checks, [name], None)
        return self.run([spec])[0]

    def probe(self, spec: dict[str, Any] | None = None, **fields: Any) -> CheckResult:
        """An ad-hoc check in Python, in the lab file's vocabulary:
        lab.probe({"from": "alice", "to": "web:8080", "http": {"path": "/health"}})
        or lab.probe(from_="alice", to="web:8080", http={"path": "/health"})."""
        raw = dict(spec or {})
        raw.update({("from" if key == "from_" else key): value for key, value in fields.items()})
        raw.setdefault("name", "probe")
        source = Source("<probe>", raw)
        parser = CheckParser(source, self.topology, check_kinds())
        check = parser.parse(raw, ())
        parser.link([check], self.lab.checks, (), indexed=False)
        return self.run([check])[0]

    def run(self, checks: list[CheckSpec]) -> list[CheckResult]:
        return run_checks(self.topology, self.engine, checks, self.image)

    def transcript(self, host: str) -> list[dict[str, Any]]:
        """What the host's built-in servers have served, one dict per exchange."""
        return read_transcript(self.topology, self.engine, host)


class LabRegistry:
    """One running lab per lab file per session; tears down those it brought up. A lab it
    brings up is held (no other labctl changes it meanwhile) and watched by a reaper that
    takes it down if this process dies without doing so, unless the run keeps labs."""

    def __init__(self, keep: bool = False) -> None:
        self.labs: dict[Path, RunningLab] = {}
        self.started: list[RunningLab] = []
        self.keep = keep
        self.held = ExitStack()
        self.reapers: list[Reaper] = []

    def get(self, path: Path) -> RunningLab:
        path = path.resolve()
        if path not in self.labs:
            choice = choose(lab_file=path)
            lab = read_lab(path, choice)
            topology = lab.topology
            engine = open_engine(topology, choice)
            handle = RunningLab(lab, engine)
            running = [s for s in engine.states(topology) if s.role == "host" and s.ready]
            if len(running) == len(topology.hosts):
                _progress(f"using lab '{topology.name}', already running; it is left running")
            else:
                self.held.enter_context(hold(topology, engine, "pytest", _progress, for_children=True))
                if not self.keep:
                    self.reapers.append(Reaper(path, choice, topology.state_folder / "reaper.log"))
                lifecycle.up(topology, engine, _progress)
                self.started.append(handle)
            self.labs[path] = handle
        return self.labs[path]

    def close(self) -> None:
        try:
            while self.started and not self.keep:
                handle = self.started.pop()
                lifecycle.down(handle.topology, handle.engine, _progress)
            if self.keep:
                for handle in self.started:
                    _progress(f"lab '{handle.topology.name}' is kept running (--keep-lab); "
                              "'labctl down' removes it")
        finally:
            for reaper in self.reapers:
                reaper.release()
            self.held.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("labctl")
    group.addoption("--lab", metavar="FILE", help="the lab file the `lab` fixture brings up "
                    "(default: the nearest lab.yaml above the test)")
    group.addoption("--keep-lab", action="store_true",
                    help="leave the labs this run brings up running at its end, and do not reap "
                    "them if it dies")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab(file): the lab file for the `lab` fixture in this test")
    config._labctl_registry = LabRegistry(keep=config.getoption("--keep-lab"))  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    # Runs after a failure or Ctrl-C as well: nothing a session started outlives it.
    registry = getattr(config, "_labctl_registry", None)
    if registry is not None:
        registry.close()


def _registry(config: pytest.Config) -> LabRegistry:
    return config._labctl_registry  # type: ignore[attr-defined]


def _lab_file(request: pytest.FixtureRequest) -> Path:
    marker = request.node.get_closest_marker("lab")
    if marker is not None and marker.args:
        return Path(request.node.fspath).parent / marker.args[0]
    option = request.config.getoption("--lab")
    if option:
        return Path(option)
    folder = Path(request.node.fspath).parent
    root = Path(str(request.config.rootpath))
    for candidate in [folder, *folder.parents]:
        if (candidate / "lab.yaml").is_file():
            return candidate / "lab.yaml"
        if candidate == root:
            break
    raise pytest.UsageError("no lab.yaml beside the test or above it; pass --lab FILE")


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> RunningLab:
    """The running lab for this test: brought up once per session, torn down at its end."""
    try:
        return _registry(request.config).get(_lab_file(request))
    except LabError as exc:
        pytest.fail(str(exc), pytrace=False)


# -- `pytest lab.yaml` --------------------------------------------------------------------

def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    explicit = any(Path(arg.split("::")[0]).resolve() == file_path.resolve()
                   for arg in parent.config.args)
    if explicit or file_path.name.endswith((".lab.yaml", ".lab.yml")):
        return LabFile.from_parent(parent, path=file_path)
    return None


class LabFile(pytest.File):
    """A lab file as a test module: one item per check, all run in one batch."""

    _results: dict[str, CheckResult] | None = None

    def collect(self):
        try:
            lab = read_lab(self.path, choose(lab_file=self.path))
        except LabError as exc:
            raise self.CollectError(str(exc)) from None
        for check in lab.checks:
            yield CheckItem.from_parent(self, name=check.name)

    def results(self) -> dict[str, CheckResult]:
        if self._results is None:
            handle = _registry(self.config).get(self.path)
            wanted = {item.name for item in self.session.items if item.parent is self}
            checks = [check for check in handle.lab.checks if check.name in wanted]
            self._results = {result.name: result for result in handle.run(checks)}
        return self._results


class CheckFailed(Exception):
    pass


class CheckItem(pytest.Item):
    def runtest(self) -> None:
        assert isinstance(self.parent, LabFile)
        result = self.parent.results()[self.name]
        self.user_properties += [("route", result.route), ("points", points(result.points))]
        if not result.passed:
            raise CheckFailed(f"{result.route} {result.protocol}: {reason_with_hint(result)}")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (CheckFailed, LabError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"check: {self.name}"
