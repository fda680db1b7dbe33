"""Durations as people write them, the one grammar of the CLI, the gateway and the Action."""

from __future__ import annotations

import pytest
from kubeupdate.client.durations import format_duration, parse_duration, protobuf_json


@pytest.mark.parametrize(
    ("text", "json"),
    [
        ("300", "300s"),
        ("90s", "90s"),
        ("5m", "300s"),
        ("1h30m", "5400s"),
        ("1.5h", "5400s"),
        ("2m30.5s", "150.5s"),
        ("250ms", "0.25s"),
        ("120s", "120s"),
        ("1.000000001s", "1.000000001s"),
        ("-5m", "-300s"),
        (" 5m ", "300s"),
    ],
)
def test_written_durations_become_protobuf_durations(text: str, json: str) -> None:
    assert protobuf_json(text) == json


@pytest.mark.parametrize("text", ["", "soon", "m", "5 m", "5M", "1d", "1h-30m", "s5", "1e3s"])
def test_anything_else_is_refused_with_the_accepted_form(text: str) -> None:
    with pytest.raises(ValueError, match=r'write it like "90s", "5m" or "1h30m"'):
        parse_duration(text)


@pytest.mark.parametrize(
    "text", ["315576000001s", "877644094322049904910241.8709076ms9.3h", "-1e9h"]
)
def test_a_duration_longer_than_protobuf_allows_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"is (longer than a duration may be|not a duration)"):
        protobuf_json(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "0.25s"), (42, "42s"), (42.4, "42s"), (300, "5m"), (5400, "1h30m"), (125, "2m5s")],
)
def test_durations_are_shown_as_people_write_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert float(parse_duration(text)) == pytest.approx(seconds, abs=0.5)
