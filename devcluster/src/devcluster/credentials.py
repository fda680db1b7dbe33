"""The devcluster's credentials: a CA, a serving certificate and bearer tokens.

Key generation is the slow part of starting a server, so one CA and one
serving certificate (EC P-256) are made per process and shared by every
devcluster in it. The CA's key is thrown away once it has signed.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hmac
import ipaddress
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CONTEXT = "devcluster"


@dataclass(frozen=True)
class Pki:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


@functools.cache
def development_pki(extra_names: tuple[str, ...] = ()) -> Pki:
    """A CA and a serving certificate for 127.0.0.1, ::1, localhost and ``extra_names``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devcluster-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.DNSName("localhost"),
    ]
    for extra in extra_names:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(extra)))
        except ValueError:
            names.append(x509.DNSName(extra))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Pki(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def server_ssl_context(pki: Pki, directory: Path) -> ssl.SSLContext:
    """A TLS server context; the key is written (mode 0600) because ssl loads from files."""
    cert_path = directory / "apiserver.crt"
    key_path = directory / "apiserver.key"
    cert_path.write_bytes(pki.cert_pem)
    key_path.touch(mode=0o600)
    key_path.write_bytes(pki.key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


class Tokens:
    """The bearer tokens the server accepts; rotation can keep or revoke the old one."""

    def __init__(self) -> None:
        self.current = secrets.token_urlsafe(32)
        self._valid = [self.current.encode()]

    def rotate(self, revoke_old: bool = True) -> str:
        token = secrets.token_urlsafe(32)
        encoded = token.encode()
        # Replace the list rather than mutate it: the server thread reads it lock-free.
        self._valid = [encoded] if revoke_old else [*self._valid, encoded]
        self.current = token
        return token

    def accepts(self, authorization: str | None) -> bool:
        # The scheme is case-insensitive, as in kube-apiserver: the in-cluster loader
        # of the Python client sends "bearer <token>".
        parts = (authorization or "").split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            return False
        offered = parts[1].encode()
        # Check every token so the time taken does not tell which one nearly matched.
        matched = False
        for token in self._valid:
            matched |= hmac.compare_digest(offered, token)
        return matched


def kubeconfig(
    server: str, ca_pem: bytes | None, token: str | None, namespace: str = "default"
) -> dict[str, Any]:
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    user: dict[str, Any] = {"token": token} if token else {}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": [{"name": CONTEXT, "user": user}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_private(path: Path, data: bytes) -> None:
    """Writes a file only its owner can read (kubeconfigs and tokens are secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    # Atomic replace: a client re-reading a rotated token never sees half a file.
    os.replace(tmp, path)


def write_kubeconfig(path: Path, config: dict[str, Any]) -> None:
    write_private(path, yaml.safe_dump(config, sort_keys=False).encode())
