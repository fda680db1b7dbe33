"""The devcluster's HTTP front: kube-apiserver's REST paths over aiohttp.

One catch-all route parses ``/api/v1/...`` and ``/apis/{group}/{version}/...``
paths itself (cheaper than a long route table, and the namespaced and
cluster-scoped shapes overlap). A single middleware authenticates, applies
armed faults and writes the journal; handlers turn ``ApiError`` into Status
bodies. Everything runs on one event loop, so the store needs no locking
beyond its own.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from devcluster import discovery, openapi, protobuf, tables
from devcluster.admin import Admin, is_admin
from devcluster.clock import SimulatedClock
from devcluster.credentials import Tokens
from devcluster.faults import Action, Faults
from devcluster.journal import Entry, Journal
from devcluster.registry import Admission, Registry
from devcluster.resources import (
    BY_NAME,
    DEPLOYMENTS,
    NAMESPACES,
    SCALE,
    ResourceType,
    by_path,
)
from devcluster.selectors import Selection
from devcluster.statuses import (
    ApiError,
    bad_request,
    conflict,
    expired,
    forbidden,
    internal_error,
    method_not_allowed,
    page_not_found,
    policy_denied,
    service_unavailable,
    success,
    too_many_requests,
    unauthorized,
    unsupported_media_type,
    webhook_denied,
)
from devcluster.store import Event, Interest, Listener, Object

log = logging.getLogger(__name__)

JSON = "application/json"
#: A watch without timeoutSeconds ends after this long, like kube-apiserver's --min-request-timeout.
DEFAULT_WATCH_TIMEOUT = 1800.0
_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_ENCODED_CACHE_LIMIT = 4096
#: Body types for create, update and delete (aiohttp reports a missing type as octet-stream).
_BODY_TYPES = frozenset(
    {"application/json", "application/yaml", "application/octet-stream", protobuf.CONTENT_TYPE}
)
#: What a 415 lists, as kube-apiserver does for built-in kinds (CBOR is off by default).
_ACCEPTED = ("application/json", "application/yaml", protobuf.CONTENT_TYPE)


def _summary(data: bytes, limit: int = 30) -> str:
    """transformDecodeError's summarizeData: the start of a body it could not read."""
    if not data:
        return "<empty>"
    if data[:1] == b"{":
        return data[:limit].decode("utf-8", "replace") + (" ..." if len(data) > limit else "")
    return data[:limit].hex() + (" ..." if len(data) > limit else "")


def dumps(value: Any) -> bytes:
    """JSON as Go's ``json.Encoder`` writes an API body: compact, ending with a newline.

    Objects, lists, Status, Tables, discovery documents and each watch event all go
    through apimachinery's JSON serializer, which encodes with ``json.NewEncoder``.
    """
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


@dataclass(frozen=True)
class DeleteRequest:
    """The DeleteOptions of one DELETE, from its body and query."""

    dry_run: bool
    propagation: str | None
    orphan_dependents: bool | None
    grace_period_seconds: int | None
    preconditions: dict[str, Any] | None


@dataclass(frozen=True)
class Target:
    """What a resource path addresses."""

    resource: ResourceType
    namespace: str | None  # None: all namespaces (or a cluster-scoped resource)
    name: str
    subresource: str

    @property
    def store_namespace(self) -> str:
        return self.namespace or ""


def parse_path(path: str) -> Target | None:
    """The resource a path names, or None for anything else (discovery, unknown)."""
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in BY_NAME:
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3 or not rest[0]:
        return None
    resource = by_path(group, version, rest[0])
    if resource is None:
        return None
    if namespace is not None and not resource.namespaced:
        return None
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if subresource and subresource not in resource.subresources:
        return None
    return Target(resource, namespace if resource.namespaced else None, name, subresource)


def _flag(value: str | None) -> bool:
    return value in ("true", "1", "True")


