"""Isolation a teacher can state, as labctl writes it down: the fabric's rules that keep
every lab bridge off the engine machine's own services, Docker's embedded resolver refused
to hosts with no way out, caps on every helper, and a host's disk bounded where the engine
can. (tests/integration/test_isolation.py reads the same rules from the real engine.)"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import docker.errors
import pytest

from labctl.engines.apply import Deployment
from labctl.engines.containers import ContainerEngine, disk_quota, helper_caps
from labctl.engines.factory import read_lab
from labctl.engines.kinds import EngineChoice
from labctl.errors import LabFileError
from labctl.model.addressing import refuses_embedded_dns
from labctl.model.shaping import LiveState
from labctl.names import (FABRIC_SERVICE, HELPER_MEMORY, HELPER_PIDS, PROBE_MEMORY, PROBE_PIDS, ROLE_LABEL,
                          SIDECAR_MEMORY, SIDECAR_PIDS, bridge_name, fabric_tag, program)
from labctl.render.compose import render
from labctl.render.pki import LabPki, ensure_pki
from labctl.render.stack import HELPERS_KEY, render_stack

from ..conftest import REPO


def load_netadmin():
    spec = importlib.util.spec_from_file_location("netadmin_under_test", REPO / "services" / "netadmin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


netadmin = load_netadmin()

# A host on an internal network only, one also on a network with a way out, and a plain
# lab otherwise: no router, no IPv6 (which once meant no fabric at all).
LAB = """
name: iso
networks:
  inner: {subnet: 10.6.1.0/24}
  outer: {subnet: 10.6.2.0/24, internal: false}
hosts:
  shut: {networks: [inner], services: [{tcp-echo: {port: 7}}]}
  open: {networks: [inner, outer]}
impairments:
  shut: {delay: 10ms}
