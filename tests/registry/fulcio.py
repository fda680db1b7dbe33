"""A test certificate authority that speaks Fulcio's ``/api/v2/signingCert``.

sigstore-js (the real signing tool these tests run) asks Fulcio for a
short-lived signing certificate: it sends an OIDC identity token, its
ephemeral public key, and a proof of possession (the token's subject signed
with that key). This CA checks the proof, then issues a certificate the way
Fulcio does: the subject in the SAN (e-mail or URI), the token's issuer in
the extension 1.3.6.1.4.1.57264.1.8 (and the older 1.1), code-signing usage.

The identity tokens are unsigned JWTs made by the test: this CA trusts its
caller, it stands in for Fulcio plus the OIDC provider.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubeupdate.registry.signatures import FULCIO_ISSUER_V1, FULCIO_ISSUER_V2


def identity_token(issuer: str, subject: str) -> str:
    """An unsigned JWT naming ``subject`` (an e-mail or a URI) as issued by ``issuer``."""
    claims: dict[str, object] = {"iss": issuer, "aud": "sigstore", "sub": subject}
    if "@" in subject and "://" not in subject:
        claims.update(email=subject, email_verified=True)

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.c2ln"


@dataclass
class FulcioStandIn:
    name: str = "kubeupdate test fulcio"
    issued: list[str] = field(default_factory=list)  # subjects

    def __post_init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.url = ""

    @property
    def root_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(self, token: str, public_key_pem: str, proof: bytes) -> list[str]:
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        subject = claims.get("email") or claims["sub"]
        public_key = serialization.load_pem_public_key(public_key_pem.encode())
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        public_key.verify(proof, subject.encode(), ec.ECDSA(hashes.SHA256()))  # possession
        san: x509.GeneralName = (
            x509.UniformResourceIdentifier(subject)
            if "://" in subject
            else x509.RFC822Name(subject)
        )
        issuer = claims["iss"].encode()
        now = dt.datetime.now(dt.UTC)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .add_extension(x509.UnrecognizedExtension(FULCIO_ISSUER_V1, issuer), critical=False)
            .add_extension(
                # A DER UTF8String (short form: issuers are far below 128 bytes).
                x509.UnrecognizedExtension(FULCIO_ISSUER_V2, bytes([0x0C, len(issuer)]) + issuer),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.issued.append(subject)
        return [
            leaf.public_bytes(serialization.Encoding.PEM).decode(),
            self.root_pem.decode(),
        ]


@contextmanager
def running_fulcio(fulcio: FulcioStandIn) -> Iterator[FulcioStandIn]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length))
            chain = fulcio.issue(
                request["credentials"]["oidcIdentityToken"],
                request["publicKeyRequest"]["publicKey"]["content"],
                base64.b64decode(request["publicKeyRequest"]["proofOfPossession"]),
            )
            body = json.dumps(
                {"signedCertificateEmbeddedSct": {"chain": {"certificates": chain}}}
            ).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fulcio.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fulcio
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
