"""Swarm and remote engines without either: what a stack cannot express is refused at
validate time with the alternative; the stack file says overlays, dnsrr, placement,
configs and secrets; an engine on another machine gets copies, not bind mounts; the
cluster file reads like a lab file; captures from several interfaces merge."""

from __future__ import annotations

import ipaddress
import json
import struct

import pytest
import yaml

from labctl.checks.pcap import merge_pcaps, read_pcap
from labctl.engines.cluster import load_cluster
from labctl.engines.factory import read_lab
from labctl.engines.kinds import EngineChoice
from labctl.errors import LabFileError
from labctl.model.shaping import LiveState
from labctl.names import MACHINE_LABEL, SECRET_SOURCE, compose_path, stack_path
from labctl.render.compose import KEYS_KEY, render, write_compose
from labctl.render.pki import ensure_pki
from labctl.render.stack import HELPERS_KEY, render_stack

from ..conftest import REPO, without_ipv6

SWARM_LAB = """
name: s
engine: swarm
networks:
  lan: {subnet: 10.1.1.0/24}
  dmz: {subnet: 10.1.2.0/24, encrypted: true}
hosts:
  gw: {networks: [lan, dmz], router: true, placement: m1}
  web:
    networks: [dmz]
    placement: {zone: b}
    services: [{http: {port: 8080}}]
  alice: {networks: [lan]}
"""


