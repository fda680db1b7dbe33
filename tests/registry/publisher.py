"""Pushes test images to a registry by the OCI distribution API (blobs, manifests, indexes).

A few HTTP calls per image, with the standard library: a blob is a POST that
opens an upload and a PUT that closes it with the digest; a manifest is a PUT
with its media type. Also writes signatures in cosign's format (the signature
tag with a simple signing payload), made with our own keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from kubeupdate.registry.manifests import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
)
from kubeupdate.registry.signatures import (
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
    SIMPLE_SIGNING_TYPE,
    signature_tag,
)
from tests.registry.distribution import RunningRegistry

Json = dict[str, Any]
_LAYER_TYPES = {
    OCI_MANIFEST: (
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ),
    DOCKER_MANIFEST: (
        "application/vnd.docker.container.image.v1+json",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ),
}


class Publisher:
    """Writes to one registry; ``authorization(repository)`` gives the header for a push."""

    def __init__(
        self,
        registry: RunningRegistry,
        authorization: Callable[[str], str | None] = lambda repository: None,
    ) -> None:
        self.registry = registry
        self._authorization = authorization
        self._context = (
            ssl.create_default_context(cafile=str(registry.ca_file)) if registry.ca_file else None
        )

    def blob(self, repository: str, data: bytes, media_type: str) -> Json:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, headers, _ = self._send("POST", f"/v2/{repository}/blobs/uploads/", repository)
        assert status == 202, status
        location = urllib.parse.urljoin(self.registry.url, headers["Location"])
        separator = "&" if "?" in location else "?"
        status, _, _ = self._send(
            "PUT",
            f"{location}{separator}digest={urllib.parse.quote(digest)}",
            repository,
            data,
            "application/octet-stream",
        )
        assert status == 201, status
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def manifest(self, repository: str, reference: str | None, body: Json) -> Json:
        """PUT a manifest (by tag, or by its digest when ``reference`` is None)."""
        data = json.dumps(body).encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, _, answer = self._send(
            "PUT",
            f"/v2/{repository}/manifests/{reference or digest}",
            repository,
            data,
            body["mediaType"],
        )
        assert status == 201, (status, answer)
        return {"mediaType": body["mediaType"], "digest": digest, "size": len(data)}

    def image(
        self,
        repository: str,
        tag: str | None,
        *,
        platform: str = "linux/amd64",
        media_type: str = OCI_MANIFEST,
    ) -> Json:
        """A single-platform image (config + one random layer); returns its descriptor."""
        os_name, architecture, *variant = platform.split("/")
        config_type, layer_type = _LAYER_TYPES[media_type]
        config: Json = {"architecture": architecture, "os": os_name, "rootfs": {"type": "layers"}}
        if variant:
            config["variant"] = variant[0]
        manifest = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": self.blob(repository, json.dumps(config).encode(), config_type),
            "layers": [self.blob(repository, os.urandom(64), layer_type)],
        }
        return self.manifest(repository, tag, manifest)

    def index(
        self,
        repository: str,
        tag: str,
        platforms: list[str],
        *,
        media_type: str = OCI_INDEX,
        attestation: bool = False,
    ) -> Json:
        """A multi-platform index; ``attestation`` adds buildx's ``unknown/unknown`` entry."""
        child_type = OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST
        entries = []
        for platform in platforms:
            descriptor = self.image(repository, None, platform=platform, media_type=child_type)
            os_name, architecture, *variant = platform.split("/")
            descriptor["platform"] = {"os": os_name, "architecture": architecture}
            if variant:
                descriptor["platform"]["variant"] = variant[0]
            entries.append(descriptor)
        if attestation:
            descriptor = self.image(repository, None, platform="linux/amd64")
            descriptor["platform"] = {"os": "unknown", "architecture": "unknown"}
            entries.append(descriptor)
        body = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
        assert media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST)
        return self.manifest(repository, tag, body)

    def sign(
        self,
        repository: str,
        digest: str,
        key: ec.EllipticCurvePrivateKey,
        *,
        signed_digest: str | None = None,
        annotations: dict[str, str] | None = None,
    ) -> None:
        """Add a cosign-format signature of ``digest`` (``signed_digest`` fakes the payload's)."""
        payload = json.dumps(
            {
                "critical": {
                    "identity": {"docker-reference": f"{self.registry.host}/{repository}"},
                    "image": {"docker-manifest-digest": signed_digest or digest},
                    "type": SIMPLE_SIGNING_TYPE,
                },
                "optional": None,
            }
        ).encode()
        signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
        layer = self.blob(repository, payload, SIMPLE_SIGNING)
        layer["annotations"] = {
            SIGNATURE_ANNOTATION: base64.b64encode(signature).decode(),
            **(annotations or {}),
        }
        tag = signature_tag(digest)
        layers = [*self._existing_layers(repository, tag), layer]
        config = self.blob(repository, b"{}", "application/vnd.oci.image.config.v1+json")
        body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}
        self.manifest(repository, tag, body)

    def get_manifest(self, repository: str, reference: str) -> tuple[int, dict[str, str], bytes]:
        """GET a (single-platform, OCI or Docker) manifest: status, headers, body."""
        return self._send(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            accept=f"{OCI_MANIFEST}, {DOCKER_MANIFEST}",
        )

    def delete_tag_manifest(self, repository: str, digest: str) -> None:
        status, _, _ = self._send("DELETE", f"/v2/{repository}/manifests/{digest}", repository)
        assert status == 202, status

    def _existing_layers(self, repository: str, tag: str) -> list[Json]:
        # cosign appends a signature to those already under the tag.
        status, _, body = self._send(
            "GET", f"/v2/{repository}/manifests/{tag}", repository, accept=OCI_MANIFEST
        )
        if status == 404:
            return []
        layers: list[Json] = json.loads(body)["layers"]
        return layers

    def _send(
        self,
        method: str,
        path: str,
        repository: str,
        data: bytes | None = None,
        content_type: str | None = None,
        accept: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        url = path if "://" in path else self.registry.url + path
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        if content_type:
            request.add_header("Content-Type", content_type)
        if accept:
            request.add_header("Accept", accept)
        authorization = self._authorization(repository)
        if authorization:
            request.add_header("Authorization", authorization)
        try:
            with urllib.request.urlopen(request, context=self._context, timeout=10) as response:  # noqa: S310
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()
