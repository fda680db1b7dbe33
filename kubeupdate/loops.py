"""The event loop ``kubeupdate serve`` runs on: uvloop where it is installed, else asyncio's.

uvloop (libuv under the asyncio API; installed with uvicorn's ``standard``
extra, which the service depends on) runs the same code with less CPU per
call; grpc.aio, aiohttp and uvicorn accept it. ``--event-loop asyncio`` is
the way back should a library misbehave on it. The figures that decided the
default are in bench/results/ANALYSIS.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The choices of ``--event-loop``; the first is the default.
EVENT_LOOPS: Final = ("uvloop", "asyncio")


def run(main: Coroutine[Any, Any, T], event_loop: str = EVENT_LOOPS[0]) -> T:
    """Run ``main`` to its end on a new loop of that kind (asyncio's if uvloop is missing)."""
    with asyncio.Runner(loop_factory=_factory(event_loop)) as runner:
        return runner.run(main)


def _factory(event_loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if event_loop not in EVENT_LOOPS:
        raise ValueError(f"unknown event loop {event_loop!r}; choose one of {EVENT_LOOPS}")
    if event_loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        log.info("uvloop is not installed: running on asyncio's own event loop")
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
