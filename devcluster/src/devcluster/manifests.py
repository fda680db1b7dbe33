"""Manifests: read from multi-document YAML, or built for tests (plain dicts, as YAML loads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]


def load_manifests(path: Path) -> list[Object]:
    """The objects of a multi-document YAML file (a seed); raises ValueError on a non-object."""
    with path.open(encoding="utf-8") as stream:
        documents = [doc for doc in yaml.safe_load_all(stream) if doc]
    for document in documents:
        if not isinstance(document, dict) or "kind" not in document:
            raise ValueError(f"{path}: every document must be a Kubernetes object with a kind")
    return documents


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
