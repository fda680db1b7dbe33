"""devcluster: a Kubernetes API emulator that kubectl and the kubernetes client accept.

Start one from a test with :class:`DevCluster` (or the ``devcluster`` pytest
fixture from ``devcluster.pytest_plugin``), or from a shell with
``devcluster`` (``python -m devcluster``; ``kubeupdate devcluster`` when both are installed).
"""

from devcluster.cluster import DevCluster
from devcluster.statuses import ApiError

__all__ = ["ApiError", "DevCluster"]
