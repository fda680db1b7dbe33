"""The devcluster's rollout machinery: the controllers and the kubelet, in simulated time.

- :mod:`~devcluster.controllers.manager`: :class:`RolloutController`, the loop
  that runs the others on what the store's changes queued and what came due;
  it also collects garbage (ReplicaSets and Pods whose controller is gone)
  and expires Events;
- :mod:`~devcluster.controllers.deployment`: the deployment controller
  (ReplicaSets per template, revisions, rolling/recreate, status and conditions);
- :mod:`~devcluster.controllers.replicaset`: the ReplicaSet controller (Pods);
- :mod:`~devcluster.controllers.kubelet`: Pod status and Pod Events over time,
  with :mod:`~devcluster.controllers.lifecycle` (a container's life, pure),
  :mod:`~devcluster.controllers.references` (image references as the kubelet
  parses them), :mod:`~devcluster.controllers.catalog` (which images exist)
  and :mod:`~devcluster.controllers.failures` (images marked to fail);
- :mod:`~devcluster.controllers.events`: Events as client-go's recorder writes them;
- :mod:`~devcluster.controllers.work` and :mod:`~devcluster.controllers.indexes`:
  the queues, timers and ownership index they share.

Everything runs in simulated time (:class:`~devcluster.clock.SimulatedClock`)
and writes only through the :class:`~devcluster.store.Store`, so a watch sees
the same sequence of objects it would see in a cluster. Orphaned ReplicaSets
and Pods are neither adopted nor run.
"""

from devcluster.controllers.catalog import ImageCatalog, StaticCatalog
from devcluster.controllers.deployment import template_hash
from devcluster.controllers.events import EventRecorder
from devcluster.controllers.failures import (
    CRASH_LOOP_BACK_OFF,
    DEFAULT_FAILURE_RULES,
    IMAGE_PULL_BACK_OFF,
    UNREADY,
    FailureRules,
)
from devcluster.controllers.manager import RolloutController
from devcluster.controllers.objects import (
    CHANGE_CAUSE_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
)

__all__ = [
    "CHANGE_CAUSE_ANNOTATION",
    "CRASH_LOOP_BACK_OFF",
    "DEFAULT_FAILURE_RULES",
    "DESIRED_REPLICAS_ANNOTATION",
    "IMAGE_PULL_BACK_OFF",
    "MAX_REPLICAS_ANNOTATION",
    "POD_TEMPLATE_HASH_LABEL",
    "REVISION_ANNOTATION",
    "REVISION_HISTORY_ANNOTATION",
    "UNREADY",
    "EventRecorder",
    "FailureRules",
    "ImageCatalog",
    "RolloutController",
    "StaticCatalog",
    "template_hash",
]
