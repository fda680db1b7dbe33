"""An in-memory :class:`~kubeupdate.kube.api.DeploymentApi`: a test double for unit tests.

The demo and the tests that cross layers use the devcluster instead; this one
is for tests of a single layer (the domain, the servicer) that want to queue
errors or change an object between a read and a patch.

It behaves like kube-apiserver where the domain depends on it: 404 Status
details name the missing resource (``deployments`` even when the namespace is
missing), a JSON patch (test, replace, add of an object member) is applied
atomically to the latest object, a failed ``test`` op is kube-apiserver's
generic 422 (no causes, nothing that names the test),
``metadata.generation`` grows when the spec changes and
``metadata.resourceVersion`` with every write. It cannot watch.
Errors can be queued per method, and a hook runs before each patch so a test
can change the object "concurrently".
"""

from __future__ import annotations

import copy
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from kubeupdate.kube import errors
from kubeupdate.kube.api import JsonObject, JsonPatch

BeforePatch = Callable[[JsonObject], None]


class InMemoryDeploymentApi:
    """Deployments and namespaces in dictionaries."""

    def __init__(self) -> None:
        self.namespaces: set[str] = set()
        self.deployments: dict[tuple[str, str], JsonObject] = {}
        # Every call, as (method, namespace, name), in order.
        self.calls: list[tuple[str, str, str]] = []
        # The operations of every patch received, applied or not.
        self.patches: list[JsonPatch] = []
        self.before_patch: BeforePatch | None = None
        self._failures: dict[str, deque[errors.KubeError]] = defaultdict(deque)
        self._version = 0

    def _next_version(self) -> int:
        self._version += 1
        return self._version

    def add_deployment(
        self,
        namespace: str,
        name: str,
        containers: dict[str, str],
        init_containers: dict[str, str] | None = None,
    ) -> JsonObject:
        """Store a Deployment (and its namespace) with containers name → image."""
        self.namespaces.add(namespace)
        pod_spec: dict[str, Any] = {
            "containers": [{"name": n, "image": i} for n, i in containers.items()]
        }
        if init_containers:
            pod_spec["initContainers"] = [
                {"name": n, "image": i} for n, i in init_containers.items()
            ]
        obj: JsonObject = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "namespace": namespace,
                "name": name,
                "generation": 1,
                "resourceVersion": str(self._next_version()),
            },
            "spec": {"template": {"spec": pod_spec}},
        }
        self.deployments[(namespace, name)] = obj
        return obj

    def fail_next(self, method: str, *failures: errors.KubeError) -> None:
        """Make the next calls of ``method`` (e.g. ``get_deployment``) raise these."""
        self._failures[method].extend(failures)

    def image(self, namespace: str, name: str, container: str) -> str:
        for field in ("containers", "initContainers"):
            for entry in self.deployments[(namespace, name)]["spec"]["template"]["spec"].get(
                field, []
            ):
                if entry["name"] == container:
                    return str(entry["image"])
        raise KeyError(container)

    async def get_deployment(
        self, namespace: str, name: str, *, deadline: float | None = None
    ) -> JsonObject:
        self._enter("get_deployment", namespace, name)
        return copy.deepcopy(self._deployment("GET", namespace, name))

    async def get_namespace(self, namespace: str, *, deadline: float | None = None) -> JsonObject:
        self._enter("get_namespace", namespace, "")
        if namespace not in self.namespaces:
            raise _not_found("GET", f"/api/v1/namespaces/{namespace}", "namespaces", "", namespace)
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}

    async def patch_deployment(
        self,
        namespace: str,
        name: str,
        operations: JsonPatch,
        *,
        dry_run: bool = False,
        deadline: float | None = None,
    ) -> JsonObject:
        self.patches.append(copy.deepcopy(operations))
        self._enter("patch_deployment", namespace, name)
        current = self._deployment("PATCH", namespace, name)
        if self.before_patch is not None:
            self.before_patch(current)
        patched = copy.deepcopy(current)
        for op in operations:
            _apply(patched, op, namespace, name)
        if patched.get("spec") != current.get("spec"):
            patched["metadata"]["generation"] = current["metadata"].get("generation", 0) + 1
        if not dry_run:
            patched["metadata"]["resourceVersion"] = str(self._next_version())
            self.deployments[(namespace, name)] = patched
        return copy.deepcopy(patched)

    def _enter(self, method: str, namespace: str, name: str) -> None:
        self.calls.append((method, namespace, name))
        if self._failures[method]:
            raise self._failures[method].popleft()

    def _deployment(self, method: str, namespace: str, name: str) -> JsonObject:
        try:
            return self.deployments[(namespace, name)]
        except KeyError:
            path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
            raise _not_found(method, path, "deployments", "apps", name) from None


def _not_found(method: str, path: str, kind: str, group: str, name: str) -> errors.NotFound:
    resource = f"{kind}.{group}" if group else kind
    return errors.NotFound(
        404,
        method=method,
        path=path,
        reason="NotFound",
        message=f'{resource} "{name}" not found',
        details={"name": name, "group": group, "kind": kind},
    )


def _apply(obj: JsonObject, op: dict[str, Any], namespace: str, name: str) -> None:
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    target: Any = obj
    try:
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        key: Any = int(last) if isinstance(target, list) else last
        if op["op"] == "test":
            if target[key] != op["value"]:
                raise _test_failed(op, namespace, name)
        elif op["op"] == "replace":
            target[key]  # replace requires an existing member: KeyError otherwise
            target[key] = op["value"]
        elif op["op"] == "add" and isinstance(target, dict):
            target[key] = copy.deepcopy(op["value"])  # adds, or replaces a member
        else:
            raise ValueError(f"unsupported op {op['op']}")
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        if op["op"] == "test":
            raise _test_failed(op, namespace, name) from exc
        raise errors.Invalid(
            422,
            method="PATCH",
            path=f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
            reason="Invalid",
            message=f"the server rejected our request due to an error in our request: {exc}",
        ) from exc


def _test_failed(op: dict[str, Any], namespace: str, name: str) -> errors.Invalid:
    """What kube-apiserver answers a JSON patch that does not apply: a generic 422, no causes."""
    return errors.Invalid(
        422,
        method="PATCH",
        path=f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
        reason="Invalid",
        message="the server rejected our request due to an error in our request",
        details={},
    )
