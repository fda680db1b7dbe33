"""The devcluster's own admin API: its clock, and what its controllers cost, over HTTP.

A benchmark or a script in another process can freeze rollouts (speed 0),
move time by exactly as much as it wants, and read the controllers' share of
the server's event loop. The paths live under ``/devcluster/v1/``, a prefix no
Kubernetes API uses; requests are authenticated like any other (the bearer
token of the kubeconfig) and faults never apply to them:

=======  ===========================  ===================================================
GET      /devcluster/v1/clock         ``{"time": "...Z", "unix": 1700000000.5, "speed": 0}``
POST     /devcluster/v1/clock/advance ``{"seconds": 30}``: moves the clock, answers once the
                                      controllers have caught up (the server answers
                                      other requests meanwhile); the clock after it
PUT      /devcluster/v1/clock/speed   ``{"speed": 1}``: simulated seconds per real second
                                      (0 stops the clock); the clock after it
GET      /devcluster/v1/stats         the controllers' share of the loop: busySeconds,
                                      busyCpuSeconds, longestBlockSeconds, chunks, visits
=======  ===========================  ===================================================

kubectl reaches them with the kubeconfig's credentials::

    kubectl get --raw /devcluster/v1/clock
    echo '{"seconds": 30}' | kubectl create --raw /devcluster/v1/clock/advance -f -
    echo '{"speed": 0}' | kubectl replace --raw /devcluster/v1/clock/speed -f -

Bad input is a 400 Status and changes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable
from typing import Any, Final, Protocol

from aiohttp import web

from devcluster.clock import SimulatedClock
from devcluster.controllers.events import micro_time
from devcluster.statuses import ApiError, bad_request, failure, page_not_found

#: Every admin path starts with this (nothing in Kubernetes does).
PREFIX: Final = "/devcluster/"
#: The longest single advance accepted (a year): a typo must not spin for hours.
MAX_ADVANCE_SECONDS: Final = 365 * 24 * 3600.0


class Controls(Protocol):
    """What the admin API drives: the :class:`~devcluster.cluster.DevCluster`."""

    clock: SimulatedClock

    def advance_async(self, seconds: float) -> Awaitable[None]: ...

    def set_speed(self, speed: float) -> None: ...

    def stats(self) -> dict[str, Any]: ...


def is_admin(path: str) -> bool:
    return path.startswith(PREFIX)


class Admin:
    """Answers the admin paths for one devcluster."""

    def __init__(self, controls: Controls) -> None:
        self._controls = controls

    async def handle(self, request: web.Request) -> web.Response:
        route = (request.method, request.path.rstrip("/"))
        if route == ("GET", "/devcluster/v1/clock"):
            return self._clock()
        if route == ("POST", "/devcluster/v1/clock/advance"):
            seconds = _number(await _body(request), "seconds")
            if seconds < 0 or seconds > MAX_ADVANCE_SECONDS:
                raise bad_request(
                    f"seconds must be between 0 and {MAX_ADVANCE_SECONDS:.0f}, not {seconds}"
                )
            await self._controls.advance_async(seconds)
            return self._clock()
        if route == ("PUT", "/devcluster/v1/clock/speed"):
            speed = _number(await _body(request), "speed")
            if speed < 0:
                raise bad_request(f"speed must be zero or positive, not {speed}")
            self._controls.set_speed(speed)
            return self._clock()
        if route == ("GET", "/devcluster/v1/stats"):
            return _json(self._controls.stats())
        if route[1] in (
            "/devcluster/v1/clock",
            "/devcluster/v1/clock/advance",
            "/devcluster/v1/clock/speed",
            "/devcluster/v1/stats",
        ):
            raise ApiError(
                failure(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
            )
        raise page_not_found()

    def _clock(self) -> web.Response:
        clock = self._controls.clock
        now = clock.now()
        return _json({"time": micro_time(now), "unix": now, "speed": clock.speed})


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        value = json.loads(raw or b"null")
    except ValueError as exc:
        raise bad_request(f"the body must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise bad_request("the body must be a JSON object")
    return value


def _number(body: dict[str, Any], field: str) -> float:
    value = body.get(field)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad_request(f"{field!r} must be a number")
    return float(value)


def _json(value: Any) -> web.Response:
    return web.Response(body=json.dumps(value).encode() + b"\n", content_type="application/json")
