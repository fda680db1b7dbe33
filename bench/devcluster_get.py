"""How many simple GETs per second the devcluster answers (issue: at least 2,000).

Starts ``python -m devcluster`` in its own process (so the client
does not share its interpreter), creates one Deployment, then keeps
``--concurrency`` aiohttp requests in flight for ``--seconds`` and prints the
rate. Runs over HTTPS with the bearer token by default, ``--insecure-http``
for plain HTTP. It also checks the cost is constant: the rate of the second
half must not fall below the first half's.

    .venv/bin/python bench/devcluster_get.py [--seconds 5] [--concurrency 32] [--insecure-http]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

PATH = "/apis/apps/v1/namespaces/default/deployments/web"


def start_server(directory: Path, insecure: bool) -> tuple[subprocess.Popen[str], Path]:
    kubeconfig = directory / "kubeconfig"
    seed = directory / "seed.yaml"
    seed.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
                    },
                },
            }
        )
    )
    command = [sys.executable, "-m", "devcluster", "--port", "0", "--speed", "0"]
    command += ["--seed", str(seed), "--kubeconfig-out", str(kubeconfig)]
    if insecure:
        command.append("--insecure-http")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if "Ctrl-C" in line:
            break
    return process, kubeconfig


def connection(kubeconfig: Path) -> tuple[str, dict[str, str], ssl.SSLContext | None]:
    config: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    headers = {"Accept": "application/json"}
    if user.get("token"):
        headers["Authorization"] = f"Bearer {user['token']}"
    context = None
    if "certificate-authority-data" in cluster:
        context = ssl.create_default_context(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
        )
    return cluster["server"], headers, context


async def hammer(
    url: str, headers: dict[str, str], context: ssl.SSLContext | None, seconds: float, workers: int
) -> list[float]:
    """Completion times (monotonic) of every successful GET."""
    done: list[float] = []
    connector = aiohttp.TCPConnector(limit=workers, ssl=context if context else False)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        async with session.get(url + PATH) as response:  # warm up, and check the answer
            body = await response.read()
            assert response.status == 200, body
            assert json.loads(body)["metadata"]["name"] == "web"
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                async with session.get(url + PATH) as response:
                    await response.read()
                    if response.status == 200:
                        done.append(time.monotonic())

        await asyncio.gather(*(worker() for _ in range(workers)))
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--insecure-http", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        process, kubeconfig = start_server(Path(directory), args.insecure_http)
        try:
            url, headers, context = connection(kubeconfig)
            started = time.monotonic()
            done = asyncio.run(hammer(url, headers, context, args.seconds, args.concurrency))
            elapsed = time.monotonic() - started
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    half = started + elapsed / 2
    first = sum(1 for t in done if t < half)
    second = len(done) - first
    scheme = "http" if args.insecure_http else "https+token"
    print(
        f"devcluster GET {PATH} over {scheme}: {len(done)} requests in {elapsed:.1f} s = "
        f"{len(done) / elapsed:,.0f}/s (concurrency {args.concurrency}; "
        f"first half {first / (elapsed / 2):,.0f}/s, second half {second / (elapsed / 2):,.0f}/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
