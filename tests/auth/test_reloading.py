"""Policy and tokens files re-read on change or on demand; broken files keep the old."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from kubeupdate.auth.policy import Policy, Request, parse_policy
from kubeupdate.auth.reloading import UnsafeFileError, WatchedFile
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


@pytest.mark.parametrize(
    ("mode", "message"),
    [(0o666, "writable by every user of the host"), (0o620, "writable by its group")],
)
def test_a_file_others_may_write_is_refused_at_start(
    tmp_path: Path, mode: int, message: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text("default"))
    path.chmod(mode)
    with pytest.raises(UnsafeFileError, match=message) as refused:
        WatchedFile(path, parse_policy, what="policy")
    assert f"chmod {'go' if mode & 0o002 else 'g'}-w {path}" in str(refused.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text("default"))
    os.chown(path, 12345, 12345)
    with pytest.raises(UnsafeFileError, match="belongs to user 12345"):
        WatchedFile(path, parse_policy, what="policy")


def test_a_reload_others_may_have_written_keeps_the_old_policy(
    watched: WatchedFile[Policy], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    rewrite(watched.path, policy_text("other"))
    watched.path.chmod(0o666)
    clock.now += 1
    with caplog.at_level(logging.ERROR):
        assert watched.value.decide(BOT, READ).allowed
    assert "not reloaded" in caplog.text
    assert "writable by every user of the host (mode 0666)" in caplog.text
    # chmod alone makes it safe, and is noticed: the new content is in force.
    watched.path.chmod(0o644)
    clock.now += 1
    assert not watched.value.decide(BOT, READ).allowed
    assert watched.reloads == 1


def kubernetes_mount(directory: Path, version: str, text: str) -> None:
    """What the kubelet does for a ConfigMap: a new timestamped folder, then ..data swapped."""
    folder = directory / f"..{version}"
    folder.mkdir()
    (folder / "policy.yaml").write_text(text)
    link = directory / "..data_tmp"
    link.symlink_to(folder.name)
    link.replace(directory / "..data")
    if not (directory / "policy.yaml").is_symlink():
        (directory / "policy.yaml").symlink_to("..data/policy.yaml")


def test_kubernetes_symlinked_mounts_load_and_reload(tmp_path: Path, clock: Clock) -> None:
    kubernetes_mount(tmp_path, "2026_01_01_00_00_00.1", policy_text("default"))
    watched = WatchedFile(
        tmp_path / "policy.yaml", parse_policy, what="policy", interval=1.0, clock=clock
    )
    assert watched.value.decide(BOT, READ).allowed
    kubernetes_mount(tmp_path, "2026_01_01_00_01_00.2", policy_text("other"))
    clock.now += 1
    assert not watched.value.decide(BOT, READ).allowed
    assert watched.reloads == 1
