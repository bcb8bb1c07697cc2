"""`labctl ls` lists the labs on the engine from any folder, by their labels; `labctl down
NAME` removes a lab whose folder is gone, from any folder, and nothing of any other lab;
a name nothing carries is refused in one line."""

from __future__ import annotations

import json
import shutil

from labctl.names import LAB_LABEL
from labctl.ops import lifecycle

from .conftest import leftovers, load, quiet, run_cli

NAME = "itest-lsdown"
LAB = f"""\
name: {NAME}
networks:
  net: {{subnet: 10.251.0.0/24}}
hosts:
  server: {{networks: [net], services: [{{tcp-echo: {{port: 7}}}}]}}
  client: {{networks: [net]}}
"""


def rows(listed) -> dict[str, list[str]]:
    assert listed.returncode == 0, listed.stderr
    return {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}


def test_ls_finds_a_lab_and_down_removes_it_by_name_once_its_folder_is_gone(engine, image, tmp_path):
    folder, elsewhere = tmp_path / "lab", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "lab.yaml").write_text(LAB)
    topology = load(folder / "lab.yaml").topology
    # Another lab's resource, which removing this one must leave alone.
    bystander = engine.client.networks.create(f"{NAME}-bystander", labels={LAB_LABEL: f"{NAME}-other"})
    try:
        up = run_cli("up", cwd=folder)
        assert up.returncode == 0, up.stderr
        row = rows(run_cli("ls", cwd=elsewhere))[NAME]
        assert row[1:4] == [str(folder), "compose", "2/2"] and row[4][-1] in "smhd"
        entry = next(item for item in json.loads(run_cli("ls", "--json", cwd=elsewhere).stdout)
                     if item["name"] == NAME)
        assert (entry["folder"], entry["engine"], entry["hosts"]) == (str(folder), "compose", {"ready": 2, "total": 2})
        assert 0 <= entry["age_seconds"] < 600
        assert rows(run_cli("ls", cwd=elsewhere))[f"{NAME}-other"][3] == "0/0"   # labelled, so listed

        shutil.rmtree(folder)
        down = run_cli("down", NAME, cwd=elsewhere)
        assert down.returncode == 0, down.stderr
        assert f"lab '{NAME}' is down: removed " in down.stderr
        assert leftovers(engine, topology, image) == {}
        assert engine.client.networks.get(bystander.id).attrs["Labels"][LAB_LABEL] == f"{NAME}-other"
        assert NAME not in rows(run_cli("ls", cwd=elsewhere))

        again = run_cli("down", NAME, cwd=elsewhere)
        assert again.returncode == 2 and again.stdout == ""
        assert again.stderr == (f"labctl: error: no lab named '{NAME}' on the compose engine: nothing there "
                                "carries that name ('labctl ls' lists the labs there)\n")
    finally:
        lifecycle.down(topology, engine, quiet)
        bystander.remove()
