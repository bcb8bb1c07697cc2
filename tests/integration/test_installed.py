"""Installed is the product: a wheel built from the checkout, installed into a fresh virtual
environment outside it, runs labs from a folder that is not the checkout: `labctl up`,
`check`, `pytest lab.yaml` and the `lab` fixture in someone else's project, a lab with a
`build:` host and `files:`, and `down`, leaving nothing behind and writing nothing into
site-packages. The wheel carries its licence and type marker, says its version once, and
its pytest plugin costs a project with no lab nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from email.parser import HeaderParser
from xml.etree import ElementTree
from pathlib import Path

import pytest

from labctl.assets import host_tag
from labctl.engines.factory import read_lab
from labctl.testing import worker_instance

from ..conftest import REPO
from .conftest import default_lab_copy, leftovers

pytestmark = pytest.mark.integration

NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                    ".pytest_cache", ".labctl")


def run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("LABCTL_", "PYTEST_", "VIRTUAL_ENV"))}
    env["PATH"] = f"{Path(argv[0]).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    return result


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.args}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory, engine) -> Path:
    """The bin folder of a fresh environment holding only the wheel and its dependencies."""
    root = tmp_path_factory.mktemp("installed")
    source = root / "source"
    # A copy of the checkout's files (no build debris, no rendered labs), so the wheel holds
    # exactly what the repository does.
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    ok(run([sys.executable, "-m", "build", "--wheel", "--outdir", str(root / "dist"), str(source)], root))
    venv.create(root / "env", with_pip=True)
    bin_folder = root / "env" / "bin"
    # With both extras, as the tests below use them: graph draws the SVG, and ssh puts
    # paramiko within the plugin's reach, so its not being imported means something.
    ok(run([str(bin_folder / "pip"), "install", "--quiet", f"{wheel_of(bin_folder)}[ssh,graph]", "pytest", "pytest-xdist"], root))
    # As a user would: doctor --install fetches Compose into this environment; the engine
    # and the image bootstrapper are there already.
    ok(run([str(bin_folder / "labctl"), "doctor", "--install", "--quiet"], root))
    return bin_folder


def wheel_of(bin_folder: Path) -> Path:
    """The wheel the `installed` fixture built, beside its environment."""
    [wheel] = (bin_folder.parent.parent / "dist").glob("labctl_net-*.whl")
    return wheel


def site_packages(bin_folder: Path) -> set[str]:
    """What the environment holds, bytecode caches aside."""
    [found] = (bin_folder.parent / "lib").glob("python3*/site-packages")
    return {str(path.relative_to(found)) for path in found.rglob("*") if "__pycache__" not in path.parts}


def installed_metadata(bin_folder: Path) -> dict[str, str]:
    """The installed distribution's METADATA headers (the last of a repeated one)."""
    [found] = (bin_folder.parent / "lib").glob("python3*/site-packages/labctl_net-*.dist-info/METADATA")
    return dict(HeaderParser().parsestr(found.read_text()).items())


def test_the_wheel_says_its_version_and_licence_and_ships_its_type_marker(installed, tmp_path):
    metadata = installed_metadata(installed)
    assert metadata["Name"] == "labctl-net" and metadata["Version"]
    version = ok(run([str(installed / "labctl"), "--version"], tmp_path)).stdout
    assert version == f"labctl {metadata['Version']}\n"
    assert metadata.get("License-Expression") == "Apache-2.0"
    with zipfile.ZipFile(wheel_of(installed)) as wheel:
        names = wheel.namelist()
        assert "labctl/py.typed" in names
        [licence] = [name for name in names if name.endswith(".dist-info/licenses/LICENSE")]
        text = wheel.read(licence).decode()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "labctl contributors" in text


# A project with no lab: the plugin is loaded (pytest11) and must import neither the Docker
# client nor paramiko, which its environment holds.
NO_LAB_TEST = """\
import sys

def test_the_plugin_is_there_and_costs_nothing(request):
    assert request.config.pluginmanager.has_plugin("labctl")
    heavy = sorted(name for name in ("docker", "paramiko") if name in sys.modules)
    assert not heavy, f"imported without a lab: {heavy}"
"""


def test_the_plugin_imports_no_engine_client_in_a_project_with_no_lab(installed, tmp_path):
    ok(run([str(installed / "python"), "-c", "import docker, paramiko"], tmp_path))   # both are there
    (tmp_path / "test_plain.py").write_text(NO_LAB_TEST)
    tested = run([str(installed / "pytest"), "-p", "no:cacheprovider", "test_plain.py"], tmp_path)
    assert tested.returncode == 0 and "1 passed" in tested.stdout, tested.stdout[-3000:] + tested.stderr[-3000:]


