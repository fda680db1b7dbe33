"""The resource types the devcluster serves, with what discovery says of them.

One table drives routing, Status details, discovery documents and the
names kubectl prints, so adding a resource is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceType:
    """One REST resource, e.g. ``deployments`` in ``apps/v1``."""

    name: str  # plural, as in the URL
    singular: str
    kind: str
    group: str  # "" for the core group
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )
    subresources: tuple[str, ...] = ("status",)
    categories: tuple[str, ...] = ("all",)
    #: Spec changes (and for Deployments annotation changes) bump metadata.generation.
    has_generation: bool = True
    #: Whether objects have a ``status`` the API server resets on create and keeps on update.
    has_status: bool = True
    #: The strategy's AllowCreateOnUpdate: a PUT of a missing object creates it (201).
    create_on_update: bool = False
    #: The strategy's AllowUnconditionalUpdate: a PUT without metadata.resourceVersion
    #: updates the latest object; otherwise it is refused (422).
    unconditional_update: bool = True
    #: DELETE answers the deleted object (its registry's ReturnDeletedObject), not a Status.
    returns_deleted: bool = False
    #: The fields a fieldSelector may name, when the kind registers its own list with
    #: kube-apiserver (refusing others with "field label not supported: X"); None: only
    #: metadata.name and metadata.namespace, apimachinery's default conversion.
    field_labels: frozenset[str] | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` or ``pods``: how kube-apiserver names the resource in messages."""
        return f"{self.name}.{self.group}" if self.group else self.name

    @property
    def qualified_kind(self) -> str:
        """``Deployment.apps`` or ``Pod``: how validation errors name the kind."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


DEPLOYMENTS = ResourceType(
    name="deployments",
    singular="deployment",
    kind="Deployment",
    group="apps",
    version="v1",
    namespaced=True,
    short_names=("deploy",),
    subresources=("status", "scale"),
)
REPLICASETS = ResourceType(
    name="replicasets",
    singular="replicaset",
    kind="ReplicaSet",
    group="apps",
    version="v1",
    namespaced=True,
    short_names=("rs",),
    subresources=("status", "scale"),
)
PODS = ResourceType(
    name="pods",
    singular="pod",
    kind="Pod",
    group="",
    version="v1",
    namespaced=True,
    short_names=("po",),
    has_generation=False,
    returns_deleted=True,
    # pkg/apis/core/v1/conversion.go; spec.host is the old name of spec.nodeName.
    field_labels=frozenset(
        {
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.host",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        }
    ),
)
NAMESPACES = ResourceType(
    name="namespaces",
    singular="namespace",
    kind="Namespace",
    group="",
    version="v1",
    namespaced=False,
    short_names=("ns",),
    verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    categories=(),
    has_generation=False,
    returns_deleted=True,
    field_labels=frozenset({"metadata.name", "status.phase"}),
)
#: core/v1 Events: what ``kubectl get events`` and ``kubectl describe`` read (kubectl
#: asks core/v1 for them). The events.k8s.io/v1 view of the same objects is not served.
EVENTS = ResourceType(
    name="events",
    singular="event",
    kind="Event",
    group="",
    version="v1",
    namespaced=True,
    short_names=("ev",),
    subresources=(),
    categories=(),
    has_generation=False,
    has_status=False,
    create_on_update=True,
    # pkg/apis/core/v1/conversion.go: AddFieldLabelConversionsForEvent
    field_labels=frozenset(
        {
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
            "metadata.namespace",
            "metadata.name",
        }
    ),
)
#: coordination.k8s.io/v1 Leases. Their strategy creates on PUT and refuses a PUT
#: without resourceVersion, so every change of holder is a compare-and-swap.
LEASES = ResourceType(
    name="leases",
    singular="lease",
    kind="Lease",
    group="coordination.k8s.io",
    version="v1",
    namespaced=True,
    subresources=(),
    categories=(),
    has_generation=False,
    has_status=False,
    create_on_update=True,
    unconditional_update=False,
)

#: The autoscaling/v1 Scale that the ``/scale`` subresources speak (not served on its own).
SCALE = ResourceType(
    name="scale",
    singular="scale",
    kind="Scale",
    group="autoscaling",
    version="v1",
    namespaced=True,
    subresources=(),
)

ALL = (DEPLOYMENTS, REPLICASETS, PODS, NAMESPACES, EVENTS, LEASES)
BY_NAME = {r.name: r for r in ALL}
BY_KIND = {r.kind: r for r in ALL}


def by_path(group: str, version: str, name: str) -> ResourceType | None:
    """The resource served at ``/apis/{group}/{version}/{name}`` (group "" for ``/api/v1``)."""
    resource = BY_NAME.get(name)
    if resource is None or resource.group != group or resource.version != version:
        return None
    return resource
