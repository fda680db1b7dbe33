"""The options of a change: what goes together, and the wait's timeout."""

from __future__ import annotations

from typing import Any

import pytest

from kubeupdate import errors
from kubeupdate.rollouts.settings import RolloutSettings
from kubeupdate.updates import check_options

SETTINGS = RolloutSettings(default_timeout=300, max_timeout=1800)


def options(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "wait": False,
        "timeout": None,
        "rollback_on_failure": False,
        "dry_run": False,
        "reason": "",
    }
    return {**values, **overrides, "settings": SETTINGS}


@pytest.mark.parametrize(
    ("given", "timeout"),
    [
        ({}, None),
        ({"dry_run": True}, None),
        ({"wait": True}, 300),
        ({"wait": True, "timeout": 12.5}, 12.5),
        ({"wait": True, "timeout": 86_400}, 1800),  # cut to the server's cap
        ({"wait": True, "rollback_on_failure": True}, 300),
        ({"reason": "release 1.4 — ticket #42"}, None),
        ({"reason": "x" * 256}, None),
    ],
)
def test_accepted_options(given: dict[str, Any], timeout: float | None) -> None:
    assert check_options(**options(**given)) == timeout


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"wait": True, "dry_run": True}, "Wait cannot be combined with DryRun"),
        ({"wait": True, "dry_run": True, "rollback_on_failure": True}, "Wait cannot be combined"),
        ({"rollback_on_failure": True}, "RollbackOnFailure needs Wait"),
        ({"timeout": 5}, "Timeout needs Wait"),
        ({"wait": True, "timeout": 0}, "Timeout must be positive (got 0s)"),
        ({"wait": True, "timeout": -3}, "Timeout must be positive (got -3s)"),
        ({"reason": "x" * 257}, "Reason is 257 characters long"),
        ({"reason": "two\nlines"}, "Reason must be printable text"),
        ({"reason": "tab\there"}, "Reason must be printable text"),
        ({"reason": "\x1b[31mred"}, "Reason must be printable text"),
        ({"reason": "bidi \u202e override"}, "Reason must be printable text"),
    ],
)
def test_refused_options(given: dict[str, Any], message: str) -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        check_options(**options(**given))
    assert refused.value.message.startswith(message)
