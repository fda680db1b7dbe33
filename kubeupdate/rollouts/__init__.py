"""Rollouts: judging one, following it, waiting for it and rolling it back, its history.

- :mod:`~kubeupdate.rollouts.judgement`: the states and the report
  (:func:`~kubeupdate.rollouts.judgement.assess`);
- :mod:`~kubeupdate.rollouts.tracking`: following a rollout from the shared informers;
- :mod:`~kubeupdate.rollouts.waits`: waiting for the end, rolling back;
- :mod:`~kubeupdate.rollouts.status`: the state now, and as a stream;
- :mod:`~kubeupdate.rollouts.history`: the revisions;
- :mod:`~kubeupdate.rollouts.settings`: the server's limits on waits.

What a rollout *is* depends on the kind of workload
(:mod:`kubeupdate.workloads`); none of these modules knows gRPC.
"""
