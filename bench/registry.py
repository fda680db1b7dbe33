"""Registry check latency against a local distribution registry: ``python -m bench.registry``.

Not part of ``make bench`` yet (the registry check is not wired into the set
path; once it is, the scenario belongs next to the set scenarios). Starts
Debian's ``docker-registry`` on loopback (the test suite's runner), pushes one
image, and prints JSON:

- ``uncached_ms``: p50/p90 of ``ImageVerifier.check`` with the cache off
  (each check is a HEAD round trip, plus the index GET the first time);
- ``cached_ms``: the same within the cache's TTL (no request);
- ``concurrent``: 50 checks of one tag started together, and how many HTTP
  requests reached the registry.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from kubeupdate.images import parse_image
from kubeupdate.registry.client import RegistryClient
from kubeupdate.registry.hosts import HostSettings, RegistryHosts
from kubeupdate.registry.verifier import ImageVerifier
from tests.registry.distribution import running_registry
from tests.registry.publisher import Publisher

ROUNDS = 200
CONCURRENT = 50


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


def main() -> int:
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        try:
            running = stack.enter_context(running_registry(Path(folder)))
        except (Exception, pytest.skip.Exception) as exc:  # skip: the binary is missing
            print(f"bench.registry: cannot start docker-registry: {exc}", file=sys.stderr)
            return 2
        Publisher(running).index("bench/app", "1.0", ["linux/amd64", "linux/arm64"])
        result = asyncio.run(_measure(running.host, f"{running.host}/bench/app:1.0"))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
