"""What each verb means for an object: kube-apiserver's registry and strategies.

The HTTP layer (``server.py``) parses requests and renders answers; this
module decides: decoding, defaults, validation, which fields a write may
change (status only through ``/status``), generation bumps, each kind's
update rules and resourceVersion preconditions, dry runs, admission, namespace
existence, and deletion (graceful Pods, finalizers, the garbage collector's
finalizers, which :mod:`devcluster.garbage` then honours). The Python API
calls the same code, so objects created from a test are checked exactly like
objects created over HTTP.

Everything here runs on the server's event-loop thread.
"""

from __future__ import annotations

import builtins
import copy
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devcluster import decoding, deletion, patches
from devcluster.defaults import apply_defaults
from devcluster.resources import ALL, DEPLOYMENTS, NAMESPACES, PODS, SCALE, ResourceType
from devcluster.selectors import Selection
from devcluster.statuses import (
    APPLY_PATCH,
    ApiError,
    Cause,
    already_exists,
    apply_not_served,
    bad_request,
    conflict,
    delete_precondition_failed,
    invalid,
    invalid_options,
    namespace_not_found,
    not_found,
    rejected_request,
    resource_version_required,
    uid_conflict,
    unsupported_media_type,
)
from devcluster.store import Object, Store, timestamp
from devcluster.validation import go_value, invalid_value, validate

log = logging.getLogger(__name__)

#: Metadata only the server sets; a client's values are ignored.
_SERVER_OWNED = ("uid", "creationTimestamp", "resourceVersion", "generation", "managedFields")
_NAMESPACE_MISMATCH = (
    "the namespace of the provided object does not match the namespace sent on the request"
)
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

#: Validating admission: shown the object about to be stored (or deleted), it may refuse
#: by raising ApiError. It runs after defaults, validation and preconditions, and for dry
#: runs too, as kube-apiserver's validating webhooks and policies do.
Admission = Callable[[Object], None]


def _admit_all(obj: Object) -> None:
    """The admission chain of a cluster without webhooks or policies."""


#: propagationPolicy values, in the order ValidateDeleteOptions lists them.
_PROPAGATION_POLICIES = ("Foreground", "Background", "Orphan")
_ORPHAN = "orphan"
_FOREGROUND = "foregroundDeletion"


@dataclass(frozen=True)
class Deletion:
    """What a DELETE did: ``object`` as removed, or as it stays while it goes (not removed)."""

    object: Object
    removed: bool


def _finalizers(obj: Object) -> list[str]:
    finalizers: list[str] = obj["metadata"].get("finalizers") or []
    return finalizers


def _collection_finalizers(
    obj: Object, propagation: str | None, orphan_dependents: bool | None
) -> list[str]:
    """deletionFinalizersForGarbageCollection: the object's finalizers after this DELETE.

    The request decides (orphanDependents, then propagationPolicy); without a word
    from it, a garbage collector finalizer already there does; the default for every
    kind served is Background, which needs none.
    """
    existing = _finalizers(obj)
    if orphan_dependents is not None:
        orphan, foreground = orphan_dependents, False
    elif propagation is not None:
        orphan, foreground = propagation == "Orphan", propagation == "Foreground"
    else:
        first = next((f for f in existing if f in (_ORPHAN, _FOREGROUND)), None)
        orphan, foreground = first == _ORPHAN, first == _FOREGROUND
    kept = [f for f in existing if f not in (_ORPHAN, _FOREGROUND)]
    wanted = kept + [_ORPHAN] * orphan + [_FOREGROUND] * foreground
    return existing if set(wanted) == set(existing) else wanted


def _mark_deleting(obj: Object, now: float) -> None:
    """markAsDeleting: deletionTimestamp now (never later), no grace period, a new generation."""
    meta = obj["metadata"]
    if not meta.get("deletionTimestamp") and int(meta.get("generation") or 0) > 0:
        meta["generation"] = int(meta["generation"]) + 1
    if not meta.get("deletionTimestamp") or meta["deletionTimestamp"] > timestamp(now):
        meta["deletionTimestamp"] = timestamp(now)
    meta["deletionGracePeriodSeconds"] = 0


