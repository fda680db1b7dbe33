"""A minimal OpenAPI v3 description: just what kubectl reads from it.

kubectl (``apply``, ``create``, ``replace``, ``patch``) validates on the
server when the OpenAPI v3 document says the resource's PATCH operation
takes the ``fieldValidation`` query parameter; otherwise it downloads the
full schemas to validate on the client. Declaring the parameter lets kubectl
send ``fieldValidation=Strict`` and build strategic merge patches from its
own compiled-in types, so the devcluster need not ship the Kubernetes schemas.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from devcluster.resources import ALL, ResourceType

_QUERY_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation", "force")


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _operation(resource: ResourceType, action: str) -> dict[str, Any]:
    return {
        "operationId": f"{action}{resource.kind}",
        "parameters": [
            {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
            for name in _QUERY_PARAMETERS
        ],
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": resource.group,
            "version": resource.version,
            "kind": resource.kind,
        },
    }


def _group_document(group: str, version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for resource in ALL:
        if resource.group != group or resource.version != version:
            continue
        base = "/" + _gv_path(group, version)
        scope = "/namespaces/{namespace}" if resource.namespaced else ""
        item = f"{base}{scope}/{resource.name}/{{name}}"
        paths[item] = {"patch": _operation(resource, "patch"), "put": _operation(resource, "put")}
        if "status" in resource.subresources:
            paths[f"{item}/status"] = {"patch": _operation(resource, "patch")}
        paths[f"{base}{scope}/{resource.name}"] = {"post": _operation(resource, "post")}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (devcluster)", "version": "v1.37.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


@functools.cache
def _documents() -> dict[str, bytes]:
    documents: dict[str, bytes] = {}
    root: dict[str, Any] = {"paths": {}}
    for group, version in sorted({(r.group, r.version) for r in ALL}):
        body = json.dumps(_group_document(group, version)).encode()
        gv = _gv_path(group, version)
        digest = hashlib.sha512(body).hexdigest()[:32].upper()
        documents[f"/openapi/v3/{gv}"] = body
        root["paths"][gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
    documents["/openapi/v3"] = json.dumps(root).encode()
    return documents


def document(path: str) -> bytes | None:
    """The OpenAPI v3 root or group-version document at ``path``, or None (404)."""
    return _documents().get(path.rstrip("/"))