class ApiServer:
    """Builds the aiohttp application serving one registry."""

    def __init__(
        self,
        registry: Registry,
        clock: SimulatedClock,
        faults: Faults,
        journal: Journal,
        tokens: Tokens | None,
        bookmark_interval: float = 1.0,
        admin: Admin | None = None,
    ) -> None:
        self.registry = registry
        self.store = registry.store
        self.clock = clock
        self.faults = faults
        self.journal = journal
        self.tokens = tokens  # None: plain HTTP without authentication
        self.bookmark_interval = bookmark_interval
        self.admin = admin  # the /devcluster/ paths (see devcluster.admin)
        self.server_address = ""
        # Encoded bodies of stored objects; snapshots never change, so identity is the key.
        self._encoded: dict[int, tuple[Object, bytes]] = {}
        # The store listener of each watch being answered (see end_watches).
        self._watch_listeners: set[Listener] = set()

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._front], client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        app.on_response_prepare.append(self._date)
        return app

    async def _date(self, request: web.Request, response: web.StreamResponse) -> None:
        # kube-apiserver's Date comes from the clock its timestamps come from: here the
        # simulated one, so a client can tell how old an object's timestamps are.
        response.headers["Date"] = email.utils.formatdate(self.clock.now(), usegmt=True)

    # -- middleware: authentication, faults, journal -----------------------------

    @web.middleware
    async def _front(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body = await request.read() if request.body_exists else b""
        status: int | None = None
        try:
            if self.tokens is not None and not self.tokens.accepts(
                request.headers.get("Authorization")
            ):
                raise unauthorized()
            # Faults imitate the cluster; the devcluster's own admin paths stay reachable.
            action = (
                None if is_admin(request.path) else self.faults.take(request.method, request.path)
            )
            if action is not None:
                dropped = await self._inject(request, action)
                if dropped:
                    # The transport is gone: this response is never written.
                    return web.Response(status=500)
            response = await handler(request)
            status = response.status
            return response
        except ApiError as exc:
            status = exc.code
            return self._error(exc)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:
            log.exception("devcluster failed to handle %s %s", request.method, request.path)
            error = internal_error(str(exc) or type(exc).__name__)
            status = error.code
            return self._error(error)
        finally:
            self.journal.append(
                Entry(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    content_type=request.headers.get("Content-Type", ""),
                    body=body,
                    status=status,
                )
            )

    async def _inject(self, request: web.Request, action: Action) -> bool:
        """Applies a fault; True when the connection was dropped, raises for error answers."""
        if action.kind == "delay":
            await asyncio.sleep(action.delay_ms / 1000)
            return False
        if action.kind == "drop":
            if request.transport is not None:
                request.transport.abort()
            return True
        target = parse_path(request.path)
        resource = target.resource if target else DEPLOYMENTS
        name = target.name if target else ""
        if action.kind == "forbidden":
            verb = _VERBS.get(request.method, request.method.lower())
            if target is not None and not target.name and request.method == "GET":
                verb = "watch" if _flag(request.query.get("watch")) else "list"
            raise forbidden(resource, name, verb, target.namespace if target else None, action.user)
        if action.kind == "too_many_requests":
            raise too_many_requests(action.retry_after)
        if action.kind == "conflict":
            raise conflict(resource, name)
        if action.code == 503:
            raise service_unavailable(action.message)
        raise internal_error(action.message)

    def _admission(self, request: web.Request, target: Target) -> Admission:
        """Validating admission for one write: the admission faults armed for it."""
        method, path = request.method, request.path

        def admit(obj: Object) -> None:
            action = self.faults.take(method, path, admission=True)
            if action is None:
                return
            if action.kind == "webhook_denied":
                raise webhook_denied(action.webhook, action.message, action.code, action.reason)
            meta = obj.get("metadata") or {}
            # admission.NewForbidden names a new object by generateName until it has a name.
            name = target.name or meta.get("name") or meta.get("generateName") or "Unknown"
            raise policy_denied(
                target.resource, name, action.policy, action.binding, action.message, action.reason
            )

        return admit

    @staticmethod
    def _error(exc: ApiError) -> web.Response:
        return web.Response(
            body=dumps(exc.status), status=exc.code, content_type=JSON, headers=exc.headers
        )

    # -- routing -----------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if self.admin is not None and is_admin(request.path):
            return await self.admin.handle(request)
        target = parse_path(request.path)
        if target is None:
            return self._non_resource(request)
        method = request.method
        if method == "GET":
            if target.name:
                return self._get(request, target)
            if _flag(request.query.get("watch")):
                return await self._watch(request, target)
            return self._list(request, target)
        if method == "POST" and not target.name:
            return await self._create(request, target)
        if method == "PUT" and target.name:
            return await self._update(request, target)
        if method == "PATCH" and target.name:
            return await self._patch(request, target)
        if method == "DELETE" and target.name and not target.subresource:
            return await self._delete(request, target)
        if method == "DELETE" and not target.name:
            return await self._delete_collection(request, target)
        raise method_not_allowed(target.resource, method)

    def _non_resource(self, request: web.Request) -> web.Response:
        path = request.path.rstrip("/") or "/"
        if request.method != "GET":
            raise page_not_found()
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if path == "/version":
            # responsewriters.WriteRawJSON: indented, and no newline at the end.
            version = json.dumps(discovery.version(), indent=2).encode()
            return web.Response(body=version, content_type=JSON)
        if path == "/api":
            return self._json(discovery.api_versions(self.server_address))
        if path == "/apis":
            return self._json(discovery.api_group_list())
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) == 2:
            doc = discovery.api_resource_list("", parts[1])
            if doc is not None:
                return self._json(doc)
        if parts[0] == "apis" and len(parts) == 2 and discovery.is_group(parts[1]):
            return self._json(discovery.api_group(parts[1]))
        if parts[0] == "apis" and len(parts) == 3:
            doc = discovery.api_resource_list(parts[1], parts[2])
            if doc is not None:
                return self._json(doc)
        if parts[0] == "openapi":
            document = openapi.document(path)
            if document is not None:
                return web.Response(body=document, content_type=JSON)
        raise page_not_found()

    @staticmethod
    def _json(value: Any, status: int = 200) -> web.Response:
        return web.Response(body=dumps(value), status=status, content_type=JSON)

    def _encode(self, obj: Object) -> bytes:
        cached = self._encoded.get(id(obj))
        if cached is not None and cached[0] is obj:
            return cached[1]
        encoded = dumps(obj)
        if len(self._encoded) >= _ENCODED_CACHE_LIMIT:
            self._encoded.clear()
        self._encoded[id(obj)] = (obj, encoded)
        return encoded

    def _object(
        self, request: web.Request, target: Target, obj: Object, status: int = 200
    ) -> web.Response:
        if tables.wants_table(request.headers.get("Accept", "")):
            rv = obj["metadata"].get("resourceVersion", "")
            return self._json(tables.table(target.resource, [obj], rv, self.clock.now()), status)
        return web.Response(body=self._encode(obj), status=status, content_type=JSON)

    # -- verbs -------------------------------------------------------------------

    def _get(self, request: web.Request, target: Target) -> web.Response:
        if target.subresource == "scale":
            scale = self.registry.scale(target.resource, target.store_namespace, target.name)
            return self._json(scale)
        obj = self.registry.get(target.resource, target.store_namespace, target.name)
        return self._object(request, target, obj)

    def _list(self, request: web.Request, target: Target) -> web.Response:
        query = request.query
        selection = Selection(
            target.resource, query.get("labelSelector"), query.get("fieldSelector")
        )
        items, rv = self.registry.list(target.resource, target.namespace, selection)
        if tables.wants_table(request.headers.get("Accept", "")):
            return self._json(tables.table(target.resource, items, str(rv), self.clock.now()))
        return self._json(self._list_body(target.resource, items, rv))

    @staticmethod
    def _list_body(resource: ResourceType, items: list[Object], rv: int) -> Object:
        return {
            "kind": resource.list_kind,
            "apiVersion": resource.api_version,
            "metadata": {"resourceVersion": str(rv)},
            # Items of a typed list carry no kind/apiVersion, as in kube-apiserver.
            "items": [
                {k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items
            ],
        }

    async def _body(self, request: web.Request, kind: str) -> Object:
        """The request's object from JSON, YAML or Kubernetes protobuf; ``kind``: what it should be.

        kubectl 1.37's typed clients (create deployment, create namespace) send protobuf
        and do not retry in JSON after a 415, so protobuf has to be read.
        """
        if request.content_type not in _BODY_TYPES:
            raise unsupported_media_type(_ACCEPTED)
        raw = await request.read()
        if request.content_type == protobuf.CONTENT_TYPE:
            try:
                return protobuf.decode(raw)
            except protobuf.UndecodableBody as exc:
                raise bad_request(
                    f"the object provided is unrecognized (must be of type {kind}): {exc}"
                    f" ({_summary(raw)})"
                ) from exc
        try:
            value = yaml.safe_load(raw) if "yaml" in request.content_type else json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the body of the request could not be decoded: {exc}") from exc
        if not isinstance(value, dict):
            raise bad_request("the body of the request must be an object")
        return value

    @staticmethod
    def _dry_run(request: web.Request) -> bool:
        values = request.query.getall("dryRun", [])
        for value in values:
            if value != "All":
                raise bad_request(f'Invalid dry run value: {value!r}; only "All" is supported')
        return bool(values)

    async def _create(self, request: web.Request, target: Target) -> web.Response:
        if target.subresource:
            raise method_not_allowed(target.resource, "create")
        body = await self._body(request, target.resource.kind)
        obj = self.registry.create(
            target.resource,
            target.store_namespace,
            body,
            dry_run=self._dry_run(request),
            admit=self._admission(request, target),
        )
        return self._object(request, target, obj, status=201)

    async def _update(self, request: web.Request, target: Target) -> web.Response:
        kind = SCALE.kind if target.subresource == "scale" else target.resource.kind
        body = await self._body(request, kind)
        if target.subresource == "scale":
            scale = self.registry.update_scale(
                target.resource,
                target.store_namespace,
                target.name,
                body,
                dry_run=self._dry_run(request),
                admit=self._admission(request, target),
            )
            return self._json(scale)
        # A kind that creates on update answers 201 when the PUT created the object.
        existed = self.store.get(target.resource.name, target.store_namespace, target.name)
        obj = self.registry.update(
            target.resource,
            target.store_namespace,
            target.name,
            body,
            subresource=target.subresource,
            dry_run=self._dry_run(request),
            admit=self._admission(request, target),
        )
        return self._object(request, target, obj, status=200 if existed is not None else 201)

    async def _patch(self, request: web.Request, target: Target) -> web.Response:
        body = await request.read()
        obj = self.registry.patch(
            target.resource,
            target.store_namespace,
            target.name,
            body,
            request.content_type,
            subresource=target.subresource,
            dry_run=self._dry_run(request),
            admit=self._admission(request, target),
        )
        if target.subresource == "scale":
            return self._json(obj)
        return self._object(request, target, obj)

    async def _delete_options(self, request: web.Request) -> DeleteRequest:
        """DeleteOptions from the body and the query (the query's win, as in kube-apiserver)."""
        options: Object = {}
        if await request.read():
            options = await self._body(request, "DeleteOptions")
        query = request.query
        dry_run = self._dry_run(request) or "All" in (options.get("dryRun") or [])
        grace = query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        try:
            grace_seconds = None if grace is None else int(grace)
        except (TypeError, ValueError) as exc:
            raise bad_request(f"invalid gracePeriodSeconds: {grace}") from exc
        orphan = query.get("orphanDependents", options.get("orphanDependents"))
        return DeleteRequest(
            dry_run=dry_run,
            propagation=query.get("propagationPolicy", options.get("propagationPolicy")),
            orphan_dependents=None if orphan is None else orphan in (True, "true"),
            grace_period_seconds=grace_seconds,
            preconditions=options.get("preconditions"),
        )

    async def _delete(self, request: web.Request, target: Target) -> web.Response:
        options = await self._delete_options(request)
        deletion = self.registry.delete(
            target.resource,
            target.store_namespace,
            target.name,
            dry_run=options.dry_run,
            preconditions=options.preconditions,
            propagation=options.propagation,
            orphan_dependents=options.orphan_dependents,
            admit=self._admission(request, target),
            grace_period_seconds=options.grace_period_seconds,
        )
        gone = deletion.object
        if not deletion.removed:
            # Kept while finalizers or a grace period run: the object as it now is.
            return self._object(request, target, gone)
        if not target.resource.returns_deleted:
            return self._json(success(target.resource, target.name, gone["metadata"]["uid"]))
        if target.resource is NAMESPACES:
            gone = {**gone, "status": {"phase": "Terminating"}}
        return self._object(request, target, gone)

    async def _delete_collection(self, request: web.Request, target: Target) -> web.Response:
        resource = target.resource
        if "deletecollection" not in resource.verbs:
            raise method_not_allowed(resource, "deletecollection")
        query = request.query
        selection = Selection(resource, query.get("labelSelector"), query.get("fieldSelector"))
        options = await self._delete_options(request)
        items, rv = self.registry.delete_collection(
            resource,
            target.namespace,
            selection,
            dry_run=options.dry_run,
            propagation=options.propagation,
            orphan_dependents=options.orphan_dependents,
            admit=self._admission(request, target),
            grace_period_seconds=options.grace_period_seconds,
        )
        # The answer is the list of what was selected, as it was before the deletion.
        return self._json(self._list_body(resource, items, rv))

    # -- watch -------------------------------------------------------------------

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        query = request.query
        selection = Selection(
            target.resource, query.get("labelSelector"), query.get("fieldSelector")
        )
        resource = target.resource
        namespace = target.namespace
        try:
            # 0 or absent: the server's own limit, as kube-apiserver does.
            timeout = float(query.get("timeoutSeconds") or 0) or DEFAULT_WATCH_TIMEOUT
        except ValueError as exc:
            raise bad_request(f"invalid timeoutSeconds: {query.get('timeoutSeconds')}") from exc
        bookmarks = _flag(query.get("allowWatchBookmarks"))
        since = query.get("resourceVersion") or ""
        queue: asyncio.Queue[Event] = asyncio.Queue()

        def in_scope(obj: Object) -> bool:
            return namespace is None or obj["metadata"].get("namespace") == namespace

        def listener(event: Event) -> None:
            queue.put_nowait(event)

        as_table = tables.wants_table(request.headers.get("Accept", ""))

        def encode(type_: str, obj: Object) -> bytes:
            if as_table:  # kubectl get --watch asks for one-row Tables
                rv = obj["metadata"].get("resourceVersion", "")
                obj = tables.table(resource, [obj], rv, self.clock.now())
            return dumps({"type": type_, "object": obj})

        # Registering and reading the state happen with no await between them, so no
        # change can fall in the gap.
        # Only the changes this watch can show reach it: with many watches open (one per
        # pending rollout wait) a write must not wake them all.
        self.store.add_listener(listener, self._interest(resource, namespace, selection))
        self._watch_listeners.add(listener)
        try:
            current, _ = self.registry.list(resource, namespace, selection)
            visible = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in current}
            backlog: list[tuple[str, Object]] = []
            too_old: Object | None = None
            initial_events = _flag(query.get("sendInitialEvents"))
            if since in ("", "0") or initial_events:
                # A watch-list (sendInitialEvents) wants the current state whatever its
                # resourceVersion says (NotOlderThan is satisfied by now).
                backlog = [("ADDED", o) for o in current]
            else:
                try:
                    start = int(since)
                except ValueError as exc:
                    raise bad_request(f'invalid resource version "{since}"') from exc
                replay = self.store.events_since(start)
                if replay is None:
                    too_old = expired(start, self.store.oldest_resource_version)
                else:
                    # What the client saw at ``start``: objects that existed then and match.
                    visible = {
                        (o["metadata"].get("namespace", ""), o["metadata"]["name"])
                        for o in current
                        if int(o["metadata"]["resourceVersion"]) <= start
                    }
                    first_seen: set[tuple[str, str]] = set()
                    for event in replay:
                        if event.resource != resource.name:
                            continue
                        meta = event.object["metadata"]
                        key = (meta.get("namespace", ""), meta["name"])
                        if key not in first_seen:
                            first_seen.add(key)
                            # Changed or deleted later: it existed then, so assume it was seen.
                            if event.type != "ADDED":
                                visible.add(key)
                        type_ = self._visible_type(event, visible, selection, in_scope)
                        if type_ is not None:
                            backlog.append((type_, event.object))
            response = web.StreamResponse(status=200)
            response.content_type = JSON
            response.enable_chunked_encoding()
            await response.prepare(request)
            if too_old is not None:
                await response.write(dumps({"type": "ERROR", "object": too_old}))
                await response.write_eof()
                return response
            for type_, obj in backlog:
                await response.write(encode(type_, obj))
            if initial_events and bookmarks:
                # Tells a watch-list client its cache is complete (client-go waits for it).
                await response.write(
                    dumps(
                        {"type": "BOOKMARK", "object": self._bookmark(resource, initial_end=True)}
                    )
                )
            await self._stream(
                request,
                response,
                queue,
                resource,
                visible,
                selection,
                in_scope,
                encode,
                timeout,
                bookmarks,
            )
            return response
        finally:
            self._watch_listeners.discard(listener)
            self.store.remove_listener(listener)

    def end_watches(self) -> None:
        """Take every watch's listener out of the store, once the server's loop has stopped.

        The store outlives a stop; a watch handler that had not ended when its event
        loop stopped (a slow machine, or a request accepted as the server stopped)
        never reaches its ``finally``, and its listener would hand the next write's
        events to a closed loop.
        """
        for listener in self._watch_listeners:
            self.store.remove_listener(listener)
        self._watch_listeners.clear()

    async def _stream(
        self,
        request: web.Request,
        response: web.StreamResponse,
        queue: asyncio.Queue[Event],
        resource: ResourceType,
        visible: set[tuple[str, str]],
        selection: Selection,
        in_scope: Callable[[Object], bool],
        encode: Callable[[str, Object], bytes],
        seconds: float,
        bookmarks: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        next_bookmark = loop.time() + self.bookmark_interval
        try:
            while True:
                now = loop.time()
                if now >= deadline or request.transport is None or request.transport.is_closing():
                    break
                wait = min(deadline - now, 1.0)  # wakes now and then to notice a gone client
                if bookmarks:
                    wait = max(0.0, min(wait, next_bookmark - now))
                try:
                    event = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    if bookmarks and loop.time() >= next_bookmark:
                        mark = self._bookmark(resource)
                        await response.write(dumps({"type": "BOOKMARK", "object": mark}))
                        next_bookmark = loop.time() + self.bookmark_interval
                    continue
                type_ = self._visible_type(event, visible, selection, in_scope)
                if type_ is not None:
                    await response.write(encode(type_, event.object))
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            log.debug("watch client went away")

    @staticmethod
    def _interest(resource: ResourceType, namespace: str | None, selection: Selection) -> Interest:
        """The narrowest store interest that still covers every change a watch can show."""
        name = selection.name()
        if name is not None:
            return Interest(resource.name, namespace, name=name)
        hint = selection.label_hint()
        if hint is not None and hint[1] is not None and len(hint[1]) == 1:
            # An object entering or leaving the selection carries the label before or after.
            return Interest(resource.name, namespace, label=(hint[0], next(iter(hint[1]))))
        return Interest(resource.name, namespace)

    def _bookmark(self, resource: ResourceType, initial_end: bool = False) -> Object:
        metadata: Object = {"resourceVersion": str(self.store.resource_version)}
        if initial_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": metadata}

    @staticmethod
    def _visible_type(
        event: Event,
        visible: set[tuple[str, str]],
        selection: Selection,
        in_scope: Callable[[Object], bool],
    ) -> str | None:
        """The event type this watcher sees: an object leaving the selection is DELETED for it."""
        obj = event.object
        if not in_scope(obj):
            return None
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if event.type == "DELETED":
            if key in visible:
                visible.discard(key)
                return "DELETED"
            return None
        if selection.matches(obj):
            seen = key in visible
            visible.add(key)
            return "MODIFIED" if seen and event.type == "MODIFIED" else "ADDED"
        if key in visible:
            visible.discard(key)
            return "DELETED"
        return None
