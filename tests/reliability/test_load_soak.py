"""A short soak: many REST clients reading and writing at once, against a real process.

``kubeupdate serve`` runs as a child process (so its memory is its own) in
front of the devcluster; the clients are :mod:`bench.soak`'s, 50 of them
here (200 in the benchmark's full run). Checks: no 5xx, no lost update
(each container ends at its owner's last acknowledged image, and every read
sees the owner's latest write), and the service's resident memory grows by
less than 10% between the end of a warm-up and the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.processes import ServeProcess, serve_command
from bench.soak import Owner, Tally, lost_updates, run_clients
from devcluster import DevCluster

DEPLOYMENTS = 10
CONTAINERS = 5  # per Deployment: one client each, 50 clients in all
# Resident memory steps up once, by ~10-15 MB of main heap, at a varying point
# in the first ~45 rounds (cyclic garbage piling up until the first full GC
# collection), and is flat after: measure after that.
WARM_UP_ROUNDS = 60
MEASURED_ROUNDS = 20
NAMESPACE = "soak"
OWNERS: list[Owner] = [
    (NAMESPACE, f"soak-{d}", f"c{c}") for d in range(DEPLOYMENTS) for c in range(CONTAINERS)
]


def soak_deployment(index: int) -> dict[str, object]:
    name = f"soak-{index}"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": f"c{c}", "image": "registry.example/soak:0"}
                        for c in range(CONTAINERS)
                    ]
                },
            },
        },
    }


@pytest.fixture
def service(devcluster: DevCluster) -> Iterator[ServeProcess]:
    devcluster.create_namespace(NAMESPACE)
    for index in range(DEPLOYMENTS):
        devcluster.create(soak_deployment(index))
    command = serve_command(
        "--no-auth",
        "--rate-limit=0",
        "--grpc-port=0",
        "--http-port=0",
        f"--kubeconfig={devcluster.kubeconfig_path}",
    )
    with ServeProcess(command) as process:
        yield process


async def test_concurrent_clients_lose_no_update_and_memory_stays_flat(
    devcluster: DevCluster, service: ServeProcess
) -> None:
    base = f"http://127.0.0.1:{service.http_port}"
    tally = Tally()

    await run_clients(base, OWNERS, range(WARM_UP_ROUNDS), tally)
    warm = service.rss_bytes()
    await run_clients(base, OWNERS, range(WARM_UP_ROUNDS, WARM_UP_ROUNDS + MEASURED_ROUNDS), tally)
    after = service.rss_bytes()

    assert tally.server_errors == 0, tally.statuses
    assert set(tally.statuses) == {200}, tally.statuses
    assert tally.stale_reads == []
    assert len(tally.acknowledged) == len(OWNERS)

    def image_of(owner: Owner) -> str:
        namespace, deployment, container = owner
        obj = devcluster.get("deployments", namespace, deployment)
        assert obj is not None
        return next(
            str(c["image"])
            for c in obj["spec"]["template"]["spec"]["containers"]
            if c["name"] == container
        )

    assert lost_updates(tally, image_of) == []
    # A bound on growth, not on time: a leak per request would show over 2,000 requests.
    assert after < warm * 1.10, f"RSS grew from {warm / 2**20:.1f} to {after / 2**20:.1f} MiB"