"""


class Table:
    """The filter tables (IPv4 and IPv6) as netadmin drives them: `iptables -w -S [CHAIN]`
    lists one, and `iptables-restore -w --noflush` applies -D and -I lines to it, all or none."""

    def __init__(self, **chains: list[list[str]]):
        self.families = {family: {name: list(rules) for name, rules in chains.items()} for family in (4, 6)}
        self.programs: list[str] = []

    def __call__(self, argv, input=None, **_options) -> subprocess.CompletedProcess:
        argv = list(argv)
        self.programs.append(argv[0])
        family = 6 if argv[0].startswith("ip6") else 4
        table = self.families[family]
        if argv[1:3] == ["-w", "-S"]:
            shown = argv[3:] or list(table)
            if any(chain not in table for chain in shown):
                return subprocess.CompletedProcess(argv, 1, "", "No chain/target/match by that name.")
            listing = [f"-P {chain} ACCEPT" for chain in shown] + \
                [f"-A {chain} " + shlex.join(rule) for chain in shown for rule in table[chain]]
            return subprocess.CompletedProcess(argv, 0, "\n".join(listing) + "\n", "")
        assert argv[0].endswith("-restore") and argv[1:] == ["-w", "--noflush"], argv
        chains = {name: list(rules) for name, rules in table.items()}
        for line in input.splitlines():
            if line in ("*filter", "COMMIT", ""):
                continue
            verb, chain, *rest = shlex.split(line)
            if verb == "-D" and rest in chains.get(chain, []):
                chains[chain].remove(rest)
            elif verb == "-I" and chain in chains:
                chains[chain].insert(int(rest[0]) - 1, rest[1:])
            else:
                return subprocess.CompletedProcess(argv, 1, "", f"bad line: {line}")
        self.families[family] = chains
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_nothing_enters_the_engine_machine_from_a_bridge_but_neighbour_discovery():
    ipv4 = netadmin.input_rules("labctl:iso", "lcbridge", 4)
    assert ipv4 == [["-i", "lcbridge", "-m", "comment", "--comment", "labctl:iso", "-j", "DROP"]]
    ipv6 = netadmin.input_rules("labctl:iso", "lcbridge", 6)
    assert ipv6[-1] == ipv4[0], "the drop comes last, after what it spares"
    spared = ipv6[:-1]
    assert [rule[rule.index("--icmpv6-type") + 1] for rule in spared] == ["133", "134", "135", "136", "137"]
    for rule in spared:
        assert rule[:4] == ["-i", "lcbridge", "-p", "ipv6-icmp"] and rule[-2:] == ["-j", "ACCEPT"]
    assert all(netadmin.comment_of(shlex.join(rule)) == "labctl:iso" for rule in ipv6)


def test_rules_stand_in_the_order_given_above_what_was_there_and_go_again_by_tag(monkeypatch):
    own = ["-i", "eth0", "-j", "ACCEPT"]   # the machine's own firewall, kept below
    table = Table(INPUT=[own], FORWARD=[], **{"DOCKER-USER": [["-j", "RETURN"]]})
    monkeypatch.setattr(netadmin.subprocess, "run", table)
    netadmin.fabric_add("labctl:iso", ["lcbridge:6i", "lcother"])
    first = {family: {chain: list(rules) for chain, rules in chains.items()}
             for family, chains in table.families.items()}
    netadmin.fabric_add("labctl:iso", ["lcbridge:6i", "lcother"])  # again, as a second `up` does
    assert table.families == first, "no duplicates"
    four, six = first[4], first[6]
    for family, chains in first.items():
        assert chains["INPUT"] == [*netadmin.input_rules("labctl:iso", "lcbridge", family),
                                   *netadmin.input_rules("labctl:iso", "lcother", family), own]
    assert six["FORWARD"] == netadmin.forward6_rules("labctl:iso", "lcbridge", internal=True)
    assert six["FORWARD"][0][-1] == "ACCEPT", "forwarding within the bridge stands before its drops"
    assert four["FORWARD"] == [] and six["DOCKER-USER"] == [["-j", "RETURN"]]
    assert [rule[:4] for rule in four["DOCKER-USER"]] == [["-i", "lcbridge", "-o", "lcbridge"],
                                                         ["-i", "lcother", "-o", "lcother"], ["-j", "RETURN"]]
    # However many bridges, a family's rules go in with two programs: its listing, its restore.
    table.programs.clear()
    netadmin.fabric_add("labctl:iso", [f"lcb{n}:6i" for n in range(6)])
    assert len(table.programs) == 5   # which iptables holds DOCKER-USER, then two per family
    netadmin.fabric_add("labctl:iso", ["lcbridge:6i", "lcother"])
    netadmin.fabric_add("labctl:iso2", ["lcthird"])
    netadmin.fabric_del("labctl:iso")
    # Exactly this lab's rules: not those of a lab whose name starts the same.
    for family, chains in table.families.items():
        assert chains["INPUT"] == [*netadmin.input_rules("labctl:iso2", "lcthird", family), own]
        assert all(netadmin.comment_of(shlex.join(rule)) != "labctl:iso"
                   for rules in chains.values() for rule in rules)


def test_docker_s_resolver_is_refused_at_any_port_and_at_once():
    tcp, anything = netadmin.embedded_dns_rules()
    for rule in (tcp, anything):
        assert rule[:2] == ["-d", "127.0.0.11/32"] and "--dport" not in rule and rule[-4:-2] == ["-j", "REJECT"]
    assert tcp[tcp.index("-p") + 1] == "tcp" and tcp[-1] == "tcp-reset"
    assert "-p" not in anything and anything[-1] == "icmp-port-unreachable"


def test_routes_refuse_an_option_they_do_not_know():
    with pytest.raises(SystemExit, match="unknown option --no-route"):
        netadmin.routes(["--no-route", "10.0.0.0/8=10.6.1.1"])


def rendered(write_lab, tmp_path, text: str = LAB):
    topology = read_lab(write_lab(text)).topology
    return topology, render(topology, "labctl-host:test", LabPki(tmp_path / "pki"),
                            tmp_path / "compose" / "iso.yaml", LiveState())


def test_every_helper_in_a_rendered_document_is_capped(write_lab, tmp_path):
    topology, document = rendered(write_lab, tmp_path)
    services = document["services"]
    helpers = {name: service for name, service in services.items() if name not in topology.hosts}
    assert set(helpers) == {FABRIC_SERVICE, "lc-routes-shut", "lc-net-shut"}
    for name, helper in helpers.items():
        assert helper["memswap_limit"] == helper["mem_limit"], name   # no swap beyond it
        expected = (SIDECAR_MEMORY, SIDECAR_PIDS) if name.startswith("lc-net-") else (HELPER_MEMORY, HELPER_PIDS)
        assert (helper["mem_limit"], helper["pids_limit"]) == expected, name


def test_every_lab_on_bridges_gets_the_fabric_and_no_host_starts_before_it(write_lab, tmp_path):
    topology, document = rendered(write_lab, tmp_path)
    fabric = document["services"][FABRIC_SERVICE]
    assert fabric["network_mode"] == "host" and fabric["command"][3:] == [
        fabric_tag(topology), bridge_name(topology, "inner"), bridge_name(topology, "outer")]
    for host in topology.hosts:
        assert document["services"][host]["depends_on"] == {
            FABRIC_SERVICE: {"condition": "service_completed_successfully"}}


def test_only_a_host_with_no_way_out_is_refused_docker_s_resolver(write_lab, tmp_path):
    topology, document = rendered(write_lab, tmp_path)
    assert refuses_embedded_dns(topology, topology.hosts["shut"])
    assert not refuses_embedded_dns(topology, topology.hosts["open"])
    # A host with no route and no IPv6 still gets its helper, for the refusal alone.
    assert document["services"]["lc-routes-shut"]["command"][2:] == ["routes", "--no-dns"]
    assert "lc-routes-open" not in document["services"]   # nothing to set: it has a way out


def test_a_swarm_keeps_docker_s_resolver_its_hosts_find_each_other_by(write_lab, tmp_path):
    text = """
    name: iso
    engine: swarm
    networks:
      inner: {subnet: 10.6.1.0/24}
      far: {subnet: 10.6.3.0/24}
    hosts:
      r: {networks: [inner, far], router: true}
      shut: {networks: [inner]}
      away: {networks: [far]}
    """
    topology = read_lab(write_lab(text), EngineChoice(kind="swarm")).topology
    assert not any(refuses_embedded_dns(topology, host) for host in topology.hosts.values())
    stack = render_stack(topology, "labctl-host:test", ensure_pki(topology, tmp_path / "pki"),
                         tmp_path / "iso.stack.yaml")
    helpers = stack[HELPERS_KEY]
    assert {"lc-routes-shut", "lc-routes-away"} <= set(helpers)
    assert all("--no-dns" not in helper["command"] for helper in helpers.values())


def test_a_check_s_probe_gets_room_for_its_load_clients_and_other_helpers_little():
    assert helper_caps(["python3", "-E", "-s", "-S", program("probe"), "e30="]) == (PROBE_MEMORY, PROBE_PIDS)
    assert helper_caps(["python3", program("netadmin"), "fabric-del", "labctl:iso"]) == (HELPER_MEMORY, HELPER_PIDS)
    assert helper_caps(["cat", "/proc/net/dev"]) == (HELPER_MEMORY, HELPER_PIDS)
    assert HELPER_MEMORY < PROBE_MEMORY and HELPER_PIDS < PROBE_PIDS


def test_a_host_s_disk_limit_defaults_to_1g_and_is_read_as_a_size(write_lab):
    topology = read_lab(write_lab(LAB.replace("open: {networks: [inner, outer]}",
                                              "open: {networks: [inner, outer], limits: {disk: 2g}}"))).topology
    assert topology.hosts["shut"].limits.disk == 1 << 30
    assert topology.hosts["open"].limits.disk == 2 << 30
    for value, expected in (("lots", "hosts.open.limits.disk: expected a size such as 256m or 1g, got 'lots'"),
                            ("1m", "hosts.open.limits.disk: expected from 64m to 1024g")):
        with pytest.raises(LabFileError, match=expected):
            read_lab(write_lab(LAB.replace("open: {networks: [inner, outer]}",
                                           f"open: {{networks: [inner, outer], limits: {{disk: {value}}}}}")))


class FakeEngine:
    """The engine's info, and a trial creation that the storage driver takes or refuses."""

    def __init__(self, driver: str, backing: str, quota: bool = False):
        self.driver, self.backing, self.quota = driver, backing, quota
        self.api = self
        self.created: list[dict] = []
        self.removed: list[str] = []

    def info(self) -> dict:
        return {"Driver": self.driver, "DriverStatus": [["Backing Filesystem", self.backing]]}

    def create_host_config(self, **options) -> dict:
        return options

    def create_container(self, image: str, command: list[str], labels: dict, host_config: dict) -> dict:
        if not self.quota:
            raise docker.errors.APIError("--storage-opt is supported only for overlay over xfs with 'pquota'")
        self.created.append(host_config)
        return {"Id": "trial"}

    def remove_container(self, identifier: str, force: bool) -> None:
        self.removed.append(identifier)


