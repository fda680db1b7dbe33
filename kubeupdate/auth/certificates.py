"""The certificates of the link between the gateway and the service (mutual TLS).

A directory of the operator's holds a private CA and the two certificates it
signs: the service's (a server certificate for the names of its Kubernetes
Service) and the gateway's (a client certificate named ``kubeupdate-gateway``,
the name the service's ``--trusted-proxy-cert`` believes)::

    ca.crt  ca.key                 the CA; its key never goes into the cluster
    service.crt  service.key       mounted by the service (Secret kubeupdate-service-tls)
    gateway.crt  gateway.key       mounted by the gateway (Secret kubeupdate-gateway-tls)

Renewing signs new keys with the same CA, so during the rolling restart that
follows, old and new Pods of either side still accept each other. Each Secret
holds its own key only, and ``ca.crt``: the CA the Pod trusts, optionally with
another CA's certificate beside it while a CA is being replaced.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICE = "kubeupdate-service"
GATEWAY = "kubeupdate-gateway"
NAMESPACE = "kubeupdate"
LEAF_DAYS = 365
CA_DAYS = 3650
#: Accepted clock skew between the machine that signs and the Pods that verify.
BACKDATE = dt.timedelta(minutes=5)


class CertificateError(Exception):
    """The directory cannot be used as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Leaf:
    """One certificate the CA signs: whose it is and how it is used."""

    name: str  # file stem and Secret name prefix: service or gateway
    common_name: str
    usage: x509.ObjectIdentifier

    def secret_name(self) -> str:
        return f"{self.common_name}-tls"


LEAVES = (
    Leaf("service", SERVICE, ExtendedKeyUsageOID.SERVER_AUTH),
    Leaf("gateway", GATEWAY, ExtendedKeyUsageOID.CLIENT_AUTH),
)


def create(
    directory: Path,
    *,
    namespace: str = NAMESPACE,
    extra_names: Sequence[str] = (),
    days: int = LEAF_DAYS,
    ca_days: int = CA_DAYS,
    now: dt.datetime | None = None,
) -> list[str]:
    """A new CA in ``directory`` and both certificates; refuses to replace a CA.

    Returns the names the service's certificate holds.
    """
    if (directory / "ca.key").exists():
        raise CertificateError(
            f"{directory} already holds a CA (ca.key): `kubeupdate certs renew --dir {directory}` "
            "signs new certificates with it; a new CA needs an empty directory"
        )
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"kubeupdate CA ({namespace})")])
    ca = (
        _builder(name, name, key.public_key(), now, ca_days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / "ca.key", _key_pem(key), private=True)
    _write(directory / "ca.crt", ca.public_bytes(serialization.Encoding.PEM))
    return renew(directory, namespace=namespace, extra_names=extra_names, days=days, now=now)


def renew(
    directory: Path,
    *,
    namespace: str | None = None,
    extra_names: Sequence[str] = (),
    days: int = LEAF_DAYS,
    now: dt.datetime | None = None,
) -> list[str]:
    """New keys and certificates for the service and the gateway, signed by the CA there.

    Without ``namespace`` the service's certificate keeps the names it has (a
    renewal must not drop the ones it was made with), plus ``extra_names``.
    Returns the names the service's certificate holds.
    """
    ca, ca_key = load_ca(directory)
    if namespace is None and (directory / "service.crt").exists():
        current = _names_of(x509.load_pem_x509_certificate(_read(directory / "service.crt")))
        names = [*current, *(n for n in extra_names if n not in current)]
    else:
        names = service_names(namespace or NAMESPACE, extra_names)
    now = now or dt.datetime.now(dt.UTC)
    if now + dt.timedelta(days=days) > ca.not_valid_after_utc:
        raise CertificateError(
            f"the CA in {directory} expires on {ca.not_valid_after_utc:%Y-%m-%d}, before "
            f"certificates valid for {days} days would: give a shorter --days, or replace the CA "
            "(see deploy/OPERATIONS.md)"
        )
    for leaf in LEAVES:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, leaf.common_name)])
        cert = (
            _builder(subject, ca.subject, key.public_key(), now, days)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([leaf.usage]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName(
                    _general_names(names if leaf.name == "service" else [GATEWAY])
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        # The key first: a certificate on disk always has its key beside it.
        _write(directory / f"{leaf.name}.key", _key_pem(key), private=True)
        _write(directory / f"{leaf.name}.crt", cert.public_bytes(serialization.Encoding.PEM))
    return names


def service_names(namespace: str, extra_names: Iterable[str] = ()) -> list[str]:
    """The names the gateway may call the service by, in-cluster, plus the operator's."""
    return [
        SERVICE,
        f"{SERVICE}.{namespace}",
        f"{SERVICE}.{namespace}.svc",
        f"{SERVICE}.{namespace}.svc.cluster.local",
        *extra_names,
    ]


def secrets(directory: Path, *, namespace: str = NAMESPACE, also_trust: bytes = b"") -> str:
    """The two Secrets (YAML, for ``kubectl apply -f -``), each with its own key only."""
    ca_pem = _read(directory / "ca.crt")
    documents = []
    for leaf in LEAVES:
        data = {
            "ca.crt": ca_pem + also_trust,
            "tls.crt": _read(directory / f"{leaf.name}.crt"),
            "tls.key": _read(directory / f"{leaf.name}.key"),
        }
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/tls",
                "metadata": {
                    "name": leaf.secret_name(),
                    "namespace": namespace,
                    "labels": {
                        "app.kubernetes.io/name": "kubeupdate",
                        "app.kubernetes.io/component": leaf.name,
                    },
                },
                "data": {k: base64.b64encode(v).decode("ascii") for k, v in data.items()},
            }
        )
    return yaml.safe_dump_all(documents, sort_keys=False)


def load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA of ``directory``; a sentence when it is missing or not one of ours."""
    if not (directory / "ca.key").exists():
        raise CertificateError(
            f"{directory} holds no CA (ca.key): `kubeupdate certs create --dir {directory}` "
            "makes one"
        )
    try:
        ca = x509.load_pem_x509_certificate(_read(directory / "ca.crt"))
        key = serialization.load_pem_private_key(_read(directory / "ca.key"), password=None)
    except ValueError as exc:
        raise CertificateError(f"{directory}: ca.crt or ca.key is not PEM: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != ca.public_key():
        raise CertificateError(f"{directory}: ca.key is not the key of ca.crt")
    return ca, key


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: dt.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _names_of(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses of a certificate, in its order."""
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [
        str(name.value)
        for name in extension.value
        if isinstance(name, x509.DNSName | x509.IPAddress)
    ]


def _general_names(names: Iterable[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise CertificateError(f"{path} is missing") from exc


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replaces ``path`` whole; a private key is never readable by others, not even briefly."""
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.replace(partial, path)
