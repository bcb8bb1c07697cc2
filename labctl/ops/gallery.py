"""`labctl init`: a working lab folder from the gallery. Each exercise is a folder of the
packaged gallery (lab.yaml, README.md, the reference solution in submission/, a broken one
in broken/); `campus` is the default lab."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.abc import Traversable
from pathlib import Path

from ..assets import folder
from ..errors import LabError
from ..files import write_file
from ..labfile.schema import MODELINE, SCHEMA_ID, lab_schema

DEFAULT = "campus"
SKIPPED = {"compose", ".labctl", "__pycache__"}   # what a run leaves beside a lab file


@dataclass(frozen=True)
class Example:
    name: str
    summary: str
    files: dict[str, Traversable]   # relative path -> packaged file


def _files(root: Traversable, prefix: str = "") -> dict[str, Traversable]:
    found: dict[str, Traversable] = {}
    for item in sorted(root.iterdir(), key=lambda entry: entry.name):
        if item.name in SKIPPED or item.name.endswith(".pyc"):
            continue
        if item.is_dir():
            found.update(_files(item, f"{prefix}{item.name}/"))
        else:
            found[prefix + item.name] = item
    return found


def _summary(readme: Traversable | None, name: str) -> str:
    """The README's first heading, which says what the exercise is ("chat: a chat room"
    and "A chat room" both read "a chat room")."""
    text = readme.read_text(encoding="utf-8") if readme is not None else ""
    heading = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), name)
    heading = heading.removeprefix(f"{name}:").strip() or name
    first = heading.split(" ", 1)[0]
    return heading[0].lower() + heading[1:] if first[:1].isupper() and (first[1:] == "" or first[1:].islower()) else heading


def gallery() -> dict[str, Example]:
    examples = {DEFAULT: Example(DEFAULT, "the default lab: a LAN and a DMZ joined by a router, dual stack, "
                                 "every exchange checked", {"lab.yaml": folder("default").joinpath("lab.yaml")})}
    for item in sorted(folder("gallery").iterdir(), key=lambda entry: entry.name):
        if item.is_dir() and item.joinpath("lab.yaml").is_file():
            files = _files(item)
            examples[item.name] = Example(item.name, _summary(files.get("README.md"), item.name), files)
    return examples


def init(name: str, target: Path) -> list[Path]:
    """Write example `name` into `target` (a new or empty folder); the files written."""
    examples = gallery()
    if name not in examples:
        raise LabError(f"no example {name!r} in the gallery; examples: " + ", ".join(examples))
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise LabError(f"{target} already exists and is not an empty folder; choose a new one")
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    written = [write_file(root, root / relative, _beside_schema(relative, item.read_bytes()),
                          0o755 if relative.endswith(".sh") else 0o644)
               for relative, item in examples[name].files.items()]
    # The schema goes with it, where the lab file's first line tells an editor to look.
    schema = json.dumps(lab_schema(), indent=2) + "\n"
    return written + [write_file(root, root / SCHEMA_ID, schema),
                      write_file(root, root / ".gitignore", LAB_GITIGNORE)]


# What a lab folder holds that is not the lab: labctl's state (the CA's key among it), the
# rendered files, and a class's grades.
LAB_GITIGNORE = "# Written by labctl init: generated, not the lab.\n.labctl/\ncompose/\ngrades/\n"


def _beside_schema(relative: str, data: bytes) -> bytes:
    """A gallery lab names the schema at the repository's top; a written one, beside it."""
    if relative != "lab.yaml":
        return data
    first, _, rest = data.partition(b"\n")
    if first.startswith(MODELINE.encode()):
        return f"{MODELINE}{SCHEMA_ID}\n".encode() + rest
    return data
