"""ssh:// engines read ~/.ssh/config as ssh does: HostName, Port, User, IdentityFile,
ProxyJump (and ProxyCommand), with what the address itself gives winning over the file.
Resolution is tested on temporary config files; the hop-by-hop connection through jump
hosts on stand-ins for paramiko's client, recording what each hop was asked to do (the real
connection through a jump host is tests/multihost's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.engines import ssh
from labctl.engines.ssh import Hop, Route, SshTarget, parse_ssh_url, resolve
from labctl.errors import LabError

CONFIG = """
Host engine
  HostName 192.0.2.20
  Port 2201
  User alice
  IdentityFile {home}/keys/engine
  IdentityFile {home}/keys/absent
  ProxyJump jumper@bastion:2022

Host bastion
  HostName 192.0.2.1
  User admin
  IdentityFile {home}/keys/bastion

Host chained
  HostName 192.0.2.30
  ProxyJump bastion,ssh://carol@second:2200

Host second
  HostName 192.0.2.2

Host direct
  HostName 192.0.2.40
  ProxyJump none
  ProxyCommand nc %h %p

Host *
  ServerAliveInterval 30
"""


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A HOME of its own with ~/.ssh/config and the keys it names (one named key is absent)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / "keys").mkdir()
    for name in ("engine", "bastion", "mine"):
        (tmp_path / "keys" / name).write_text("not read here")
    (tmp_path / ".ssh" / "config").write_text(CONFIG.format(home=tmp_path))
    return tmp_path


def test_the_config_gives_hostname_port_user_and_keys(home):
    route = resolve(parse_ssh_url("ssh://engine"))
    target = route.target
    assert (target.name, target.hostname, target.port, target.user) == ("engine", "192.0.2.20", 2201, "alice")
    # An IdentityFile that is not there is skipped, as ssh skips it; ~/.ssh's keys stay on offer.
    assert target.keys == (str(home / "keys" / "engine"),) and not target.only_keys
    assert target.known_hosts_name == "[192.0.2.20]:2201"
    params = target.connect_params()
    assert (params["hostname"], params["port"], params["username"]) == ("192.0.2.20", 2201, "alice")
    assert params["key_filename"] == [str(home / "keys" / "engine")] and "look_for_keys" not in params


def test_the_address_wins_over_the_config(home):
    target = resolve(parse_ssh_url("ssh://root@engine:2222")).target
    assert (target.hostname, target.port, target.user) == ("192.0.2.20", 2222, "root")
    # Port 22 written out is an explicit port too.
    assert resolve(parse_ssh_url("ssh://engine:22")).target.port == 22
    # A cluster file's key is the only one offered, whatever the config names.
    keyed = resolve(SshTarget("engine", key=home / "keys" / "mine")).target
    assert keyed.keys == (str(home / "keys" / "mine"),) and keyed.only_keys
    assert keyed.connect_params()["look_for_keys"] is False


def test_a_host_the_config_does_not_name_gets_ssh_defaults(home):
    route = resolve(parse_ssh_url("ssh://192.0.2.99"))
    assert route == Route(Hop("192.0.2.99", "192.0.2.99", 22, None, ()), (), None)
    assert route.target.known_hosts_name == "192.0.2.99"


def test_no_config_file_at_all(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve(parse_ssh_url("ssh://engine")).target == Hop("engine", "engine", 22, None, ())
    # The path can be given instead of HOME's.
    config = tmp_path / "elsewhere"
    config.write_text("Host engine\n  Port 2300\n")
    assert resolve(parse_ssh_url("ssh://engine"), config).target.port == 2300


def test_proxyjump_one_hop_with_its_own_config_entry(home):
    route = resolve(parse_ssh_url("ssh://engine"))
    assert route.proxy_command is None
    (bastion,) = route.jumps
    # The jump's own user and port (in ProxyJump) win over its entry; its HostName and key apply.
    assert (bastion.name, bastion.hostname, bastion.port, bastion.user) == ("bastion", "192.0.2.1", 2022, "jumper")
    assert bastion.keys == (str(home / "keys" / "bastion"),)


def test_proxyjump_chains_in_order(home):
    route = resolve(parse_ssh_url("ssh://chained"))
    assert [(hop.hostname, hop.port, hop.user) for hop in route.jumps] == [
        ("192.0.2.1", 22, "admin"), ("192.0.2.2", 2200, "carol")]
    assert route.target.hostname == "192.0.2.30"


def test_proxyjump_none_leaves_proxycommand(home):
    route = resolve(parse_ssh_url("ssh://direct"))
    assert route.jumps == () and route.proxy_command == "nc 192.0.2.40 22"


def test_bad_values_in_the_config_are_one_line_errors(home):
    config = home / ".ssh" / "config"
    config.write_text("Host engine\n  Port twenty-two\n")
    with pytest.raises(LabError, match=r"config: Port 'twenty-two' for engine is not a number"):
        resolve(parse_ssh_url("ssh://engine"))
    config.write_text("Host engine\n  ProxyJump bastion:port\n")
    with pytest.raises(LabError, match=r"config: bad port in ProxyJump 'bastion:port'"):
        resolve(parse_ssh_url("ssh://engine"))
    config.write_text("Host engine\n  =\n")
    with pytest.raises(LabError, match=r"config: cannot be read as an ssh config"):
        resolve(parse_ssh_url("ssh://engine"))


def test_the_address_keeps_what_it_left_out_unset():
    target = parse_ssh_url("ssh://engine")
    assert (target.user, target.port, target.url) == (None, None, "ssh://engine")
    assert parse_ssh_url("ssh://u@engine:2201").url == "ssh://u@engine:2201"
    with pytest.raises(LabError, match="bad port"):
        parse_ssh_url("ssh://engine:x")


# -- the connection through jump hosts, on stand-ins for paramiko's client ---------------

class FakeTransport:
    def __init__(self, client: "FakeClient"):
        self.client = client

    def open_channel(self, kind, destination, source, timeout=None):
        channel = f"channel from {self.client.params['hostname']} to {destination[0]}:{destination[1]}"
        self.client.log.append(("open", kind, destination, channel))
        return channel


class FakeClient:
    def __init__(self, log: list, refuse: str | None = None):
        self.log, self.refuse, self.params = log, refuse, {}

    def connect(self, **params):
        self.params = params
        self.log.append(("connect", params["hostname"], params["port"], params.get("username"), params.get("sock")))
        if params["hostname"] == self.refuse:
            raise ssh.paramiko.SSHException(f"Server '{params['hostname']}' not found in known_hosts")

    def get_transport(self):
        return FakeTransport(self)

    def close(self):
        self.log.append(("close", self.params.get("hostname")))


def _adapter(route: Route, log: list, refuse: str | None = None) -> "ssh._VerifiedSSHAdapter":
    """The adapter as remote_client makes it, but not connected (its constructor would)."""
    adapter = ssh._VerifiedSSHAdapter.__new__(ssh._VerifiedSSHAdapter)
    adapter._target = SshTarget("chained")
    adapter._route = route
    adapter._jumps = []
    adapter.ssh_client = FakeClient(log, refuse)
    adapter.ssh_params = route.target.connect_params()
    return adapter


def test_each_hop_is_reached_through_a_channel_of_the_one_before(home, monkeypatch):
    log: list = []
    monkeypatch.setattr(ssh, "_verifying_client", lambda known_hosts: FakeClient(log))
    route = resolve(parse_ssh_url("ssh://chained"))
    adapter = _adapter(route, log)
    adapter._connect()
    assert log == [
        ("connect", "192.0.2.1", 22, "admin", None),
        ("open", "direct-tcpip", ("192.0.2.2", 2200), "channel from 192.0.2.1 to 192.0.2.2:2200"),
        ("connect", "192.0.2.2", 2200, "carol", "channel from 192.0.2.1 to 192.0.2.2:2200"),
        ("open", "direct-tcpip", ("192.0.2.30", 22), "channel from 192.0.2.2 to 192.0.2.30:22"),
        ("connect", "192.0.2.30", 22, None, "channel from 192.0.2.2 to 192.0.2.30:22"),
    ]
    # A reconnection opens every hop afresh; closing closes the jumps too.
    log.clear()
    adapter._connect()
    assert [entry[:2] for entry in log[:2]] == [("close", "192.0.2.2"), ("close", "192.0.2.1")]
    adapter._close_jumps()
    assert log[-2:] == [("close", "192.0.2.2"), ("close", "192.0.2.1")]


def test_a_jump_host_with_an_unknown_key_is_refused_by_name(home, monkeypatch):
    log: list = []
    monkeypatch.setattr(ssh, "_verifying_client", lambda known_hosts: FakeClient(log, refuse="192.0.2.2"))
    adapter = _adapter(resolve(parse_ssh_url("ssh://chained")), log)
    with pytest.raises(LabError, match=r"^ssh://chained: jump host second \(192\.0\.2\.2\): host key not in "
                                       r"~/\.ssh/known_hosts; .*ssh-keyscan -p 2200 192\.0\.2\.2"):
        adapter._connect()
    # What was opened on the way is closed again.
    assert log[-2:] == [("close", "192.0.2.2"), ("close", "192.0.2.1")]
