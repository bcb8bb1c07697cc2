"""What went wrong, in one line, and the exit code it gives (labctl.errors.EXIT_CODES):
labctl's own LabErrors, the engine refusing, a connection lost, a file that cannot be read
or written, a full disk. Docker and paramiko are consulted only when already loaded: an
error from them means they are."""

from __future__ import annotations

import errno
import sys

from ..errors import ENGINE, USAGE, LabError, exit_code_of


def failure(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, the line to print) for `exc`, or None when it is not one labctl knows
    how to say: a bug."""
    if isinstance(exc, LabError):
        return exit_code_of(exc), str(exc)
    docker_errors = sys.modules.get("docker.errors")
    if docker_errors is not None and isinstance(exc, docker_errors.APIError):
        # The engine answered, and said no: its reason, not a lost connection.
        return ENGINE, f"the Docker engine refused: {exc.explanation or exc}"
    lost = _connection_errors()
    if isinstance(exc, lost):
        return ENGINE, f"lost the connection to an engine: {exc.__class__.__name__}: {exc}"
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        if exc.errno == errno.ENOSPC:
            return USAGE, f"no space left on the device{' for' + where if where else ''}"
        if isinstance(exc, PermissionError):
            return USAGE, f"permission denied:{where or ' ' + str(exc)}"
        if isinstance(exc, FileNotFoundError):
            return USAGE, f"no such file or folder:{where or ' ' + str(exc)}"
        return USAGE, f"{exc.strerror or exc}{':' + where if where else ''}"
    return None


def explain(exc: BaseException) -> str | None:
    """The line to print for `exc`, or None when it is not one labctl knows how to say."""
    found = failure(exc)
    return found[1] if found else None


def _connection_errors() -> tuple[type[BaseException], ...]:
    kinds: list[type[BaseException]] = [EOFError, ConnectionError, TimeoutError]
    for module, names in (("docker.errors", ("DockerException",)),
                          ("paramiko", ("SSHException",)),
                          ("requests.exceptions", ("ConnectionError", "Timeout"))):
        loaded = sys.modules.get(module)
        kinds += [getattr(loaded, name) for name in names if loaded is not None and hasattr(loaded, name)]
    return tuple(kinds)
