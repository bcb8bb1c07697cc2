"""pytest plugin (registered through the `pytest11` entry point, so it loads in every pytest
run of the environment where labctl is installed).

- The `lab` fixture brings the lab.yaml beside the test (or the nearest one above it,
  `--lab FILE`, or `@pytest.mark.lab("file")`) up for its scope, session by default
  (`--lab-scope` or ini `lab_scope`: session, package, module, class or function), and
  takes it down at the scope's end, on failure or Ctrl-C too. A lab that was already
  running before the run is used as it is and left running; `--keep-lab` keeps the labs
  the run brings up.
- `pytest lab.yaml` (or any `*.lab.yaml`) collects each check in the file as a test item.
- Under pytest-xdist each worker runs an instance of its own (labctl.testing).

This module imports pytest and the standard library only: the lab machinery
(labctl.testing, and with it docker, paramiko and cryptography) is imported once a test
uses a lab or a lab file is collected, so a run that uses none pays nothing for it.
`RunningLab` and `CheckResult` are importable from here too, lazily.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import pytest

if TYPE_CHECKING:
    from .checks.result import CheckResult
    from .testing import LabRegistry, RunningLab

Scope = Literal["session", "package", "module", "class", "function"]
SCOPES: tuple[Scope, ...] = ("session", "package", "module", "class", "function")
DEFAULT_SCOPE: Scope = "session"
LAB_SUFFIXES = (".yaml", ".yml")
LAB_FILE_ENDINGS = (".lab.yaml", ".lab.yml")
_EXPORTED = {"RunningLab": "labctl.testing", "LabRegistry": "labctl.testing",
             "CheckResult": "labctl.testing"}


def __getattr__(name: str) -> Any:
    """`from labctl.pytest_plugin import RunningLab` works, without loading the lab
    machinery for the runs that never ask."""
    if name in _EXPORTED:
        import importlib
        return getattr(importlib.import_module(_EXPORTED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class _State:
    """The plugin's state in one pytest run (or xdist worker)."""
    keep: bool
    scope: Scope
    registry: LabRegistry | None = None        # made when a lab is first used

    def labs(self) -> LabRegistry:
        if self.registry is None:
            from .testing import LabRegistry
            self.registry = LabRegistry(keep=self.keep, worker=os.environ.get("PYTEST_XDIST_WORKER") or None)
        return self.registry


