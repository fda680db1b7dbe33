"""Pods as a real kubelet reports them, at the moments of its cycles, for table-driven tests.

The shapes (fields, reasons, messages) are those of kubelet 1.3x container
statuses: a crash-looping container passes through waiting CrashLoopBackOff,
running (restartCount grown, not ready) and terminated Error between its
back-offs; a failed pull alternates ErrImagePull and ImagePullBackOff. Times
are seconds after :data:`T0`, the Pod's creation, on the cluster's clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Object = dict[str, Any]

#: The Pod's creation, on the cluster's clock.
T0 = datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC).timestamp()
IMAGE = "registry.example.com/web:1.4.2"
CONTAINER_ID = "containerd://" + "a1" * 32


def stamp(seconds: float) -> str:
    """The RFC 3339 timestamp ``seconds`` after T0, as Kubernetes writes it."""
    moment = datetime.fromtimestamp(T0 + seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(
    *containers: Object,
    name: str = "web-7d4b9c5f6-x2k8p",
    ready_since: float | None = 1,
    init_containers: tuple[Object, ...] = (),
    deleting: bool = False,
) -> Object:
    """A Pod of the new ReplicaSet with these container statuses, unready since ``ready_since``."""
    ready = all(c.get("ready") for c in containers)
    conditions: list[Object] = [
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": stamp(1)},
        {"type": "Initialized", "status": "True", "lastTransitionTime": stamp(1)},
    ]
    for type_ in ("Ready", "ContainersReady"):
        condition: Object = {"type": type_, "status": "True" if ready else "False"}
        condition["lastProbeTime"] = None
        if ready_since is not None:
            condition["lastTransitionTime"] = stamp(ready_since)
        if not ready:
            unready = " ".join(c["name"] for c in containers if not c.get("ready"))
            condition["reason"] = "ContainersNotReady"
            condition["message"] = f"containers with unready status: [{unready}]"
        conditions.append(condition)
    conditions.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp(0)})
    metadata: Object = {
        "name": name,
        "namespace": "default",
        "uid": "5f0c2b8e-6a51-4f7d-9a0e-3c1b2d4e5f60",
        "creationTimestamp": stamp(0),
        "labels": {"app": "web", "pod-template-hash": "7d4b9c5f6"},
    }
    if deleting:
        metadata["deletionTimestamp"] = stamp(90)
        metadata["deletionGracePeriodSeconds"] = 30
    status: Object = {
        "phase": "Running" if any("running" in c["state"] for c in containers) else "Pending",
        "conditions": conditions,
        "hostIP": "10.0.0.10",
        "podIP": "10.244.1.7",
        "startTime": stamp(1),
        "containerStatuses": list(containers),
        "qosClass": "BestEffort",
    }
    if init_containers:
        status["initContainerStatuses"] = list(init_containers)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "status": status}


def _container(name: str, **fields: Any) -> Object:
    base: Object = {
        "name": name,
        "state": {},
        "lastState": {},
        "ready": False,
        "restartCount": 0,
        "image": IMAGE,
        "imageID": "",
        "started": False,
    }
    return base | fields


def creating(name: str = "app") -> Object:
    return _container(name, state={"waiting": {"reason": "ContainerCreating"}})


def err_image_pull(name: str = "app") -> Object:
    message = (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{IMAGE}": '
        f'failed to resolve reference "{IMAGE}": {IMAGE}: not found'
    )
    return _container(name, state={"waiting": {"reason": "ErrImagePull", "message": message}})


def image_pull_back_off(name: str = "app") -> Object:
    waiting = {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{IMAGE}"'}
    return _container(name, state={"waiting": waiting})


def invalid_image_name(name: str = "app") -> Object:
    message = 'Failed to apply default image tag "Web:1": couldn\'t parse image name "Web:1"'
    return _container(name, state={"waiting": {"reason": "InvalidImageName", "message": message}})


def _terminated(started: float, finished: float, exit_code: int = 1) -> Object:
    reason = {0: "Completed", 137: "OOMKilled"}.get(exit_code, "Error")
    return {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": stamp(started),
        "finishedAt": stamp(finished),
        "containerID": CONTAINER_ID,
    }


def crash_loop_back_off(
    restarts: int, crashed_at: float, back_off: int = 20, name: str = "app", exit_code: int = 1
) -> Object:
    """Waiting out the back-off after a crash at ``crashed_at``."""
    message = (
        f"back-off {back_off}s restarting failed container={name} "
        "pod=web-7d4b9c5f6-x2k8p_default(5f0c2b8e-6a51-4f7d-9a0e-3c1b2d4e5f60)"
    )
    return _container(
        name,
        state={"waiting": {"reason": "CrashLoopBackOff", "message": message}},
        lastState={"terminated": _terminated(crashed_at - 1, crashed_at, exit_code)},
        restartCount=restarts,
        imageID=f"{IMAGE}@sha256:" + "0f" * 32,
        containerID=CONTAINER_ID,
    )


def running_after_crash(restarts: int, crashed_at: float, started_at: float) -> Object:
    """Started again after the back-off; not ready (it will crash again)."""
    return _container(
        "app",
        state={"running": {"startedAt": stamp(started_at)}},
        lastState={"terminated": _terminated(crashed_at - 1, crashed_at)},
        restartCount=restarts,
        imageID=f"{IMAGE}@sha256:" + "0f" * 32,
        containerID=CONTAINER_ID,
        started=True,
    )


def terminated_error(restarts: int, started_at: float, crashed_at: float) -> Object:
    """Just exited with an error; the kubelet has not entered the back-off yet."""
    return _container(
        "app",
        state={"terminated": _terminated(started_at, crashed_at)},
        lastState={"terminated": _terminated(started_at - 10, started_at - 9)},
        restartCount=restarts,
        imageID=f"{IMAGE}@sha256:" + "0f" * 32,
        containerID=CONTAINER_ID,
    )


def running(name: str = "app", *, ready: bool = True, restarts: int = 0) -> Object:
    last = {"terminated": _terminated(2, 3, 137)} if restarts else {}
    return _container(
        name,
        state={"running": {"startedAt": stamp(5)}},
        lastState=last,
        ready=ready,
        restartCount=restarts,
        imageID=f"{IMAGE}@sha256:" + "0f" * 32,
        containerID=CONTAINER_ID,
        started=True,
    )


def init_completed(name: str = "migrate") -> Object:
    return _container(
        name,
        state={"terminated": _terminated(2, 3, 0)},
        imageID=f"{IMAGE}@sha256:" + "0f" * 32,
        containerID=CONTAINER_ID,
    )


def config_error(name: str = "app") -> Object:
    waiting = {"reason": "CreateContainerConfigError", "message": 'secret "web-env" not found'}
    return _container(name, state={"waiting": waiting})
