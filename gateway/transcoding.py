"""JSON <-> protobuf for one route, with ``google.protobuf.json_format`` only.

Requests: the body (when the route has one) is parsed with ``ParseDict`` and
``ignore_unknown_fields=False``; path variables then fill their fields; query
parameters fill top-level fields bound by neither (grpc-gateway's rule; unknown
parameters are ignored, as grpc-gateway does). A body field that repeats a path
variable must hold the same value.

Content types of a request body (decided for the original's curl users):

- ``application/json`` (any parameters, e.g. ``; charset=utf-8``) and
  ``application/<x>+json`` are parsed as JSON.
- No ``Content-Type`` at all, or ``application/x-www-form-urlencoded``, are
  accepted when the body parses as JSON: ``curl -d '{"Image":"..."}'`` labels a
  JSON body that way. A real form body (``Image=nginx``) is answered 415, since
  the gateway does not read forms; garbage without a content type is 400.
- Every other explicit type (``text/plain``, ``multipart/form-data``,
  ``application/xml``, ...) is 415 without looking at the body.
- An empty body on a route with a body is the empty message (as grpc-gateway
  does); the service then refuses missing fields itself.

A ``google.protobuf.Duration`` in a body may also be written as people write
durations (``"5m"``, ``"1h30m"``, ``"300"``; :mod:`kubeupdate.client.durations`,
the CLI's rule), not only as protobuf's ``"300s"``.

Responses are ``MessageToDict`` with ``always_print_fields_with_no_presence``
(so ``"Changed": false`` is present) and ``json_name`` keys, in the order the
proto declares the fields, compact, followed by a newline as the original Go
service's encoder wrote it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from kubeupdate.client.durations import protobuf_json

from gateway.errors import BadRequest, UnsupportedMediaType
from gateway.routes import PathVariable, Route

JSON_CONTENT_TYPE = "application/json"

# A value quoted in an error sentence is cut to this many characters.
_QUOTE_LIMIT = 64


def encode_document(document: object) -> bytes:
    """The JSON bytes of a response document, compact, newline-terminated."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def error_document(
    code: str, detail: str, reason: str, metadata: dict[str, str] | None = None
) -> bytes:
    """The body of every error answer (and the last line of a failed stream)."""
    document: dict[str, Any] = {"Status": "failed", "Detail": detail, "Code": code}
    document["Reason"] = reason
    if metadata:
        document["Metadata"] = metadata
    return encode_document(document)


class BodyKind:
    """How a request's content type lets the gateway read its body."""

    JSON = "json"  # declared JSON
    MAYBE_JSON = "maybe-json"  # no type or curl's form default: JSON if it parses


def body_kind(content_type: str | None) -> str:
    """``BodyKind.JSON`` or ``BodyKind.MAYBE_JSON``; raises 415 for any other type."""
    if not content_type:
        return BodyKind.MAYBE_JSON
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == JSON_CONTENT_TYPE or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return BodyKind.JSON
    if media_type in ("", "application/x-www-form-urlencoded"):
        return BodyKind.MAYBE_JSON
    raise UnsupportedMediaType(_not_json_sentence(media_type))


def _not_json_sentence(media_type: str) -> str:
    return (
        f"The body was sent as {_quote(media_type)}; send JSON with Content-Type: application/json."
    )


