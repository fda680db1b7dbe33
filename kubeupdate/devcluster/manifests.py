"""Builders for the manifests tests and the demo create (plain dicts, as YAML would load)."""

from __future__ import annotations

from typing import Any

Object = dict[str, Any]


def deployment(
    name: str,
    namespace: str = "default",
    containers: dict[str, str] | None = None,
    replicas: int = 1,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> Object:
    """A Deployment whose pods carry ``app: <name>``; ``containers`` maps name to image."""
    containers = containers if containers is not None else {"app": "nginx:1.25"}
    selector = {"app": name}
    metadata: Object = {
        "name": name,
        "namespace": namespace,
        "labels": {**selector, **(labels or {})},
    }
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(selector)},
            "template": {
                "metadata": {"labels": dict(selector)},
                "spec": {
                    "containers": [{"name": c, "image": image} for c, image in containers.items()]
                },
            },
        },
    }


def namespace(name: str) -> Object:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
