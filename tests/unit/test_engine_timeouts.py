"""An engine that stops answering ends labctl in one line naming the call, with exit code 4,
within its bound; never a hang or a traceback. The engine is a real unix socket that
DOCKER_HOST names, not a mock of the docker SDK: one that accepts and never replies, and
one that answers the version negotiation and then goes silent. The only timing asserted
is a generous bound on the whole command."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests.exceptions

from labctl.engines import bounded
from labctl.engines.containers import ContainerEngine
from labctl.engines.factory import read_lab
from labctl.engines.bounded import (IMAGE_TIMEOUT, WAIT_TIMEOUT, BoundedDockerClient, EngineTimeout, bound_for,
                                    call_name, engine_timeout)
from labctl.errors import ENGINE, USAGE, EngineError

from ..conftest import REPO

VERSION = {"ApiVersion": "1.41", "Version": "20.10.24", "MinAPIVersion": "1.12"}
WHOLE_COMMAND = 60   # seconds: the command must end at all, with a 2 s bound set


class SilentEngine:
    """A unix socket that accepts every connection and reads every request; it answers
    those whose path ends with a key of `answers` (a JSON body, text, or raw bytes to send
    as they are), and no other."""

    def __init__(self, path: Path, answers: dict[str, object] | None = None):
        self.path, self.answers = path, answers or {}
        self.asked: list[str] = []
        self._connections: list[socket.socket] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            self._connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        pending = b""
        try:
            while data := connection.recv(65536):
                pending += data
                while b"\r\n\r\n" in pending:
                    head, rest = pending.split(b"\r\n\r\n", 1)
                    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                    if length and len(rest) < int(length.group(1)):
                        break   # the body is still coming
                    pending = rest[int(length.group(1)):] if length else rest
                    path = head.split(b" ", 2)[1].decode().split("?")[0]
                    self.asked.append(path)
                    answer = next((value for key, value in self.answers.items() if path.endswith(key)), None)
                    if answer is None:
                        continue   # heard, and never answered
                    if isinstance(answer, bytes):
                        connection.sendall(answer)
                        continue
                    body = (json.dumps(answer) if not isinstance(answer, str) else answer).encode()
                    kind = "text/plain" if isinstance(answer, str) else "application/json"
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: " + kind.encode()
                                       + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        except OSError:
            pass

    def close(self) -> None:
        self._server.close()
        for connection in self._connections:
            connection.close()


@pytest.fixture
def silent(tmp_path):
    engine = SilentEngine(tmp_path / "silent.sock")
    yield engine
    engine.close()


@pytest.fixture
def negotiating(tmp_path):
    """Answers the version negotiation and the ping, then nothing."""
    engine = SilentEngine(tmp_path / "negotiating.sock", {"/version": VERSION, "/_ping": "OK"})
    yield engine
    engine.close()


def labctl(folder: Path, engine: SilentEngine, *argv: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("LABCTL_", "DOCKER_"))}
    environment.update(DOCKER_HOST=engine.url, LABCTL_ENGINE_TIMEOUT="2")
    return subprocess.run([sys.executable, "-m", "labctl", *argv], cwd=folder, env=environment,
                          capture_output=True, text=True, timeout=WHOLE_COMMAND)


@pytest.fixture
def folder(tmp_path):
    shutil.copy(REPO / "lab.yaml", tmp_path / "lab.yaml")
    return tmp_path


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("labctl: error: "), result.stderr
    return lines[0]


def test_an_engine_that_never_replies_names_the_negotiation(folder, silent):
    result = labctl(folder, silent, "status")
    assert result.returncode == ENGINE, result.stderr
    assert one_line_error(result) == (
        "labctl: error: the Docker engine did not answer 'GET /version' within 2s: is dockerd stuck? "
        "('docker info' tells; restart dockerd, or allow it longer with LABCTL_ENGINE_TIMEOUT=SECONDS)")
    assert silent.asked == ["/version"]


@pytest.mark.parametrize("argv", [["status"], ["ls"]])
def test_an_engine_that_stops_answering_names_the_call(folder, negotiating, argv):
    result = labctl(folder, negotiating, *argv)
    assert result.returncode == ENGINE, result.stderr
    said = one_line_error(result)
    unanswered = next(path for path in negotiating.asked if not path.endswith(("/version", "/_ping")))
    call = re.sub(r"^/v1\.41", "", unanswered)
    assert re.fullmatch(r"labctl: error: the Docker engine did not answer '(GET|POST|DELETE) (?P<call>\S+)' "
                        r"within 2s: is dockerd stuck\? \('docker info' tells; restart dockerd, or allow it "
                        r"longer with LABCTL_ENGINE_TIMEOUT=SECONDS\)", said), said
    assert f" {call}' " in said
    assert "Traceback" not in result.stderr


def test_a_timeout_that_is_not_seconds_is_refused_in_one_line(folder, negotiating):
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("LABCTL_", "DOCKER_"))}
    environment.update(DOCKER_HOST=negotiating.url, LABCTL_ENGINE_TIMEOUT="soon")
    result = subprocess.run([sys.executable, "-m", "labctl", "ls"], cwd=folder, env=environment,
                            capture_output=True, text=True, timeout=WHOLE_COMMAND)
    assert result.returncode == USAGE
    assert one_line_error(result) == ("labctl: error: LABCTL_ENGINE_TIMEOUT=soon: expected whole seconds "
                                      "above 0, such as 60")


# -- in process: the client's own bounds -------------------------------------------------------

def test_a_bounded_wait_is_still_a_read_timeout(negotiating):
    """A wait bounded on purpose (up's look at whether a program ends at once) still catches
    requests' ReadTimeout, and what it says is about the container, not a stuck engine."""
    client = BoundedDockerClient(base_url=negotiating.url, version="auto", timeout=2)
    try:
        with pytest.raises(requests.exceptions.ReadTimeout) as caught:
            client.api.wait("a" * 64, timeout=0.2)
    finally:
        client.close()
    assert isinstance(caught.value, EngineTimeout) and isinstance(caught.value, EngineError)
    assert str(caught.value) == ("the container did not end within 0.2s (the Docker engine gave no answer "
                                 "to 'POST /containers/aaaaaaaaaaaa/wait')")


STALLING = (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n")   # a body begun, and never ended


def test_a_body_that_stalls_past_its_request_is_said_as_a_request_is(tmp_path):
    """A copy out of a container: the SDK would read its body with no timeout at all."""
    engine = SilentEngine(tmp_path / "engine.sock", {"/version": VERSION, "/archive": STALLING})
    client = BoundedDockerClient(base_url=engine.url, version="auto", timeout=2)
    try:
        stream, _ = client.api.get_archive("c" * 64, "/tmp/capture.pcap")
        with pytest.raises(EngineTimeout) as caught:
            b"".join(stream)
    finally:
        client.close()
        engine.close()
    assert str(caught.value).startswith(f"the Docker engine did not answer 'GET /containers/{'c' * 12}/archive' "
                                        "within 2s: is dockerd stuck?")


def test_a_build_has_its_own_longer_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(bounded, "IMAGE_TIMEOUT", 1)   # instead of half an hour
    engine = SilentEngine(tmp_path / "engine.sock", {"/version": VERSION, "/build": STALLING})
    client = BoundedDockerClient(base_url=engine.url, version="auto", timeout=60)
    try:
        with pytest.raises(EngineTimeout) as caught:
            client.images.build(fileobj=io.BytesIO(b"FROM scratch\n"), tag="x:1")
    finally:
        client.close()
        engine.close()
    assert str(caught.value) == ("the Docker engine did not answer 'POST /build' within 1s: is dockerd stuck? "
                                 "('docker info' tells; restart dockerd)")


def test_a_shell_waits_on_its_user_for_as_long_as_they_like(tmp_path):
    """The request that opens a shell is bounded; the shell, once open, is not: the SDK
    would leave the request's read timeout on its socket, and an idle terminal (in labctl ui)
    would end with it."""
    container = {"Id": "c" * 64, "Names": ["/lab-gw-1"], "State": "running", "Labels": {}}
    engine = SilentEngine(tmp_path / "engine.sock", {
        "/version": VERSION, "/_ping": "OK", "/containers/json": [container],
        f"/containers/{'c' * 64}/json": {**container, "Name": "/lab-gw-1", "State": {"Status": "running"}},
        "/exec": {"Id": "e1"},
        "/exec/e1/start": b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                          b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"})
    client = BoundedDockerClient(base_url=engine.url, version="auto", timeout=2)
    try:
        topology = read_lab(REPO / "lab.yaml").topology
        terminal = ContainerEngine(client).terminal(topology, "gw", ["sh"], {})
        assert terminal.connection.gettimeout() is None
        terminal.connection.close()
    finally:
        client.close()
        engine.close()


def test_the_call_is_named_as_the_api_names_it():
    assert call_name("GET", "http+docker://localhost/v1.41/containers/json") == "GET /containers/json"
    assert call_name(b"post", "http+docker://ssh/v1.44/containers/" + "0123456789ab" * 5 + "cdef/stop") \
        == "POST /containers/0123456789ab/stop"
    assert call_name("GET", "http+docker://localhost/version") == "GET /version"
    assert call_name("DELETE", "http+docker://localhost/v1.41/containers/a%0Ab") == "DELETE /containers/a\\nb"


def test_each_kind_of_call_has_its_bound():
    assert bound_for("GET /containers/json", None, 60) == 60
    assert bound_for("POST /containers/x/stop", 70, 60) == 70                   # the SDK's: its own plus the grace
    assert bound_for("POST /containers/x/wait", 300, 60) == 300                 # the caller's
    assert bound_for("POST /containers/x/wait", None, 60) == WAIT_TIMEOUT
    assert bound_for("POST /build", None, 60) == IMAGE_TIMEOUT                   # the SDK sends none
    assert bound_for("POST /images/load", 60, 60) == IMAGE_TIMEOUT
    assert bound_for("GET /images/labctl-host:1/get", 60, 60) == IMAGE_TIMEOUT
    assert bound_for("POST /images/create", None, 60) == IMAGE_TIMEOUT
    assert bound_for("GET /events", None, 60) is None                            # exempt by nature


def test_the_variable_sets_the_bound(monkeypatch):
    monkeypatch.delenv(bounded.VARIABLE, raising=False)
    assert engine_timeout() == 60
    monkeypatch.setenv(bounded.VARIABLE, " 5 ")
    assert engine_timeout() == 5
    for wrong in ("0", "-3", "1.5", "soon"):
        monkeypatch.setenv(bounded.VARIABLE, wrong)
        with pytest.raises(EngineError.__mro__[1]):   # LabError: a UsageError, exit code 2
            engine_timeout()