class Transcoder:
    """Translates the requests and replies of one route; built once at start."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.takes_body = bool(route.body)
        self._request_type = route.rpc.request_type
        request = route.rpc.descriptor.input_type
        response = route.rpc.descriptor.output_type
        self._request_name = request.name
        self._request_descriptor = request
        self._body_key = ""
        if route.body not in ("", "*"):
            self._body_key = request.fields_by_name[route.body].json_name
        self._path = tuple(_PathBinding(variable) for variable in route.variables)
        self._query_fields = _query_fields(route)
        self._order = _FieldOrder.of(response)
        self._response_key = ""
        if route.response_body:
            self._response_key = response.fields_by_name[route.response_body].json_name

    def decode(
        self,
        body: bytes,
        content_type: str | None,
        path_values: Mapping[str, str],
        query_string: str = "",
    ) -> Message:
        """The request message for an HTTP request; raises 400 or 415."""
        message = self._request_type()
        if self.takes_body and body:
            self._parse_body(message, body, content_type)
        for binding in self._path:
            binding.apply(message, path_values[binding.param])
        if query_string and self._query_fields:
            self._parse_query(message, query_string)
        return message

    def encode(self, reply: Message) -> bytes:
        """The JSON bytes of a reply."""
        document: Any = self._order.apply(
            json_format.MessageToDict(reply, always_print_fields_with_no_presence=True)
        )
        if self._response_key:
            document = document.get(self._response_key)
        return encode_document(document)

    def _parse_body(self, message: Message, body: bytes, content_type: str | None) -> None:
        kind = body_kind(content_type)
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            # ValueError covers JSONDecodeError and bytes that are not UTF-8/16/32.
            if kind == BodyKind.MAYBE_JSON and content_type:
                raise UnsupportedMediaType(_not_json_sentence(content_type)) from None
            raise BadRequest("The body is not valid JSON.") from None
        if self._body_key:
            document = {self._body_key: document}
        elif not isinstance(document, dict):
            raise BadRequest(f"The body must be a JSON object ({self._request_name}).")
        try:
            _write_durations(document, self._request_descriptor)
        except ValueError as exc:
            raise BadRequest(f"The body does not fit {self._request_name}: {exc}.") from None
        try:
            json_format.ParseDict(document, message, ignore_unknown_fields=False)
        except (json_format.ParseError, RecursionError) as exc:
            raise BadRequest(
                f"The body does not fit {self._request_name}: {_first_line(exc)}"
            ) from None

    def _parse_query(self, message: Message, query_string: str) -> None:
        document: dict[str, Any] = {}
        for name, value in parse_qsl(query_string, keep_blank_values=True):
            field = self._query_fields.get(name)
            if field is None:
                continue
            parsed: object = value
            if field.type == FieldDescriptor.TYPE_BOOL and value in ("true", "false"):
                # JSON wants a bare true/false; a query has only text (grpc-gateway's rule).
                parsed = value == "true"
            elif field.message_type is not None and field.message_type.full_name == _DURATION:
                try:
                    parsed = protobuf_json(value)  # "5m" as in a body
                except ValueError as exc:
                    raise BadRequest(f"A query parameter is not valid: {name}: {exc}.") from None
            if field.is_repeated:
                document.setdefault(field.json_name, []).append(parsed)
            else:
                document[field.json_name] = parsed
        if not document:
            return
        try:
            json_format.ParseDict(document, message, ignore_unknown_fields=False)
        except json_format.ParseError as exc:
            raise BadRequest(f"A query parameter is not valid: {_first_line(exc)}") from None


class _PathBinding:
    """Sets one path variable's field, refusing a different value from the body."""

    def __init__(self, variable: PathVariable) -> None:
        self.param = variable.param
        self._parents = tuple(field.name for field in variable.field_path[:-1])
        self._leaf = variable.field_path[-1]
        self._is_string = self._leaf.type == FieldDescriptor.TYPE_STRING
        self._has_presence = bool(self._leaf.has_presence)
        self._label = self._leaf.json_name if not self._parents else variable.name

    def apply(self, message: Message, raw: str) -> None:
        if not raw:
            # "/deployment//web/app": refuse rather than send an empty name on.
            raise BadRequest(f"The path leaves {self._label} empty.")
        parent = message
        for name in self._parents:
            parent = getattr(parent, name)
        value = raw if self._is_string else self._convert(parent, raw)
        name = self._leaf.name
        current = getattr(parent, name)
        is_set = (
            parent.HasField(name) if self._has_presence else current != self._leaf.default_value
        )
        if is_set and current != value:
            raise BadRequest(
                f"The body sets {self._label} to {_quote(str(current))} but the path says "
                f"{_quote(raw)}; leave it out of the body or make them equal."
            )
        setattr(parent, name, value)

    def _convert(self, parent: Message, raw: str) -> object:
        # Non-string path fields (numbers, bools, enums) use the JSON mapping's rules.
        scratch = type(parent)()
        try:
            json_format.ParseDict({self._leaf.json_name: raw}, scratch)
        except json_format.ParseError:
            raise BadRequest(
                f"The path value {_quote(raw)} is not a valid {self._label}."
            ) from None
        return getattr(scratch, self._leaf.name)


