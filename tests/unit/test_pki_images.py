"""The per-lab CA, and reading the host's mirror from its apt sources."""

from __future__ import annotations

import stat
from ipaddress import IPv4Address

import pytest
from cryptography import x509

from labctl.engines.factory import read_lab
from labctl.engines.images import host_mirror
from labctl.errors import LabError
from labctl.render.pki import ensure_pki

LAB = """
name: p
networks: {n: {subnet: 10.6.0.0/24}}
hosts:
  web: {networks: {n: 10.6.0.10}, services: [{tls-echo: {port: 443}}]}
"""


def test_ca_signs_host_certificates_and_keys_stay_private(write_lab, tmp_path):
    topology = read_lab(write_lab(LAB)).topology
    pki = ensure_pki(topology, tmp_path / "pki")
    ca = x509.load_pem_x509_certificate(pki.ca_certificate.read_bytes())
    host = x509.load_pem_x509_certificate(pki.host("web").certificate.read_bytes())
    host.verify_directly_issued_by(ca)
    sans = host.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["web"]
    assert sans.get_values_for_type(x509.IPAddress) == [IPv4Address("10.6.0.10")]
    untrusted = x509.load_pem_x509_certificate(pki.untrusted_ca_certificate.read_bytes())
    with pytest.raises(Exception):
        host.verify_directly_issued_by(untrusted)
    for key in (tmp_path / "pki" / "ca.key", pki.host("web").key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "pki").stat().st_mode) == 0o700
    # A second run reuses everything; a changed address reissues the host certificate.
    before = pki.host("web").certificate.read_bytes()
    ensure_pki(topology, tmp_path / "pki")
    assert pki.host("web").certificate.read_bytes() == before
    topology = read_lab(write_lab(LAB.replace("10.6.0.10", "10.6.0.11"))).topology
    ensure_pki(topology, tmp_path / "pki")
    assert pki.host("web").certificate.read_bytes() != before


def test_host_mirror_reads_deb822_and_one_line_sources(tmp_path):
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\n"
                      "Components: main\n\nTypes: deb\nURIs: http://other.invalid/sec\n"
                      "Suites: bookworm-security\n")
    assert host_mirror("bookworm", [deb822]) == "http://mirror.invalid/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text("# comment\ndeb-src http://x.invalid/d jammy main\n"
                        "deb [arch=amd64] http://y.invalid/ubuntu jammy main universe\n")
    assert host_mirror("jammy", [one_line]) == "http://y.invalid/ubuntu"
    with pytest.raises(LabError, match="no apt source for 'trixie'"):
        host_mirror("trixie", [deb822, one_line])
