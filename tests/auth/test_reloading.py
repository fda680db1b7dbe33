"""Policy and tokens files re-read on change or on demand; broken files keep the old."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from kubeupdate.auth.policy import Policy, Request, parse_policy
from kubeupdate.auth.reloading import WatchedFile
from kubeupdate.caller import Caller

BOT = Caller("token:bot", "token", {"token_id": "bot"})
READ = Request("read", "default", "web")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def policy_text(namespace: str) -> str:
    return f"""
rules:
  - subjects: [{{token: bot}}]
    targets: [{{namespace: {namespace}}}]
    access: [read]
"""


def rewrite(path: Path, text: str) -> None:
    # Same-second writes may keep the mtime: bump it so the change is visible.
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def watched(tmp_path: Path, clock: Clock) -> WatchedFile[Policy]:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text("default"))
    return WatchedFile(path, parse_policy, what="policy", interval=1.0, clock=clock)


def test_a_change_is_seen_after_the_interval(watched: WatchedFile[Policy], clock: Clock) -> None:
    assert watched.value.decide(BOT, READ).allowed
    rewrite(watched.path, policy_text("other"))
    clock.now += 0.5
    assert watched.value.decide(BOT, READ).allowed  # not polled yet
    clock.now += 0.5
    assert not watched.value.decide(BOT, READ).allowed
    assert watched.reloads == 1


def test_a_broken_file_keeps_the_old_policy(
    watched: WatchedFile[Policy], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    for broken in ("rules: [", "rules: [{subjects: []}]", "- just a list"):
        rewrite(watched.path, broken)
        clock.now += 1
        with caplog.at_level(logging.ERROR):
            assert watched.value.decide(BOT, READ).allowed
    assert "not reloaded" in caplog.text
    assert watched.reloads == 0
    # Fixed again: picked up.
    rewrite(watched.path, policy_text("other"))
    clock.now += 1
    assert not watched.value.decide(BOT, READ).allowed


def test_a_deleted_file_keeps_the_old_policy(watched: WatchedFile[Policy], clock: Clock) -> None:
    watched.path.unlink()
    clock.now += 1
    assert watched.value.decide(BOT, READ).allowed


def test_reload_on_demand_ignores_the_interval(watched: WatchedFile[Policy]) -> None:
    rewrite(watched.path, policy_text("other"))
    assert watched.reload()
    assert not watched.value.decide(BOT, READ).allowed


def test_a_broken_file_at_start_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("rules: 3")
    with pytest.raises(ValueError, match="list"):
        WatchedFile(path, parse_policy, what="policy")
