"""An asyncio client for the few Kubernetes calls kubeupdate makes.

One ``aiohttp`` session per process keeps connections alive. Credentials come
from :class:`kubeupdate.kube.credentials.Credentials`; the ``Authorization``
header is computed for every request so token rotation is picked up.

Retries, and why they are safe:

- 401: credentials are loaded again from their files and the request is sent
  once more (the server did not act on an unauthenticated request).
- 429: the server did not act on the request; wait ``Retry-After`` if that
  ends before the deadline (and within one call's timeout), else report it.
- 5xx and connection failures: reads are retried a bounded number of times.
  A write (PATCH, and a Lease's POST, PUT or DELETE) is retried only when the
  connection could not even be opened; once it may have been sent, the caller
  gets ``outcome_unknown`` and must re-read.

A watch is one long GET and is not retried here: the caller
(:class:`kubeupdate.kube.reflector.Reflector`) resumes it from the last
resourceVersion it saw, or lists again after 410.

The ``Date`` of every answer (a watch's too) goes to :attr:`KubeClient.clock`,
the API server's clock as rollout judgements need it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp

from kubeupdate.kube import errors
from kubeupdate.kube.api import (
    DEFAULT_TIMEOUT,
    LEASES,
    JsonObject,
    JsonPatch,
    Resource,
    WatchEvent,
)
from kubeupdate.kube.clock import ClusterClock
from kubeupdate.kube.credentials import Credentials

log = logging.getLogger(__name__)


#: Told of every request sent: verb, resource, code, seconds. ``code`` is the HTTP
#: status, or ``timeout`` / ``connection`` when none came back. A watch (verb
#: ``watch``) is told of once its answer starts, with the seconds until then.
CallObserver = Callable[[str, str, str, float], None]


class KubeClient:
    """Implements :class:`~kubeupdate.kube.api.DeploymentApi`,
    :class:`~kubeupdate.kube.api.WatchApi` and :class:`~kubeupdate.kube.api.LeaseApi`
    over HTTPS."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        attempts: int = 3,
        backoff: float = 0.2,
        connection_limit: int = 100,
        watch_limit: int = 2000,
        observe: CallObserver | None = None,
    ) -> None:
        """``timeout`` bounds each HTTP call; ``attempts`` bounds retries of one call.

        ``connection_limit`` bounds the connections of ordinary calls,
        ``watch_limit`` those of watches (one each), separately. ``observe`` is
        told of every request sent, retries included (metrics).
        """
        self._observe = observe
        self._credentials = credentials
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._connection_limit = connection_limit
        self._session: aiohttp.ClientSession | None = None
        # Watches hold a connection each for minutes (HTTP/1.1 cannot multiplex):
        # their own pool, so many waits never starve ordinary calls of connections.
        self._watch_limit = watch_limit
        self._watch_session: aiohttp.ClientSession | None = None
        self._credentials_generation = 0
        self._reload_lock = asyncio.Lock()
        #: The API server's time, from the ``Date`` of its answers.
        self.clock = ClusterClock()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._watch_session is not None:
            await self._watch_session.close()
            self._watch_session = None

    async def get_deployment(
        self, namespace: str, name: str, *, deadline: float | None = None
    ) -> JsonObject:
        path = f"/apis/apps/v1/namespaces/{_segment(namespace)}/deployments/{_segment(name)}"
        return await self._request("GET", path, "get", "deployments", deadline=deadline)

    async def get_namespace(self, namespace: str, *, deadline: float | None = None) -> JsonObject:
        return await self._request(
            "GET",
            f"/api/v1/namespaces/{_segment(namespace)}",
            "get",
            "namespaces",
            deadline=deadline,
        )

    async def patch_deployment(
        self,
        namespace: str,
        name: str,
        operations: JsonPatch,
        *,
        dry_run: bool = False,
        deadline: float | None = None,
    ) -> JsonObject:
        path = f"/apis/apps/v1/namespaces/{_segment(namespace)}/deployments/{_segment(name)}"
        return await self._request(
            "PATCH",
            path,
            "patch",
            "deployments",
            body=json.dumps(operations).encode(),
            content_type="application/json-patch+json",
            query={"dryRun": "All"} if dry_run else {},
            deadline=deadline,
        )

    async def create_lease(
        self, namespace: str, body: JsonObject, *, deadline: float | None = None
    ) -> JsonObject:
        return await self._request(
            "POST",
            LEASES.collection(_segment(namespace)),
            "create",
            LEASES.plural,
            body=json.dumps(body).encode(),
            content_type="application/json",
            deadline=deadline,
        )

    async def get_lease(
        self, namespace: str, name: str, *, deadline: float | None = None
    ) -> JsonObject:
        path = f"{LEASES.collection(_segment(namespace))}/{_segment(name)}"
        return await self._request("GET", path, "get", LEASES.plural, deadline=deadline)

    async def update_lease(
        self, namespace: str, name: str, body: JsonObject, *, deadline: float | None = None
    ) -> JsonObject:
        # A PUT, not a PATCH: the body's resourceVersion is the precondition, as
        # client-go's leader election updates its Lease.
        path = f"{LEASES.collection(_segment(namespace))}/{_segment(name)}"
        return await self._request(
            "PUT",
            path,
            "update",
            LEASES.plural,
            body=json.dumps(body).encode(),
            content_type="application/json",
            deadline=deadline,
        )

    async def delete_lease(
        self,
        namespace: str,
        name: str,
        *,
        resource_version: str,
        deadline: float | None = None,
    ) -> None:
        path = f"{LEASES.collection(_segment(namespace))}/{_segment(name)}"
        options = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {"resourceVersion": resource_version},
        }
        await self._request(
            "DELETE",
            path,
            "delete",
            LEASES.plural,
            body=json.dumps(options).encode(),
            content_type="application/json",
            deadline=deadline,
        )

    async def read_clock(self, *, deadline: float | None = None) -> None:
        # Any answer carries the server's Date; /version is the smallest every identity may read.
        await self._request("GET", "/version", "get", "version", deadline=deadline)

    async def list_objects(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        deadline: float | None = None,
    ) -> JsonObject:
        query = _selectors(label_selector, field_selector)
        path = resource.collection(None if namespace is None else _segment(namespace))
        return await self._request(
            "GET", path, "list", resource.plural, query=query, deadline=deadline
        )

    async def watch(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncGenerator[WatchEvent, None]:
        path = resource.collection(None if namespace is None else _segment(namespace))
        query = {
            **_selectors(label_selector, field_selector),
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(max(1, timeout_seconds)),
        }
        transport = self._credentials.transport
        # No total timeout: the server ends the watch after timeoutSeconds. A read
        # timeout a little longer catches a connection that died silently.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout, sock_read=timeout_seconds + self._timeout
        )
        reloaded = False
        while True:
            generation = self._credentials_generation
            headers = {"Accept": "application/json", "User-Agent": "kubeupdate"}
            authorization = self._credentials.authorization()
            if authorization:
                headers["Authorization"] = authorization
            started = time.perf_counter()
            code = "connection"
            try:
                # The API server answers a watch's status at once; a request left
                # unanswered (a server stopping as it accepted it) must not hang for
                # the whole watch: the status line gets one call's timeout.
                async with asyncio.timeout(self._timeout):
                    response = await self._get_watch_session().get(
                        transport.host + path,
                        params=query,
                        headers=headers,
                        ssl=transport.ssl_context,
                        server_hostname=transport.server_hostname,
                        proxy=transport.proxy,
                        timeout=timeout,
                        allow_redirects=False,
                    )
                code = str(response.status)
                self._watch_started(resource, code, started)
                self.clock.observe(response.headers.get("Date"))
                try:
                    if response.status == 401 and not reloaded:
                        reloaded = True
                        await self._reload_credentials(generation)
                        continue
                    if not 200 <= response.status < 300:
                        raw = await response.read()
                        retry_after = response.headers.get("Retry-After")
                        raise _api_error(response.status, raw, "GET", path, retry_after)
                    log.debug("watching %s from resourceVersion %s", path, resource_version)
                    async for event in _watch_events(response, path):
                        yield event
                    return
                finally:
                    # Never hand a half-read stream back to the pool: close it, so
                    # the API server ends the watch at once.
                    response.close()
            except TimeoutError as exc:
                if code == "connection":  # no answer at all
                    self._watch_started(resource, "timeout", started)
                raise errors.Timeout(f"the watch on {path} went silent") from exc
            except (aiohttp.ClientError, OSError) as exc:
                if code == "connection":  # never answered (refused, reset before the status)
                    self._watch_started(resource, code, started)
                raise _connection_failed(exc, transport.host, f"the watch on {path} broke") from exc

    def _watch_started(self, resource: Resource, code: str, started: float) -> None:
        if self._observe is not None:
            self._observe("watch", resource.plural, code, time.perf_counter() - started)

    async def _request(
        self,
        method: str,
        path: str,
        verb: str,
        resource: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        query: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> JsonObject:
        is_read = method == "GET"
        reloaded = False
        attempt = 0
        while True:
            attempt += 1
            generation = self._credentials_generation
            try:
                return await self._send(
                    method, path, body, content_type, query or {}, deadline, verb, resource
                )
            except errors.Unauthorized:
                if reloaded:
                    raise
                reloaded = True
                attempt -= 1  # a reload is not a failed attempt
                await self._reload_credentials(generation)
            except errors.TooManyRequests as exc:
                delay = exc.retry_after if exc.retry_after is not None else self._delay(attempt)
                # Without a caller deadline, waiting longer than one call may take is too long.
                too_long = delay > self._timeout or not self._fits(delay, deadline)
                if attempt >= self._attempts or too_long:
                    raise
                log.info("Kubernetes asked to retry %s %s in %.1fs", method, path, delay)
                await asyncio.sleep(delay)
            except (errors.ServerError, errors.ConnectionFailed) as exc:
                retry_safe = is_read or (
                    isinstance(exc, errors.ConnectionFailed) and not exc.outcome_unknown
                )
                delay = self._delay(attempt)
                if not retry_safe or attempt >= self._attempts or not self._fits(delay, deadline):
                    raise
                log.info("retrying %s %s after: %s", method, path, exc)
                await asyncio.sleep(delay)

    async def _send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        content_type: str | None,
        query: Mapping[str, str],
        deadline: float | None,
        verb: str,
        resource: str,
    ) -> JsonObject:
        timeout = self._timeout
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                raise errors.Timeout(f"no time left to call the Kubernetes API ({method} {path})")
        transport = self._credentials.transport
        headers = {"Accept": "application/json", "User-Agent": "kubeupdate"}
        if content_type:
            headers["Content-Type"] = content_type
        authorization = self._credentials.authorization()
        if authorization:
            headers["Authorization"] = authorization
        session = self._get_session()
        writes = method != "GET"
        started = time.perf_counter()
        code = "connection"
        try:
            async with session.request(
                method,
                transport.host + path,
                params=query,
                data=body,
                headers=headers,
                ssl=transport.ssl_context,
                server_hostname=transport.server_hostname,
                proxy=transport.proxy,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                raw = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
                self.clock.observe(response.headers.get("Date"))
            code = str(status)
        except TimeoutError as exc:
            code = "timeout"
            raise errors.Timeout(
                f"the Kubernetes API did not answer {method} {path} within {timeout:.1f}s",
                outcome_unknown=writes,
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise _connection_failed(
                exc,
                transport.host,
                f"the connection to the Kubernetes API broke during {method} {path}",
                outcome_unknown=writes,
            ) from exc
        finally:
            if self._observe is not None:
                self._observe(verb, resource, code, time.perf_counter() - started)
        log.debug("%s %s -> %d", method, path, status)
        if 200 <= status < 300:
            return _decode_object(raw, method, path, status)
        raise _api_error(status, raw, method, path, retry_after)

    def _get_watch_session(self) -> aiohttp.ClientSession:
        if self._watch_session is None or self._watch_session.closed:
            connector = aiohttp.TCPConnector(limit=self._watch_limit, force_close=True)
            self._watch_session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._watch_session

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connection_limit, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    async def _reload_credentials(self, seen_generation: int) -> None:
        async with self._reload_lock:
            if self._credentials_generation != seen_generation:
                return  # another request reloaded them meanwhile
            log.info("the Kubernetes API refused our credentials; loading them again")
            await asyncio.to_thread(self._credentials.reload)
            self._credentials_generation += 1

    def _delay(self, attempt: int) -> float:
        # Full jitter: concurrent retries spread out instead of hitting the server together.
        return random.uniform(0, self._backoff * 2 ** (attempt - 1))

    @staticmethod
    def _fits(delay: float, deadline: float | None) -> bool:
        return deadline is None or time.monotonic() + delay < deadline


def _connection_failed(
    exc: aiohttp.ClientError | OSError, host: str, broke: str, *, outcome_unknown: bool = False
) -> errors.ConnectionFailed:
    """The error for a connection that failed: never opened, or broken while in use.

    A connection that was never opened sent nothing, so its outcome is known
    whatever the request was; one that broke leaves a write's outcome unknown.
    """
    if isinstance(exc, aiohttp.ClientConnectorError):
        return errors.ConnectionFailed(
            f"cannot connect to the Kubernetes API at {host}: {exc.os_error}"
        )
    return errors.ConnectionFailed(
        f"{broke}: {type(exc).__name__}", outcome_unknown=outcome_unknown
    )


def _segment(value: str) -> str:
    return quote(value, safe="")


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    query = {}
    if label_selector:
        query["labelSelector"] = label_selector
    if field_selector:
        query["fieldSelector"] = field_selector
    return query


async def _watch_events(response: aiohttp.ClientResponse, path: str) -> AsyncIterator[WatchEvent]:
    """The events of a watch stream: one JSON object per line."""
    buffer = b""
    async for chunk in response.content.iter_any():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield _watch_event(line, path)
    if buffer.strip():
        yield _watch_event(buffer, path)


def _watch_event(line: bytes, path: str) -> WatchEvent:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise errors.UnexpectedStatus(
            200, method="GET", path=path, message="the Kubernetes API sent an invalid watch event"
        ) from exc
    kind = value.get("type") if isinstance(value, dict) else None
    obj = value.get("object") if isinstance(value, dict) else None
    if not isinstance(kind, str) or not isinstance(obj, dict):
        raise errors.UnexpectedStatus(
            200, method="GET", path=path, message="the Kubernetes API sent an invalid watch event"
        )
    if kind == "ERROR":
        # A Status in the stream, e.g. 410 Expired for a compacted resourceVersion.
        code = obj.get("code")
        raise _api_error(
            code if isinstance(code, int) else 500, json.dumps(obj).encode(), "GET", path, None
        )
    return WatchEvent(kind, obj)


def _decode_object(raw: bytes, method: str, path: str, status: int) -> JsonObject:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise errors.UnexpectedStatus(
            status, method=method, path=path, message="the Kubernetes API sent invalid JSON"
        ) from exc
    if not isinstance(value, dict):
        raise errors.UnexpectedStatus(
            status, method=method, path=path, message="the Kubernetes API sent no JSON object"
        )
    return value


def _api_error(
    status: int, raw: bytes, method: str, path: str, retry_after_header: str | None
) -> errors.ApiError:
    reason = message = ""
    details: dict[str, Any] = {}
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        reason = str(body.get("reason", ""))
        message = str(body.get("message", ""))
        if isinstance(body.get("details"), dict):
            details = body["details"]
    cls = errors.error_class(status)
    if cls is errors.TooManyRequests:
        return errors.TooManyRequests(
            status,
            retry_after=_retry_after(retry_after_header, details),
            method=method,
            path=path,
            reason=reason,
            message=message,
            details=details,
        )
    return cls(status, method=method, path=path, reason=reason, message=message, details=details)


def _retry_after(header: str | None, details: Mapping[str, Any]) -> float | None:
    if header is not None:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass  # an HTTP date; Kubernetes itself always sends seconds
    seconds = details.get("retryAfterSeconds")
    return float(seconds) if isinstance(seconds, int | float) else None
