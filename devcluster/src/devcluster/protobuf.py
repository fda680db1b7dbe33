"""Kubernetes' protobuf encoding (``application/vnd.kubernetes.protobuf``), read as JSON objects.

kubectl 1.37's typed clients (``kubectl create deployment``, ``kubectl create
namespace``...) send their bodies in protobuf and do not fall back to JSON
after a 415. The devcluster keeps objects as JSON, so it turns such a body
into the JSON object the same client would have sent, and answers in JSON
(kubectl accepts ``application/json`` as well).

A body is the 4 bytes ``k8s\\x00`` and a ``runtime.Unknown``: ``typeMeta``
(apiVersion, kind) and ``raw``, the object's own message (a
``k8s.io.api.apps.v1.Deployment``...). The messages come from the upstream
``.proto`` files vendored in ``devcluster/proto`` (see its README), compiled
by ``scripts/generate`` into ``kubernetes.binpb`` and loaded into a private
descriptor pool, so nothing here collides with another copy of them.

The field names of those ``.proto`` files are the JSON names, so the
conversion is generic, with two Go-isms undone:

- Go writes every non-pointer field, zeros included (``generateName: ""``,
  ``minReadySeconds: 0``), where JSON's ``omitempty`` leaves them out: zeros
  are dropped, except in pointer fields (:data:`_POINTERS`), where a zero was
  set on purpose (``replicas: 0``, ``runAsUser: 0``);
- a few types have a JSON form of their own: Time and MicroTime (an empty
  message is the zero time), Duration, IntOrString, Quantity, RawExtension
  and FieldsV1 (embedded JSON).
"""

from __future__ import annotations

import base64
import functools
import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from devcluster.timestamps import micro_time_text, time_text

Object = dict[str, Any]

CONTENT_TYPE: Final = "application/vnd.kubernetes.protobuf"
MAGIC: Final = b"k8s\x00"
_DESCRIPTORS: Final = "kubernetes.binpb"
_UNKNOWN: Final = "k8s.io.apimachinery.pkg.runtime.Unknown"
#: The proto package of each API group version the devcluster serves.
_PACKAGES: Final = {
    "v1": "k8s.io.api.core.v1",
    "apps/v1": "k8s.io.api.apps.v1",
    "coordination.k8s.io/v1": "k8s.io.api.coordination.v1",
    "meta.k8s.io/v1": "k8s.io.apimachinery.pkg.apis.meta.v1",
}
_META: Final = "k8s.io.apimachinery.pkg.apis.meta.v1"

