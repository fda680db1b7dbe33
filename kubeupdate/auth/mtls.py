"""Optional TLS on the gRPC port, with client certificates as an identity.

The server presents ``cert``/``key``. With a client CA every client must
present a certificate it signed (gRPC Python cannot ask for an *optional*
client certificate), and a verified certificate identifies the caller by its
subject common name and subject alternative names. ``authorization`` metadata,
when sent, still wins over the certificate: so a REST gateway holding a client
certificate forwards its callers' own credentials, and a policy must never
grant anything to the gateway's certificate identity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from kubeupdate.caller import Caller


def server_credentials(
    cert: Path, key: Path, client_ca: Path | None = None
) -> grpc.ServerCredentials:
    """TLS credentials for the server; with ``client_ca``, client certificates are required."""
    pair = [(key.read_bytes(), cert.read_bytes())]
    if client_ca is None:
        return grpc.ssl_server_credentials(pair)
    return grpc.ssl_server_credentials(
        pair, root_certificates=client_ca.read_bytes(), require_client_auth=True
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
