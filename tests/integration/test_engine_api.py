"""The API version labctl's client negotiates is the one the real engine reports, and doctor
reads the real engine into its one line of support."""

from __future__ import annotations

import shutil
import subprocess

from labctl.engines.versions import engine_facts
from labctl.ops import doctor


def test_the_negotiated_version_is_what_the_engine_reports(engine):
    docker_cli = shutil.which("docker")
    assert docker_cli, "the docker command-line client is needed to ask the engine as a user would"
    reported = subprocess.run([docker_cli, "version", "--format", "{{.Server.APIVersion}}"],
                              capture_output=True, text=True, timeout=30)
    assert reported.returncode == 0, reported.stderr
    assert engine.client.api.api_version == reported.stdout.strip() == engine.client.version()["ApiVersion"]


def test_doctor_reads_the_engine_into_one_line(engine):
    facts = engine_facts(engine.client)
    finding = doctor.engine_support(engine.client)
    assert finding.detail.startswith(facts.summary + ": ") and "\n" not in finding.detail
    assert facts.version == engine.client.version()["Version"]
