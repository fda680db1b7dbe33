"""Listening sockets bound before a server starts, so that port 0 and errors are ours."""

from __future__ import annotations

import socket


def bind(host: str, port: int, *, backlog: int | None = None) -> socket.socket:
    """A non-blocking TCP socket bound to ``host:port`` (0: a free port).

    It listens with ``backlog`` when given; otherwise the server that takes it
    does (uvicorn). ``SO_REUSEADDR`` lets a restarted server bind while old
    connections linger in TIME_WAIT. Raises OSError (a port in use) with the
    socket closed.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        if backlog is not None:
            sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
