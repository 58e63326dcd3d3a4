"""A throwaway PKI for one local cluster: CA, serving certs, client certs, SA keys.

Made fresh for every run (so nothing stale is reused) with the ``cryptography``
library; private keys are written 0600 and never logged.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    sa_private_key: Path
    sa_public_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _cert(subject: x509.Name, public_key, issuer: x509.Name, issuer_key, *, ca: bool = False,
          server: bool = False, client: bool = False, ips: tuple[str, ...] = ("127.0.0.1",),
          dns: tuple[str, ...] = ("localhost",)) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + VALIDITY)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                      content_commitment=False, key_encipherment=False,
                                                      data_encipherment=False, key_agreement=False,
                                                      encipher_only=False, decipher_only=False), critical=True)
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys(ips)]
            + [x509.DNSName(name) for name in dict.fromkeys(dns)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


APISERVER_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                   "kubernetes.default.svc.cluster.local")


def _ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA that create_pki wrote into ``directory`` (its key stays in that 0700 directory)."""
    cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    return cert, key


def issue(directory: Path, name: str, common_name: str, *, organization: str | None = None,
          client: bool = False, server: bool = False, ips: tuple[str, ...] = ("127.0.0.1",),
          dns: tuple[str, ...] = ("localhost",)) -> tuple[Path, Path]:
    """A certificate signed by the cluster CA in ``directory``: ``<name>.crt`` and its 0600 ``<name>.key``.

    For the node's identities: the kubelet's client (``system:node:<node>`` in ``system:nodes``) and
    serving certificates, and the API server's client certificate for the kubelet.
    """
    ca_cert, ca_key = _ca(directory)
    key = _key()
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(_cert(_name(common_name, organization), key.public_key(), ca_cert.subject, ca_key,
                                client=client, server=server, ips=ips, dns=dns)
                          .public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return cert_path, key_path


def create_pki(directory: Path, server_ips: tuple[str, ...] = ("127.0.0.1",)) -> Pki:
    """A fresh CA and the control plane's certificates; the API server's serves ``server_ips``
    (loopback, the node-facing address, the ``kubernetes`` Service's IP)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    pem = serialization.Encoding.PEM
    ca_key, ca_name = _key(), _name("e2e-harness-local-ca")
    ca = _cert(ca_name, ca_key.public_key(), ca_name, ca_key, ca=True)
    pki = Pki(*(directory / n for n in ("ca.crt", "apiserver.crt", "apiserver.key", "admin.crt", "admin.key",
                                        "sa.key", "sa.pub")))
    pki.ca_cert.write_bytes(ca.public_bytes(pem))
    _write_key(directory / "ca.key", ca_key)  # for issue(): the node's certificates

    server_key = _key()
    pki.server_cert.write_bytes(_cert(_name("kube-apiserver"), server_key.public_key(), ca_name, ca_key,
                                      server=True, ips=("127.0.0.1",) + tuple(server_ips),
                                      dns=APISERVER_NAMES).public_bytes(pem))
    _write_key(pki.server_key, server_key)

    admin_key = _key()
    pki.admin_cert.write_bytes(_cert(_name("e2e-harness-admin", "system:masters"), admin_key.public_key(),
                                     ca_name, ca_key, client=True).public_bytes(pem))
    _write_key(pki.admin_key, admin_key)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.sa_private_key, sa_key)
    pki.sa_public_key.write_bytes(sa_key.public_key().public_bytes(
        pem, serialization.PublicFormat.SubjectPublicKeyInfo))
    return pki
