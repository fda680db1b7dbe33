"""The benchmark, end to end: ``.venv/bin/python -m bench`` (``--quick`` for a smoke run).

Processes, all on loopback, each its own OS process so CPU and memory are
per component:

- ``devcluster --speed 0`` (HTTPS + bearer token), seeded by
  :mod:`bench.cluster`;
- ``kubeupdate serve --only grpc`` (the service) and ``kubeupdate serve
  --only gateway`` (the REST gateway), both with ``--no-auth
  --rate-limit=0``: the benchmark measures the data path, not security;
- this process: the load generators (aiohttp, grpc.aio) and ``wrk``.

Writes ``<out>/report.json`` and ``<out>/report.md`` (default ``bench/results/``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import guarded, scenarios, waits
from bench.cluster import Access, RawClient, write_seed
from bench.loadgen import Run, wrk_available
from bench.processes import (
    GATEWAY_LINE,
    Child,
    DevclusterProcess,
    ServeProcess,
    devcluster_command,
    serve_command,
)
from bench.profiling import Recorder, py_spy
from bench.report import ratios, render_markdown, targets

RESULTS = Path(__file__).parent / "results"
#: The ways to run both halves with ``kubeupdate serve``, compared by REST throughput.
PROCESS_MODELS: dict[str, tuple[str, ...]] = {
    "(two processes, asyncio: the default)": (),
    "--event-loop uvloop": ("--event-loop=uvloop",),
    "--one-process": ("--one-process",),
    "--one-process --event-loop uvloop": ("--one-process", "--event-loop=uvloop"),
}


@dataclass(frozen=True)
class Plan:
    """How much of everything to do."""

    latency_requests: int
    duration: float
    soak_clients: int
    soak_warm_up_rounds: int
    soak_rounds: int
    one_shot_runs: int
    start_attempts: int
    profile: bool
    #: Numbers of waits pending at once, each run in 100 namespaces and in one.
    waits: tuple[int, ...]
    #: Rollouts followed by both a waited curl and kubectl rollout status.
    notice_runs: int
    guarded: guarded.Plan

    @classmethod
    def full(cls, profile: bool) -> Plan:
        return cls(2000, 5.0, 200, 10, 10, 20, 3, profile, (10, 100, 1000), 20, guarded.Plan.full())

    @classmethod
    def quick(cls, profile: bool) -> Plan:
        return cls(200, 1.0, 40, 2, 2, 3, 1, profile, (10, 100), 3, guarded.Plan.quick())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the reports go")
    parser.add_argument(
        "--no-profile", action="store_true", help="skip the py-spy profiles of the targets missed"
    )
    args = parser.parse_args(argv)
    profile = not args.no_profile and py_spy() is not None
    plan = Plan.quick(profile) if args.quick else Plan.full(profile)
    if not wrk_available():
        print("bench: wrk is missing (apt-get install wrk)", file=sys.stderr)
        return 2
    report = asyncio.run(run(plan))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "report.md").write_text(render_markdown(report))
    print(render_markdown(report))
    print(f"written: {args.out / 'report.md'}, {args.out / 'report.json'}")
    return 0


async def run(plan: Plan) -> dict[str, Any]:
    report: dict[str, Any] = {"environment": environment(plan), "runs": [], "figures": {}}
    runs: list[Run] = []
    figures: dict[str, Any] = report["figures"]
    with tempfile.TemporaryDirectory(prefix="kubeupdate-bench-") as directory:
        seed = Path(directory) / "seed.yaml"
        kubeconfig = Path(directory) / "kubeconfig"
        write_seed(seed)
        devcluster = DevclusterProcess(
            devcluster_command(
                "--port=0", "--speed=0", f"--seed={seed}", f"--kubeconfig-out={kubeconfig}"
            )
        )
        with devcluster:
            access = Access.from_kubeconfig(kubeconfig)
            async with RawClient(access) as raw:
                await measure(plan, access, raw, kubeconfig, devcluster, runs, figures)
    progress("waits at scale: " + ", ".join(map(str, plan.waits)) + " waits pending at once")
    figures["waits_at_scale"] = []
    get_requests = min(500, plan.latency_requests)
    for count in plan.waits:
        for layout in waits.LAYOUTS:
            progress(f"  {count} waits in {layout.name}")
            result = await waits.waits_at_scale(count, layout, get_requests=get_requests)
            figures["waits_at_scale"].append(result)
    progress(f"notice latency: waited curl and kubectl rollout status, {plan.notice_runs} times")
    figures["notice"] = await waits.notice_latency(plan.notice_runs, scenarios.tool("kubectl"))
    figures["guarded"] = await guarded.measure(plan.guarded, progress)
    report["runs"] = [r.to_json() for r in runs]
    report["targets"] = targets(report)
    report["ratios"] = ratios(report)
    return report


async def measure(
    plan: Plan,
    access: Access,
    raw: RawClient,
    kubeconfig: Path,
    devcluster: DevclusterProcess,
    runs: list[Run],
    figures: dict[str, Any],
) -> None:
    n, duration = plan.latency_requests, plan.duration
    progress("baseline: the devcluster from Python")
    runs.append(await scenarios.raw_get(raw, concurrency=1, requests=n))
    runs.append(await scenarios.raw_patch(raw, concurrency=1, requests=n))
    runs.append(await scenarios.raw_patch(raw, concurrency=16, duration=duration))
    for concurrency in (16, 64):
        runs.append(
            await asyncio.to_thread(
                scenarios.wrk_raw_get,
                access.server,
                access.token,
                concurrency=concurrency,
                duration=duration,
            )
        )

    progress("starting the service and the gateway as separate processes")
    service = ServeProcess(
        serve_command("--only=grpc", *scenarios.service_flags(kubeconfig)),
        expect=frozenset({"grpc"}),
    )
    with service:
        gateway = ServeProcess(
            serve_command(
                "--only=gateway", f"--upstream=127.0.0.1:{service.grpc_port}", "--http-port=0"
            ),
            expect=frozenset({"gateway"}),
        )
        with gateway:
            await asyncio.sleep(0.5)  # idle: let start-up work settle
            figures["memory"] = {
                "idle": {"service": service.rss_bytes(), "gateway": gateway.rss_bytes()}
            }
            figures["listening_after_s"] = {
                "service": service.ready_after,
                "gateway": gateway.ready_after,
            }
            assert service.grpc_port is not None
            assert gateway.http_port is not None
            target, port = f"127.0.0.1:{service.grpc_port}", gateway.http_port

            progress("latency at concurrency 1")
            runs.append(await scenarios.grpc_get(target, concurrency=1, requests=n))
            runs.append(await scenarios.grpc_set(target, concurrency=1, requests=n))
            runs.append(await scenarios.rest_get(port, requests=n))
            runs.append(await scenarios.rest_post(port, requests=n))

            progress("throughput at concurrency 16 and 64")
            for concurrency in (16, 64):
                runs.append(
                    await scenarios.grpc_get(target, concurrency=concurrency, duration=duration)
                )
                runs.append(
                    await scenarios.grpc_set(target, concurrency=concurrency, duration=duration)
                )
                runs.append(
                    await asyncio.to_thread(
                        scenarios.wrk_rest_get, port, concurrency=concurrency, duration=duration
                    )
                )
                runs.append(
                    await asyncio.to_thread(
                        scenarios.wrk_rest_post, port, concurrency=concurrency, duration=duration
                    )
                )

            if plan.profile:
                progress("profiling REST GET and POST at c=16 with py-spy")
                figures["profiles"] = {}
                for name, load in (
                    ("REST GET c=16", scenarios.wrk_rest_get),
                    ("REST POST c=16", scenarios.wrk_rest_post),
                ):
                    processes: dict[str, Child] = {
                        "service": service,
                        "gateway": gateway,
                        "devcluster": devcluster,
                    }
                    recorders = {k: Recorder(p.pid, duration) for k, p in processes.items()}
                    cpu_before = {k: p.cpu_seconds() for k, p in processes.items()}
                    profiled = await asyncio.to_thread(
                        load, port, concurrency=16, duration=duration
                    )
                    cpu = {k: p.cpu_seconds() - cpu_before[k] for k, p in processes.items()}
                    figures["profiles"][name] = {
                        "rps_while_profiled": round(profiled.rps, 1),
                        "cpu_cores": {k: round(v / profiled.seconds, 2) for k, v in cpu.items()},
                        # CPU each process spent per request served, in ms.
                        "cpu_ms_per_request": {
                            k: round(1000 * v / max(1, profiled.requests), 3)
                            for k, v in cpu.items()
                        },
                        **{who: r.summary() for who, r in recorders.items()},
                    }

            progress(f"soak: {plan.soak_clients} REST clients")

            def rss() -> dict[str, int]:
                return {"service": service.rss_bytes(), "gateway": gateway.rss_bytes()}

            figures["soak"] = await scenarios.soak(
                port,
                raw,
                clients=plan.soak_clients,
                warm_up_rounds=plan.soak_warm_up_rounds,
                rounds=plan.soak_rounds,
                rss=rss,
            )
            figures["memory"]["after_load"] = rss()

            progress("one-shot processes: curl POST vs kubectl set image")
            figures["one_shot"] = await asyncio.to_thread(
                scenarios.time_processes,
                scenarios.one_shot_commands(port, kubeconfig),
                plan.one_shot_runs,
            )

            progress("the gateway's own entry point: python -m gateway --no-access-log")
            alone = Child(
                [
                    sys.executable, "-m", "gateway", f"--upstream={target}", "--port=0",
                    "--no-access-log",
                ],
                {"gateway": GATEWAY_LINE},
            )  # fmt: skip
            with alone:
                await asyncio.sleep(0.5)
                figures["memory"]["idle, gateway as python -m gateway"] = {
                    "gateway": alone.rss_bytes()
                }
                quiet = await asyncio.to_thread(
                    scenarios.wrk_rest_get, alone.ports["gateway"], concurrency=16,
                    duration=duration,
                )  # fmt: skip
                quiet.name = "REST GET via python -m gateway --no-access-log"
                runs.append(quiet)

    progress("kubeupdate serve: two processes (the default) and --one-process")
    figures["process_models"] = await process_models(plan, access, kubeconfig, runs)

    progress("start to ready: kubeupdate serve")
    figures["start"] = await asyncio.to_thread(
        scenarios.start_to_ready, kubeconfig, plan.start_attempts
    )


async def process_models(
    plan: Plan, access: Access, kubeconfig: Path, runs: list[Run]
) -> dict[str, Any]:
    """REST GET and POST throughput of each way to run ``serve``, over the raw GET's."""
    results: dict[str, Any] = {}
    for name, flags in PROCESS_MODELS.items():
        raw = await asyncio.to_thread(
            scenarios.wrk_raw_get,
            access.server,
            access.token,
            concurrency=16,
            duration=plan.duration,
        )
        raw.name = f"raw Kubernetes GET, before serve {name}"
        runs.append(raw)
        command = serve_command(*scenarios.service_flags(kubeconfig, *flags))
        with ServeProcess(command) as serve:
            assert serve.http_port is not None
            await asyncio.sleep(0.5)  # idle: let start-up work settle
            idle = serve.rss_bytes()
            processes = len(serve.pids())
            measured, cpu_ms = {}, {}
            for load in (scenarios.wrk_rest_get, scenarios.wrk_rest_post):
                cpu_before = serve.cpu_seconds()
                run = await asyncio.to_thread(
                    load, serve.http_port, concurrency=16, duration=plan.duration
                )
                kind = run.name
                # CPU per request: what the machine's other load changes least.
                cpu_ms[kind] = 1000 * (serve.cpu_seconds() - cpu_before) / max(1, run.requests)
                run.name = f"{kind}, serve {name}"
                runs.append(run)
                measured[kind] = run.rps
        results[name] = {
            "processes": processes,
            "raw_get_rps": raw.rps,
            "rest_get_rps": measured["REST GET"],
            "rest_post_rps": measured["REST POST"],
            "rest_get_over_raw": measured["REST GET"] / raw.rps,
            "rest_post_over_raw": measured["REST POST"] / raw.rps,
            "cpu_ms_per_get": cpu_ms["REST GET"],
            "cpu_ms_per_post": cpu_ms["REST POST"],
            "rss_idle": idle,
        }
    return results


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def environment(plan: Plan) -> dict[str, Any]:
    def version(command: list[str]) -> str:
        if shutil.which(command[0]) is None:
            return "absent"
        answer = subprocess.run(command, capture_output=True, text=True, check=False)
        return (answer.stdout or answer.stderr).strip().splitlines()[0]

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "wrk": version(["wrk", "-v"]),
        "hyperfine": version(["hyperfine", "--version"]),
        "plan": dataclasses.asdict(plan),
        "settings": "kubeupdate serve --no-auth --rate-limit=0 --audit-log=/dev/null; "
        "service and gateway as separate processes (--only grpc / --only gateway); "
        "gateway access log on (the default); devcluster --speed 0, HTTPS + bearer token",
    }
