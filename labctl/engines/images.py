"""The image lab hosts run by default, built in two layers:

  labctl-base:<recipe>   Python 3 and the tools in compose/packages.txt. Built from an
                         official Python image where a registry answers, otherwise
                         bootstrapped from the host's own Debian mirror and imported.
  labctl-host:<digest>   the base plus services/, the programs that run in lab hosts.

and, for multi-machine labs on one computer, labctl-node:<recipe> (compose/node/): a
Docker engine behind sshd, built the same two ways. `ship_image` copies an image to
machines that have no registry to pull from.

Tags are content hashes, so a second build with the same recipe does nothing.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import docker
import docker.errors

from ..assets import base_tag, host_recipe, host_tag, node_tag, packages, recipe_files, service_files
from ..errors import EngineError, LabError
from ..files import remove_file, write_file
from ..names import IMAGE_LABEL, IMAGE_SOURCE_LABEL
from ..progress import Counted

Progress = Callable[[str], None]


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_host_image(client: docker.DockerClient, progress: Progress, source: str = "auto") -> str:
    """Build whatever of the two layers is missing; return the host image tag."""
    tag = host_tag()
    if image_exists(client, tag):
        progress(f"image {tag} is up to date")
        return tag
    # Counted, so a terminal shows a bar: the base (when missing), then the services on it.
    stages = 1 if image_exists(client, base_tag()) else 2
    progress(Counted(f"image: building {tag}", "image", 0, stages))
    base = ensure_base_image(client, progress, source)
    progress(Counted(f"image: adding services to {base}", "image", stages - 1, stages))
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as archive:
        dockerfile = host_recipe(base).encode()
        _add_file(archive, "Dockerfile", dockerfile)
        for name, data in service_files().items():
            _add_file(archive, f"services/{name}", data)
    context.seek(0)
    try:
        client.images.build(fileobj=context, custom_context=True, tag=tag, pull=False, rm=True,
                            forcerm=True, labels={IMAGE_LABEL: "host"})
    except (docker.errors.BuildError, docker.errors.APIError) as exc:
        raise EngineError(f"building {tag} failed: {exc}") from None
    progress(Counted(f"image {tag} built", "image", stages, stages))
    _prune_superseded(client, tag, progress)
    return tag


def _prune_superseded(client: docker.DockerClient, current: str, progress: Progress) -> None:
    """Remove earlier images of `current`'s repository (their recipe changed since) that no
    container uses, so rebuilding does not fill the disk. The base layer is shared and stays."""
    repository = current.split(":")[0]
    in_use = {summary.get("ImageID") for summary in client.api.containers(all=True)}
    for image in client.images.list(name=repository):
        stale = [tag for tag in image.tags if tag.startswith(f"{repository}:") and tag != current]
        if stale and len(stale) == len(image.tags) and image.id not in in_use:
            try:
                image.remove()
                progress(f"image: removed superseded {', '.join(stale)}")
            except docker.errors.APIError:
                pass


def ensure_base_image(client: docker.DockerClient, progress: Progress, source: str = "auto") -> str:
    tag = base_tag()
    if image_exists(client, tag):
        return tag
    if source in ("auto", "registry"):
        progress("image: building the base from an official Python image")
        try:
            _build_from_registry(client, tag)
            progress(f"image {tag} built from the registry")
            return tag
        except LabError as exc:
            if source == "registry":
                raise
            progress(f"image: no registry answered ({exc}); bootstrapping from the host's mirror")
    _bootstrap_from_mirror(client, tag, progress, ["python3", *packages()], kind="base",
                           command='["sleep", "infinity"]')
    progress(f"image {tag} bootstrapped from the host's Debian mirror")
    return tag


def ensure_node_image(client: docker.DockerClient, progress: Progress, source: str = "auto") -> str:
    """The image of a lab machine run in a container (sshd and a Docker engine), for
    multi-machine labs on one computer. Built like the base: registry, else the mirror."""
    tag = node_tag()
    if image_exists(client, tag):
        return tag
    built = False
    if source in ("auto", "registry"):
        progress("image: building the machine image from an official Debian image")
        try:
            _build_from_registry(client, tag, ("node",), "node")
            built = True
        except LabError as exc:
            if source == "registry":
                raise
            progress(f"image: no registry answered ({exc}); bootstrapping from the host's mirror")
    if not built:
        _bootstrap_from_mirror(client, tag, progress, packages("node"), kind="node",
                               command='["/usr/local/bin/labctl-node"]',
                               files={"entrypoint.sh": recipe_files("node")["entrypoint.sh"]},
                               hooks=["copy-in {work}/entrypoint.sh /usr/local/bin",
                                      "chroot $1 mv /usr/local/bin/entrypoint.sh /usr/local/bin/labctl-node",
                                      "chroot $1 sh -c 'rm -f /etc/ssh/ssh_host_*'"])
    progress(f"image {tag} built")
    _prune_superseded(client, tag, progress)
    return tag


def _add_file(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    archive.addfile(info, io.BytesIO(data))


def _build_from_registry(client: docker.DockerClient, tag: str, recipe: tuple[str, ...] = (),
                         kind: str = "base") -> None:
    """Build a recipe folder's Dockerfile; the context is the recipe's own files, sent from
    memory, so it works from a wheel as from the checkout."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as archive:
        for name, data in recipe_files(*recipe).items():
            _add_file(archive, name, data, 0o755 if name.endswith(".sh") else 0o644)
    context.seek(0)
    try:
        client.images.build(fileobj=context, custom_context=True, dockerfile="Dockerfile", tag=tag,
                            pull=False, rm=True, forcerm=True,
                            labels={IMAGE_LABEL: kind, IMAGE_SOURCE_LABEL: "registry"})
    except (docker.errors.BuildError, docker.errors.APIError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise EngineError(message[:200]) from None


def host_release() -> tuple[str, str]:
    """(distribution id, codename) of this machine, from /etc/os-release."""
    fields: dict[str, str] = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        key, _, value = line.partition("=")
        fields[key] = value.strip().strip('"')
    codename = fields.get("VERSION_CODENAME") or ""
    if not codename:
        raise LabError("cannot tell this machine's release codename from /etc/os-release")
    return fields.get("ID", "debian"), codename


def host_mirror(codename: str, sources: list[Path] | None = None) -> str:
    """The first mirror in the host's apt sources that serves `codename` main."""
    if sources is None:
        sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(
                    (key.strip().lower(), value.strip())
                    for key, _, value in (line.partition(":") for line in stanza.splitlines()
                                          if ":" in line and not line.lstrip().startswith("#")))
                if ("deb" in fields.get("types", "").split() and codename in fields.get("suites", "").split()
                        and fields.get("enabled", "yes") != "no"):
                    return fields["uris"].split()[0]
        elif path.suffix == ".list" or path.name == "sources.list":
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == codename:
                    return words[1]
    raise LabError(f"no apt source for '{codename}' in /etc/apt; cannot bootstrap the base image "
                   "offline (add one, or build where a registry answers)")


def _bootstrap_from_mirror(client: docker.DockerClient, tag: str, progress: Progress,
                           include: list[str], kind: str, command: str,
                           hooks: list[str] | None = None, files: dict[str, bytes] | None = None) -> None:
    """`files` are written to a work folder that `hooks` name as {work}."""
    if os.geteuid() != 0:
        raise LabError("bootstrapping the base image needs root (mmdebstrap/debootstrap); "
                       "run 'sudo labctl image build' once")
    _distribution, codename = host_release()
    mirror = host_mirror(codename)
    with tempfile.TemporaryDirectory(prefix="labctl-rootfs-") as work:
        rootfs_tar = Path(work) / "rootfs.tar"
        for name, data in (files or {}).items():
            (Path(work) / name).write_bytes(data)
            (Path(work) / name).chmod(0o755 if name.endswith(".sh") else 0o644)
        hooks = [hook.replace("{work}", work) for hook in hooks or []]
        if shutil.which("mmdebstrap"):
            progress(f"image: mmdebstrap {codename} with {len(include)} packages (about 30 s)")
            argv = ["mmdebstrap", "--variant=apt", "--quiet", f"--include={','.join(include)}",
                    *[f"--customize-hook={hook}" for hook in hooks or []],
                    "--customize-hook=chroot $1 apt-get clean", codename, str(rootfs_tar), mirror]
            _run(argv, "mmdebstrap")
        elif shutil.which("debootstrap"):
            progress(f"image: debootstrap {codename} with {len(include)} packages (a few minutes)")
            root = Path(work) / "root"
            _run(["debootstrap", "--variant=minbase", f"--include={','.join(include)}", codename,
                  str(root), mirror], "debootstrap")
            for hook in hooks or []:
                _run(["sh", "-c", _as_shell(hook, root)], "a customize hook")
            _run(["tar", "-C", str(root), "-cf", str(rootfs_tar), "."], "tar")
        else:
            raise LabError("no registry answered and neither mmdebstrap nor debootstrap is installed; "
                           "run 'labctl doctor --install'")
        progress("image: importing the root filesystem")
        changes = [f"CMD {command}", f"LABEL {IMAGE_LABEL}={kind} {IMAGE_SOURCE_LABEL}=mirror",
                   "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        with open(rootfs_tar, "rb") as handle:
            try:
                client.api.import_image_from_data(handle, repository=tag.split(":")[0],
                                                  tag=tag.split(":")[1], changes=changes)
            except docker.errors.APIError as exc:
                raise EngineError(f"docker import failed: {exc}") from None
    if not image_exists(client, tag):
        raise EngineError(f"docker import did not produce {tag}")


def _as_shell(hook: str, root: Path) -> str:
    """An mmdebstrap customize hook as a shell command on a debootstrap tree."""
    if hook.startswith("copy-in "):
        source, target = hook.split()[1:3]
        return f"cp {source} {root}{target}/"
    return hook.replace("$1", str(root))


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise EngineError(f"{what} failed: {' | '.join(tail)}")


def ship_image(source: docker.DockerClient, machines: dict[str, docker.DockerClient], tag: str,
               progress: Progress) -> list[str]:
    """Copy `tag` from `source` to every machine lacking it (no registry needed): saved once,
    loaded over each machine's own engine connection. A machine that already holds the same
    image id is skipped. Returns the machines it was copied to."""
    wanted = source.images.get(tag).id
    lacking = []
    for name, client in machines.items():
        try:
            if client.images.get(tag).id == wanted:
                continue
        except docker.errors.ImageNotFound:
            pass
        lacking.append(name)
    if not lacking:
        progress(f"image {tag}: already on every machine")
        return []
    with tempfile.TemporaryFile(prefix="labctl-image-") as saved:
        for chunk in source.images.get(tag).save(named=True):
            saved.write(chunk)
        size = saved.tell()
        progress(f"image {tag}: copying {size / 1e6:.0f} MB to {', '.join(lacking)}")

        def load(name: str) -> None:
            with open(f"/proc/self/fd/{saved.fileno()}", "rb") as stream:
                machines[name].images.load(stream)
            if machines[name].images.get(tag).id != wanted:
                raise EngineError(f"image {tag} did not arrive intact on machine '{name}'")
        with ThreadPoolExecutor(max_workers=len(lacking)) as pool:
            list(pool.map(load, lacking))
    return lacking




def record_shipped(root: Path, path: Path, shipped: dict[str, list[str]]) -> None:
    """Note in `path` (inside the lab folder `root`) which images were copied to which
    machine, for remove_shipped."""
    known = json.loads(path.read_text()) if path.exists() else {}
    for machine, images in shipped.items():
        known[machine] = sorted(set(known.get(machine, [])) | set(images))
    write_file(root, path, json.dumps(known, indent=2))


def remove_shipped(root: Path, path: Path, machines: dict[str, docker.DockerClient]) -> int:
    """Remove the images `path` says were copied to machines, where no container uses them
    now. One another lab still uses stays on the list, for a later `down` to remove."""
    if not path.exists():
        return 0
    known = json.loads(path.read_text())
    removed = 0
    for machine, images in list(known.items()):
        client = machines.get(machine)
        if client is None:
            continue
        # The plain listing, with no inspection of each container: one the Swarm removes
        # meanwhile is not asked after.
        in_use = {summary.get("ImageID") for summary in client.api.containers(all=True)}
        kept = []
        for image in images:
            try:
                found = client.images.get(image)
                if found.id in in_use:
                    kept.append(image)
                    continue
                found.remove(force=True)
                removed += 1
            except docker.errors.ImageNotFound:
                pass
            except docker.errors.APIError:
                kept.append(image)
        if kept:
            known[machine] = kept
        else:
            del known[machine]
    if known:
        write_file(root, path, json.dumps(known, indent=2))
    else:
        remove_file(root, path)
    return removed
