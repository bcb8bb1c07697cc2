"""Remote Docker engines over SSH, through the docker SDK's paramiko transport.

Host keys are always verified: against the known_hosts file a cluster names (labctl writes
one for machines whose keys it provisioned), else ~/.ssh/known_hosts. An unknown or changed
key is refused with the command that would show it; nothing is accepted silently.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import docker
import docker.errors
import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from docker.transport import SSHHTTPAdapter

from ..errors import EngineError, LabError

# What a lost or refused connection to an engine raises, whichever layer notices it.
CONNECTION_ERRORS = (docker.errors.DockerException, OSError, EOFError, paramiko.SSHException)
API_VERSION = "1.41"  # the oldest engine labctl supports (Docker 20.10)
# sshd allows 10 sessions per connection by default (MaxSessions): 6 for the SDK's
# requests, 3 for the docker CLI's when it deploys a stack or runs Compose, one to spare.
MAX_SESSIONS = 6
CLI_SESSIONS = 3
SESSION_LIMIT = 9


@dataclass(frozen=True)
class SshTarget:
    """ssh://user@host[:port], with the key and known_hosts to use."""
    host: str
    user: str | None = None
    port: int = 22
    key: Path | None = None
    known_hosts: Path | None = None

    @property
    def url(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port != 22 else ""
        return f"ssh://{user}{self.host}{port}"

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts names this machine."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def parse_ssh_url(url: str, key: Path | None = None, known_hosts: Path | None = None) -> SshTarget:
    parsed = urlparse(url)
    if parsed.scheme != "ssh" or not parsed.hostname:
        raise LabError(f"expected an engine address such as ssh://user@host, got {url!r}")
    try:
        port = parsed.port or 22
    except ValueError:
        raise LabError(f"bad port in {url!r}") from None
    return SshTarget(parsed.hostname, parsed.username, port, key, known_hosts)


class SessionGate:
    """Opens sessions on one SSH connection, never more than SESSION_LIMIT at a time as the
    server counts them. A session the SDK has finished with stays open on the server until
    its `docker system dial-stdio` exits, and exec and attach hand their sessions over
    instead of reusing them; counting only the sessions in use would overrun MaxSessions."""

    def __init__(self, transport: paramiko.Transport, limit: int = SESSION_LIMIT, timeout: float = 60.0):
        self.transport = transport
        self.limit = limit
        self.timeout = timeout
        self._lock = threading.Lock()

    def _open(self) -> int:
        # Paramiko keeps a channel until the server has closed it too.
        return len(self.transport._channels)

    def open_session(self) -> paramiko.Channel:
        deadline = time.monotonic() + self.timeout
        with self._lock:
            while self._open() >= self.limit and time.monotonic() < deadline:
                time.sleep(0.02)  # the server closes a finished session within milliseconds
            return self.transport.open_session()


class _VerifiedSSHAdapter(SSHHTTPAdapter):
    """docker's paramiko adapter, told which key to offer and which known_hosts to trust.
    It already refuses unknown host keys (RejectPolicy); this keeps that and adds ours."""

    def __init__(self, target: SshTarget, timeout: int):
        self._target = target
        super().__init__(target.url, timeout=timeout, max_pool_size=MAX_SESSIONS)

    def get_connection(self, url, proxies=None):
        # Every request is an SSH session, and sshd allows 10 at a time by default
        # (MaxSessions): wait for a free one rather than open an eleventh that fails.
        # docker's adapter keys its pools by the whole URL, path included: every distinct
        # request would get a pool of its own, each holding idle sessions. One pool for all.
        pool = super().get_connection("http+docker://ssh", proxies)
        pool.block = True
        if pool.ssh_transport is not None and not isinstance(pool.ssh_transport, SessionGate):
            pool.ssh_transport = self.gate
        return pool

    @property
    def gate(self) -> SessionGate:
        transport = self.ssh_client.get_transport()
        if getattr(self, "_gate", None) is None or self._gate.transport is not transport:
            self._gate = SessionGate(transport)
        return self._gate

    def _create_paramiko_client(self, base_url):
        super()._create_paramiko_client(base_url)
        target = self._target
        if target.known_hosts is not None:
            if not target.known_hosts.exists():
                raise EngineError(f"known_hosts file {target.known_hosts} does not exist")
            self.ssh_client.load_host_keys(str(target.known_hosts))
        if target.key is not None:
            self.ssh_params["key_filename"] = str(target.key)
            self.ssh_params["look_for_keys"] = False
        self.ssh_params["port"] = target.port
        self.ssh_params["timeout"] = 10
        self.ssh_params["banner_timeout"] = 10
        self.ssh_params["auth_timeout"] = 10
        self.ssh_client.set_missing_host_key_policy(paramiko.RejectPolicy())


def remote_client(target: SshTarget, timeout: int = 120) -> docker.DockerClient:
    """A DockerClient whose every request travels over one verified SSH connection."""
    try:
        adapter = _VerifiedSSHAdapter(target, timeout)
    except paramiko.BadHostKeyException:
        raise EngineError(f"{target.url}: the host key has CHANGED since it was recorded in "
                          f"{target.known_hosts or '~/.ssh/known_hosts'}; refusing to connect") from None
    except paramiko.SSHException as exc:
        if "known_hosts" in str(exc):
            raise EngineError(
                f"{target.url}: host key not in {target.known_hosts or '~/.ssh/known_hosts'}; check it "
                f"and add it (ssh-keyscan -p {target.port} {target.host} shows it); labctl never "
                "accepts an unknown key") from None
        raise EngineError(f"{target.url}: ssh failed: {exc}") from None
    except (OSError, EOFError) as exc:
        raise EngineError(f"{target.url}: cannot reach the machine: {exc}") from None
    # Build the client on a placeholder address, then route it through the adapter, as
    # docker.APIClient does itself for ssh:// (it would load only ~/.ssh's keys).
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock", version=API_VERSION,
                                 timeout=timeout)
    client.api.mount("http+docker://ssh", adapter)
    client.api._custom_adapter = adapter
    client.api.base_url = "http+docker://ssh"
    try:
        client.ping()
    except (docker.errors.DockerException, OSError, paramiko.SSHException) as exc:
        client.close()
        raise EngineError(f"{target.url}: connected, but no Docker engine answers there ({exc})") from None
    return client


