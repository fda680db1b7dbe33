"""The records' Kubernetes access: each write a compare-and-swap on the Lease.

Every update carries the resourceVersion of the record it was made from, so
of two replicas writing one record, exactly one succeeds; the other gets
:class:`HoldLost` and must stop acting on it. Kubernetes errors are
translated here (:func:`kubeupdate.kube.translation.translate_error`).
"""

from __future__ import annotations

from kubeupdate import errors
from kubeupdate.errors import ErrorReason
from kubeupdate.guarded import records
from kubeupdate.guarded.records import GuardedRecord
from kubeupdate.kube import errors as kube_errors
from kubeupdate.kube.api import JsonObject, LeaseApi
from kubeupdate.kube.translation import translate_error


class HoldLost(Exception):
    """The record changed (or vanished) since it was read: someone else holds it now."""


class RecordLeases:
    """Reads and writes guarded-rollout records through ``api``."""

    def __init__(self, api: LeaseApi) -> None:
        self._api = api

    async def create(self, lease: JsonObject, *, deadline: float | None = None) -> GuardedRecord:
        namespace = str(lease["metadata"]["namespace"])
        try:
            created = await self._api.create_lease(namespace, lease, deadline=deadline)
        except kube_errors.KubeError as exc:
            raise _translated(exc, "create", namespace) from exc
        return records.parse(created)

    async def get(
        self, namespace: str, name: str, *, deadline: float | None = None
    ) -> GuardedRecord | None:
        """The record, or None when there is none (or the Lease is not one)."""
        try:
            lease = await self._api.get_lease(namespace, name, deadline=deadline)
        except kube_errors.NotFound:
            return None
        except kube_errors.KubeError as exc:
            raise _translated(exc, "get", namespace) from exc
        try:
            return records.parse(lease)
        except ValueError:
            return None

    async def update(
        self, record: GuardedRecord, lease: JsonObject, *, deadline: float | None = None
    ) -> GuardedRecord:
        """Write ``lease`` (made from ``record``) if the record is unchanged; the new record."""
        lease["metadata"]["resourceVersion"] = record.resource_version
        try:
            written = await self._api.update_lease(
                record.namespace, record.name, lease, deadline=deadline
            )
        except (kube_errors.Conflict, kube_errors.NotFound) as exc:
            raise HoldLost(f"guarded rollout {record.name} changed meanwhile") from exc
        except kube_errors.KubeError as exc:
            raise _translated(exc, "update", record.namespace) from exc
        return records.parse(written)

    async def delete(self, record: GuardedRecord, *, deadline: float | None = None) -> None:
        """Delete the record if it is unchanged (else someone wrote it: keep it)."""
        try:
            await self._api.delete_lease(
                record.namespace,
                record.name,
                resource_version=record.resource_version,
                deadline=deadline,
            )
        except (kube_errors.Conflict, kube_errors.NotFound) as exc:
            raise HoldLost(f"guarded rollout {record.name} changed meanwhile") from exc
        except kube_errors.KubeError as exc:
            raise _translated(exc, "delete", record.namespace) from exc


def not_found(namespace: str, deployment: str, rollout_id: str) -> errors.NotFound:
    return errors.NotFound(
        f'no guarded rollout "{rollout_id}" of Deployment {namespace}/{deployment}: it never '
        "existed, or it ended and its verdict was forgotten after the retention",
        reason=ErrorReason.GUARDED_ROLLOUT_NOT_FOUND,
        metadata={"namespace": namespace, "deployment": deployment, "rolloutId": rollout_id},
    )


def _translated(exc: kube_errors.KubeError, verb: str, namespace: str) -> errors.KubeupdateError:
    if isinstance(exc, kube_errors.Forbidden) and not exc.kind:
        # A 403 without details still concerns the Leases.
        return errors.PermissionMissing(
            f"kubeupdate's service account may not {verb} leases.coordination.k8s.io in "
            f'namespace "{namespace}" (Kubernetes said: {exc.message})',
            metadata={"verb": verb, "resource": "leases.coordination.k8s.io"},
        )
    return translate_error(exc, verb, namespace)
