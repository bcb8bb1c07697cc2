"""What went wrong, in one line, for errors that are not labctl's own LabError: the engine
refusing, a connection lost, a file that cannot be read or written, a full disk. Docker
and paramiko are consulted only when already loaded: an error from them means they are."""

from __future__ import annotations

import errno
import sys


def explain(exc: BaseException) -> str | None:
    """The line to print for `exc`, or None when it is not one labctl knows how to say."""
    docker_errors = sys.modules.get("docker.errors")
    if docker_errors is not None and isinstance(exc, docker_errors.APIError):
        # The engine answered, and said no: its reason, not a lost connection.
        return f"the Docker engine refused: {exc.explanation or exc}"
    lost = _connection_errors()
    if isinstance(exc, lost):
        return f"lost the connection to an engine: {exc.__class__.__name__}: {exc}"
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        if exc.errno == errno.ENOSPC:
            return f"no space left on the device{' for' + where if where else ''}"
        if isinstance(exc, PermissionError):
            return f"permission denied:{where or ' ' + str(exc)}"
        if isinstance(exc, FileNotFoundError):
            return f"no such file or folder:{where or ' ' + str(exc)}"
        return f"{exc.strerror or exc}{':' + where if where else ''}"
    return None


def _connection_errors() -> tuple[type[BaseException], ...]:
    kinds: list[type[BaseException]] = [EOFError, ConnectionError, TimeoutError]
    for module, names in (("docker.errors", ("DockerException",)),
                          ("paramiko", ("SSHException",)),
                          ("requests.exceptions", ("ConnectionError", "Timeout"))):
        loaded = sys.modules.get(module)
        kinds += [getattr(loaded, name) for name in names if loaded is not None and hasattr(loaded, name)]
    return tuple(kinds)
