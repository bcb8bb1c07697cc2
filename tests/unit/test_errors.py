"""Errors say what happened, in one line: a file that cannot be read or written, a full
disk, a missing packaged file, a reader that went away. None is a lost connection."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labctl import assets
from labctl.cli.failures import explain
from labctl.errors import LabError

REPO = Path(__file__).resolve().parents[2]


def test_file_errors_read_as_such():
    assert explain(PermissionError(errno.EACCES, "Permission denied", "/lab/compose/x.yaml")) == \
        "permission denied: /lab/compose/x.yaml"
    assert explain(OSError(errno.ENOSPC, "No space left on device", "/lab/.labctl/x/pki/ca.pem")) == \
        "no space left on the device for /lab/.labctl/x/pki/ca.pem"
    assert explain(FileNotFoundError(errno.ENOENT, "No such file or directory", "/nowhere")) == \
        "no such file or folder: /nowhere"
    assert explain(OSError(errno.ENAMETOOLONG, "File name too long", "/x" * 3)) == \
        "File name too long: /x/x/x"
    for error in (PermissionError(errno.EACCES, "Permission denied", "/x"), OSError(errno.ENOSPC, "full")):
        assert "connection" not in explain(error)


def test_lost_connections_and_refusals_read_as_such():
    import docker.errors
    assert explain(ConnectionResetError(errno.ECONNRESET, "reset")).startswith("lost the connection")
    refused = docker.errors.APIError("500", explanation="Conflict: name in use")
    assert explain(refused) == "the Docker engine refused: Conflict: name in use"
    assert explain(ValueError("a bug")) is None


def test_a_missing_packaged_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(assets, "CHECKOUT", tmp_path)  # neither packaged nor in a checkout
    monkeypatch.setattr(assets.resources, "files", lambda package: tmp_path / "site-packages" / package)
    with pytest.raises(LabError, match="packaged folder 'compose' is missing from this installation"):
        assets.host_tag()
    with pytest.raises(LabError, match="packaged folder 'services' is missing"):
        assets.service_files()


def test_a_reader_that_goes_away_ends_the_output_quietly(tmp_path):
    lab = tmp_path / "lab.yaml"
    shutil.copy(REPO / "lab.yaml", lab)
    reader, writer = os.pipe()
    os.close(reader)  # like `| head` that has read enough, before labctl writes a byte
    try:
        result = subprocess.run([sys.executable, "-m", "labctl", "-f", str(lab), "validate"],
                                stdout=writer, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(writer)
    assert result.returncode == 141
    assert result.stderr.decode() == ""
