"""Audit lines of guarded rollouts: a waited change's verdict, dry runs, the guardian's acts."""

from __future__ import annotations

import base64
import io
import json
import threading
from typing import Any

from kubeupdate.auth.audit import AuditLog
from kubeupdate.guarded import records
from kubeupdate.guarded.guardian import audited
from kubeupdate.guarded.records import Intent, Verdict
from kubeupdate.rollouts.judgement import RolloutReport, RolloutState
from tests.conftest import SecuredStack
from tests.stack import Response

INTENT = Intent(
    deployment="web",
    container="app",
    image="nginx:1.26-bad",
    previous_image="nginx:1.25",
    rollback_on_failure=True,
    deadline=1_796_000_300.0,
    request_id="req-7",
    caller="token:release-bot",
)


def headers(secured: SecuredStack) -> dict[str, str]:
    token = base64.b64encode(f"demo:{secured.secret}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


def post(secured: SecuredStack, document: dict[str, Any]) -> Response:
    return secured.stack.request(
        "POST", "/deployment/default/web/app", json.dumps(document), headers(secured)
    )


def test_a_rolled_back_change_is_not_audited_plain_ok(secured_stack: SecuredStack) -> None:
    cluster = secured_stack.stack.cluster
    answers: list[Response] = []
    document = {"Image": "nginx:1.26-bad", "Wait": True, "RollbackOnFailure": True}
    sender = threading.Thread(target=lambda: answers.append(post(secured_stack, document)))
    sender.start()
    while sender.is_alive():
        cluster.advance(5)  # the bad image fails once the stuck grace has passed
        sender.join(0.05)

    [answer] = answers
    assert answer.json["Rollout"]["State"] == "STATE_ROLLED_BACK", answer.body
    [line] = secured_stack.audit_lines()
    assert (line["outcome"], line["rollout"]) == ("OK", "ROLLED_BACK")


def test_a_dry_run_is_marked_as_one(secured_stack: SecuredStack) -> None:
    answer = post(secured_stack, {"Image": "nginx:1.26", "DryRun": True})

    assert answer.status == 200, answer.body
    [line] = secured_stack.audit_lines()
    assert line["dry_run"] is True
    assert "rollout" not in line


def test_the_guardian_audits_its_take_over_and_verdict_for_the_caller() -> None:
    stream = io.StringIO()
    observe = audited(AuditLog.to_stream(stream))
    web = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    lease = records.new_record("kubeupdate-0a", web, INTENT, holder="b", duration=2, now=0)
    lease["metadata"].update(namespace="default", resourceVersion="3")
    taken = records.parse(lease)
    report = RolloutReport(
        RolloutState.ROLLED_BACK,
        "ImagePullBackOff",
        "rolled back",
        failed_image="nginx:1.26-bad",
        restored_image="nginx:1.25",
    )
    closed = records.parse(
        records.closed(
            taken, Verdict(True, report, "rolled back", "b"), holder="b", retention=60, now=1
        )
    )

    observe("take-over", taken)
    observe("verdict", closed)
    observe("delete", closed)

    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["method"] == "GuardedRollout/take-over"
    assert first["identity"] == {
        "method": "kubeupdate",
        "name": "kubeupdate on behalf of token:release-bot, request req-7",
    }
    assert first["request_id"] == "req-7"
    assert first["rollout_id"] == "kubeupdate-0a"
    assert (second["method"], second["rollout"], second["changed"]) == (
        "GuardedRollout/verdict",
        "ROLLED_BACK",
        True,
    )
