"""A Swarm is given each image by its id: its agent tries a registry for every image named
by a tag, even one the machine holds, and where none answers each task waits seconds for
the try (60 hosts took 258 s to start on three machines, one task every 10 s on each)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import yaml

from labctl.engines.swarm import SwarmEngine

HOST_ID = "sha256:" + "ab" * 32
OTHER_ID = "sha256:" + "cd" * 32


def test_the_deployed_stack_names_images_by_id_and_keeps_the_rest(tmp_path: Path):
    asked: list[str] = []

    def inspect_image(tag: str) -> dict:
        asked.append(tag)
        return {"Id": {"labctl-host:1": HOST_ID, "nginx:1": OTHER_ID}[tag]}

    engine = SimpleNamespace(image_client=SimpleNamespace(api=SimpleNamespace(inspect_image=inspect_image)))
    stack = {"services": {"a": {"image": "labctl-host:1", "command": ["sh", "-c", "echo $$HOME"]},
                          "b": {"image": "labctl-host:1"}, "c": {"image": "nginx:1"},
                          "d": {"image": OTHER_ID}},
             "networks": {"lan": {"driver": "overlay"}}, "x-labctl-helpers": {"h": {"image": "labctl-host:1"}}}
    document = tmp_path / "compose" / "lab.stack.yaml"
    document.parent.mkdir()
    document.write_text(yaml.safe_dump(stack))
    deployed = SwarmEngine._by_id(engine, document)  # type: ignore[arg-type]
    assert deployed.parent == document.parent, "beside it: relative paths stay found"
    written = yaml.safe_load(deployed.read_text())
    assert {name: service["image"] for name, service in written["services"].items()} == \
        {"a": HOST_ID, "b": HOST_ID, "c": OTHER_ID, "d": OTHER_ID}
    assert sorted(asked) == ["labctl-host:1", "nginx:1"], "each tag asked once"
    # Everything else is as rendered: a `$$` escape, the networks, the helpers' own images
    # (run with `docker run` on each machine, which does not pull what it holds).
    assert written["services"]["a"]["command"] == ["sh", "-c", "echo $$HOME"]
    assert written["networks"] == stack["networks"]
    assert written["x-labctl-helpers"] == stack["x-labctl-helpers"]
    assert yaml.safe_load(document.read_text()) == stack, "the rendered file is left as it was"
