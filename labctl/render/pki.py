"""A per-lab certificate authority. Lives in the lab's state folder (never committed):

  ca.pem / ca.key             the lab CA, which every host trusts
  untrusted-ca.pem            a second CA that signs nothing in the lab, for negative checks
  hosts/<host>.pem / .key     each host's certificate: its name and every address as SANs

Keys are written 0600 in a 0700 folder and reused across runs; a host certificate is
reissued only when the names or addresses it must cover change.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..files import ensure_folder, write_file
from ..model.topology import Address, Topology

VALIDITY = dt.timedelta(days=825)


@dataclass(frozen=True)
class HostCredentials:
    certificate: Path
    key: Path


@dataclass(frozen=True)
class LabPki:
    folder: Path

    @property
    def ca_certificate(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def untrusted_ca_certificate(self) -> Path:
        return self.folder / "untrusted-ca.pem"

    def host(self, name: str) -> HostCredentials:
        return HostCredentials(self.folder / "hosts" / f"{name}.pem",
                               self.folder / "hosts" / f"{name}.key")


def _write_key(root: Path, path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    write_file(root, path, data, 0o600)


def _write_cert(root: Path, path: Path, cert: x509.Certificate) -> None:
    write_file(root, path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _name(common_name: str, lab: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"labctl {lab}"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _new_ca(common_name: str, lab: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    name = _name(common_name, lab)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _load_ca(pki: LabPki) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = serialization.load_pem_private_key((pki.folder / "ca.key").read_bytes(), None)
    cert = x509.load_pem_x509_certificate(pki.ca_certificate.read_bytes())
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key, cert


def _sans(cert: x509.Certificate) -> set[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(value) for value in ext.get_values_for_type(x509.DNSName)} | \
           {str(value) for value in ext.get_values_for_type(x509.IPAddress)}


def ensure_pki(topology: Topology, folder: Path) -> LabPki:
    """Create the lab CA and host certificates that are missing or out of date."""
    pki = LabPki(folder)
    root = topology.folder
    ensure_folder(root, folder, 0o700)
    ensure_folder(root, folder / "hosts", 0o700)
    if not (pki.ca_certificate.exists() and (folder / "ca.key").exists()):
        key, cert = _new_ca(f"labctl {topology.name} CA", topology.name)
        _write_key(root, folder / "ca.key", key)
        _write_cert(root, pki.ca_certificate, cert)
    if not pki.untrusted_ca_certificate.exists():
        # Its key is thrown away: nothing will ever be signed by it.
        _key, cert = _new_ca("labctl untrusted CA", topology.name)
        _write_cert(root, pki.untrusted_ca_certificate, cert)
    ca_key, ca_cert = _load_ca(pki)
    for host in topology.hosts.values():
        addresses = [address for attachment in host.attachments for address in attachment.addresses]
        wanted = {host.name} | {str(address) for address in addresses}
        credentials = pki.host(host.name)
        if credentials.certificate.exists() and credentials.key.exists():
            current = x509.load_pem_x509_certificate(credentials.certificate.read_bytes())
            if _sans(current) == wanted and current.issuer == ca_cert.subject:
                continue
        _issue(root, credentials, host.name, addresses, topology.name,
               ca_key, ca_cert)
    return pki


def _issue(root: Path, credentials: HostCredentials, name: str, addresses: list[Address], lab: str,
           ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    sans: list[x509.GeneralName] = [x509.DNSName(name)]
    sans += [x509.IPAddress(address) for address in addresses]
    cert = (x509.CertificateBuilder().subject_name(_name(name, lab)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_key(root, credentials.key, key)
    _write_cert(root, credentials.certificate, cert)
