"""Guarded rollouts: how fast a take-over comes, and what the guardian costs at rest.

``python -m bench.guarded`` on its own (``--quick`` for a smoke run), or as part of
``python -m bench``. Real processes on loopback: a devcluster (clock stopped, so
no rollout ever ends and every guarded rollout stays open) and ``kubeupdate
serve --only grpc`` replicas, each named by ``--replica-id``.

1. Take-over latency, per Lease duration (``--guard-lease-duration``) and per
   number N of rollouts held: a fresh devcluster, a survivor replica, then a
   holder replica that gets N waited changes with RollbackOnFailure; once every
   record is applied and held, the holder gets SIGKILL. A watch on the Leases
   (opened before the kill) timestamps the event in which each record names the
   survivor as its holder; the latency is that time minus the kill's. Goal (issue
   12): at most the Lease duration plus one second.
2. The guardian at rest, default Lease duration: three replicas side by side over
   the same wall time: a guarded one (its guardian watching), one with
   ``--no-guard`` (the baseline), and the holder. First with no guarded rollout,
   then with ``rest_rollouts`` guarded rollouts held (and renewed) by the holder.
   Per replica: CPU seconds per minute (from /proc) and the Kubernetes requests
   it sent, by verb (its ``kubeupdate_kubernetes_requests_total``).

The machine's load average is recorded with every phase: others share it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import grpc.aio
from google.protobuf import duration_pb2
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from bench import scenarios, waits
from bench.cluster import Access
from bench.processes import DevclusterProcess, ServeProcess, devcluster_command, serve_command
from kubeupdate.guarded import records
from kubeupdate.guarded.records import Phase

RESULTS = Path(__file__).parent / "results"
NAMESPACE = "guarded"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"
HOLDER, SURVIVOR, UNGUARDED = "bench-holder", "bench-survivor", "bench-unguarded"
#: kubeupdate's default Lease duration (``--guard-lease-duration``).
DEFAULT_LEASE_SECONDS = 15


@dataclass(frozen=True)
class Plan:
    #: Rollouts the killed replica holds, per take-over run.
    holdings: tuple[int, ...]
    lease_durations: tuple[int, ...]
    #: Wall time of each at-rest window, and the rollouts held in the second.
    rest_seconds: float
    rest_rollouts: int

    @classmethod
    def full(cls) -> Plan:
        return cls((1, 10), (2, DEFAULT_LEASE_SECONDS), 60.0, 100)

    @classmethod
    def quick(cls) -> Plan:
        return cls((1, 10), (2,), 10.0, 20)


def replica(kubeconfig: Path, identity: str, *extra: str) -> ServeProcess:
    command = serve_command(
        "--only=grpc",
        *scenarios.service_flags(kubeconfig),
        f"--replica-id={identity}",
        "--max-wait-timeout=1800",
        *extra,
    )
    return ServeProcess(command, expect=frozenset({"grpc", "metrics"}))


def sigkill(process: ServeProcess) -> None:
    """SIGKILL to the replica and any child: no hand-over, its Leases just go silent."""
    for pid in process.pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Leases:
    """The guarded-rollout Leases of :data:`NAMESPACE`, read straight from the devcluster."""

    def __init__(self, access: Access) -> None:
        self._server = access.server
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=access.ssl_context()),
            headers={"Authorization": f"Bearer {access.token}", "Accept": "application/json"},
        )

    async def close(self) -> None:
        await self._session.close()

    async def listed(self) -> tuple[list[records.GuardedRecord], str]:
        """The records and the list's resourceVersion."""
        query = {"labelSelector": records.LABEL_SELECTOR}
        async with self._session.get(self._server + LEASES, params=query) as answer:
            answer.raise_for_status()
            data = await answer.json()
        found = [records.parse(item) for item in data["items"]]
        return found, str(data["metadata"]["resourceVersion"])

    async def held(self, holder: str, n: int, limit: float = 120.0) -> str:
        """Wait until ``n`` records are applied and held by ``holder``; the resourceVersion."""
        deadline = time.monotonic() + limit
        while True:
            found, version = await self.listed()
            ready = [r for r in found if r.holder == holder and r.state.phase is Phase.APPLIED]
            if len(ready) == n:
                return version
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(ready)} of {n} guarded rollouts held by {holder}")
            await asyncio.sleep(0.1)

    @contextlib.asynccontextmanager
    async def events(self, version: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """A watch from ``version`` (opened on entry); yields its events with their arrival."""
        query = {
            "watch": "true",
            "labelSelector": records.LABEL_SELECTOR,
            "resourceVersion": version,
            "timeoutSeconds": "600",
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self._session.get(
            self._server + LEASES, params=query, timeout=timeout
        ) as answer:
            answer.raise_for_status()

            async def read() -> AsyncIterator[dict[str, Any]]:
                async for line in answer.content:
                    event: dict[str, Any] = json.loads(line)
                    event["arrived"] = time.monotonic()
                    yield event

            yield read()


async def guarded_changes(port: int, names: Sequence[str]) -> list[asyncio.Task[Any]]:
    """Waited changes with RollbackOnFailure, one per Deployment, left pending."""
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.DeploymentImageServiceStub(channel)

    async def change(name: str) -> Any:
        request = pb.SetContainerImageRequest(
            namespace=NAMESPACE,
            deployment=name,
            container="app",
            image=f"{waits.IMAGE}:2",
            wait=True,
            rollback_on_failure=True,
            timeout=duration_pb2.Duration(seconds=1800),
            reason="bench: guarded",
        )
        try:
            return await stub.SetContainerImage(request)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name  # UNAVAILABLE once its replica is killed: expected

    return [asyncio.create_task(change(name)) for name in names]


@contextlib.asynccontextmanager
async def cluster(n: int) -> AsyncIterator[tuple[Path, Access]]:
    """A fresh devcluster (clock stopped) with ``n`` rolled-out Deployments in NAMESPACE."""
    with tempfile.TemporaryDirectory(prefix="kubeupdate-guarded-") as directory:
        kubeconfig = Path(directory) / "kubeconfig"
        command = devcluster_command(*waits.DEVCLUSTER_FLAGS, f"--kubeconfig-out={kubeconfig}")
        with DevclusterProcess(command):
            access = Access.from_kubeconfig(kubeconfig)
            devcluster = waits.Devcluster(access)
            try:
                space = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
                await devcluster.create(
                    [space, *(waits.deployment(NAMESPACE, f"app-{i}") for i in range(n))]
                )
                await devcluster.advance(120)  # the first rollouts
                yield kubeconfig, access
            finally:
                await devcluster.close()


async def take_over(n: int, lease_seconds: int) -> dict[str, Any]:
    """One take-over run: ``n`` rollouts held, Leases of ``lease_seconds``."""
    load_before = os.getloadavg()
    flag = f"--guard-lease-duration={lease_seconds}"
    async with cluster(n) as (kubeconfig, access):
        leases = Leases(access)
        try:
            with replica(kubeconfig, SURVIVOR, flag), replica(kubeconfig, HOLDER, flag) as holder:
                assert holder.grpc_port is not None
                calls = await guarded_changes(holder.grpc_port, [f"app-{i}" for i in range(n)])
                version = await leases.held(HOLDER, n)
                taken: dict[str, float] = {}
                async with leases.events(version) as events:
                    killed = time.monotonic()
                    sigkill(holder)
                    async with asyncio.timeout(3 * lease_seconds + 30):
                        async for event in events:
                            record = records.parse(event["object"])
                            if record.holder == SURVIVOR and record.name not in taken:
                                taken[record.name] = event["arrived"] - killed
                                if len(taken) == n:
                                    break
                await asyncio.gather(*calls)
        finally:
            await leases.close()
    latencies = sorted(taken.values())
    return {
        "rollouts": n,
        "lease_duration_s": lease_seconds,
        "goal_s": lease_seconds + 1,
        "takeover_s": [round(x, 3) for x in latencies],
        "first_s": round(latencies[0], 3),
        "last_s": round(latencies[-1], 3),
        "last_over_lease_duration": round(latencies[-1] / lease_seconds, 3),
        "met": latencies[-1] <= lease_seconds + 1,
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }


def requests_by_verb(metrics_port: int) -> dict[str, int]:
    text = waits.scrape(metrics_port)
    name = "kubeupdate_kubernetes_requests_total"
    verbs = ("list", "watch", "get", "create", "update", "patch", "delete")
    return {verb: int(waits.total(text, name, verb=verb)) for verb in verbs}


async def window(replicas: dict[str, ServeProcess], seconds: float) -> dict[str, Any]:
    """Each replica's CPU seconds per minute and Kubernetes requests over ``seconds``."""
    load_before = os.getloadavg()
    ports = {who: p.metrics_port for who, p in replicas.items()}
    cpu = {who: p.cpu_seconds() for who, p in replicas.items()}
    sent = {who: requests_by_verb(port) for who, port in ports.items() if port is not None}
    started = time.monotonic()
    await asyncio.sleep(seconds)  # at rest: the measured thing is what happens meanwhile
    wall = time.monotonic() - started
    result: dict[str, Any] = {"seconds": round(wall, 2), "replicas": {}}
    for who, process in replicas.items():
        port = ports[who]
        assert port is not None
        after = requests_by_verb(port)
        result["replicas"][who] = {
            "cpu_s_per_min": round(60 * (process.cpu_seconds() - cpu[who]) / wall, 3),
            "requests": {verb: after[verb] - sent[who][verb] for verb in after},
            # A watch is one long request: what the replica opened since it started.
            "requests_since_start": after,
            "rss_bytes": process.rss_bytes(),
        }
    result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    return result


async def at_rest(plan: Plan) -> dict[str, Any]:
    """The guardian's cost with no guarded rollout, then with ``rest_rollouts`` held."""
    n = plan.rest_rollouts
    async with cluster(n) as (kubeconfig, access):
        leases = Leases(access)
        try:
            with (
                replica(kubeconfig, SURVIVOR) as guarded,
                replica(kubeconfig, UNGUARDED, "--no-guard") as unguarded,
                replica(kubeconfig, HOLDER) as holder,
            ):
                assert holder.grpc_port is not None
                three = {"guarded": guarded, "--no-guard": unguarded, "holder": holder}
                await asyncio.sleep(2)  # let start-up work settle
                idle = await window(three, plan.rest_seconds)
                calls = await guarded_changes(holder.grpc_port, [f"app-{i}" for i in range(n)])
                await leases.held(HOLDER, n)
                await asyncio.sleep(2)  # the writes' own requests out of the window
                holding = await window(three, plan.rest_seconds)
                found, _ = await leases.listed()
                taken = sum(1 for r in found if r.holder != HOLDER)
                for call in calls:
                    call.cancel()
                await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await leases.close()
    return {
        "lease_duration_s": DEFAULT_LEASE_SECONDS,
        "no_guarded_rollout": idle,
        "held_rollouts": n,
        "with_held_rollouts": holding,
        # Should be 0: a live holder's records are never taken over.
        "taken_from_live_holder": taken,
    }


async def measure(plan: Plan, progress: Any = None) -> dict[str, Any]:
    """Every figure of this module (``progress``: a function of one message, optional)."""
    say = progress or (lambda message: None)
    runs = []
    for seconds in plan.lease_durations:
        for n in plan.holdings:
            say(f"guarded: take-over of {n} rollout(s), Lease of {seconds} s")
            runs.append(await take_over(n, seconds))
    say(f"guarded: the guardian at rest, {plan.rest_seconds:g} s windows")
    return {"take_over": runs, "at_rest": await at_rest(plan)}


def targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goal, one check per take-over run (the report's target format)."""
    checks = []
    for run in figures.get("take_over", []):
        checks.append(
            {
                "target": f"guarded: take-over of {run['rollouts']} rollout(s), Lease "
                f"{run['lease_duration_s']} s, last one after the kill (s)",
                "measured": run["last_s"],
                "limit": f"≤ {run['goal_s']:g} s",
                "met": run["met"],
            }
        )
    rest = figures.get("at_rest")
    if rest:
        checks.append(
            {
                "target": "guarded: records taken from a live holder",
                "measured": rest["taken_from_live_holder"],
                "limit": "≤ 0",
                "met": rest["taken_from_live_holder"] == 0,
            }
        )
    return checks


def render(figures: dict[str, Any]) -> list[str]:
    """The Markdown section of the report."""
    lines = [
        "",
        "## Guarded rollouts: take-over and the guardian at rest",
        "",
        "Take-over: the holder replica gets SIGKILL; seconds until a watch on the Leases "
        "saw the survivor named holder of each record. Goal: the Lease duration + 1 s.",
        "",
        "| Lease s | rollouts | first s | last s | last / Lease | goal s | met | load avg |",
        "|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for run in figures.get("take_over", []):
        load = run["load_average"]["before"][0]
        lines.append(
            f"| {run['lease_duration_s']} | {run['rollouts']} | {run['first_s']:.2f} | "
            f"{run['last_s']:.2f} | {run['last_over_lease_duration']:.2f} | {run['goal_s']} | "
            f"{'yes' if run['met'] else '**NO**'} | {load:.2f} |"
        )
    rest = figures.get("at_rest")
    if rest:
        lines += [
            "",
            f"At rest (Lease {rest['lease_duration_s']} s), three replicas side by side over "
            "the same wall time; Kubernetes requests each sent in the window, by verb.",
            "",
            "| window | replica | CPU s/min | list | watch | get | update | "
            "list / watch since start | RSS MB | load avg |",
            "|---|---|---:|---:|---:|---:|---:|---|---:|---|",
        ]
        for label, key in (
            ("no guarded rollout", "no_guarded_rollout"),
            (f"{rest['held_rollouts']} held by the holder", "with_held_rollouts"),
        ):
            measured = rest[key]
            load = measured["load_average"]["before"][0]
            for who, figures_of in measured["replicas"].items():
                sent, total = figures_of["requests"], figures_of["requests_since_start"]
                lines.append(
                    f"| {label} ({measured['seconds']:.0f} s) | {who} | "
                    f"{figures_of['cpu_s_per_min']:.2f} | {sent['list']} | {sent['watch']} | "
                    f"{sent['get']} | {sent['update']} | {total['list']} / {total['watch']} | "
                    f"{figures_of['rss_bytes'] / 1_000_000:.1f} | {load:.2f} |"
                )
        lines.append("")
        lines.append(f"Records taken over from the live holder: {rest['taken_from_live_holder']}.")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.guarded", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the reports go")
    args = parser.parse_args(argv)
    plan = Plan.quick() if args.quick else Plan.full()

    def progress(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    started = os.getloadavg()
    figures = {"guarded": asyncio.run(measure(plan, progress))}
    report = {
        "environment": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "load_average_at_start": started,
            "plan": dataclasses.asdict(plan),
        },
        "figures": figures,
        "targets": targets(figures["guarded"]),
    }
    markdown = "\n".join(["# kubeupdate benchmark: guarded rollouts", *render(figures["guarded"])])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "guarded.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "guarded.md").write_text(markdown + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
