"""Workloads: the objects whose container images kubeupdate changes, one module per kind.

- :mod:`~kubeupdate.workloads.kinds`: what the use cases need from a kind
  (:class:`~kubeupdate.workloads.kinds.WorkloadKind`);
- :mod:`~kubeupdate.workloads.deployments`: the Deployment (kubectl's rule,
  revisions as ReplicaSets), the only kind served today;
- :mod:`~kubeupdate.workloads.templates`: the containers of a pod template;
- :mod:`~kubeupdate.workloads.pods`: Pods that cannot start;
- :mod:`~kubeupdate.workloads.access`: a kind over the Kubernetes API, with its
  errors translated.

None of them knows gRPC.
"""
