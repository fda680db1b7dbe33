"""The event loop ``kubeupdate serve`` runs on (``--event-loop``)."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
import uvloop

from bench.processes import serve_command
from kubeupdate import loops


async def running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_asyncio_s_own_loop_is_the_default() -> None:
    loop = loops.run(running_loop())
    assert not isinstance(loop, uvloop.Loop)
    assert isinstance(loop, asyncio.BaseEventLoop)


def test_uvloop_on_request() -> None:
    assert isinstance(loops.run(running_loop(), "uvloop"), uvloop.Loop)


def test_an_unknown_loop_is_refused_before_anything_runs() -> None:
    main = running_loop()
    with pytest.raises(ValueError, match="unknown event loop 'trio'"):
        loops.run(main, "trio")
    main.close()


def test_serve_refuses_an_unknown_event_loop_with_exit_2() -> None:
    command = serve_command("--event-loop=trio", "--grpc-port=0", "--http-port=0")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 2
    assert "--event-loop: invalid choice: 'trio'" in done.stderr
