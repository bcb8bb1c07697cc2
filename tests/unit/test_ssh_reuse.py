"""Engine calls over SSH reuse their connection: one SSH connection per engine for the whole
command, and on it a few sessions (each a `docker system dial-stdio`) that carry one HTTP
request after another, never a connection or a session per call.

The engine at the other end is an HTTP/1.1 server on a socket pair behind each session a
fake SSH transport opens: the docker SDK, labctl's adapter and its session gate run as they
do against a real machine; only paramiko's wire is left out."""

from __future__ import annotations

import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

paramiko = pytest.importorskip("paramiko")

from labctl.engines import ssh  # noqa: E402


class Session:
    """A channel as docker's SSHConnection uses it: a socket whose far end is the engine."""

    def __init__(self, transport: "Transport", number: int):
        self._socket, far = socket.socketpair()
        self._transport, self._number = transport, number
        self.commands: list[str] = []
        threading.Thread(target=serve, args=(far, transport), daemon=True).start()

    def exec_command(self, command: str) -> None:
        self.commands.append(command)

    def close(self) -> None:
        self._transport._channels.pop(self._number, None)
        self._socket.close()

    def __getattr__(self, name):
        return getattr(self._socket, name)


class Transport:
    """What paramiko's Transport offers the SDK and labctl's gate: sessions, counted."""

    def __init__(self) -> None:
        self._channels: dict[int, Session] = {}
        self.sessions = 0
        self.requests = 0
        self.lock = threading.Lock()

    def open_session(self, timeout=None) -> Session:
        with self.lock:
            self.sessions += 1
            session = self._channels[self.sessions] = Session(self, self.sessions)
        assert session.commands == []
        return session

    def is_active(self) -> bool:
        return True


def serve(far: socket.socket, transport: Transport) -> None:
    """HTTP/1.1 with keep-alive: each request answered, the connection kept for the next."""
    reader = far.makefile("rb")
    while True:
        line = reader.readline()
        if not line:
            return
        path = line.split()[1].decode().partition("?")[0]
        length = 0
        while (header := reader.readline()) not in (b"\r\n", b""):
            name, _, value = header.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        reader.read(length)
        with transport.lock:
            transport.requests += 1
        body = json.dumps({"ApiVersion": "1.41", "Version": "20.10.24"} if path.endswith("/version")
                          else "OK" if path.endswith("/_ping") else []).encode()
        far.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


@pytest.fixture
def remote(monkeypatch, tmp_path):
    connects: list[dict] = []
    transport = Transport()

    def connect(client, **params):
        connects.append(params)
        client._transport = transport

    monkeypatch.setattr(paramiko.SSHClient, "connect", connect)
    monkeypatch.setattr(paramiko.SSHClient, "get_transport", lambda client: getattr(client, "_transport", None))
    client = ssh.remote_client(ssh.parse_ssh_url("ssh://u@192.0.2.7"), config_path=tmp_path / "none")
    yield client, transport, connects


def test_calls_one_after_another_share_one_connection_and_one_session(remote):
    client, transport, connects = remote
    for _ in range(25):   # calls to different paths: the SDK would give each its own pool
        assert client.api.containers() == []
        assert client.api.networks() == []
    assert len(connects) == 1, "one SSH connection for every call"
    assert transport.requests == 52   # the version asked, the ping, and the 50 calls
    assert transport.sessions == 1, f"{transport.sessions} sessions for calls made one at a time"
    assert all(session.commands == ["docker system dial-stdio"] for session in transport._channels.values())


def test_calls_at_once_share_a_few_sessions_on_one_connection(remote):
    client, transport, connects = remote
    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(lambda _: client.api.containers(), range(200))) == [[]] * 200
    assert len(connects) == 1
    assert transport.requests == 202
    # The SDK's pool keeps at most MAX_SESSIONS; the gate never lets more be open at once.
    assert transport.sessions <= ssh.SESSION_LIMIT, f"{transport.sessions} sessions for 200 calls"
