"""The event loop ``kubeupdate serve`` runs on: asyncio's own, or uvloop on request.

uvloop (libuv under the asyncio API; installed with uvicorn's ``standard``
extra, which the service depends on) runs the same code; grpc.aio, aiohttp
and uvicorn accept it. It did not win in the benchmark (REST throughput and
CPU per request within the noise of a shared machine, some figures worse;
bench/results/ANALYSIS.md), so asyncio's loop stays the default and
``--event-loop uvloop`` is there to measure again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The choices of ``--event-loop``; the first is the default.
EVENT_LOOPS: Final = ("asyncio", "uvloop")


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
