"""The process entry point: start from a config, report readiness, stop on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from pathlib import Path

import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kubeupdate.service import ServerConfig, add_arguments, config_from, serve


def write_kubeconfig(path: Path) -> Path:
    # Never contacted: the service only talks to Kubernetes when called.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(json.dumps(config))
    return path


async def check_serving(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="kubeupdate.v1.DeploymentImageService"),
            timeout=5,
        )
    return int(answer.status)


async def test_serve_until_stopped(tmp_path: Path) -> None:
    config = ServerConfig(port=0, kubeconfig=write_kubeconfig(tmp_path / "config"), grace=1)
    ready: asyncio.Queue[int] = asyncio.Queue()
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(config, ready=ready.put_nowait, stop=stop, handle_signals=False)
    )
    port = await ready.get()
    assert await check_serving(port) == health_pb2.HealthCheckResponse.SERVING
    stop.set()
    await task


async def test_sigterm_stops_gracefully(tmp_path: Path) -> None:
    config = ServerConfig(port=0, kubeconfig=write_kubeconfig(tmp_path / "config"), grace=1)
    ready: asyncio.Queue[int] = asyncio.Queue()
    task = asyncio.create_task(serve(config, ready=ready.put_nowait))
    await ready.get()
    os.kill(os.getpid(), signal.SIGTERM)
    await task
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_flags_make_the_config(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from(
        parser.parse_args(
            [
                "--grpc-port",
                "0",
                "--kubeconfig",
                str(tmp_path / "k"),
                "--context",
                "dev",
                "--kube-timeout",
                "3",
            ]
        )
    )
    assert config == ServerConfig(
        port=0, kubeconfig=tmp_path / "k", context="dev", kube_timeout=3, metrics_port=9090
    )
    # The command line serves metrics by default; an embedded ServerConfig() does not.
    assert config_from(parser.parse_args([])) == ServerConfig(metrics_port=9090)
    assert config_from(parser.parse_args(["--no-metrics"])) == ServerConfig()
    assert config_from(parser.parse_args(["--metrics-port=0"])).metrics_port == 0