def swarm_error(write_lab, text: str) -> str:
    path = write_lab(text)
    with pytest.raises(LabFileError) as caught:
        read_lab(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


@pytest.mark.parametrize("change, line, key, words", [
    (("networks: [dmz]\n    placement", "networks: {dmz: 10.1.2.10}\n    placement"), 9,
     "hosts.web.networks.dmz", "static address (10.1.2.10) is not available on Swarm"),
    (("alice: {networks: [lan]}", "alice: {networks: [lan], build: .}"), 12,
     "hosts.alice.build", "build is not available on Swarm"),
    (("alice: {networks: [lan]}", "alice: {networks: [lan], routes: [{to: 10.9.0.0/16, via: 10.1.1.9}]}"), 12,
     "hosts.alice.routes", "mark the gateway host 'router: true'"),
    (("alice: {networks: [lan]}", "alice: {networks: [lan], files: ['lab.yaml:/x:rw']}"), 12,
     "hosts.alice.files[0]", "drop ':rw'"),
])
def test_what_a_stack_cannot_express_is_refused_with_the_alternative(write_lab, change, line, key, words):
    message = swarm_error(write_lab, SWARM_LAB.replace(*change))
    assert f":{line}: {key}:" in message and words in message


def test_the_same_file_runs_on_compose_and_an_engine_flag_overrides_the_file(write_lab):
    static = SWARM_LAB.replace("engine: swarm\n", "").replace("networks: [dmz]\n    placement",
                                                              "networks: {dmz: 10.1.2.10}\n    placement")
    assert read_lab(write_lab(static)).topology.engine == "compose"
    with pytest.raises(LabFileError, match="not available on Swarm"):
        read_lab(write_lab(static), EngineChoice(kind="swarm"))
    # The default lab is dual stack: a Swarm refuses it, naming why; its IPv4 part runs there.
    with pytest.raises(LabFileError, match=r"networks\.lan\.subnet6: IPv6 is not available on Swarm: .*moby #43615"):
        read_lab(REPO / "lab.yaml", EngineChoice(kind="swarm"))
    ipv4 = read_lab(write_lab(without_ipv6((REPO / "lab.yaml").read_text())), EngineChoice(kind="swarm"))
    assert ipv4.topology.engine == "swarm" and len(ipv4.checks) == len(read_lab(REPO / "lab.yaml").checks) - 1


def test_bad_engine_and_placement_name_the_key(write_lab):
    assert "engine: expected one of compose, swarm" in swarm_error(write_lab, SWARM_LAB.replace("engine: swarm", "engine: k8s"))
    assert "hosts.gw.placement: expected a machine name" in swarm_error(
        write_lab, SWARM_LAB.replace("placement: m1", "placement: [m1]"))


def test_stack_has_overlays_dnsrr_placement_and_no_addresses(write_lab):
    topology = read_lab(write_lab(SWARM_LAB)).topology
    pki = ensure_pki(topology, topology.state_folder / "pki")
    stack = render_stack(topology, "labctl-host:x", pki, stack_path(topology))
    lan, dmz = stack["networks"]["lan"], stack["networks"]["dmz"]
    assert lan["driver"] == "overlay" and lan["attachable"] and lan["internal"]
    assert "driver_opts" not in lan and dmz["driver_opts"] == {"encrypted": ""}
    assert lan["ipam"]["config"] == [{"subnet": "10.1.1.0/24"}]
    gw, web, alice = (stack["services"][name] for name in ("gw", "web", "alice"))
    assert all(s["deploy"]["endpoint_mode"] == "dnsrr" for s in (gw, web, alice))
    assert gw["deploy"]["placement"]["constraints"] == [f"node.labels.{MACHINE_LABEL} == m1"]
    assert web["deploy"]["placement"]["constraints"] == ["node.labels.zone == b"]
    assert "placement" not in alice["deploy"]
    assert gw["networks"] == ["lan", "dmz"] and "ipv4_address" not in yaml.safe_dump(stack)
    assert gw["sysctls"] == {"net.ipv4.ip_forward": 1}
    # Files travel as configs, the key as a secret, each named by its content.
    targets = {c["target"] for c in web["configs"]}
    assert targets == {"/opt/labctl/pki/ca.pem", "/opt/labctl/pki/untrusted-ca.pem", "/opt/labctl/pki/host.pem"}
    assert web["secrets"][0]["target"] == "/opt/labctl/pki/host.key" and web["secrets"][0]["mode"] == 0o400
    assert stack["secrets"]["web-key"]["name"].startswith("lab-s-web-key-")
    # Routes name their router: its address is known only once the lab runs.
    routes = stack[HELPERS_KEY]["lc-routes-alice"]
    assert routes["host"] == "alice" and routes["command"][-1] == "10.1.2.0/24=gw"


def test_cluster_file_reads_like_a_lab_file(tmp_path):
    key = tmp_path / "id"
    key.write_text("x")
    (tmp_path / "known_hosts").write_text("")
    good = tmp_path / "cluster.yaml"
    good.write_text("known_hosts: known_hosts\nmachines:\n"
                    "  m1: {ssh: root@192.0.2.11, key: id, labels: {zone: a}}\n"
                    "  m2: {ssh: 'ssh://u@192.0.2.12:2222'}\n")
    cluster = load_cluster(good)
    assert cluster.manager.name == "m1" and cluster.manager.labels == {"zone": "a"}
    m2 = cluster.machines["m2"].target
    assert (m2.user, m2.host, m2.port, m2.known_hosts_name) == ("u", "192.0.2.12", 2222, "[192.0.2.12]:2222")
    bad = tmp_path / "bad.yaml"
    bad.write_text("machines:\n  m1: {ssh: root@192.0.2.11, key: missing}\n")
    with pytest.raises(LabFileError, match=r"bad.yaml:2: machines.m1.key: no such key file"):
        load_cluster(bad)
    bad.write_text("machines:\n  m1: {ssh: root@192.0.2.11, port: 22}\n")
    with pytest.raises(LabFileError, match=r"machines.m1.port: unknown key 'port'"):
        load_cluster(bad)


def _pcap(*frames: tuple[float, bytes]) -> bytes:
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for stamp, frame in frames:
        data += struct.pack("<IIII", int(stamp), int(stamp % 1 * 1e6), len(frame), len(frame)) + frame
    return data


def _udp_frame(source_port: int) -> bytes:
    ip = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    return b"\x00" * 12 + b"\x08\x00" + ip + struct.pack("!HHHH", source_port, 7, 8, 0)


def test_merged_captures_are_in_time_order_and_a_frame_seen_twice_counts_once():
    first = _pcap((10.0, _udp_frame(1000)), (10.3, _udp_frame(1002)))
    second = _pcap((10.1, _udp_frame(1001)), (10.3001, _udp_frame(1002)), (12.0, _udp_frame(1000)))
    ports = [packet.source_port for packet in read_pcap(merge_pcaps([first, second]))]
    assert ports == [1000, 1001, 1002, 1000]


COPIED_LAB = """
name: c
networks:
  lan: {subnet: 10.1.1.0/24}
hosts:
  server:
    networks: [lan]
    files: ["./exercise:/exercise", "./notes.txt:/notes.txt"]
  client: {networks: [lan]}
"""


def test_an_engine_elsewhere_gets_files_as_copies_and_keys_stay_out_of_the_document(write_lab, tmp_path):
    path = write_lab(COPIED_LAB)
    (tmp_path / "exercise" / "lib").mkdir(parents=True)
    (tmp_path / "exercise" / "server.py").write_text("print('hi')\n")
    (tmp_path / "exercise" / "server.py").chmod(0o755)
    (tmp_path / "exercise" / "lib" / "util.py").write_text("X = 1\n")
    (tmp_path / "notes.txt").write_text("notes\n")
    topology = read_lab(path).topology
    pki = ensure_pki(topology, topology.state_folder / "pki")
    document = render(topology, "labctl-host:x", pki, compose_path(topology), copies_files=True)
    server = document["services"]["server"]
    assert "volumes" not in server
    targets = {c["target"]: c for c in server["configs"]}
    assert set(targets) == {"/opt/labctl/pki/ca.pem", "/opt/labctl/pki/untrusted-ca.pem",
                            "/opt/labctl/pki/host.pem", "/exercise/server.py", "/exercise/lib/util.py",
                            "/notes.txt"}
    assert targets["/exercise/server.py"]["mode"] == 0o555 and targets["/notes.txt"]["mode"] == 0o444
    assert document["configs"][targets["/exercise/lib/util.py"]["source"]]["content"] == "X = 1\n"
    # The key stays in labctl's own file; labctl copies it into the created container, so it
    # passes neither through the document nor through Compose's environment.
    output = compose_path(topology)
    write_compose(document, output, path)
    assert "PRIVATE KEY" not in output.read_text()
    assert "secrets" not in server and "secrets" not in document
    keys = document[KEYS_KEY]["server"]
    assert [(k["target"], k["mode"]) for k in keys] == [("/opt/labctl/pki/host.key", 0o400)]
    assert (output.parent / keys[0][SECRET_SOURCE]).resolve() == pki.host("server").key.resolve()
    # On this machine's engine the same lab bind-mounts them.
    local = render(topology, "labctl-host:x", pki, compose_path(topology))
    assert "configs" not in local and any(v.endswith(":/exercise:ro") for v in local["services"]["server"]["volumes"])


def test_a_stack_copies_every_file_of_a_directory_and_writable_files_are_refused(write_lab, tmp_path):
    path = write_lab(COPIED_LAB.replace("name: c", "name: c\nengine: swarm"))
    (tmp_path / "exercise").mkdir()
    (tmp_path / "exercise" / "server.py").write_text("print('hi')\n")
    (tmp_path / "notes.txt").write_text("notes\n")
    topology = read_lab(path).topology
    stack = render_stack(topology, "labctl-host:x", ensure_pki(topology, topology.state_folder / "pki"),
                         stack_path(topology))
    assert "/exercise/server.py" in {c["target"] for c in stack["services"]["server"]["configs"]}
    writable = write_lab(COPIED_LAB.replace("./notes.txt:/notes.txt", "./notes.txt:/notes.txt:rw"), "rw.yaml")
    with pytest.raises(LabFileError, match=r"rw.yaml:7: hosts.server.files\[1\]: writable files are not "
                                           r"available on an engine over SSH"):
        read_lab(writable, EngineChoice(address="ssh://root@192.0.2.1", address_named=True))


def test_stack_sidecars_appear_once_the_swarms_addresses_are_known(write_lab):
    topology = read_lab(write_lab(SWARM_LAB + "impairments:\n  web:dmz: {delay: 40ms}\n")).topology
    pki = ensure_pki(topology, topology.state_folder / "pki")
    assert "lc-net-web" not in render_stack(topology, "i", pki, stack_path(topology))[HELPERS_KEY]
    topology.hosts["web"].attachments[0].address = ipaddress.IPv4Address("10.1.2.77")
    helper = render_stack(topology, "i", pki, stack_path(topology), LiveState())[HELPERS_KEY]["lc-net-web"]
    spec = json.loads(helper["command"][-1])
    assert helper["role"] == "net" and helper["host"] == "web"
    assert spec["interfaces"] == [{"address": "10.1.2.77", "network": "dmz", "delay": 0.04}]
