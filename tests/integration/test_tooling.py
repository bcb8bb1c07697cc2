"""doctor and image build on the real engine."""

from __future__ import annotations

import json

from labctl.ops.doctor import probe_kernel

from .conftest import run_cli


def test_doctor_reports_engine_compose_and_kernel_features(engine):
    result = run_cli("doctor", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    findings = {finding["name"]: finding for finding in json.loads(result.stdout)}
    assert findings["docker engine"]["ok"] and "API" in findings["docker engine"]["detail"]
    assert findings["docker compose"]["ok"]
    for feature in ("bridge", "veth", "vxlan", "nftables"):
        assert findings[f"kernel {feature}"]["ok"], findings[f"kernel {feature}"]
    # Which mechanism impairments get follows what the kernel really has.
    impairments = findings["impairments"]
    assert impairments["ok"], impairments
    has_netem = probe_kernel(engine.client)["netem"]
    assert ("use tc netem" if has_netem else "no sch_netem: impairments use the fallback") in impairments["detail"]
    text = run_cli("doctor").stdout
    assert "docker engine" in text and "impairments" in text


def test_doctor_names_a_forced_mechanism(engine, monkeypatch):
    monkeypatch.setenv("LABCTL_SHAPER", "fallback")
    findings = {finding["name"]: finding for finding in json.loads(run_cli("doctor", "--json").stdout)}
    assert findings["impairments"]["detail"].startswith("LABCTL_SHAPER=fallback: impairments use the fallback")
    monkeypatch.setenv("LABCTL_SHAPER", "sideways")
    result = run_cli("doctor")
    assert result.returncode == 2 and "LABCTL_SHAPER=sideways: expected one of auto, netem, fallback" in result.stderr


def test_doctor_install_changes_nothing_when_all_is_there(engine):
    result = run_cli("doctor", "--install", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "nothing to change" in result.stderr


def test_image_build_twice_does_nothing_the_second_time(engine, image):
    before = engine.client.images.get(image).id
    result = run_cli("image", "build")
    assert result.returncode == 0, result.stderr
    assert f"image {image} is up to date" in result.stderr
    assert result.stdout.strip() == image
    assert engine.client.images.get(image).id == before
    tools = engine.client.containers.run(image, ["sh", "-c", "for t in python3 ip ping curl openssl nc "
                                                 "tcpdump nft ssh sshd ps; do command -v $t >/dev/null "
                                                 "|| echo missing $t; done"], remove=True)
    assert tools.decode().strip() == ""