_STATE = pytest.StashKey[_State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("labctl")
    group.addoption("--lab", metavar="FILE", help="the lab file the `lab` fixture brings up "
                    "(default: the nearest lab.yaml above the test)")
    group.addoption("--keep-lab", action="store_true",
                    help="leave the labs this run brings up running at its end, and do not reap "
                    "them if it dies")
    group.addoption("--lab-scope", choices=SCOPES, default=None,
                    help="how long the `lab` fixture keeps a lab up: once per session (the "
                    "default), package, module, class or function (overrides ini lab_scope)")
    parser.addini("lab_scope", "the `lab` fixture's scope: session (default), package, module, "
                  "class or function", default=DEFAULT_SCOPE)


def _scope(config: pytest.Config) -> Scope:
    scope = config.getoption("--lab-scope") or str(config.getini("lab_scope")).strip() or DEFAULT_SCOPE
    if scope not in SCOPES:
        raise pytest.UsageError(f"ini lab_scope = {scope!r}: expected one of {', '.join(SCOPES)}")
    return cast(Scope, scope)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab(file): the lab file for the `lab` fixture in this test")
    config.stash[_STATE] = _State(keep=bool(config.getoption("--keep-lab")), scope=_scope(config))


def pytest_unconfigure(config: pytest.Config) -> None:
    # Runs after a failure or Ctrl-C as well: nothing a run started outlives it.
    state = config.stash.get(_STATE, None)
    if state is None or state.registry is None:
        return
    from .errors import LabError
    try:
        state.registry.close()
    except LabError as exc:
        print(f"labctl: {exc}", file=sys.stderr, flush=True)


def _state(config: pytest.Config) -> _State:
    return config.stash[_STATE]


# -- the `lab` fixture --------------------------------------------------------------------

def _lab_file(item: pytest.Item, config: pytest.Config) -> Path | None:
    """The lab file of a test: its `lab` marker's, else --lab, else the nearest lab.yaml
    from the test's folder up to the root folder; None if there is none."""
    folder = Path(item.path).parent
    marker = item.get_closest_marker("lab")
    if marker is not None and marker.args:
        return (folder / marker.args[0]).resolve()
    option = config.getoption("--lab")
    if option:
        return Path(option).resolve()
    root = Path(config.rootpath)
    for candidate in [folder, *folder.parents]:
        if (candidate / "lab.yaml").is_file():
            return (candidate / "lab.yaml").resolve()
        if candidate == root:
            break
    return None


def _lab_id(path: Path | None, config: pytest.Config) -> str:
    if path is None:
        return "no-lab"
    try:
        return path.relative_to(Path(config.rootpath)).as_posix()
    except ValueError:
        return path.as_posix()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Each test's lab file is the parameter of `lab`: pytest then runs the tests of one lab
    # together and, when the fixture's scope is wider than a test, takes one lab's fixture
    # down before it sets up the next, so tests of several labs share one run in any scope.
    definitions = metafunc._arg2fixturedefs.get("lab") if "lab" in metafunc.fixturenames else None
    if not definitions or getattr(definitions[-1].func, "__module__", None) != __name__:   # a project's own `lab`
        return
    path = _lab_file(metafunc.definition, metafunc.config)
    metafunc.parametrize("lab", [path], indirect=True, scope=_state(metafunc.config).scope,
                         ids=[_lab_id(path, metafunc.config)])


def _fixture_scope(fixture_name: str, config: pytest.Config) -> Scope:
    return _state(config).scope


@pytest.fixture(scope=_fixture_scope)
def lab(request: pytest.FixtureRequest) -> Iterator[RunningLab]:
    """The running lab, brought up for the fixture's scope (--lab-scope, ini lab_scope;
    default: session) and taken down at its end, unless it was running before or the run
    keeps labs (--keep-lab)."""
    from .errors import LabError
    path = getattr(request, "param", None)
    if path is None:
        pytest.fail(f"{request.node.nodeid}: no lab.yaml beside the test or above it; pass --lab FILE "
                    "or mark it with @pytest.mark.lab(FILE)", pytrace=False)
    state = _state(request.config)
    registry = state.labs()
    try:
        handle = registry.get(path)
    except LabError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield handle
    finally:
        try:
            registry.release(path)
        except LabError as exc:
            pytest.fail(str(exc), pytrace=False)


# -- `pytest lab.yaml` --------------------------------------------------------------------

def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> LabFile | None:
    # Only a lab file named on the command line, or a *.lab.yaml: no other YAML is read.
    if file_path.suffix not in LAB_SUFFIXES:
        return None
    if file_path.name.endswith(LAB_FILE_ENDINGS) or any(
            Path(arg.split("::")[0]).resolve() == file_path.resolve() for arg in parent.config.args):
        return LabFile.from_parent(parent, path=file_path)
    return None


class LabFile(pytest.File):
    """A lab file as a test module: one item per check, all run in one batch."""

    _results: dict[str, CheckResult] | None = None
    _failure: Exception | None = None
    lab_name = ""                  # the lab's name on the engine, once it ran (xdist: the worker's)

    def collect(self) -> Iterator[CheckItem]:
        from .engines.factory import choose, read_lab
        from .errors import LabError
        try:
            lab = read_lab(self.path, choose(lab_file=self.path))
        except LabError as exc:
            raise self.CollectError(str(exc)) from None
        for check in lab.checks:
            yield CheckItem.from_parent(self, name=check.name)

    def results(self) -> dict[str, CheckResult]:
        """Every check of the file this run runs, run in one batch the first time it is asked."""
        if self._failure is not None:
            raise self._failure
        if self._results is None:
            state = _state(self.config)
            registry = state.labs()
            try:
                handle = registry.get(self.path)
            except Exception as exc:   # once: the file's other items fail with it, untried
                self._failure = exc
                raise
            try:
                wanted = {item.name for item in self.session.items if item.parent is self}
                checks = [check for check in handle.lab.checks if check.name in wanted]
                self._results = {result.name: result for result in handle.run(checks)}
                self.lab_name = handle.name
            finally:
                # Its checks ran in one batch: the lab stays up only for a session-long `lab`.
                if state.scope != "session":
                    registry.release(self.path)
        return self._results


class CheckFailed(Exception):
    pass


class CheckItem(pytest.Item):
    """One check of a lab file."""

    def runtest(self) -> None:
        from .checks.result import points, reason_with_hint
        assert isinstance(self.parent, LabFile)
        result = self.parent.results()[self.name]
        self.user_properties += [("lab", self.parent.lab_name), ("route", result.route),
                                 ("points", points(result.points))]
        if not result.passed:
            raise CheckFailed(f"{result.route} {result.protocol}: {reason_with_hint(result)}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        from .errors import LabError
        if isinstance(excinfo.value, (CheckFailed, LabError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, None, str]:
        return self.path, None, f"check: {self.name}"