_DURATION = "google.protobuf.Duration"


def _write_durations(document: dict[str, Any], descriptor: Descriptor) -> None:
    """Rewrites the written durations of ``document`` (e.g. ``"5m"``) as protobuf's ``"300s"``.

    Only fields declared in ``descriptor`` are looked at; anything else is
    left for ``ParseDict`` to refuse. Raises ValueError naming the field.
    """
    for field in descriptor.fields:
        nested = field.message_type
        if nested is None or _is_map(field):
            continue
        key = field.json_name if field.json_name in document else field.name
        value = document.get(key)
        if value is None:
            continue
        if nested.full_name == _DURATION:
            if isinstance(value, str):
                try:
                    document[key] = protobuf_json(value)
                except ValueError as exc:
                    raise ValueError(f"{field.json_name}: {exc}") from None
        elif not _is_well_known(nested):
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict):
                    _write_durations(item, nested)


def _query_fields(route: Route) -> dict[str, FieldDescriptor]:
    """Top-level scalar fields (and Durations) a query parameter may set, by proto and JSON name."""
    if route.body == "*":
        return {}
    request = route.rpc.descriptor.input_type
    bound = {variable.field_path[0].name for variable in route.variables}
    bound.add(route.body)
    fields: dict[str, FieldDescriptor] = {}
    for field in request.fields:
        if field.name in bound:
            continue
        if field.message_type is not None and field.message_type.full_name != _DURATION:
            continue
        fields[field.name] = field
        fields[field.json_name] = field
    return fields


class _FieldOrder:
    """Puts MessageToDict's keys back in declaration order, nested messages too.

    ``MessageToDict`` lists set fields first and appends defaults after them,
    so ``Changed: false`` would land after ``Generation``; callers reading the
    JSON by eye expect the order of the proto.
    """

    _cache: dict[str, _FieldOrder] = {}  # noqa: RUF012 - shared memo by full name

    def __init__(self, descriptor: Descriptor) -> None:
        _FieldOrder._cache[descriptor.full_name] = self
        self._keys: list[tuple[str, _FieldOrder | None, bool]] = []
        for field in descriptor.fields:
            nested = field.message_type
            child = None
            if nested is not None and not _is_map(field) and not _is_well_known(nested):
                child = _FieldOrder.of(nested)
            self._keys.append((field.json_name, child, bool(field.is_repeated)))

    @classmethod
    def of(cls, descriptor: Descriptor) -> _FieldOrder:
        order = cls._cache.get(descriptor.full_name)
        return order if order is not None else cls(descriptor)

    def apply(self, document: dict[str, Any]) -> dict[str, Any]:
        ordered: dict[str, Any] = {}
        for key, child, repeated in self._keys:
            if key not in document:
                continue
            value = document[key]
            if child is not None and value is not None:
                value = [child.apply(item) for item in value] if repeated else child.apply(value)
            ordered[key] = value
        if len(ordered) != len(document):
            # Extensions and anything else MessageToDict adds keep their place at the end.
            for key, value in document.items():
                ordered.setdefault(key, value)
        return ordered


def _is_map(field: FieldDescriptor) -> bool:
    nested = field.message_type
    return nested is not None and bool(nested.GetOptions().map_entry)


def _is_well_known(descriptor: Descriptor) -> bool:
    # Well-known types have their own JSON forms (strings, numbers, free objects).
    return descriptor.full_name.startswith("google.protobuf.")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().split("\n", 1)[0]


def _quote(value: str) -> str:
    if len(value) > _QUOTE_LIMIT:
        value = value[:_QUOTE_LIMIT] + "..."
    return json.dumps(value, ensure_ascii=False)
