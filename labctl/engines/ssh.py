"""Remote Docker engines over SSH, through the docker SDK's paramiko transport.

Where to connect is read as `ssh` reads it: ~/.ssh/config's HostName, Port, User,
IdentityFile, ProxyJump and ProxyCommand apply to the host an ssh:// address names, and what
the address itself gives (ssh://user@host:port) wins over the file. A ProxyJump is followed
hop by hop, each hop's connection carried in a direct-tcpip channel of the one before.

Host keys are always verified, the jump hosts' too: against the known_hosts file a cluster
names (labctl writes one for machines whose keys it provisioned), else ~/.ssh/known_hosts.
An unknown or changed key is refused with the command that would show it; nothing is
accepted silently.

The engine's API version is negotiated, never pinned: the client asks the engine (over the
SSH connection) which version it speaks and uses that, so an engine of any release from
20.10 on answers, including those whose API floor is above what labctl was written against.

paramiko is an optional extra (labctl-net[ssh]): without it this module still loads, so
Compose on this machine works, and choosing an ssh:// engine fails in one line naming it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import docker
import docker.errors
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..errors import EngineError, LabError, UsageError
from .bounded import BoundedAPIClient, engine_timeout, stuck_engine

try:
    import paramiko
    from docker.transport import SSHHTTPAdapter
except ImportError:  # labctl-net without its ssh extra: the engine on this machine still works
    paramiko = None  # type: ignore[assignment]
    SSHHTTPAdapter = object  # type: ignore[assignment,misc]

MISSING_EXTRA = "the ssh engine needs paramiko: pip install 'labctl-net[ssh]'"
# What a lost or refused connection to an engine raises, whichever layer notices it.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    (docker.errors.DockerException, OSError, EOFError)
    + ((paramiko.SSHException,) if paramiko is not None else ()))
SSH_PORT = 22
CONNECT_TIMEOUT = 10
# docker.APIClient needs an address to start from; every request goes through the SSH
# adapter mounted over it, and nothing is ever sent to this one.
PLACEHOLDER_URL = "unix:///var/run/docker.sock"
# sshd allows 10 sessions per connection by default (MaxSessions): 6 for the SDK's
# requests, 3 for the docker CLI's when it deploys a stack or runs Compose, one to spare.
MAX_SESSIONS = 6
CLI_SESSIONS = 3
SESSION_LIMIT = 9


def require_paramiko() -> None:
    if paramiko is None:
        raise UsageError(MISSING_EXTRA)


@dataclass(frozen=True)
class SshTarget:
    """ssh://user@host[:port], with the key and known_hosts to use. `user` and `port` are
    None where the address leaves them out: ~/.ssh/config (else ssh's defaults) decides."""
    host: str
    user: str | None = None
    port: int | None = None
    key: Path | None = None
    known_hosts: Path | None = None

    @property
    def url(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port not in (None, SSH_PORT) else ""
        return f"ssh://{user}{self.host}{port}"

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts names this machine."""
        return _known_hosts_name(self.host, self.port or SSH_PORT)


def _known_hosts_name(host: str, port: int) -> str:
    return host if port == SSH_PORT else f"[{host}]:{port}"


def parse_ssh_url(url: str, key: Path | None = None, known_hosts: Path | None = None) -> SshTarget:
    parsed = urlparse(url)
    if parsed.scheme != "ssh" or not parsed.hostname:
        raise LabError(f"expected an engine address such as ssh://user@host, got {url!r}")
    try:
        port = parsed.port
    except ValueError:
        raise LabError(f"bad port in {url!r}") from None
    return SshTarget(parsed.hostname, parsed.username, port, key, known_hosts)


# -- where to connect, as ~/.ssh/config says ---------------------------------------------

@dataclass(frozen=True)
class Hop:
    """One SSH connection as it is made: the name it was given (an alias of ~/.ssh/config,
    or an address), the machine's real name and port, the user, and the keys to offer."""
    name: str
    hostname: str
    port: int = SSH_PORT
    user: str | None = None
    keys: tuple[str, ...] = ()
    only_keys: bool = False   # offer these keys alone (a cluster file's key), not ~/.ssh's too

    @property
    def known_hosts_name(self) -> str:
        return _known_hosts_name(self.hostname, self.port)

    @property
    def shown(self) -> str:
        return self.name if self.name == self.hostname else f"{self.name} ({self.hostname})"

    def connect_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"hostname": self.hostname, "port": self.port, "username": self.user,
                                  "timeout": CONNECT_TIMEOUT, "banner_timeout": CONNECT_TIMEOUT,
                                  "auth_timeout": CONNECT_TIMEOUT}
        if self.keys:
            params["key_filename"] = list(self.keys)
        if self.only_keys:
            params["look_for_keys"] = False
        return params


@dataclass(frozen=True)
class Route:
    """How to reach an engine's machine: through each jump host in turn (ProxyJump), or
    through a command's standard input and output (ProxyCommand), or directly."""
    target: Hop
    jumps: tuple[Hop, ...] = ()
    proxy_command: str | None = None


def default_ssh_config() -> Path:
    return Path.home() / ".ssh" / "config"


def _read_config(path: Path) -> "paramiko.SSHConfig | None":
    if not path.is_file():
        return None
    try:
        return paramiko.SSHConfig.from_path(str(path))
    except (OSError, UnicodeDecodeError, paramiko.ssh_exception.ConfigParseError) as exc:
        raise LabError(f"{path}: cannot be read as an ssh config: {exc}") from None


def _hop(name: str, user: str | None, port: int | None, config: "paramiko.SSHConfig | None",
         path: Path, key: Path | None = None) -> tuple[Hop, dict[str, Any]]:
    """The connection to `name`: what the address gave, else what the config says, else
    ssh's defaults; and the config's entry for it."""
    try:
        entry: dict[str, Any] = dict(config.lookup(name)) if config is not None else {}
    except paramiko.SSHException as exc:   # a CanonicalizeHostname that finds no name, say
        raise LabError(f"{path}: for {name}: {exc}") from None
    if port is None and "port" in entry:
        try:
            port = int(entry["port"])
        except ValueError:
            raise LabError(f"{path}: Port {entry['port']!r} for {name} is not a number") from None
    if key is not None:
        keys, only = (str(key),), True
    else:
        # ssh skips an IdentityFile that is not there; paramiko would stop at it.
        keys, only = tuple(file for file in entry.get("identityfile", []) if os.path.isfile(file)), False
    return Hop(name, entry.get("hostname") or name, port or SSH_PORT, user or entry.get("user"),
               keys, only), entry


def _jump_hops(value: str, config: "paramiko.SSHConfig | None", path: Path) -> tuple[Hop, ...]:
    """ProxyJump's hosts, in the order they are crossed: [user@]host[:port] or
    ssh://[user@]host[:port], separated by commas; `none` means no jump."""
    if value.strip().lower() == "none":
        return ()
    hops = []
    for item in (part.strip() for part in value.split(",")):
        parsed = urlparse(item if item.startswith("ssh://") else f"ssh://{item}")
        try:
            port = parsed.port
        except ValueError:
            raise LabError(f"{path}: bad port in ProxyJump {item!r}") from None
        if not parsed.hostname:
            raise LabError(f"{path}: ProxyJump {value!r}: expected [user@]host[:port], separated by commas")
        # A jump host's own ProxyJump is not followed: the chain is the target's list.
        hops.append(_hop(parsed.hostname, parsed.username, port, config, path)[0])
    return tuple(hops)


def resolve(target: SshTarget, config_path: Path | None = None) -> Route:
    """Where and how to connect for `target`, ~/.ssh/config (or `config_path`) applied."""
    require_paramiko()
    path = config_path or default_ssh_config()
    config = _read_config(path)
    hop, entry = _hop(target.host, target.user, target.port, config, path, target.key)
    jumps = _jump_hops(entry["proxyjump"], config, path) if "proxyjump" in entry else ()
    command = None if jumps else entry.get("proxycommand")
    if command is not None and command.strip().lower() == "none":
        command = None
    return Route(hop, jumps, command)


# -- the connection -----------------------------------------------------------------------

def _verifying_client(known_hosts: Path | None) -> "paramiko.SSHClient":
    """An SSHClient that trusts ~/.ssh/known_hosts and `known_hosts`, and refuses any other key."""
    client = paramiko.SSHClient()
    client.load_system_host_keys()
    if known_hosts is not None:
        if not known_hosts.exists():
            raise EngineError(f"known_hosts file {known_hosts} does not exist")
        client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def _transport(client: "paramiko.SSHClient | None", name: str) -> "paramiko.Transport":
    transport = client.get_transport() if client is not None else None
    if transport is None:
        raise EngineError(f"{name}: the SSH connection is closed")
    return transport


def _refusal(url: str, hop: Hop, known_hosts: Path | None, exc: BaseException,
             jump: bool = False) -> EngineError:
    """What a failed SSH connection to `hop` (the engine's machine at `url`, or a jump host
    on the way to it) means, in one line."""
    where = f"{url}: jump host {hop.shown}" if jump else url
    trusted = known_hosts or "~/.ssh/known_hosts"
    if isinstance(exc, paramiko.BadHostKeyException):
        return EngineError(f"{where}: the host key has CHANGED since it was recorded in {trusted}; "
                           "refusing to connect")
    if isinstance(exc, paramiko.SSHException) and "known_hosts" in str(exc):
        return EngineError(f"{where}: host key not in {trusted}; check it and add it "
                           f"(ssh-keyscan -p {hop.port} {hop.hostname} shows it); labctl never "
                           "accepts an unknown key")
    if isinstance(exc, paramiko.SSHException):
        return EngineError(f"{where}: ssh failed: {exc}")
    return EngineError(f"{where}: cannot reach the machine: {exc}")


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
        return len(self.transport._channels)  # type: ignore[attr-defined]

    def open_session(self) -> paramiko.Channel:
        deadline = time.monotonic() + self.timeout
        with self._lock:
            while self._open() >= self.limit and time.monotonic() < deadline:
                time.sleep(0.02)  # the server closes a finished session within milliseconds
            # Bounded: paramiko would wait an hour for a server that does not confirm it.
            return self.transport.open_session(timeout=self.timeout)


class _VerifiedSSHAdapter(SSHHTTPAdapter):
    """docker's paramiko adapter, told where to connect (the resolved route), which key to
    offer and which known_hosts to trust. It refuses unknown host keys (RejectPolicy), the
    jump hosts' too."""

    def __init__(self, target: SshTarget, route: Route, timeout: int):
        self._target = target
        self._route = route
        self._jumps: list[paramiko.SSHClient] = []
        super().__init__(target.url, timeout=timeout, max_pool_size=MAX_SESSIONS)

    def get_connection(self, url, proxies=None):
        # Every request is an SSH session, and sshd allows 10 at a time by default
        # (MaxSessions): wait for a free one rather than open an eleventh that fails.
        # docker's adapter keys its pools by the whole URL, path included: every distinct
        # request would get a pool of its own, each holding idle sessions. One pool for all.
        pool = super().get_connection("http+docker://ssh", proxies)
        pool.block = True
        if pool.ssh_transport is not None and not isinstance(pool.ssh_transport, SessionGate):
            pool.ssh_transport = self.gate  # type: ignore[assignment]  # it opens sessions as a Transport does
        return pool

    @property
    def gate(self) -> SessionGate:
        transport = _transport(self.ssh_client, self._target.url)
        gate: SessionGate | None = getattr(self, "_gate", None)
        if gate is None or gate.transport is not transport:
            gate = self._gate = SessionGate(transport)
        return gate

    def _create_paramiko_client(self, base_url):
        # Not the SDK's: it reads ~/.ssh/config its own way (no ProxyJump, and a Port the
        # address did not give would be lost) and trusts only ~/.ssh/known_hosts.
        logging.getLogger("paramiko").setLevel(logging.WARNING)
        self.ssh_client = _verifying_client(self._target.known_hosts)
        self.ssh_params = self._route.target.connect_params()

    def _connect(self):
        # Also what the SDK calls to reconnect: every hop is opened afresh.
        self._close_jumps()
        params = dict(self.ssh_params)
        try:
            if self._route.jumps:
                params["sock"] = self._through_jumps()
            elif self._route.proxy_command:
                params["sock"] = paramiko.ProxyCommand(self._route.proxy_command)
            assert self.ssh_client is not None   # made by _create_paramiko_client
            self.ssh_client.connect(**params)
        except BaseException:
            self._close_jumps()
            raise

    def _through_jumps(self) -> "paramiko.Channel":
        """A channel to the target's SSH port, opened through each jump host in turn."""
        route, sock = self._route, None
        assert route.jumps, "a route with jump hosts"
        hops = [*route.jumps, route.target]
        for hop, following in zip(hops, hops[1:]):
            client = _verifying_client(self._target.known_hosts)
            self._jumps.append(client)
            try:
                client.connect(**hop.connect_params(), sock=sock)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise _refusal(self._target.url, hop, self._target.known_hosts, exc, jump=True) from None
            try:
                sock = _transport(client, hop.shown).open_channel(
                    "direct-tcpip", (following.hostname, following.port), ("127.0.0.1", 0),
                    timeout=CONNECT_TIMEOUT)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise EngineError(f"{self._target.url}: jump host {hop.shown} would not forward to "
                                  f"{following.hostname}:{following.port}: {exc}") from None
        assert sock is not None
        return sock

    def _close_jumps(self) -> None:
        while self._jumps:
            self._jumps.pop().close()   # the nearest to the target first

    def close(self):
        super().close()
        self._close_jumps()


class _RemoteAPIClient(BoundedAPIClient):
    """docker's API client, every request carried by `adapter` and bounded
    (labctl.engines.bounded). APIClient negotiates the API version inside its constructor,
    against the address it was built on: routing through the adapter happens first, so the
    version asked and used is the remote engine's."""

    def __init__(self, adapter: _VerifiedSSHAdapter, timeout: int, url: str):
        self._ssh_adapter = adapter
        self.where = f" at {url}"   # before the negotiation, whose timeout says it
        super().__init__(base_url=PLACEHOLDER_URL, version="auto", timeout=timeout)

    def _retrieve_server_version(self) -> str:
        self.mount("http+docker://ssh", self._ssh_adapter)
        self._custom_adapter = self._ssh_adapter
        self.base_url = "http+docker://ssh"
        return super()._retrieve_server_version()  # type: ignore[misc]  # docker's own, not in its stubs


class _RemoteDockerClient(docker.DockerClient):
    def __init__(self, adapter: _VerifiedSSHAdapter, timeout: int, url: str):
        # All a DockerClient holds is its API client.
        self.api = _RemoteAPIClient(adapter, timeout, url)


def remote_client(target: SshTarget, timeout: int | None = None, config_path: Path | None = None) -> docker.DockerClient:
    """A DockerClient whose every request travels over one verified SSH connection, speaking
    the API version the engine there speaks, each bounded by `timeout` seconds (else
    labctl.engines.bounded's)."""
    timeout = timeout or engine_timeout()
    route = resolve(target, config_path)
    try:
        adapter = _VerifiedSSHAdapter(target, route, timeout)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise _refusal(target.url, route.target, target.known_hosts, exc) from None
    try:
        client = _RemoteDockerClient(adapter, timeout, target.url)
        client.ping()
    except (docker.errors.DockerException, OSError, paramiko.SSHException) as exc:
        adapter.close()
        stuck = stuck_engine(exc)   # it answers no call: say which, not that there is none
        if stuck is not None:
            raise stuck from None
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
        adapter = getattr(client.api, "_custom_adapter", None)
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