def test_disk_is_bounded_only_where_the_storage_driver_can():
    assert disk_quota(FakeEngine("overlay2", "extfs"), "img") == (False, "overlay2 on extfs")
    assert disk_quota(FakeEngine("btrfs", "btrfs"), "img") == (True, "btrfs on btrfs")
    assert disk_quota(FakeEngine("overlay2", "xfs"), "img") == (False, "overlay2 on xfs without pquota")
    engine = FakeEngine("overlay2", "xfs", quota=True)
    assert disk_quota(engine, "img") == (True, "overlay2 on xfs with pquota")
    assert engine.created == [{"storage_opt": {"size": "64m"}}] and engine.removed == ["trial"]


def test_only_hosts_get_a_disk_size_and_only_where_it_is_bounded(write_lab, tmp_path):
    topology, document = rendered(write_lab, tmp_path)
    deployment = Deployment(FakeEngine("overlay2", "extfs"), topology, document, Path("."), print, 10,
                            run=lambda *_: None, failure=lambda _: "")
    assert deployment._disk("shut") is None          # not until the engine said it can
    deployment.sized_disks = True
    assert deployment._disk("shut") == {"size": str(1 << 30)}
    assert deployment._disk("lc-net-shut") is None and deployment._disk(FABRIC_SERVICE) is None
    assert document["services"]["shut"]["labels"][ROLE_LABEL] == "host"


