"""Throw-away TLS certificates and SuperNode key pairs for a local Flower deployment.

Everything is generated in Python with the ``cryptography`` package (no openssl):

- a self-signed CA (``ca.crt``),
- a server certificate for ``127.0.0.1`` / ``localhost`` signed by that CA
  (``server.pem`` + ``server.key``), for ``flower-superlink --ssl-*``,
- per-SuperNode EC (SECP384R1) key pairs in OpenSSH format, which is what Flower
  1.41 reads: ``flower-supernode --auth-supernode-private-key`` loads the private key
  with ``load_ssh_private_key`` and ``flwr supernode register`` loads the public key
  with ``load_ssh_public_key`` (an ``ecdsa-sha2-nistp384 AAAA...`` line).

Only meant for tests and local experiments: the keys are unencrypted.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the files written by :func:`generate_tls_certificates`."""

    ca_cert: Path  # --ssl-ca-certfile / --root-certificates / root-certificates
    server_cert: Path  # --ssl-certfile
    server_key: Path  # --ssl-keyfile


@dataclass(frozen=True)
class NodeKeyPair:
    """Paths of the files written by :func:`generate_supernode_keys`."""

    private_key: Path  # flower-supernode --auth-supernode-private-key
    public_key: Path  # flwr supernode register <public_key>


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)
    return path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def generate_tls_certificates(
    directory: str | os.PathLike[str],
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
    days: int = 30,
) -> TlsFiles:
    """Write a self-signed CA and a server certificate for ``hosts`` into ``directory``.

    ``hosts`` are put in the server certificate's SubjectAlternativeName, as IP
    addresses where they parse as such and as DNS names otherwise.
    """
    out = Path(directory)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Local deployment test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    server_key = ec.generate_private_key(ec.SECP384R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    return TlsFiles(
        ca_cert=_write(out / "ca.crt", ca_cert.public_bytes(pem)),
        server_cert=_write(out / "server.pem", server_cert.public_bytes(pem)),
        server_key=_write(out / "server.key", _key_pem(server_key), private=True),
    )


def generate_supernode_keys(directory: str | os.PathLike[str], name: str) -> NodeKeyPair:
    """Write an EC (P-384) key pair in OpenSSH format: ``<name>`` and ``<name>.pub``."""
    out = Path(directory)
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return NodeKeyPair(
        private_key=_write(out / name, private, private=True),
        public_key=_write(out / f"{name}.pub", public + b"\n"),
    )
