"""TEST ONLY: make the process exit at a named point of a guarded change.

The crash-point tests (tests/reliability/test_guarded_crashes.py) start a
replica with ``KUBEUPDATE_TEST_CRASH_AT=<point>`` in its environment; at that
point it exits at once (``os._exit``: no cleanup, no release of its Leases),
as a SIGKILL would. The variable is read once, when this module is imported;
without it every :func:`point` is a comparison and nothing else.

Points, in order: ``intent-recorded`` (the record is written, the patch not
sent), ``image-patched`` (the patch is applied, the record still says
intended), ``applied-recorded``, ``rollback-recorded`` (the rollback is
announced, its patch not sent), ``rolled-back`` (the rollback is applied, the
record not closed).
"""

from __future__ import annotations

import os
from typing import Final

ENVIRONMENT: Final = "KUBEUPDATE_TEST_CRASH_AT"
#: The exit status of a crash at a point (tells it from any other exit).
EXIT_STATUS: Final = 86

POINTS: Final = (
    "intent-recorded",
    "image-patched",
    "applied-recorded",
    "rollback-recorded",
    "rolled-back",
)

_CHOSEN: Final = os.environ.get(ENVIRONMENT, "")


def point(name: str) -> None:
    """Exit now if the tests chose this point."""
    if name == _CHOSEN:
        os._exit(EXIT_STATUS)