class FakeContainers:
    """The engine's containers as ContainerEngine creates its helpers: what each was given."""

    def __init__(self):
        self.created: list[dict] = []

    def get(self, name: str):
        raise docker.errors.NotFound(name)

    def create(self, image: str, command: list[str], **options):
        self.created.append({"command": command, **options})
        return FakeContainer()


class FakeContainer:
    id = "helper"
    status = "exited"

    def start(self) -> None:
        pass

    def wait(self, timeout: float) -> dict:
        return {"StatusCode": 0}

    def logs(self, **_options) -> bytes:
        return b"listening\n"

    def reload(self) -> None:
        pass

    def remove(self, force: bool) -> None:
        pass


def test_every_helper_an_engine_starts_itself_is_capped(write_lab, monkeypatch):
    """On a Swarm every helper is started this way, on its host's machine."""
    topology = read_lab(write_lab(LAB)).topology
    client = type("Client", (), {"containers": FakeContainers(), "api": None})()
    engine = ContainerEngine(client)
    engine.run_in_namespace(topology, None, "img", ["python3", program("netadmin"), "fabric-del", "labctl:iso"])
    engine.start_helper(topology, None, "img", ["python3", program("netadmin"), "capture", "any", "/tmp/c", "5"],
                        ["NET_ADMIN"], "listening")
    engine.run_in_namespace(topology, None, "img", ["python3", "-E", "-s", "-S", program("probe"), "W10="])
    monkeypatch.setattr(engine, "_namespace", lambda *_: "container:shut")   # no host to look up here
    engine.start_sidecar(topology, "shut", "net", "img", ["python3", program("shaper"), "{}"], {})
    capped = [(c["mem_limit"], c["memswap_limit"], c["pids_limit"]) for c in client.containers.created]
    assert capped == [(HELPER_MEMORY, HELPER_MEMORY, HELPER_PIDS), (HELPER_MEMORY, HELPER_MEMORY, HELPER_PIDS),
                      (PROBE_MEMORY, PROBE_MEMORY, PROBE_PIDS), (SIDECAR_MEMORY, SIDECAR_MEMORY, SIDECAR_PIDS)]