def is_ssh(client: docker.DockerClient) -> bool:
    return client.api.base_url.startswith("http+docker://ssh")


# -- keys ---------------------------------------------------------------------------------

def generate_key(path: Path, comment: str = "labctl") -> str:
    """Write a new Ed25519 private key (OpenSSH format, 0600) at `path` and its public half
    at `path`.pub; return the public line. An existing key is kept and its line returned."""
    public_path = path.with_name(path.name + ".pub")
    if path.exists() and public_path.exists():
        return public_path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    line = f"{public} {comment}"
    public_path.write_text(line + "\n")
    return line


def known_hosts_line(target: SshTarget, public_line: str) -> str:
    kind, blob = public_line.split()[:2]
    return f"{target.known_hosts_name} {kind} {blob}"


# -- a local socket for the docker CLI ------------------------------------------------------

class CliForward:
    """A unix socket that carries the docker CLI to a remote engine over an SSH connection
    labctl has verified, for the one verb the API lacks (`docker stack deploy`)."""

    def __init__(self, client: docker.DockerClient, path: Path):
        adapter = client.api._custom_adapter
        if not isinstance(adapter, _VerifiedSSHAdapter):
            raise EngineError("not an SSH engine")
        self._gate = adapter.gate
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        os.chmod(path, 0o600)
        self._server.listen(8)
        self._sessions = threading.BoundedSemaphore(CLI_SESSIONS)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def _accept(self) -> None:
        while True:
            try:
                local, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._carry, args=(local,), daemon=True).start()

    def _carry(self, local: socket.socket) -> None:
        # Wait a little for a free session; if the CLI holds them all idle, try anyway.
        held = self._sessions.acquire(timeout=10)
        try:
            channel = self._gate.open_session()
            channel.exec_command("docker system dial-stdio")
            self._pump(local, channel)
        except (paramiko.SSHException, OSError):
            local.close()
        finally:
            if held:
                self._sessions.release()

    @staticmethod
    def _pump(local: socket.socket, channel: paramiko.Channel) -> None:
        def outward() -> None:
            try:
                while data := local.recv(65536):
                    channel.sendall(data)
                channel.shutdown_write()
            except OSError:
                pass
        threading.Thread(target=outward, daemon=True).start()
        try:
            while data := channel.recv(65536):
                local.sendall(data)
        except OSError:
            pass
        finally:
            local.close()
            channel.close()

    def close(self) -> None:
        self._server.close()
        if self.path.exists():
            self.path.unlink()

    def __enter__(self) -> "CliForward":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
