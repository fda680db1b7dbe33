"""Optional TLS on the gRPC port, with client certificates as an identity.

The server presents ``cert``/``key``. With a client CA every client must
present a certificate it signed (gRPC Python cannot ask for an *optional*
client certificate), and a verified certificate identifies the caller by its
subject common name and subject alternative names. ``authorization`` metadata,
when sent, still wins over the certificate: so a REST gateway holding a client
certificate forwards its callers' own credentials, and a policy must never
grant anything to the gateway's certificate identity.

The serving pair is checked at start: an expired certificate, one not valid
yet, or a key that is not its key stops the service with a sentence (gRPC
would fail each handshake instead); one within 30 days of its end is warned
about.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import grpc

from kubeupdate.caller import Caller

log = logging.getLogger(__name__)


#: A serving certificate closer than this to its end is warned about at start.
EXPIRY_WARNING = dt.timedelta(days=30)


def server_credentials(
    cert: Path, key: Path, client_ca: Path | None = None, *, now: dt.datetime | None = None
) -> grpc.ServerCredentials:
    """TLS credentials for the server; with ``client_ca``, client certificates are required.

    Raises ValueError for a pair no client could use (an expired certificate, or a
    key that is not its key), which gRPC would only report at each handshake.
    """
    check_serving_pair(cert.read_bytes(), key.read_bytes(), cert, now or dt.datetime.now(dt.UTC))
    pair = [(key.read_bytes(), cert.read_bytes())]
    if client_ca is None:
        return grpc.ssl_server_credentials(pair)
    return grpc.ssl_server_credentials(
        pair, root_certificates=client_ca.read_bytes(), require_client_auth=True
    )


def check_serving_pair(cert_pem: bytes, key_pem: bytes, where: Path, now: dt.datetime) -> None:
    """Refuses what would fail every handshake; warns when the end is near."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    renew = "renew it (`kubeupdate certs renew`, see OPERATIONS.md)"
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        raise ValueError(f"--tls-cert {where} or its --tls-key is not PEM: {exc}") from None
    if key.public_key() != cert.public_key():
        raise ValueError(f"--tls-key is not the key of the certificate in --tls-cert {where}")
    if now >= cert.not_valid_after_utc:
        raise ValueError(
            f"the certificate in --tls-cert {where} expired on "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: {renew}"
        )
    if now < cert.not_valid_before_utc:
        raise ValueError(
            f"the certificate in --tls-cert {where} is valid only from "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (is this host's clock right?)"
        )
    left = cert.not_valid_after_utc - now
    if left < EXPIRY_WARNING:
        log.warning(
            "the certificate in --tls-cert %s expires in %d days (%s UTC): %s",
            where,
            left.days,
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M}",
            renew,
        )


def certificate_identities(auth_context: dict[str, Any]) -> set[str]:
    """The names of a verified client certificate: its common name and SANs (none without)."""
    caller = caller_from_auth_context(auth_context)
    if caller is None:
        return set()
    names = set(caller.claims.get("sans", "").split())
    if caller.claims.get("common_name"):
        names.add(caller.claims["common_name"])
    return names


def caller_from_auth_context(auth_context: dict[str, Any]) -> Caller | None:
    """The caller a verified client certificate names, or None without one."""
    if not auth_context.get("x509_pem_cert"):
        return None  # no client certificate (or no TLS at all)
    common_name = _first(auth_context.get("x509_common_name"))
    sans = [_text(v) for v in auth_context.get("x509_subject_alternative_name") or ()]
    name = common_name or (sans[0] if sans else "")
    if not name:
        return None
    claims = {"sans": " ".join(s for s in sans if s and " " not in s)}
    if common_name:
        claims["common_name"] = common_name
    return Caller(name=f"cert:{name}", method="mtls", claims=claims)


def _first(values: Any) -> str:
    for value in values or ():
        return _text(value)
    return ""


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