def test_the_refusal_goes_in_as_one_transaction_that_a_second_run_does_not_double():
    first = netadmin.replacement("-P OUTPUT ACCEPT\n", {"OUTPUT": netadmin.embedded_dns_rules(),
                                                        "INPUT": [netadmin.embedded_dns_input_rule()]},
                                 netadmin.DNS_COMMENT)
    lines = first.splitlines()
    assert lines[0] == "*filter" and lines[-1] == "COMMIT"
    assert [line.split()[:3] for line in lines[1:-1]] == [["-I", "OUTPUT", "1"], ["-I", "OUTPUT", "2"],
                                                        ["-I", "INPUT", "1"]]
    # What iptables -S shows once they stand (the comment quoted) is taken out first.
    listing = "\n".join(["-P INPUT ACCEPT",
                         '-A INPUT -d 127.0.0.11/32 -m comment --comment "labctl:embedded-dns-refused" -j DROP',
                         '-A INPUT -s 10.0.0.1/32 -m comment --comment "someone-else" -j DROP',
                         '-A OUTPUT -d 127.0.0.11/32 -m comment --comment "labctl:embedded-dns-refused" '
                         "-j REJECT --reject-with icmp-port-unreachable"])
    again = netadmin.replacement(listing, {"INPUT": [netadmin.embedded_dns_input_rule()]}, netadmin.DNS_COMMENT)
    assert again.splitlines()[1:-1] == [
        "-D INPUT -d 127.0.0.11/32 -m comment --comment labctl:embedded-dns-refused -j DROP",
        "-I INPUT 1 -d 127.0.0.11/32 -m comment --comment labctl:embedded-dns-refused -j DROP"]


def test_the_admin_helper_enters_no_namespace_but_the_named_container_s(tmp_path):
    """A process id is entered only when its control group is the named container's: not
    this process (in no container of that id), not a process that is gone, not a bad id."""
    with pytest.raises(SystemExit, match="is not container"):
        netadmin.enter_namespace(os.getpid(), "ab" * 32)
    gone = subprocess.Popen(["true"])
    gone.wait()
    with pytest.raises(SystemExit, match="is gone"):
        netadmin.enter_namespace(gone.pid, "ab" * 32)
    with pytest.raises(SystemExit, match="not a container id"):
        netadmin.enter_namespace(os.getpid(), "../../x")


def test_a_process_start_time_is_read_past_a_command_name_that_holds_parentheses():
    # The 22nd field, counted after the command name however odd the name.
    assert netadmin.start_time(os.getpid()).isdigit()
    assert netadmin.start_time(os.getpid()) == netadmin.start_time(os.getpid())


