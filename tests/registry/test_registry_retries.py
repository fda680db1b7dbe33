"""Retry rules of the registry client, against a loopback server that misbehaves on purpose.

The same rules as the Kubernetes client: 429 waits Retry-After when that fits
in the deadline and one call's timeout; 5xx and refused connections are retried
a bounded number of times.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from kubeupdate.images import parse_image
from kubeupdate.registry import errors
from kubeupdate.registry.client import RegistryClient
from kubeupdate.registry.endpoints import ImageLocation
from kubeupdate.registry.hosts import HostSettings, RegistryHosts

DIGEST = "sha256:" + "ab" * 32


class Script:
    """Answers the manifest HEAD with the given statuses in turn, then 200."""

    def __init__(self, *answers: tuple[int, dict[str, str]]) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self.answers:
            status, headers = self.answers.pop(0)
            return web.Response(status=status, headers=headers)
        return web.Response(
            headers={
                "Docker-Content-Digest": DIGEST,
                "Content-Type": "application/vnd.oci.image.manifest.v1+json",
            }
        )


@asynccontextmanager
async def serve(script: Script) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("HEAD", "/v2/{name:.*}/manifests/{reference}", script.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def head(host: str, **options: float) -> str | None:
    hosts = RegistryHosts({host: HostSettings(plain_http=True)})
    location = ImageLocation.of(parse_image(f"{host}/app:1.0"))
    deadline = options.pop("deadline", None)
    async with RegistryClient(hosts=hosts, backoff=0.01, **options) as client:  # type: ignore[arg-type]
        return (await client.head_manifest(location, "1.0", deadline=deadline)).digest


@pytest.mark.parametrize(
    ("answers", "calls"),
    [
        ([(429, {"Retry-After": "0"})], 2),
        ([(503, {}), (502, {})], 3),
        ([(429, {})], 2),  # no Retry-After: our own back-off
    ],
)
async def test_passing_troubles_are_retried(
    answers: list[tuple[int, dict[str, str]]], calls: int
) -> None:
    script = Script(*answers)
    async with serve(script) as host:
        assert await head(host) == DIGEST
    assert script.calls == calls


async def test_server_errors_are_retried_a_bounded_number_of_times() -> None:
    script = Script(*[(500, {})] * 5)
    async with serve(script) as host:
        with pytest.raises(errors.ServerError, match=r"failed for app \(HTTP 500\)"):
            await head(host)
    assert script.calls == 3


async def test_a_retry_after_beyond_the_deadline_is_reported_at_once() -> None:
    script = Script((429, {"Retry-After": "30"}))
    async with serve(script) as host:
        with pytest.raises(errors.TooManyRequests, match="retry in 30s") as caught:
            await head(host, deadline=time.monotonic() + 5)
    assert caught.value.retry_after == 30
    assert script.calls == 1
