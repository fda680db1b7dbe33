"""Load generators: a closed-loop async runner (aiohttp / grpc.aio) and ``wrk``.

The closed loop keeps ``concurrency`` calls in flight and records each
call's latency; it also records how much CPU the generator itself used, so
the report can show whether the generator, not the system under test, was
the limit. ``wrk`` (C, from Debian) drives the REST throughput runs.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: One call: (worker index, sequence number of the call) -> a status label ("200", "OK"...).
Call = Callable[[int, int], Awaitable[str]]

_OK = frozenset({"200", "OK"})


@dataclass
class Run:
    """The outcome of one load run."""

    name: str
    tool: str
    concurrency: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    #: CPU the generator process used, in cores (1.0 = one core busy), when known.
    generator_cores: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status not in _OK)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "rps": round(self.rps, 1), "errors": self.errors}


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


async def closed_loop(
    name: str,
    tool: str,
    call: Call,
    *,
    concurrency: int,
    requests: int | None = None,
    duration: float | None = None,
    warmup: int = 50,
) -> Run:
    """``concurrency`` workers call ``call`` back to back, until ``requests`` or ``duration``.

    The first ``warmup`` calls (per run, not per worker) are not recorded.
    """
    if (requests is None) == (duration is None):
        raise ValueError("give requests or duration")
    for i in range(warmup):
        await call(0, -1 - i)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    issued = 0
    deadline = None if duration is None else time.perf_counter() + duration

    async def worker(index: int) -> None:
        nonlocal issued
        sequence = 0
        while True:
            if requests is not None and issued >= requests:
                return
            if deadline is not None and time.perf_counter() >= deadline:
                return
            issued += 1
            started = time.perf_counter()
            status = await call(index, sequence)
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
            sequence += 1

    cpu_before = time.process_time()
    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for index in range(concurrency):
            group.create_task(worker(index))
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    latencies.sort()
    return Run(
        name=name,
        tool=tool,
        concurrency=concurrency,
        requests=len(latencies),
        seconds=seconds,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        statuses=dict(statuses),
        generator_cores=cpu / seconds if seconds else None,
    )


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000 if values else float("nan")


# -- wrk ---------------------------------------------------------------------------------

_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_WRK_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
_WRK_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)")
_WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_WRK_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")

#: A wrk script that POSTs a new image to a different container each time.
#: Each wrk thread owns ``per_thread`` containers and cycles through them, so
#: two requests in flight never target the same container (a compare-and-swap
#: on the same container would make one of them retry).
POST_SCRIPT = """
local next_id = 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end
local n = 0
function request()
  n = n + 1
  local slot = tid * {per_thread} + (n % {per_thread})
  local path = "/deployment/{namespace}/{prefix}" .. math.floor(slot / {containers})
    .. "/c" .. (slot % {containers})
  local body = '{{"Image":"{image}' .. tid .. '-' .. n .. '"}}'
  return wrk.format("POST", path, {{["Content-Type"] = "application/json"}}, body)
end
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    name: str,
    url: str,
    *,
    concurrency: int,
    duration: float,
    headers: dict[str, str] | None = None,
    script: str | None = None,
) -> Run:
    threads = min(2, concurrency)  # two cores on the reference machine
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{duration:g}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    for key, value in (headers or {}).items():
        command += ["-H", f"{key}: {value}"]
    with tempfile.TemporaryDirectory() as directory:
        if script is not None:
            path = Path(directory) / "script.lua"
            path.write_text(script)
            command += ["-s", str(path)]
        command.append(url)
        output = subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=duration + 60
        ).stdout
    return parse_wrk(name, output, concurrency)


def parse_wrk(name: str, output: str, concurrency: int) -> Run:
    percentiles = {
        int(p): float(v) * _WRK_UNITS[unit] for p, v, unit in _WRK_PERCENTILE.findall(output)
    }
    total = _WRK_TOTAL.search(output)
    if total is None or 50 not in percentiles or 99 not in percentiles:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    requests = int(total.group(1))
    seconds = float(total.group(2)) * _WRK_UNITS[total.group(3)] / 1000
    statuses: dict[str, int] = {}
    bad = _WRK_NON_2XX.search(output)
    if bad:
        statuses["non-2xx"] = int(bad.group(1))
    socket_errors = _WRK_ERRORS.search(output)
    if socket_errors:
        statuses["socket errors"] = sum(int(g) for g in socket_errors.groups())
    statuses["200"] = requests - sum(statuses.values())
    return Run(
        name=name,
        tool="wrk",
        concurrency=concurrency,
        requests=requests,
        seconds=seconds,
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
        statuses=statuses,
    )
