"""HTTP connections that cannot hold the gateway: read deadlines and a header size limit.

uvicorn (with httptools) closes a connection that idles after a response
(``timeout_keep_alive``) and answers 503 above ``limit_concurrency``, but it
waits forever for a request that arrives a byte at a time, or not at all on a
new connection, and reads header blocks of any size. :class:`GuardedHttpProtocol`
is uvicorn's protocol with what is missing, per connection:

- ``header_timeout``: from the connection's start, or the end of the previous
  response, to the end of the request's headers;
- ``body_timeout``: from the end of the headers to the end of the body;
- ``max_header_bytes``: the request line and headers together.

A client that breaks one is answered 408 or 431, in the gateway's JSON error
form, and the connection is closed after a short linger, so that the client
reads the answer rather than a reset (one that sent nothing at all is just
closed). Timers are the event loop's, so slow clients cost a handle each, never
a task or a thread, and the gateway keeps answering others while they bite.
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from kubeupdate.v1.error_reason_pb2 import ErrorReason
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.transcoding import error_document

logger = logging.getLogger(__name__)

# Seconds a refused connection still reads (and discards) what its client sends.
LINGER = 2.0


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    max_header_bytes: int


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with read deadlines and a header size limit.

    uvicorn makes one per connection from a class: :meth:`with_limits` gives one
    that knows its limits.
    """

    limits: ClassVar[ConnectionLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = self.limits
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_headers = True
        self._header_bytes = 0  # received since the request began, until its headers end
        self._refused = False

    @classmethod
    def with_limits(cls, limits: ConnectionLimits) -> type[GuardedHttpProtocol]:
        """The class for uvicorn's ``Config(http=...)``, with these limits."""
        return type(cls.__name__, (cls,), {"limits": limits})

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # Counted as it comes, so an endless header block is cut off early.
        if self._reading_headers and self._header_bytes > self._limits.max_header_bytes:
            self._refuse_headers_too_large()

    # httptools callbacks (uvicorn's, extended)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self._limits.max_header_bytes:
            self._refuse_headers_too_large()
            return
        self._reading_headers = False
        self._set_deadline(self._limits.body_timeout, self._body_too_slow)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._cancel_deadline()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # A pipelined request waiting in line has its headers already.
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._await_headers()

    # the guard

    def _await_headers(self) -> None:
        self._reading_headers = True
        self._header_bytes = 0
        self._set_deadline(self._limits.header_timeout, self._headers_too_slow)

    def _set_deadline(self, seconds: float, expired: Callable[[], None]) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(seconds, expired)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._header_bytes == 0:
            self.transport.close()  # nothing sent: nobody to answer
            return
        self._refuse(
            http.HTTPStatus.REQUEST_TIMEOUT,
            "DEADLINE_EXCEEDED",
            ErrorReason.REQUEST_TIMEOUT,
            f"The request headers did not arrive within {self._limits.header_timeout:g} seconds.",
        )

    def _body_too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started:
            self.transport.close()  # too late for an answer
            return
        if cycle is not None:
            # The app reading the body sees the client gone, and answers nobody.
            cycle.disconnected = True
            cycle.message_event.set()
        self._refuse(
            http.HTTPStatus.REQUEST_TIMEOUT,
            "DEADLINE_EXCEEDED",
            ErrorReason.REQUEST_TIMEOUT,
            f"The request body did not arrive within {self._limits.body_timeout:g} seconds.",
        )

    def _refuse_headers_too_large(self) -> None:
        self._refuse(
            http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
            "INVALID_ARGUMENT",
            ErrorReason.REQUEST_HEADERS_TOO_LARGE,
            f"The request line and headers are larger than {self._limits.max_header_bytes} bytes.",
        )

    def _refuse(
        self, status: http.HTTPStatus, code: str, reason: ErrorReason.ValueType, detail: str
    ) -> None:
        """Answer ``status`` with the gateway's JSON error, then close the connection."""
        self._refused = True
        self._cancel_deadline()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        logger.warning("%s: %d %s", client, status.value, detail)
        body = error_document(code, detail, ErrorReason.Name(reason))
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode("ascii") + body)
        # Closing with unread data would reset the connection, and the client might never
        # read the answer: stop writing, discard what still comes, close a little later.
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._deadline = self.loop.call_later(LINGER, self.transport.close)
        else:
            self.transport.close()