def test_the_wheel_runs_the_default_lab_from_any_folder(installed, engine, image, tmp_path):
    labctl = str(installed / "labctl")
    lab_file = default_lab_copy(tmp_path, "wheel-campus", 77)
    assert "labctl/_data/services" in ok(run([str(installed / "python"), "-c",
                                              "import labctl.assets as a; print(a.folder('services'))"],
                                             tmp_path)).stdout
    topology = read_lab(lab_file).topology
    installed_files = site_packages(installed)
    try:
        ok(run([labctl, "validate", "lab.yaml"], tmp_path))
        ok(run([labctl, "up"], tmp_path))
        checked = ok(run([labctl, "check", "--report", "report.html"], tmp_path))
        assert "13 passed, 0 failed" in checked.stdout, checked.stdout
        assert "13 of 13 points" in (tmp_path / "report.html").read_text()
        ok(run([labctl, "graph", "--status", "-o", "lab.svg"], tmp_path))
        assert (tmp_path / "lab.svg").read_text().count('class="node host"') == len(topology.hosts)
        # someone else's project: the lab file as test items, the `lab` fixture, and a
        # session-scoped fixture of theirs that uses it
        (tmp_path / "conftest.py").write_text(
            "import pytest\n\n"
            "@pytest.fixture(scope='session')\n"
            "def greeted(lab):\n"
            "    assert lab.exec('alice', 'echo hi > /tmp/greeted').exit_code == 0\n"
            "    return lab\n")
        (tmp_path / "test_mine.py").write_text(
            "def test_echo_from_my_suite(lab, greeted):\n"
            "    assert greeted is lab\n"
            "    result = lab.check('tcp echo')\n"
            "    assert result.passed, result.reason\n"
            "    assert lab.transcript('echo')\n"
            "    assert lab.exec('alice', 'cat /tmp/greeted').stdout == b'hi\\n'\n")
        tested = run([str(installed / "pytest"), "-p", "no:cacheprovider", "lab.yaml", "test_mine.py"],
                     tmp_path)
        assert tested.returncode == 0 and "14 passed" in tested.stdout, tested.stdout[-3000:]
        assert (tmp_path / "compose" / "wheel-campus.yaml").is_file()
        assert (tmp_path / ".labctl" / "wheel-campus" / "pki" / "ca.pem").is_file()
        # from another folder: the running lab is listed, and taken down by its name
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        listed = ok(run([labctl, "ls"], elsewhere))
        assert "wheel-campus" in listed.stdout and str(tmp_path) in listed.stdout, listed.stdout
        down = run([labctl, "down", "wheel-campus"], elsewhere)
    finally:
        if leftovers(engine, topology, image):
            down = run([labctl, "down"], tmp_path)
    ok(down)
    assert leftovers(engine, topology, image) == {}
    assert site_packages(installed) == installed_files   # rendered files and state went beside the lab


BUILT_LAB = """
name: wheel-built
networks:
  net: {{subnet: 10.78.1.0/24}}
hosts:
  greeter:
    networks: {{net: 10.78.1.10}}
    build: ./greeter
    files: ["./greeting.txt:/etc/greeting.txt"]
    ready: {{tcp: 9100}}
  visitor: {{networks: [net]}}
checks:
  - name: the built server greets with the mounted file
    from: visitor
    to: greeter:9100
    tcp: {{send: "ada\\n", expect: "hello from the lab, ada\\n"}}
    server: false
"""

GREETER = """\
import socket
server = socket.create_server(("", 9100))
greeting = open("/etc/greeting.txt").read().strip()
while True:
    conn, _ = server.accept()
    with conn:
        name = conn.makefile().readline().strip()
        conn.sendall(f"{greeting}, {name}\\n".encode())
"""


def test_a_lab_folder_with_a_build_host_and_files(installed, engine, image, tmp_path):
    labctl = str(installed / "labctl")
    (tmp_path / "greeter").mkdir()
    (tmp_path / "greeter" / "Dockerfile").write_text(
        f"FROM {host_tag()}\nCOPY greeter.py /srv/greeter.py\nCMD [\"python3\", \"-u\", \"/srv/greeter.py\"]\n")
    (tmp_path / "greeter" / "greeter.py").write_text(GREETER)
    (tmp_path / "greeting.txt").write_text("hello from the lab\n")
    (tmp_path / "lab.yaml").write_text(BUILT_LAB.format())
    topology = read_lab(tmp_path / "lab.yaml").topology
    try:
        ok(run([labctl, "up"], tmp_path))
        checked = ok(run([labctl, "check"], tmp_path))
        assert "1 passed, 0 failed" in checked.stdout
    finally:
        down = run([labctl, "down"], tmp_path)
    ok(down)
    assert "1 built image" in down.stderr
    assert leftovers(engine, topology, image) == {}


XDIST_LAB = """
name: wheel-xdist
networks:
  lan: {subnet: 10.79.1.0/24}
hosts:
  alice: {networks: [lan]}
  echo: {networks: [lan], services: [{tcp-echo: {port: 7}}]}
checks:
  - {name: tcp echo, from: alice, to: echo:7, tcp: {send: "a\\n", expect: "a\\n"}}
  - {name: tcp echo again, from: alice, to: echo:7, tcp: {send: "b\\n", expect: "b\\n"}}
"""


def test_the_wheel_gives_each_xdist_worker_its_own_lab(installed, engine, image, tmp_path):
    (tmp_path / "lab.yaml").write_text(XDIST_LAB)
    tested = run([str(installed / "pytest"), "-p", "no:cacheprovider", "-n", "2", "lab.yaml",
                  "--junitxml", "report.xml"], tmp_path)
    assert tested.returncode == 0 and "2 passed" in tested.stdout, tested.stdout[-3000:] + tested.stderr[-3000:]
    # each worker brought up, checked and took down an instance of its own
    cases = ElementTree.parse(tmp_path / "report.xml").getroot().iter("testcase")
    ran_on = {prop.get("value") for case in cases for prop in case.iter("property") if prop.get("name") == "lab"}
    assert ran_on == {"wheel-xdist-gw0", "wheel-xdist-gw1"}
    for worker in ("gw0", "gw1"):
        instance = read_lab(tmp_path / "lab.yaml")
        worker_instance(instance, worker)
        assert leftovers(engine, instance.topology, image) == {}
