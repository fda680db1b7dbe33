"""Audit lines: their shape, their destination, and what they never hold."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

from kubeupdate.auth.audit import AuditLog, AuditRecord
from kubeupdate.caller import Caller


def test_a_line_is_one_json_object() -> None:
    record = AuditRecord(
        "rid-1",
        "SetContainerImage",
        "203.0.113.7",
        time=dt.datetime(2026, 11, 27, 14, 0, 0, 123000, tzinfo=dt.UTC),
        caller=Caller("token:bot", "basic", {"token_id": "bot"}),
        target={"namespace": "prod", "deployment": "web", "container": "app"},
        image="ghcr.io/acme/web:2",
        previous_image="ghcr.io/acme/web:1",
        decision="allow",
        reason="allowed",
        rule="r1",
        outcome="OK",
        changed=True,
        generation=7,
    )
    line = record.to_json()
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2026-11-27T14:00:00.123Z",
        "request_id": "rid-1",
        "method": "SetContainerImage",
        "identity": {"method": "basic", "name": "token:bot", "token_id": "bot"},
        "source": "203.0.113.7",
        "target": {"namespace": "prod", "deployment": "web", "container": "app"},
        "image": "ghcr.io/acme/web:2",
        "previous_image": "ghcr.io/acme/web:1",
        "decision": "allow",
        "reason": "allowed",
        "rule": "r1",
        "outcome": "OK",
        "changed": True,
        "generation": 7,
    }


def test_a_failed_authentication_names_only_the_method_tried() -> None:
    record = AuditRecord("r", "GetContainerImage", "10.0.0.1", auth_method="basic")
    record.reason, record.outcome = "authentication: Authentication failed.", "UNAUTHENTICATED"
    line = json.loads(record.to_json())
    assert line["identity"] == {"method": "basic"}
    assert line["decision"] == "deny"


def test_lines_are_appended_to_a_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"earlier": true}\n')
    audit = AuditLog(str(path))
    audit.write(AuditRecord("a", "M", "s"))
    audit.write(AuditRecord("b", "M", "s"))
    audit.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line).get("request_id") for line in lines] == [None, "a", "b"]


def test_a_closed_stream_does_not_fail_the_call() -> None:
    stream = io.StringIO()
    audit = AuditLog.to_stream(stream)
    stream.close()
    audit.write(AuditRecord("a", "M", "s"))  # logged, not raised


def test_the_peer_is_recorded_beside_the_source() -> None:
    record = AuditRecord("r", "GetContainerImage", "203.0.113.9", peer="10.0.0.5")
    record.forwarded_for_ignored = "x" * 5000
    line = json.loads(record.to_json())
    assert (line["source"], line["peer"]) == ("203.0.113.9", "10.0.0.5")
    assert line["forwarded_for_ignored"].endswith("...(+3976 characters)")