#: Pointer fields of scalar type (Go ``*int32``, ``*bool``, ``*string``...) by message: a
#: zero there was set on purpose and is kept. Read from the Go types of k8s.io/api (core,
#: apps and coordination v1) and apimachinery's meta/v1; status-only and other kinds' left out.
_POINTERS: Final = {
    "ObjectMeta": frozenset({"deletionGracePeriodSeconds"}),
    "OwnerReference": frozenset({"controller", "blockOwnerDeletion"}),
    "DeleteOptions": frozenset(
        {
            "gracePeriodSeconds",
            "orphanDependents",
            "propagationPolicy",
            "ignoreStoreReadErrorWithClusterBreakingPotential",
        }
    ),
    "Preconditions": frozenset({"uid", "resourceVersion"}),
    "DeploymentSpec": frozenset({"replicas", "revisionHistoryLimit", "progressDeadlineSeconds"}),
    "ReplicaSetSpec": frozenset({"replicas"}),
    "LeaseSpec": frozenset(
        {
            "holderIdentity",
            "leaseDurationSeconds",
            "leaseTransitions",
            "strategy",
            "preferredHolder",
        }
    ),
    "PersistentVolumeClaimSpec": frozenset(
        {"storageClassName", "volumeMode", "volumeAttributesClassName"}
    ),
    "TypedObjectReference": frozenset({"apiGroup", "namespace"}),
    "TypedLocalObjectReference": frozenset({"apiGroup"}),
    "HostPathVolumeSource": frozenset({"type"}),
    "EmptyDirVolumeSource": frozenset({"mode"}),
    "SecretVolumeSource": frozenset({"defaultMode", "optional", "defaultUser"}),
    "SecretProjection": frozenset({"optional"}),
    "ISCSIVolumeSource": frozenset({"initiatorName"}),
    "FCVolumeSource": frozenset({"lun"}),
    "AzureDiskVolumeSource": frozenset({"cachingMode", "fsType", "readOnly", "kind"}),
    "ConfigMapVolumeSource": frozenset({"defaultMode", "optional", "defaultUser"}),
    "ConfigMapProjection": frozenset({"optional"}),
    "ServiceAccountTokenProjection": frozenset({"expirationSeconds", "user"}),
    "ClusterTrustBundleProjection": frozenset({"name", "signerName", "optional", "user"}),
    "PodCertificateProjection": frozenset({"maxExpirationSeconds", "user"}),
    "ProjectedVolumeSource": frozenset({"defaultMode", "defaultUser"}),
    "DownwardAPIVolumeSource": frozenset({"defaultMode", "defaultUser"}),
    "DownwardAPIVolumeFile": frozenset({"mode", "user"}),
    "KeyToPath": frozenset({"mode", "user"}),
    "LocalVolumeSource": frozenset({"fsType"}),
    "CSIVolumeSource": frozenset({"readOnly", "fsType"}),
    "VolumeMount": frozenset({"recursiveReadOnly", "mountPropagation"}),
    "FileKeySelector": frozenset({"optional"}),
    "ConfigMapKeySelector": frozenset({"optional"}),
    "SecretKeySelector": frozenset({"optional"}),
    "ConfigMapEnvSource": frozenset({"optional"}),
    "SecretEnvSource": frozenset({"optional"}),
    "HTTPGetAction": frozenset({"protocol"}),
    "GRPCAction": frozenset({"service", "mode"}),
    "Probe": frozenset({"terminationGracePeriodSeconds"}),
    "Container": frozenset({"restartPolicy"}),
    "EphemeralContainerCommon": frozenset({"restartPolicy"}),
    "Lifecycle": frozenset({"stopSignal"}),
    "Toleration": frozenset({"tolerationSeconds"}),
    "PodSpec": frozenset(
        {
            "terminationGracePeriodSeconds",
            "activeDeadlineSeconds",
            "automountServiceAccountToken",
            "shareProcessNamespace",
            "priority",
            "runtimeClassName",
            "enableServiceLinks",
            "preemptionPolicy",
            "setHostnameAsFQDN",
            "hostUsers",
            "hostnameOverride",
        }
    ),
    "PodResourceClaim": frozenset({"resourceClaimName", "resourceClaimTemplateName"}),
    "PodSchedulingGroup": frozenset({"podGroupName"}),
    "TopologySpreadConstraint": frozenset({"minDomains", "nodeAffinityPolicy", "nodeTaintsPolicy"}),
    "PodSecurityContext": frozenset(
        {
            "runAsUser",
            "runAsGroup",
            "runAsNonRoot",
            "supplementalGroupsPolicy",
            "fsGroup",
            "fsGroupChangePolicy",
            "seLinuxChangePolicy",
        }
    ),
    "SecurityContext": frozenset(
        {
            "privileged",
            "runAsUser",
            "runAsGroup",
            "runAsNonRoot",
            "readOnlyRootFilesystem",
            "allowPrivilegeEscalation",
            "procMount",
        }
    ),
    "SeccompProfile": frozenset({"localhostProfile"}),
    "AppArmorProfile": frozenset({"localhostProfile"}),
    "PodDNSConfigOption": frozenset({"value"}),
    "WindowsSecurityContextOptions": frozenset(
        {"gmsaCredentialSpecName", "gmsaCredentialSpec", "runAsUserName", "hostProcess"}
    ),
}
_ZERO_TIME_SECONDS: Final = -62135596800  # Go's zero time.Time, should a client send it


class UndecodableBody(ValueError):
    """A protobuf body that is not a Kubernetes object of a kind served here."""


def decode(body: bytes) -> Object:
    """The JSON object a protobuf request body holds, with its kind and apiVersion."""
    if not body.startswith(MAGIC):
        raise UndecodableBody(
            "provided data does not appear to be a protobuf message, expected prefix"
            f" [{' '.join(str(b) for b in MAGIC)}]"
        )
    try:
        unknown = message_class(_UNKNOWN).FromString(body[len(MAGIC) :])
        type_meta = _get(unknown, "typeMeta")
        api_version, kind = str(_get(type_meta, "apiVersion")), str(_get(type_meta, "kind"))
        package = _PACKAGES.get(api_version)
        if package is None:
            raise UndecodableBody(f"no kind {kind!r} is registered for version {api_version!r}")
        kind_class = _kind_class(package, kind, api_version)
        obj = _message(kind_class.FromString(_get(unknown, "raw")))
    except DecodeError as exc:
        # The library's words depend on its implementation: keep ours stable.
        raise UndecodableBody("the protobuf body could not be decoded") from exc
    if not isinstance(obj, dict):
        raise UndecodableBody(f"a {kind} is not an object")
    return {"kind": kind, "apiVersion": api_version, **obj}


