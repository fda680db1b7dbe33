"""The guarded-rollout benchmark's report: its goal is judged on the last take-over."""

from __future__ import annotations

from typing import Any

from bench import guarded


def take_over(last_s: float, lease_s: int = 2) -> dict[str, Any]:
    return {
        "rollouts": 10,
        "lease_duration_s": lease_s,
        "goal_s": lease_s + 1,
        "takeover_s": [1.0, last_s],
        "first_s": 1.0,
        "last_s": last_s,
        "last_over_lease_duration": last_s / lease_s,
        "met": last_s <= lease_s + 1,
        "load_average": {"before": (1.0, 1.0, 1.0), "after": (1.0, 1.0, 1.0)},
    }


def test_a_take_over_later_than_the_lease_plus_one_second_misses_the_goal() -> None:
    [late] = guarded.targets({"take_over": [take_over(3.5)]})
    [in_time] = guarded.targets({"take_over": [take_over(2.9)]})

    assert (late["met"], late["measured"], late["limit"]) == (False, 3.5, "≤ 3 s")
    assert in_time["met"] is True


def test_the_markdown_marks_a_missed_goal() -> None:
    lines = guarded.render({"take_over": [take_over(3.5)]})

    [row] = [line for line in lines if line.startswith("| 2 |")]
    assert "**NO**" in row
    assert "1.75" in row  # the last take-over over the Lease duration
