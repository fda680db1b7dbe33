"""Registry check cost against a local distribution registry: ``python -m bench.registry``.

Not part of ``make bench`` (it needs Debian's ``docker-registry``, which the
test suite installs with ``scripts/install-test-tools``). Starts it on
loopback, pushes a two-platform image under two tags, and prints JSON:

- ``uncached_ms``: p50/p90 of ``ImageVerifier.check`` with the cache off
  (each check is a HEAD round trip, plus the index GET the first time);
- ``cached_ms``: the same within the cache's TTL (no request);
- ``concurrent``: 50 checks of one tag started together, and how many HTTP
  requests reached the registry;
- ``set_ms``: p50/p90 of SetContainerImage over gRPC (the service in front of
  an in-process devcluster, alternating the two tags so every call writes),
  without a check, with ``--registry-check always --registry-cache-ttl 0``
  (every call asks the registry) and with the default cache. Client, service,
  devcluster and registry share the machine, so the differences between the
  three are the figure, not their absolute values.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from devcluster import DevCluster
from kubeupdate.auth.config import AuthConfig
from kubeupdate.images import parse_image
from kubeupdate.registry.client import RegistryClient
from kubeupdate.registry.config import RegistryConfig
from kubeupdate.registry.hosts import HostSettings, RegistryHosts
from kubeupdate.registry.verifier import ImageVerifier
from tests.registry.distribution import running_registry
from tests.registry.publisher import Publisher
from tests.stack import running_stack

ROUNDS = 200
CONCURRENT = 50
SETS = 300


def _percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=10)
    return {"p50": round(statistics.median(samples) * 1000, 3), "p90": round(cuts[8] * 1000, 3)}


async def _measure(host: str, image_text: str) -> dict[str, object]:
    hosts = RegistryHosts({host: HostSettings(plain_http=True)})
    image = parse_image(image_text)
    sent: list[str] = []

    def client() -> RegistryClient:
        return RegistryClient(hosts=hosts, observe=lambda m, w, c, s: sent.append(w))

    async with ImageVerifier(client(), ttl=0.0) as verifier:
        await verifier.check(image)  # warm: connection, index in the LRU
        uncached = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            await verifier.check(image)
            uncached.append(time.perf_counter() - started)
    async with ImageVerifier(client(), ttl=60.0) as verifier:
        await verifier.check(image)
        cached = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            await verifier.check(image)
            cached.append(time.perf_counter() - started)
    sent.clear()
    async with ImageVerifier(client()) as verifier:
        started = time.perf_counter()
        await asyncio.gather(*(verifier.check(image) for _ in range(CONCURRENT)))
        elapsed = time.perf_counter() - started
    return {
        "uncached_ms": _percentiles(uncached),
        "cached_ms": _percentiles(cached),
        "concurrent": {
            "checks": CONCURRENT,
            "registry_requests": len(sent),
            "requests_by_kind": {kind: sent.count(kind) for kind in sorted(set(sent))},
            "wall_ms": round(elapsed * 1000, 3),
        },
    }


def _measure_sets(host: str, repository: str) -> dict[str, dict[str, float]]:
    """SetContainerImage latency without a check, with an uncached one, with the cache.

    The three services run side by side and take turns, call by call, so that
    whatever else loads the machine weighs on the three alike.
    """
    flags = {
        "no_check": RegistryConfig(),
        "check_uncached": RegistryConfig(plain_http=(host,), always=True, cache_ttl=0),
        "check_cached": RegistryConfig(plain_http=(host,), always=True),
    }
    images = [f"{host}/{repository}:1.0", f"{host}/{repository}:1.1"]
    quiet = AuthConfig(enabled=False, rate_limit=0, audit_log=os.devnull)
    with ExitStack() as stacks:
        stubs = {}
        for name, registry in flags.items():
            cluster = stacks.enter_context(DevCluster())
            stack = stacks.enter_context(running_stack(cluster, quiet, registry=registry))
            channel = stacks.enter_context(grpc.insecure_channel(stack.grpc_target))
            stubs[name] = pb_grpc.DeploymentImageServiceStub(channel)
        samples: dict[str, list[float]] = {name: [] for name in flags}
        for round_ in range(SETS + 2):  # the first two warm the connections
            request = pb.SetContainerImageRequest(
                namespace="default", deployment="web", container="app", image=images[round_ % 2]
            )
            for name, stub in stubs.items():
                started = time.perf_counter()
                answer = stub.SetContainerImage(request, timeout=10)
                samples[name].append(time.perf_counter() - started)
                assert answer.changed, answer
    return {name: _percentiles(taken[2:]) for name, taken in samples.items()}


def main() -> int:
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        try:
            running = stack.enter_context(running_registry(Path(folder)))
        except (Exception, pytest.skip.Exception) as exc:  # skip: the binary is missing
            print(f"bench.registry: cannot start docker-registry: {exc}", file=sys.stderr)
            return 2
        publisher = Publisher(running)
        for tag in ("1.0", "1.1"):
            publisher.index("bench/app", tag, ["linux/amd64", "linux/arm64"])
        result = asyncio.run(_measure(running.host, f"{running.host}/bench/app:1.0"))
        result["set_ms"] = _measure_sets(running.host, "bench/app")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