def _kind_class(package: str, kind: str, api_version: str) -> type[Message]:
    # Options such as DeleteOptions are registered in every group version, from meta/v1.
    for candidate in (package, _META):
        try:
            return message_class(f"{candidate}.{kind}")
        except KeyError:
            continue
    raise UndecodableBody(f"no kind {kind!r} is registered for version {api_version!r}")


@functools.cache
def _pool() -> descriptor_pool.DescriptorPool:
    data = resources.files("devcluster").joinpath(_DESCRIPTORS).read_bytes()
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(data).file:
        pool.Add(file)
    return pool


@functools.cache
def message_class(full_name: str) -> type[Message]:
    """The class of a Kubernetes message by its full name (``k8s.io.api.apps.v1.Deployment``)."""
    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(full_name))


def _get(message: Message, name: str) -> Any:
    """A field of a message built from descriptors at run time (no static attributes)."""
    return getattr(message, name)


class _Omitted:
    """What Go's JSON would leave out (a zero value, a zero time)."""


_OMIT: Final = _Omitted()


def _message(message: Message) -> Any:
    descriptor = message.DESCRIPTOR
    special = _SPECIAL.get(descriptor.full_name)
    if special is not None:
        return special(message)
    pointers = _POINTERS.get(descriptor.name, frozenset())
    out: Object = {}
    for field, value in message.ListFields():
        converted = _field(field, value, field.name in pointers)
        if not isinstance(converted, _Omitted):
            out[field.name] = converted
    return out


def _field(field: FieldDescriptor, value: Any, pointer: bool) -> Any:
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        value_field = entry.fields_by_name["value"]
        entries = {key: _single(value_field, item, True) for key, item in value.items()}
        return {k: v for k, v in entries.items() if not isinstance(v, _Omitted)} or _OMIT
    if field.is_repeated:
        items = [_single(field, item, True) for item in value]
        return [item for item in items if not isinstance(item, _Omitted)] or _OMIT
    return _single(field, value, pointer)


def _single(field: FieldDescriptor, value: Any, keep_zero: bool) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode() if value or keep_zero else _OMIT
    if not keep_zero and value in ("", 0, False):
        return _OMIT
    return value


def _seconds(message: Message) -> tuple[int, int] | None:
    """(seconds, nanos) of a Time or MicroTime, or None for the zero time."""
    if not message.ListFields():
        return None
    seconds, nanos = int(_get(message, "seconds")), int(_get(message, "nanos"))
    if seconds == _ZERO_TIME_SECONDS and nanos == 0:
        return None
    return seconds, nanos


def _time(message: Message) -> Any:
    found = _seconds(message)
    # Time reads whole seconds from protobuf, as its JSON has always done.
    return _OMIT if found is None else time_text(found[0])


def _micro_time(message: Message) -> Any:
    found = _seconds(message)
    if found is None:
        return _OMIT
    moment = datetime.fromtimestamp(found[0], UTC) + timedelta(microseconds=found[1] // 1000)
    return micro_time_text(moment.timestamp())


def _int_or_string(message: Message) -> Any:
    if int(_get(message, "type")) == 1:
        return str(_get(message, "strVal"))
    return int(_get(message, "intVal"))


def _embedded_json(field_name: str) -> Any:
    def read(message: Message) -> Any:
        raw = bytes(_get(message, field_name))
        return json.loads(raw) if raw else _OMIT

    return read


def _duration(message: Message) -> Any:
    return go_duration(int(_get(message, "duration")))


def go_duration(nanoseconds: int) -> str:
    """Go's ``time.Duration.String()``: ``1h2m3.5s``, ``150ms``, ``0s``."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    n = abs(nanoseconds)
    if n < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if n >= size:
                return sign + _decimal(n, size) + unit
    hours, rest = divmod(n, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _decimal(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _decimal(value: int, unit: int) -> str:
    whole, fraction = divmod(value, unit)
    if not fraction:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{str(fraction).rjust(digits, '0').rstrip('0')}"


_SPECIAL: Final = {
    f"{_META}.Time": _time,
    f"{_META}.MicroTime": _micro_time,
    f"{_META}.Duration": _duration,
    f"{_META}.FieldsV1": _embedded_json("Raw"),
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": _int_or_string,
    "k8s.io.apimachinery.pkg.api.resource.Quantity": lambda m: str(_get(m, "string")),
    "k8s.io.apimachinery.pkg.runtime.RawExtension": _embedded_json("raw"),
}
