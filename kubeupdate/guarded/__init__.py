"""Guarded rollouts: waited changes whose intent outlives the replica that follows them.

- :mod:`~kubeupdate.guarded.records`: the record (a Lease), what it says, pure;
- :mod:`~kubeupdate.guarded.terms`: the Lease's rules (durations, sightings);
- :mod:`~kubeupdate.guarded.leases`: reading and writing records, compare-and-swap;
- :mod:`~kubeupdate.guarded.verdicts`: what a caller learns (GetGuardedRollout).

None of these modules knows gRPC.
"""
