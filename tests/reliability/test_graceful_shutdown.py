"""SIGTERM to ``kubeupdate serve`` while calls are in flight.

A waited change is the in-flight call: the devcluster's clock stands still,
so the call cannot end until the test advances it, and no assertion races
the clock. Expected: readiness turns false first; an unguarded wait
(``--no-guard``) still finishes, the process exits 0; a guarded wait is handed
over at once (a clean UNAVAILABLE, ROLLOUT_HANDED_OVER: see
test_guarded_rollouts.py) and leaves the change whole.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from bench.processes import ServeProcess, serve_command
from devcluster import DevCluster
from tests.stack import seed_samples

WEB = "/apis/apps/v1/namespaces/default/deployments/web"
ROUTE = "/deployment/default/web/app"


@dataclass
class Answer:
    status: int = 0
    body: bytes = b""
    error: BaseException | None = None

    @property
    def json(self) -> dict[str, object]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value


def post_in_background(port: int, document: dict[str, object]) -> tuple[threading.Thread, Answer]:
    answer = Answer()

    def send() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request(
                "POST", ROUTE, json.dumps(document), {"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            answer.status, answer.body = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            answer.error = exc
        finally:
            connection.close()

    thread = threading.Thread(target=send, name="in-flight POST", daemon=True)
    thread.start()
    return thread, answer


def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(400):  # bounded: at most ~20 s
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def ready(port: int) -> bool:
    """Whether /readyz answers 200 on a new connection (refused counts as not ready)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def patched(cluster: DevCluster) -> bool:
    return any(e.method == "PATCH" and e.path == WEB and e.status == 200 for e in cluster.journal)


@pytest.fixture
def seeded(devcluster: DevCluster) -> DevCluster:
    seed_samples(devcluster)
    return devcluster


def serve(cluster: DevCluster, *extra: str) -> ServeProcess:
    return ServeProcess(
        serve_command(
            "--no-auth",
            "--rate-limit=0",
            "--grpc-port=0",
            "--http-port=0",
            f"--kubeconfig={cluster.kubeconfig_path}",
            *extra,
        )
    )


@pytest.fixture
def process(seeded: DevCluster) -> Iterator[ServeProcess]:
    with serve(seeded, "--grace=20", "--no-guard") as running:
        yield running


def test_sigterm_lets_the_in_flight_call_finish_and_exits_0(
    seeded: DevCluster, process: ServeProcess
) -> None:
    assert process.http_port is not None
    port = process.http_port
    assert ready(port)
    thread, answer = post_in_background(port, {"Image": "nginx:1.26", "Wait": True})
    until(lambda: patched(seeded), "the change reached Kubernetes")

    process.process.terminate()  # SIGTERM
    until(lambda: not ready(port), "readiness turned false")
    assert thread.is_alive()  # the wait cannot end before the clock moves
    seeded.advance(120)
    thread.join(30)

    assert answer.error is None, answer.error
    assert answer.status == 200, answer.body
    assert answer.json["Image"] == "nginx:1.26"
    assert answer.json["Rollout"]["State"] == "STATE_COMPLETE"  # type: ignore[index]
    # It exits on its own after the first SIGTERM; a second one (terminate()) could
    # land after its event loop closed, where the default handler kills it (-15).
    assert process.process.wait(30) == 0, "\n".join(process.lines)


def test_wait_past_the_grace_ends_unavailable_and_the_change_is_whole(
    seeded: DevCluster,
) -> None:
    with serve(seeded, "--grace=0.5") as process:
        assert process.http_port is not None
        thread, answer = post_in_background(
            process.http_port, {"Image": "nginx:1.26", "Wait": True}
        )
        until(lambda: patched(seeded), "the change reached Kubernetes")

        process.process.terminate()
        thread.join(30)
        code = process.terminate()

    assert answer.error is None, answer.error
    assert answer.status == 503, answer.body
    assert answer.json["Code"] == "UNAVAILABLE"
    assert code == 0, "\n".join(process.lines)
    # Applied once, completely: the new image, and exactly one PATCH.
    obj = seeded.get("deployments", "default", "web")
    assert obj is not None
    images = {c["name"]: c["image"] for c in obj["spec"]["template"]["spec"]["containers"]}
    assert images == {"app": "nginx:1.26", "sidecar": "busybox:1.36"}
    assert len([e for e in seeded.journal if e.method == "PATCH"]) == 1
