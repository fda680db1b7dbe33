"""One rule for request ids, whichever door the request came in by."""

from __future__ import annotations

import re

import pytest

from kubeupdate import request_ids


@pytest.mark.parametrize("value", ["abc", "4f2c-9e1a", "x" * 128, "a/b:c@d!~"])
def test_a_callers_id_of_visible_ascii_is_kept(value: str) -> None:
    assert request_ids.kept(value) == value
    assert request_ids.from_metadata([("x-request-id", value)]) == value


@pytest.mark.parametrize("value", [None, "", "x" * 129, "two words", "line\nbreak", "café"])
def test_anything_else_is_replaced_by_a_fresh_id(value: str | None) -> None:
    fresh = request_ids.kept(value)
    assert re.fullmatch(r"[0-9a-f]{32}", fresh)
    assert fresh != request_ids.kept(value)  # new each time


def test_a_call_without_one_gets_a_fresh_id() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", request_ids.from_metadata([("other", "x")]))
    assert re.fullmatch(r"[0-9a-f]{32}", request_ids.from_metadata(None))