def _finalized(current: Object, new: Object) -> bool:
    """ShouldDeleteDuringUpdate: being deleted, no grace period left, no finalizer left."""
    meta = current["metadata"]
    return (
        bool(meta.get("deletionTimestamp"))
        and not meta.get("deletionGracePeriodSeconds")
        and not _finalizers(new)
    )


def _stamps(obj: Object) -> dict[str, Any]:
    return {k: obj["metadata"][k] for k in ("uid", "creationTimestamp", "resourceVersion")}


def _meta(obj: Object) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise bad_request("Object 'metadata' is missing or not an object")
    return meta


class Registry:
    """The verbs on stored objects, with kube-apiserver's semantics."""

    def __init__(
        self, store: Store, now: Callable[[], float], after_write: Callable[[], None]
    ) -> None:
        self.store = store
        self._now = now
        # Runs the controllers after each stored change, as watches would wake them.
        self._after_write = after_write

    # -- reads -----------------------------------------------------------------

    def get(self, resource: ResourceType, namespace: str, name: str) -> Object:
        obj = self.store.get(resource.name, namespace, name)
        if obj is None:
            raise not_found(resource, name)
        return obj

    def list(
        self, resource: ResourceType, namespace: str | None, selection: Selection
    ) -> tuple[list[Object], int]:
        """Matching objects and the resourceVersion the list was read at.

        A name pinned by the field selector reads one object; a label the selector
        requires reads the objects carrying it from the store's index; only the
        rest scans the namespace.
        """
        name = selection.name()
        hint = selection.label_hint()
        if name is not None and (namespace is not None or not resource.namespaced):
            one = self.store.get(resource.name, namespace or "", name)
            candidates = [one] if one is not None else []
        elif hint is not None:
            candidates = self.store.select(resource.name, namespace, *hint)
        else:
            candidates = self.store.list(resource.name, namespace)
        return [o for o in candidates if selection.matches(o)], self.store.resource_version

    # -- writes ----------------------------------------------------------------

    def create(
        self,
        resource: ResourceType,
        namespace: str,
        body: Object,
        dry_run: bool = False,
        admit: Admission = _admit_all,
    ) -> Object:
        obj = self._typed(resource, body)
        meta = _meta(obj)
        self._check_namespace(resource, namespace, meta)
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        name = str(meta.get("name") or "")
        for key in _SERVER_OWNED:
            meta.pop(key, None)
        apply_defaults(resource, obj)
        causes = validate(resource, obj)
        if causes:
            raise invalid(resource, name, causes)
        if resource.namespaced and self.store.get(NAMESPACES.name, "", namespace) is None:
            raise namespace_not_found(namespace)
        if (
            self.store.get(resource.name, namespace if resource.namespaced else "", name)
            is not None
        ):
            raise already_exists(resource, name)
        if resource is PODS:
            obj["status"] = {"phase": "Pending"}
        elif resource.has_status and resource is not NAMESPACES:
            obj["status"] = {}  # the strategies reset status on create
        admit(obj)
        if dry_run:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = timestamp(self._now())
            if resource.has_generation:
                meta["generation"] = 1
            return obj
        stored = self.store.create(resource.name, obj)
        self._after_write()
        return stored

    def update(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        body: Object,
        subresource: str = "",
        dry_run: bool = False,
        check_resource_version: bool = True,
        admit: Admission = _admit_all,
    ) -> Object:
        """Replaces an object (PUT), with the strategy's rules for resourceVersion.

        A missing object is a 404, or created when the kind allows create-on-update
        (Leases, Events). Without ``metadata.resourceVersion`` the latest object is
        replaced, unless the kind refuses unconditional updates (Leases: 422); a stale
        one is a 409 Conflict, and so is a ``metadata.uid`` of another object.
        """
        obj = self._typed(resource, body)
        meta = _meta(obj)
        if meta.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on"
                f" the URL ({name})"
            )
        if resource.namespaced and meta.get("namespace", namespace) != namespace:
            raise bad_request(_NAMESPACE_MISMATCH)
        current = self.store.get(resource.name, namespace, name)
        if current is None:
            if not resource.create_on_update or subresource:
                raise not_found(resource, name)
            if meta.get("uid"):
                raise uid_conflict(resource, name, meta["uid"], "")
            return self.create(
                resource,
                namespace,
                {**obj, "metadata": {**meta, "name": name}},
                dry_run=dry_run,
                admit=admit,
            )
        wanted = meta.get("resourceVersion")
        if check_resource_version:
            if not wanted and not resource.unconditional_update:
                raise resource_version_required(resource, name)
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise conflict(resource, name)
        if meta.get("uid") and meta["uid"] != current["metadata"]["uid"]:
            raise uid_conflict(resource, name, meta["uid"], current["metadata"]["uid"])
        if subresource == "status":
            # Only status changes through /status; spec and metadata stay as stored.
            new = copy.deepcopy(current)
            new["status"] = obj.get("status", {})
        else:
            new = obj
            new_meta = {k: v for k, v in meta.items() if k not in _SERVER_OWNED}
            new_meta["name"] = name
            if resource.namespaced:
                new_meta["namespace"] = namespace
            # rest.BeforeUpdate: an update never removes or moves a deletion under way.
            for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                if key in current["metadata"]:
                    new_meta[key] = current["metadata"][key]
            new["metadata"] = new_meta
            apply_defaults(resource, new)
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])
            else:
                new.pop("status", None)
            causes = validate(resource, new, old=current)
            if causes:
                raise invalid(resource, name, causes)
            if resource.has_generation:
                generation = int(current["metadata"].get("generation", 1))
                if self._bumps_generation(resource, current, new):
                    generation += 1
                new_meta["generation"] = generation
        admit(new)
        if dry_run:
            preview = copy.deepcopy(new)
            preview["metadata"].update(
                {k: current["metadata"][k] for k in ("uid", "creationTimestamp", "resourceVersion")}
            )
            return preview
        if _finalized(current, new):
            # ShouldDeleteDuringUpdate: the last finalizer of an object being deleted is gone.
            gone = self.store.delete(resource.name, namespace, name)
            self._after_write()
            return {**new, "metadata": {**new["metadata"], **_stamps(gone)}}
        stored = self.store.update(resource.name, new)
        if stored is not current:
            self._after_write()
        return stored

    def patch(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        body: bytes,
        content_type: str,
        subresource: str = "",
        dry_run: bool = False,
        admit: Admission = _admit_all,
    ) -> Object:
        if content_type.partition(";")[0] == APPLY_PATCH:
            raise apply_not_served()
        current = self.get(resource, namespace, name)
        if subresource == "scale":
            patched_scale = self._apply_patch(self._scale_view(current), body, content_type)
            return self.update_scale(resource, namespace, name, patched_scale, dry_run, admit)
        patched = self._apply_patch(current, body, content_type)
        wanted = patched["metadata"].get("resourceVersion")
        if not wanted and not resource.unconditional_update:
            raise resource_version_required(resource, name)  # the patch removed it
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise conflict(resource, name)
        # kube-apiserver re-applies a patch without resourceVersion to the latest object,
        # so the update below must not see the (equal) version as a precondition.
        return self.update(
            resource,
            namespace,
            name,
            patched,
            subresource=subresource,
            dry_run=dry_run,
            check_resource_version=False,
            admit=admit,
        )

    @staticmethod
    def _apply_patch(current: Object, body: bytes, content_type: str) -> Object:
        try:
            patched = patches.apply_patch(current, body, content_type)
        except patches.UnsupportedPatchType as exc:
            raise unsupported_media_type() from exc
        except patches.PatchError as exc:
            if exc.code == 422:
                raise rejected_request() from exc
            raise bad_request(str(exc)) from exc
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise bad_request("the patched object has no metadata")
        return patched

    # -- the scale subresource (kubectl scale) ----------------------------------

    def scale(self, resource: ResourceType, namespace: str, name: str) -> Object:
        return self._scale_view(self.get(resource, namespace, name))

    def update_scale(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        body: Object,
        dry_run: bool = False,
        admit: Admission = _admit_all,
    ) -> Object:
        current = self.get(resource, namespace, name)
        meta = body.get("metadata") or {}
        wanted = meta.get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise conflict(resource, name)
        replicas = (body.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            cause = invalid_value("spec.replicas", replicas, "must be greater than or equal to 0")
            raise invalid(SCALE, name, [cause])
        new = copy.deepcopy(current)
        new["spec"]["replicas"] = replicas
        updated = self.update(
            resource,
            namespace,
            name,
            new,
            dry_run=dry_run,
            check_resource_version=False,
            admit=admit,
        )
        return self._scale_view(updated)

    @staticmethod
    def _scale_view(obj: Object) -> Object:
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        match = (spec.get("selector") or {}).get("matchLabels") or {}
        return {
            "kind": SCALE.kind,
            "apiVersion": SCALE.api_version,
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": spec.get("replicas", 0)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in sorted(match.items())),
            },
        }

    def delete(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        dry_run: bool = False,
        preconditions: dict[str, Any] | None = None,
        propagation: str | None = None,
        orphan_dependents: bool | None = None,
        admit: Admission = _admit_all,
        grace_period_seconds: int | None = None,
    ) -> Deletion:
        """Deletes an object as the generic registry's Delete does.

        The object is removed at once unless something must happen first: a Pod on a
        node terminates gracefully (:mod:`devcluster.deletion`); finalizers keep any
        object (``deletionTimestamp`` set) until they are removed. ``propagation``
        (``propagationPolicy``: Background by default, Foreground, Orphan) adds or
        removes the garbage collector's finalizers, which :mod:`devcluster.garbage`
        then honours; so do the object's own when the request names no policy.
        """
        current = self.get(resource, namespace, name)
        self._check_delete_options(propagation, orphan_dependents)
        meta = current["metadata"]
        preconditions = preconditions or {}
        for field, key in (("UID", "uid"), ("ResourceVersion", "resourceVersion")):
            wanted = preconditions.get(key)
            if wanted and wanted != meta[key]:
                raise delete_precondition_failed(resource, name, field, wanted, meta[key])
        admit(current)
        if dry_run:
            return Deletion(current, removed=not _finalizers(current))
        now = self._now()
        marked = deletion.graceful(resource.name, current, grace_period_seconds, now)
        if marked is current and meta.get("deletionTimestamp"):
            return Deletion(current, removed=False)  # already going, and no sooner
        graceful = marked is not None
        going = marked if marked is not None else current
        finalizers = _collection_finalizers(going, propagation, orphan_dependents)
        if graceful or finalizers:
            kept = copy.deepcopy(going)
            if finalizers:
                kept["metadata"]["finalizers"] = finalizers
            else:
                kept["metadata"].pop("finalizers", None)
            if not graceful:
                _mark_deleting(kept, now)
            stored = self.store.update(resource.name, kept)
            self._after_write()
            return Deletion(stored, removed=False)
        gone = self.store.delete(resource.name, namespace, name)
        if resource is NAMESPACES:
            self._empty_namespace(name)
        self._after_write()
        return Deletion(gone, removed=True)

    def delete_collection(
        self,
        resource: ResourceType,
        namespace: str | None,
        selection: Selection,
        dry_run: bool = False,
        propagation: str | None = None,
        orphan_dependents: bool | None = None,
        admit: Admission = _admit_all,
        grace_period_seconds: int | None = None,
    ) -> tuple[builtins.list[Object], int]:
        """DELETE on a collection: every selected object, as listed before (and the list's RV)."""
        self._check_delete_options(propagation, orphan_dependents)
        items, resource_version = self.list(resource, namespace, selection)
        for obj in items:
            meta = obj["metadata"]
            try:
                self.delete(
                    resource,
                    meta.get("namespace", ""),
                    meta["name"],
                    dry_run=dry_run,
                    propagation=propagation,
                    orphan_dependents=orphan_dependents,
                    admit=admit,
                    grace_period_seconds=grace_period_seconds,
                )
            except ApiError as exc:
                if exc.code != 404:  # deleted meanwhile (by the garbage collector): fine
                    raise
        return items, resource_version

    @staticmethod
    def _check_delete_options(propagation: str | None, orphan_dependents: bool | None) -> None:
        """ValidateDeleteOptions, as rest.BeforeDelete runs it (after the object was found)."""
        causes: builtins.list[Cause] = []
        if orphan_dependents is not None and propagation is not None:
            causes.append(
                invalid_value(
                    "propagationPolicy",
                    propagation,
                    "orphanDependents and deletionPropagation cannot be both set",
                )
            )
        if propagation is not None and propagation not in _PROPAGATION_POLICIES:
            supported = ", ".join(f'"{p}"' for p in (*_PROPAGATION_POLICIES, "nil"))
            causes.append(
                Cause(
                    "FieldValueNotSupported",
                    "propagationPolicy",
                    f"Unsupported value: {go_value(propagation)}: supported values: {supported}",
                )
            )
        if causes:
            raise invalid_options("DeleteOptions", causes)

    def _empty_namespace(self, namespace: str) -> None:
        """The namespace controller's work, done at once: the namespace's objects go with it."""
        for kind in (r.name for r in ALL if r.namespaced):
            for obj in self.store.list(kind, namespace):
                self._delete_quietly(kind, obj)

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def _typed(resource: ResourceType, body: Object) -> Object:
        """The body as an object of ``resource``: kind checked, copied, decoded as Go would."""
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        kind = body.get("kind")
        if kind and kind != resource.kind:
            raise bad_request(
                f"the API version in the data ({body.get('apiVersion')}) does not match the"
                f" expected API version ({resource.api_version})"
                if body.get("apiVersion") != resource.api_version
                else f"Object kind {kind} does not match {resource.kind}"
            )
        # A deep copy: defaults and metadata are filled in place, and the caller
        # (the Python API, or a patch result) keeps its own dict.
        obj = copy.deepcopy(body)
        obj["kind"] = resource.kind
        obj["apiVersion"] = resource.api_version
        decoding.decode(resource, obj)
        return obj

    @staticmethod
    def _check_namespace(resource: ResourceType, namespace: str, meta: dict[str, Any]) -> None:
        if not resource.namespaced:
            meta.pop("namespace", None)
            return
        given = meta.get("namespace")
        if given and given != namespace:
            raise bad_request(_NAMESPACE_MISMATCH)
        meta["namespace"] = namespace

    @staticmethod
    def _bumps_generation(resource: ResourceType, old: Object, new: Object) -> bool:
        if old.get("spec") != new.get("spec"):
            return True
        # The Deployment strategy also counts annotations (kubectl rollout restart, change-cause).
        return resource is DEPLOYMENTS and (old["metadata"].get("annotations") or {}) != (
            new["metadata"].get("annotations") or {}
        )

    def _delete_quietly(self, kind: str, obj: Object) -> None:
        meta = obj["metadata"]
        try:
            self.store.delete(kind, meta.get("namespace", ""), meta["name"])
        except Exception:  # already gone: nothing to collect
            log.debug("garbage already collected: %s %s", kind, meta["name"])