def test_tentative_addresses_are_read_from_the_namespace_s_own_table(monkeypatch, tmp_path):
    table = tmp_path / "if_inet6"
    table.write_text("fe800000000000000000000000000001 02 40 20 80     eth0\n"
                     "00000000000000000000000000000001 01 80 10 80       lo\n")
    real_open = open
    monkeypatch.setattr(netadmin, "open", lambda path, *a, **k: real_open(table if path == "/proc/self/net/if_inet6"
                                                                         else path, *a, **k), raising=False)
    assert not netadmin.tentative()
    table.write_text("fe800000000000000000000000000001 02 40 20 c0     eth0\n")
    assert netadmin.tentative()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving up capabilities needs some to give up (run as root)")
def test_a_probe_run_from_the_admin_helper_keeps_only_a_probe_s_capabilities_and_sees_no_process():
    """The probe runs as root from a helper that holds SYS_ADMIN and sees the machine's
    processes: it must keep NET_RAW and NET_BIND_SERVICE only (root's exec would take back
    whatever the bounding set still held) and be alone in its process table."""
    kept = (1 << 10) | (1 << 13)
    shown = "import os; print(os.getpid()); print(open('/proc/self/status').read())"
    program = (f"import sys; sys.path.insert(0, {str(REPO / 'services')!r}); import netadmin; "
               f"sys.exit(netadmin.run_alone([sys.executable, '-c', {shown!r}], 30))")
    said = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout
    lines = said.splitlines()

    def field(name: str) -> int:
        return next(int(line.split()[1], 16) for line in lines if line.startswith(name + ":"))
    assert lines[0] == "1"
    assert field("CapEff") == field("CapPrm") == field("CapBnd") == kept
    assert field("CapInh") == field("CapAmb") == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="a process table of its own needs root")
def test_a_probe_held_up_is_killed_alone_and_a_host_not_entered_is_its_own_failure(tmp_path):
    """One host's probe that never ends costs that host its checks, within its bound, and
    a process that is not the named container's is refused, not entered: each job has its
    own status, the other jobs theirs."""
    program = (f"import sys; sys.path.insert(0, {str(REPO / 'services')!r}); import netadmin; "
               "sys.exit(netadmin.run_alone(['/bin/sleep', '30'], 0.3))")
    assert subprocess.run([sys.executable, "-c", program], timeout=20).returncode == netadmin.TIMED_OUT
    (tmp_path / "0").mkdir()
    (tmp_path / "1").mkdir()
    (tmp_path / "jobs.json").write_text(json.dumps(
        [{"host": "a", "pid": os.getpid(), "container": "ab" * 32, "seconds": 5},
         {"host": "b", "pid": 999999999, "container": "cd" * 32, "seconds": 5}]))
    said = subprocess.run([sys.executable, str(REPO / "services" / "netadmin.py"), "probe", str(tmp_path)],
                          capture_output=True, text=True, timeout=20)
    assert json.loads(said.stdout.splitlines()[-1]) == {"0": 1, "1": 1}
    assert "is not container abababababab's" in (tmp_path / "0" / "err").read_text()
    assert "is gone" in (tmp_path / "1" / "err").read_text()
    assert (tmp_path / "0" / "out").read_text() == ""


def test_the_probe_reads_its_batch_from_a_file_and_its_credentials_from_the_folder_named(tmp_path):
    probe = load_service("probe")
    batch = tmp_path / "spec"
    batch.write_text(base64.b64encode(b"[]").decode())
    said = subprocess.run([sys.executable, "-E", "-s", "-S", str(REPO / "services" / "probe.py"),
                           "--pki", str(tmp_path / "pki"), f"@{batch}"], capture_output=True, text=True)
    assert said.returncode == 0 and json.loads(said.stdout) == []
    assert probe.PKI == "/opt/labctl/pki"   # unless told
    probe.main(["probe.py", "--pki", str(tmp_path / "pki"), base64.b64encode(b"[]").decode()])
    assert probe.PKI == str(tmp_path / "pki")


def load_service(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", REPO / "services" / f"{name}.py",
                                                  submodule_search_locations=None)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "services"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "services"))
    return module
