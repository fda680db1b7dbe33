"""What kubeupdate needs to know about a kind of workload, so that a new kind is a new module.

A workload has a pod template whose containers kubeupdate reads and changes, a
rule that says how far its rollout is (kubectl's, which differs per kind), and
a history of revisions. The use cases (:mod:`kubeupdate.containers`,
:mod:`kubeupdate.updates`, :mod:`kubeupdate.rollouts`) are written against
:class:`WorkloadKind`; :mod:`kubeupdate.workloads.deployments` is the
Deployment's. A StatefulSet or a DaemonSet is one more module beside it: its
own rule (kubectl's ``StatefulSetStatusViewer`` / ``DaemonSetStatusViewer``),
its revisions (ControllerRevisions instead of ReplicaSets), the label that
finds the Pods of a revision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from kubeupdate.errors import Reason
from kubeupdate.kube.api import DeploymentApi, JsonObject, JsonPatch, Resource
from kubeupdate.patches import RecordedChange
from kubeupdate.workloads.templates import ContainerImage

if TYPE_CHECKING:
    from kubeupdate.workloads.access import WorkloadAccess


@dataclass(frozen=True)
class Progress:
    """What a kind's rollout rule reads from one object of that kind.

    ``message`` and ``done`` are kubectl's (``kubectl rollout status``);
    ``failed`` is where kubectl exits with an error (the message then is that
    error). ``reason`` is the controller's word for where it stands (for a
    Deployment, the reason of its Progressing condition); ``observed`` whether
    the controller has seen the latest spec; ``paused`` whether someone
    paused its rollouts (a Deployment's ``spec.paused``).
    """

    message: str
    done: bool
    reason: str
    observed: bool
    replicas: int
    updated_replicas: int
    ready_replicas: int
    available_replicas: int
    revision: int
    failed: bool = False
    paused: bool = False


@dataclass(frozen=True)
class Revision:
    """One revision of a workload, as ``kubectl rollout history`` lists it."""

    revision: int
    #: The object that holds the revision (a Deployment's: its ReplicaSet).
    name: str
    #: kubeupdate's sentence when it made the revision, else ``kubernetes.io/change-cause``
    #: as ``kubectl rollout history`` shows it (unchecked: the controller copies it).
    change_cause: str
    containers: list[ContainerImage]
    created: str  # RFC 3339, as Kubernetes writes creationTimestamp
    replicas: int
    #: What kubeupdate changed to make this revision; None when someone else made it.
    change: RecordedChange | None = None


@dataclass(frozen=True)
class RevisionPods:
    """Where the Pods of a workload's current revision are."""

    #: The name of the object that owns them (a Deployment's: the new ReplicaSet).
    owner: str
    #: Its uid: the Pods name it in their ownerReferences.
    owner_uid: str
    #: Labels every Pod of the revision carries (a Deployment's: its pod-template-hash).
    labels: Mapping[str, str]

    @property
    def selector(self) -> str:
        """A label selector that finds them (and maybe others, filtered by ``owner``)."""
        return ",".join(f"{key}={value}" for key, value in sorted(self.labels.items()))

    def holds(self, pod: JsonObject) -> bool:
        """Whether ``pod`` is one of them (owned by the revision's owner, with its labels)."""
        metadata = pod.get("metadata") or {}
        labels = metadata.get("labels") or {}
        return all(labels.get(k) == v for k, v in self.labels.items()) and any(
            ref.get("uid") == self.owner_uid for ref in metadata.get("ownerReferences") or []
        )


class WorkloadKind(Protocol):
    """One kind of workload: where its objects are, its pod template, its rollout rule."""

    @property
    def name(self) -> str:
        """As kubectl and messages name it ("deployment")."""
        ...

    @property
    def not_found(self) -> Reason:
        """The reason of the error for an object of this kind that does not exist."""
        ...

    @property
    def resource(self) -> Resource:
        """Its collection in the API (watched by name while a rollout is followed)."""
        ...

    @property
    def revision_resource(self) -> Resource:
        """Where the objects that hold its revisions are (a Deployment's: its ReplicaSets)."""
        ...

    @property
    def pod_spec(self) -> tuple[str, ...]:
        """The keys from the object to its pod spec (for a Deployment: spec, template, spec)."""
        ...

    async def get(
        self, api: DeploymentApi, namespace: str, name: str, *, deadline: float | None
    ) -> JsonObject:
        """The object, as the API server returns it (raises Kubernetes errors)."""
        ...

    async def patch(
        self,
        api: DeploymentApi,
        namespace: str,
        name: str,
        operations: JsonPatch,
        *,
        dry_run: bool,
        deadline: float | None,
    ) -> JsonObject:
        """Apply a JSON patch; the object after it (raises Kubernetes errors)."""
        ...

    def progress(self, obj: JsonObject, pods: Sequence[JsonObject] = ()) -> Progress:
        """The kind's rollout rule applied to ``obj`` (and the Pods of its current revision)."""
        ...

    async def revisions(
        self, access: WorkloadAccess, namespace: str, obj: JsonObject, *, deadline: float | None
    ) -> list[Revision]:
        """Every revision kept, newest first."""
        ...

    def revision_pods(
        self, obj: JsonObject, revisions: Sequence[JsonObject]
    ) -> RevisionPods | None:
        """Where the Pods of the current revision are, once the controller made it.

        ``revisions`` are objects of :attr:`revision_resource` that may belong
        to ``obj`` (say, those naming its uid as an owner); None until the
        controller has observed the latest spec and made its revision.
        """
        ...

    async def current_pods(
        self, access: WorkloadAccess, namespace: str, obj: JsonObject, *, deadline: float | None
    ) -> RevisionPods | None:
        """:meth:`revision_pods`, with the revisions listed from the API."""
        ...
