"""kubeupdate's programs as child processes: their ports, their memory, their exit.

Used by the benchmark (per-component memory and start-up time need separate
processes) and by the reliability tests (SIGTERM, memory under load). Ports
come from the programs' own output, so port 0 works.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

GRPC_LINE = re.compile(r"kubeupdate gRPC service listening on \S+:(\d+)")
HTTP_LINE = re.compile(r"kubeupdate REST gateway listening on \S+:(\d+)")
GATEWAY_LINE = re.compile(r"gateway listening on \S+:(\d+), forwarding")
METRICS_LINE = re.compile(r"kubeupdate metrics at http://\S+:(\d+)/metrics")
DEVCLUSTER_LINE = re.compile(r"serving the Kubernetes API at https?://\S+:(\d+)")


def serve_command(*arguments: str) -> list[str]:
    """``kubeupdate serve ...`` with this interpreter (the venv's).

    The log level stays at info: the "listening" lines that give the ports
    are info lines. The metrics listener takes a free port, so that several
    of these can run at once (callers may override it).
    """
    return [
        sys.executable,
        "-m",
        "kubeupdate",
        "--log-level=info",
        "serve",
        "--metrics-port=0",
        *arguments,
    ]


def devcluster_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "devcluster", *arguments]


class Child:
    """One child process; :meth:`start` returns once every pattern has matched a line.

    ``patterns`` name a regular expression whose first group is a port; the
    port is in :attr:`ports` under that name. The output (``stdout`` or
    ``stderr``) is drained by a thread, since a full pipe would block the
    child; the last lines are kept in :attr:`lines` for error messages.
    """

    def __init__(
        self,
        command: Sequence[str],
        patterns: Mapping[str, re.Pattern[str]],
        *,
        output: str = "stderr",
        cwd: Path | None = None,
    ) -> None:
        self.command = list(command)
        self.patterns = dict(patterns)
        self.output = output
        self.cwd = cwd
        self.ports: dict[str, int] = {}
        #: Seconds from spawning the process to the last expected line.
        self.ready_after: float | None = None
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the process is not started")
        return self._process

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self, timeout: float = 30.0) -> Child:
        started = time.perf_counter()
        pipe = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        pipe[self.output] = subprocess.PIPE
        self._process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=pipe["stdout"],
            stderr=pipe["stderr"],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = threading.Thread(
            target=self._read, args=(started,), name="child-output", daemon=True
        )
        self._reader.start()
        if not self._ready.wait(timeout) or len(self.ports) < len(self.patterns):
            self.kill()
            raise RuntimeError(f"{self.command} did not become ready:\n" + "\n".join(self.lines))
        return self

    def _read(self, started: float) -> None:
        stream = getattr(self.process, self.output)
        assert stream is not None
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            self.lines.append(line)
            if self._ready.is_set():
                continue
            for name, pattern in self.patterns.items():
                if match := pattern.search(line):
                    self.ports[name] = int(match.group(1))
            if len(self.ports) == len(self.patterns):
                self.ready_after = time.perf_counter() - started
                self._ready.set()
        self._ready.set()  # the process ended: start() must not wait any longer

    def pids(self) -> list[int]:
        """This process and its children (``kubeupdate serve`` runs the service as one)."""
        found, queue = [], [self.pid]
        while queue:
            pid = queue.pop()
            found.append(pid)
            with contextlib.suppress(OSError):
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                queue += [int(child) for child in children]
        return found

    def rss_bytes(self) -> int:
        """Resident memory now, of the process and its children, from /proc (Linux)."""
        return sum(_rss(pid) for pid in self.pids())

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the process and its children (Linux)."""
        return sum(_cpu_seconds(pid) for pid in self.pids())

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code (SIGKILL if it outlives ``timeout``)."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._join()
        return code

    def kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)
        self._join()

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(10)

    def __enter__(self) -> Child:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.kill()


class ServeProcess(Child):
    """``kubeupdate serve``; ``expect`` is what must listen: {"grpc"}, {"gateway"} or both,
    and "metrics" for the service's metrics listener."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        expect: frozenset[str] = frozenset({"grpc", "gateway"}),
        cwd: Path | None = None,
    ) -> None:
        lines = {"grpc": GRPC_LINE, "gateway": HTTP_LINE, "metrics": METRICS_LINE}
        super().__init__(command, {name: lines[name] for name in expect}, cwd=cwd)

    @property
    def grpc_port(self) -> int | None:
        return self.ports.get("grpc")

    @property
    def http_port(self) -> int | None:
        return self.ports.get("gateway")

    @property
    def metrics_port(self) -> int | None:
        return self.ports.get("metrics")

    def __enter__(self) -> ServeProcess:
        self.start()
        return self


class DevclusterProcess(Child):
    """``devcluster`` (its own distribution); the port comes from its banner on stdout."""

    def __init__(self, command: Sequence[str], *, cwd: Path | None = None) -> None:
        super().__init__(command, {"api": DEVCLUSTER_LINE}, output="stdout", cwd=cwd)

    @property
    def port(self) -> int:
        return self.ports["api"]

    def __enter__(self) -> DevclusterProcess:
        self.start()
        return self


def _rss(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0  # it has just ended
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0  # a zombie has no memory left


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
