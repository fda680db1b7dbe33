"""The service's metrics: outcome names, Kubernetes calls, registries, the listener."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import grpc
import pytest

from kubeupdate.containers import ImageChange
from kubeupdate.metrics import MetricsListener, ServiceMetrics
from kubeupdate.rollouts.judgement import RolloutReport, RolloutState
from kubeupdate.updates import SetImageOutcome
from tests.observed import sample


def outcome(
    *, changed: bool = True, dry_run: bool = False, state: RolloutState | None = None
) -> SetImageOutcome:
    change = ImageChange("default", "web", "app", "nginx:2", "nginx:1", changed, 2)
    report = None if state is None else RolloutReport(state, "", "", duration=12.0)
    return SetImageOutcome(change, dry_run, report, change.image)


@pytest.mark.parametrize(
    ("done", "name"),
    [
        (outcome(), "changed"),
        (outcome(changed=False), "unchanged"),
        (outcome(dry_run=True), "dry_run"),
        (outcome(state=RolloutState.COMPLETE), "changed"),
        (outcome(changed=False, state=RolloutState.COMPLETE), "unchanged"),
        (outcome(state=RolloutState.FAILED), "rollout_failed"),
        (outcome(state=RolloutState.TIMED_OUT), "timed_out"),
        (outcome(state=RolloutState.ROLLED_BACK), "rolled_back"),
    ],
)
def test_each_update_outcome_has_its_name(done: SetImageOutcome, name: str) -> None:
    metrics = ServiceMetrics()
    metrics.update(done)
    text = metrics.exposition().decode()
    assert sample(text, "kubeupdate_updates_total", outcome=name) == 1
    assert (
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("kubeupdate_updates_total{")
        )
        == 1
    )
    waited = done.rollout is not None
    state = done.rollout.state.value if done.rollout else "complete"
    assert sample(text, "kubeupdate_rollout_wait_seconds_count", state=state) == int(waited)


def test_failed_updates_and_kubernetes_calls_are_counted() -> None:
    metrics = ServiceMetrics()
    metrics.update_failed()
    metrics.kubernetes_call("get", "deployments", "200", 0.002)
    metrics.kubernetes_call("get", "deployments", "200", 0.004)
    metrics.kubernetes_call("patch", "deployments", "timeout", 10.0)
    text = metrics.exposition().decode()
    assert sample(text, "kubeupdate_updates_total", outcome="failed") == 1
    kube = "kubeupdate_kubernetes_requests_total"
    assert sample(text, kube, verb="get", resource="deployments", code="200") == 2
    assert sample(text, kube, verb="patch", resource="deployments", code="timeout") == 1
    duration = "kubeupdate_kubernetes_request_duration_seconds"
    assert sample(text, duration + "_sum", verb="get", resource="deployments") == pytest.approx(
        0.006
    )
    assert sample(text, duration + "_bucket", verb="patch", resource="deployments", le="5.0") == 0


def test_watch_requests_are_counted_but_not_timed() -> None:
    metrics = ServiceMetrics()
    metrics.kubernetes_call("watch", "pods", "200", 0.003)
    text = metrics.exposition().decode()
    assert sample(text, "kubeupdate_kubernetes_requests_total", verb="watch", resource="pods") == 1
    duration = "kubeupdate_kubernetes_request_duration_seconds_count"
    assert sample(text, duration, verb="watch", resource="pods") == 0


def test_grpc_calls_are_counted_by_method_and_code() -> None:
    metrics = ServiceMetrics()
    method = "/kubeupdate.v1.DeploymentImageService/GetContainerImage"
    metrics.call(method, streaming=False).done(grpc.StatusCode.OK, 0.001)
    metrics.call(method, streaming=False).done(grpc.StatusCode.ABORTED, 0.001)
    text = metrics.exposition().decode()
    labels = {
        "grpc_service": "kubeupdate.v1.DeploymentImageService",
        "grpc_method": "GetContainerImage",
        "grpc_type": "unary",
    }
    assert sample(text, "grpc_server_handled_total", **labels, grpc_code="OK") == 1
    assert sample(text, "grpc_server_handled_total", **labels, grpc_code="ABORTED") == 1
    assert sample(text, "grpc_server_handled_total", **labels, grpc_code="NOT_FOUND") == 0
    assert sample(text, "grpc_server_handling_seconds_count", **labels) == 2


def test_registries_are_per_instance_and_watches_read_at_scrape() -> None:
    first, second = ServiceMetrics(), ServiceMetrics()
    first.update_failed()
    open_watches = [3]
    first.count_watches(lambda: open_watches[0])
    assert sample(first.exposition().decode(), "kubeupdate_open_watches") == 3
    open_watches[0] = 1
    assert sample(first.exposition().decode(), "kubeupdate_open_watches") == 1
    assert sample(second.exposition().decode(), "kubeupdate_updates_total", outcome="failed") == 0


def test_followed_rollouts_are_read_at_scrape() -> None:
    metrics = ServiceMetrics()
    following = [7]
    metrics.count_followed(lambda: following[0])
    assert sample(metrics.exposition().decode(), "kubeupdate_followed_rollouts") == 7
    following[0] = 0
    assert sample(metrics.exposition().decode(), "kubeupdate_followed_rollouts") == 0


async def test_listener_serves_metrics_only_at_metrics() -> None:
    metrics = ServiceMetrics()
    metrics.update_failed()
    listener = MetricsListener(metrics, "127.0.0.1", 0)
    port = await listener.start()
    try:

        def get(path: str) -> tuple[int, str, bytes]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
                    return r.status, r.headers["Content-Type"], r.read()
            except urllib.error.HTTPError as exc:
                return exc.code, "", b""

        status, content_type, body = await asyncio.to_thread(get, "/metrics")
        assert status == 200
        assert content_type.startswith("text/plain; version=")
        assert b'kubeupdate_updates_total{outcome="failed"} 1.0' in body
        assert (await asyncio.to_thread(get, "/"))[0] == 404
    finally:
        await listener.stop()


async def test_a_busy_metrics_port_is_a_clear_error() -> None:
    first = MetricsListener(ServiceMetrics(), "127.0.0.1", 0)
    port = await first.start()
    try:
        with pytest.raises(OSError, match="--metrics-port=0 picks a free port"):
            await MetricsListener(ServiceMetrics(), "127.0.0.1", port).start()
    finally:
        await first.stop()


async def test_the_listener_answers_http_probes_with_the_servers_state() -> None:
    serving = [False]
    listener = MetricsListener(ServiceMetrics(), "127.0.0.1", 0, serving=lambda: serving[0])
    port = await listener.start()
    plain = MetricsListener(ServiceMetrics(), "127.0.0.1", 0)
    plain_port = await plain.start()

    def status(port: int, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        assert await asyncio.to_thread(status, port, "/readyz") == 503
        assert await asyncio.to_thread(status, port, "/healthz") == 200
        serving[0] = True
        assert await asyncio.to_thread(status, port, "/readyz") == 200
        # Without the server's state there is nothing to probe.
        assert await asyncio.to_thread(status, plain_port, "/readyz") == 404
    finally:
        await listener.stop()
        await plain.stop()
