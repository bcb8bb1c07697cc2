"""pytest plugin (registered through the `pytest11` entry point).

- The `lab` fixture brings the lab.yaml beside the test (or `--lab FILE`) up once per
  session and tears it down at the end, on failure or Ctrl-C too. A lab that was already
  running before the session is used as it is and left running.
- `pytest lab.yaml` (or any `*.lab.yaml`) collects each check in the file as a test item.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from . import lab as lifecycle
from .checks import CheckResult, read_transcript, run_checks
from .checkspec import CheckParser, CheckSpec
from .engine import ComposeEngine, ExecResult
from .errors import LabError
from .images import host_tag
from .topology import Topology, load_topology
from .yamlsource import Source


def _progress(message: str) -> None:
    print(f"labctl: {message}", file=sys.stderr, flush=True)


class Lab:
    """A running lab, as tests see it."""

    def __init__(self, topology: Topology, engine: ComposeEngine):
        self.topology = topology
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
        [spec] = lifecycle.select_checks(self.topology.checks, [name], None)
        return self.run([spec])[0]

    def probe(self, spec: dict[str, Any] | None = None, **fields: Any) -> CheckResult:
        """An ad-hoc check in Python, in the lab file's vocabulary:
        lab.probe({"from": "alice", "to": "web:8080", "http": {"path": "/health"}})
        or lab.probe(from_="alice", to="web:8080", http={"path": "/health"})."""
        raw = dict(spec or {})
        raw.update({("from" if key == "from_" else key): value for key, value in fields.items()})
        raw.setdefault("name", "probe")
        source = Source("<probe>", raw)
        return self.run([CheckParser(source, self.topology).parse(raw, ())])[0]

    def run(self, checks: list[CheckSpec]) -> list[CheckResult]:
        return run_checks(self.topology, self.engine, checks, self.image)

    def transcript(self, host: str) -> list[dict[str, Any]]:
        """What the host's built-in servers have served, one dict per exchange."""
        return read_transcript(self.topology, self.engine, host)


class LabRegistry:
    """One running lab per lab file per session; tears down those it brought up."""

    def __init__(self) -> None:
        self.labs: dict[Path, Lab] = {}
        self.started: list[Lab] = []
        self._engine: ComposeEngine | None = None

    def engine(self) -> ComposeEngine:
        if self._engine is None:
            self._engine = ComposeEngine()
        return self._engine

    def get(self, path: Path) -> Lab:
        path = path.resolve()
        if path not in self.labs:
            topology = load_topology(path)
            engine = self.engine()
            handle = Lab(topology, engine)
            running = [s for s in engine.states(topology) if s.role == "host" and s.ready]
            if len(running) == len(topology.hosts):
                _progress(f"using lab '{topology.name}', already running; it is left running")
            else:
                lifecycle.up(topology, engine, _progress)
                self.started.append(handle)
            self.labs[path] = handle
        return self.labs[path]

    def close(self) -> None:
        while self.started:
            handle = self.started.pop()
            lifecycle.down(handle.topology, handle.engine, _progress)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("labctl")
    group.addoption("--lab", metavar="FILE", help="the lab file the `lab` fixture brings up "
                    "(default: the nearest lab.yaml above the test)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab(file): the lab file for the `lab` fixture in this test")
    config._labctl_registry = LabRegistry()  # type: ignore[attr-defined]


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
def lab(request: pytest.FixtureRequest) -> Lab:
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
            topology = load_topology(self.path)
        except LabError as exc:
            raise self.CollectError(str(exc)) from None
        for check in topology.checks:
            yield CheckItem.from_parent(self, name=check.name)

    def results(self) -> dict[str, CheckResult]:
        if self._results is None:
            handle = _registry(self.config).get(self.path)
            wanted = {item.name for item in self.session.items if item.parent is self}
            checks = [check for check in handle.topology.checks if check.name in wanted]
            self._results = {result.name: result for result in handle.run(checks)}
        return self._results


class CheckFailed(Exception):
    pass


class CheckItem(pytest.Item):
    def runtest(self) -> None:
        assert isinstance(self.parent, LabFile)
        result = self.parent.results()[self.name]
        self.user_properties.append(("route", result.route))
        if not result.passed:
            raise CheckFailed(f"{result.route} {result.protocol}: {result.reason}")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (CheckFailed, LabError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"check: {self.name}"
