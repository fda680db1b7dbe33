"""devcluster: a Kubernetes API emulator that kubectl and the kubernetes client accept.

Start one from a test with :class:`DevCluster` (or the ``devcluster`` pytest
fixture from ``kubeupdate.devcluster.pytest_plugin``), or from a shell with
``kubeupdate devcluster`` / ``python -m kubeupdate.devcluster``.
"""

from kubeupdate.devcluster.cluster import DevCluster
from kubeupdate.devcluster.statuses import ApiError

__all__ = ["ApiError", "DevCluster"]
