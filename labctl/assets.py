"""What labctl carries besides its code: the programs that run inside lab hosts
(`services/`) and the image recipes (`compose/`).

In the repository they sit at the top, beside the package; a wheel carries them as package
data under `labctl/_data/` (pyproject.toml maps them there at build time). Both are read
through importlib.resources, so labctl works from any folder, installed or not. The image
tags are content hashes of these files, so a second build of the same recipe does nothing.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path, PurePosixPath

from .errors import LabError
from .names import BASE_REPOSITORY, HOST_REPOSITORY, NODE_REPOSITORY, PKI_PATH, SERVICES_PATH, TRANSCRIPT

CHECKOUT = Path(__file__).resolve().parent.parent


# Where a packaged folder lies in a checkout, where that is not a folder of its own name:
# the default lab is the repository's lab.yaml.
IN_CHECKOUT = {"default": "."}


def folder(name: str) -> Traversable:
    """`services`, `compose`, `gallery` or `default` (the default lab): packaged in a wheel,
    or beside the package in a checkout."""
    packaged = resources.files("labctl") / "_data" / name   # one part at a time: Python 3.10
    if packaged.is_dir():
        return packaged
    beside = (CHECKOUT / IN_CHECKOUT.get(name, name)).resolve()
    if beside.is_dir() and (CHECKOUT / "pyproject.toml").is_file():
        return beside
    raise LabError(f"labctl's packaged folder '{name}' is missing from this installation "
                   f"(looked in {packaged}); reinstall labctl")


def read(name: str, *parts: str) -> bytes:
    """One packaged file's bytes, or a one-line error naming it."""
    item = folder(name).joinpath(*parts)
    try:
        return item.read_bytes()
    except FileNotFoundError:
        raise LabError(f"labctl's packaged file '{name}/{'/'.join(parts)}' is missing from "
                       "this installation; reinstall labctl") from None


def recipe_files(*parts: str) -> dict[str, bytes]:
    """The files of an image recipe folder (compose/ or compose/node/), by name."""
    recipe = folder("compose").joinpath(*parts)
    return {item.name: item.read_bytes() for item in sorted(recipe.iterdir(), key=lambda i: i.name)
            if item.is_file() and not item.name.endswith(".yaml")}


def service_files() -> dict[str, bytes]:
    """services/*.py by name: what every host image carries."""
    return {item.name: item.read_bytes()
            for item in sorted(folder("services").iterdir(), key=lambda i: i.name)
            if item.is_file() and item.name.endswith(".py")}


def packages(*recipe: str) -> list[str]:
    lines = read("compose", *recipe, "packages.txt").decode().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:12]


def base_tag() -> str:
    return f"{BASE_REPOSITORY}:{_digest(read('compose', 'packages.txt') + read('compose', 'Dockerfile'))}"


def host_recipe(base: str) -> str:
    """The host image's Dockerfile: the base plus services/, compiled once here (see
    `names.program`) so each start loads them instead of compiling them again. A program
    runs from its .pyc beside the source; the modules it imports (labsvc's svc_*, inet)
    load from __pycache__, where Python looks for a module whose source is there too."""
    return (f"FROM {base}\nCOPY services/ {SERVICES_PATH}/\n"
            f"RUN python3 -m compileall -q -b {SERVICES_PATH} && python3 -m compileall -q {SERVICES_PATH} "
            f"&& mkdir -p {PurePosixPath(TRANSCRIPT).parent} {PKI_PATH}\n"
            'CMD ["sleep", "infinity"]\n')


def host_tag() -> str:
    parts = [base_tag().encode(), host_recipe(base_tag()).encode()]
    for name, data in service_files().items():
        parts += [name.encode(), data]
    return f"{HOST_REPOSITORY}:{_digest(*parts)}"


def node_tag() -> str:
    return f"{NODE_REPOSITORY}:{_digest(b''.join(recipe_files('node').values()))}"
