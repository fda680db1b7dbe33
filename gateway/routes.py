"""REST routes derived from the ``google.api.http`` annotations of gRPC services.

The gateway has no hand-written route per call: at start it reads every method
of the service descriptors it is given and turns each ``HttpRule`` (and its
``additional_bindings``) into a ``Route``. Adding an annotated RPC to the proto
and regenerating the stubs is enough for it to appear in REST.

Supported path templates are the common subset of grpc-gateway's syntax:
literal segments, single-segment variables ``{field}`` or ``{field=*}`` whose
field may be a dotted path into nested messages, and a final ``:verb``.
Multi-segment variables (``{name=shelves/*}``, ``**``) and bare wildcards are
refused at start with ``RouteError`` rather than served wrongly.

Falcon field names must be identifiers and two templates of the same shape
must use the same names, so variables are renamed positionally (``{p0}``,
``{p1}``, ...) and each ``Route`` remembers which field every position fills.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import (
    Descriptor,
    FieldDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

# Methods Falcon can route; a custom HttpRule kind outside this set is refused.
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})

_LITERAL = re.compile(r"^[A-Za-z0-9._~!$&'()+,;=@-]+$")
_VARIABLE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)(?:=\*)?\}$")
_VERB = re.compile(r"^[A-Za-z0-9._~-]+$")


class RouteError(ValueError):
    """An annotation the gateway cannot serve; raised at start, never per request."""


@dataclass(frozen=True)
class Rpc:
    """One gRPC method as the gateway calls it."""

    path: str  # "/package.Service/Method", the HTTP/2 path of the call
    request_type: type[Message]
    response_type: type[Message]
    descriptor: MethodDescriptor

    @property
    def server_streaming(self) -> bool:
        return bool(self.descriptor.server_streaming)

    @property
    def client_streaming(self) -> bool:
        return bool(self.descriptor.client_streaming)


@dataclass(frozen=True)
class PathVariable:
    """One ``{field}`` of a template: the Falcon parameter and the field it fills."""

    param: str  # positional Falcon name, "p0"
    field_path: tuple[FieldDescriptor, ...]  # from the request message down to the leaf

    @property
    def name(self) -> str:
        """The field path as written in the annotation, e.g. ``namespace``."""
        return ".".join(field.name for field in self.field_path)


@dataclass(frozen=True)
class Route:
    """One HTTP method + URI template bound to one RPC."""

    http_method: str  # "GET"
    template: str  # as annotated: "/deployment/{namespace}/{deployment}"
    uri_template: str  # for Falcon: "/deployment/{p0}/{p1}"
    variables: tuple[PathVariable, ...]
    body: str  # "" (no body), "*" (whole message) or a top-level field name
    response_body: str  # "" (whole response) or a top-level field name
    rpc: Rpc


def routes_for_services(services: Iterable[ServiceDescriptor]) -> list[Route]:
    """Every route of the given services, checked for duplicates."""
    routes: list[Route] = []
    seen: dict[tuple[str, str], Route] = {}
    for service in services:
        for route in routes_for_service(service):
            key = (route.http_method, route.uri_template)
            if key in seen:
                raise RouteError(
                    f"{route.http_method} {route.template} of {route.rpc.path} has the same "
                    f"shape as {seen[key].template} of {seen[key].rpc.path}."
                )
            seen[key] = route
            routes.append(route)
    return routes


def routes_for_service(service: ServiceDescriptor) -> list[Route]:
    """The routes of one service, in method order; unannotated methods have none."""
    routes: list[Route] = []
    for method in service.methods:
        options = method.GetOptions()
        if not options.HasExtension(annotations_pb2.http):
            continue
        rpc = Rpc(
            path=f"/{service.full_name}/{method.name}",
            request_type=GetMessageClass(method.input_type),
            response_type=GetMessageClass(method.output_type),
            descriptor=method,
        )
        for rule in _rules(options.Extensions[annotations_pb2.http]):
            routes.append(_route(rule, rpc))
    return routes


def _rules(rule: http_pb2.HttpRule) -> Iterator[http_pb2.HttpRule]:
    yield rule
    # Only one level of nesting is allowed by google/api/http.proto.
    yield from rule.additional_bindings


def _route(rule: http_pb2.HttpRule, rpc: Rpc) -> Route:
    where = f"the http annotation of {rpc.path}"
    pattern = rule.WhichOneof("pattern")
    if pattern is None:
        raise RouteError(f"{where} has no HTTP method.")
    if pattern == "custom":
        http_method = rule.custom.kind.upper()
        template = rule.custom.path
    else:
        http_method = pattern.upper()
        template = getattr(rule, pattern)
    if http_method not in HTTP_METHODS:
        raise RouteError(f"{where} uses the HTTP method {http_method!r}, which is not served.")
    if rpc.client_streaming:
        raise RouteError(f"{where} is client-streaming, which REST cannot carry.")

    uri_template, variables = parse_template(template, rpc.descriptor.input_type, where)
    body = rule.body
    if body not in ("", "*"):
        _top_level_field(rpc.descriptor.input_type, body, f"{where} (body)")
    if body and http_method in ("GET", "DELETE"):
        raise RouteError(f"{where} gives {http_method} a body.")
    if rule.response_body:
        _top_level_field(rpc.descriptor.output_type, rule.response_body, f"{where} (response)")
    return Route(
        http_method=http_method,
        template=template,
        uri_template=uri_template,
        variables=variables,
        body=body,
        response_body=rule.response_body,
        rpc=rpc,
    )


def parse_template(
    template: str, request: Descriptor, where: str = "the template"
) -> tuple[str, tuple[PathVariable, ...]]:
    """A Falcon URI template and the variables of an annotated path template."""
    if not template.startswith("/"):
        raise RouteError(f"{where}: the path {template!r} does not start with '/'.")
    path, verb = template, ""
    last_slash = template.rfind("/")
    last_colon = template.rfind(":")
    if last_colon > last_slash and not template.endswith("}"):
        path, verb = template[:last_colon], template[last_colon + 1 :]
        if not _VERB.match(verb):
            raise RouteError(f"{where}: the verb {verb!r} is not supported.")

    segments: list[str] = []
    variables: list[PathVariable] = []
    for segment in path[1:].split("/") if path != "/" else []:
        variable = _VARIABLE.match(segment)
        if variable:
            param = f"p{len(variables)}"
            field_path = _field_path(request, variable.group(1), where)
            variables.append(PathVariable(param=param, field_path=field_path))
            segments.append("{" + param + "}")
        elif _LITERAL.match(segment):
            segments.append(segment)
        else:
            raise RouteError(
                f"{where}: the segment {segment!r} of {template!r} is not supported "
                "(only literals and single-segment {field} variables are)."
            )
    names = [variable.name for variable in variables]
    if len(set(names)) != len(names):
        raise RouteError(f"{where}: {template!r} binds a field twice.")
    uri_template = "/" + "/".join(segments)
    if verb:
        uri_template += ":" + verb
    return uri_template, tuple(variables)


def _field_path(request: Descriptor, dotted: str, where: str) -> tuple[FieldDescriptor, ...]:
    fields: list[FieldDescriptor] = []
    message: Descriptor | None = request
    for name in dotted.split("."):
        if message is None:
            raise RouteError(f"{where}: {dotted!r} goes through a field that is not a message.")
        field = message.fields_by_name.get(name)
        if field is None:
            raise RouteError(f"{where}: {message.full_name} has no field {name!r}.")
        if _is_repeated(field):
            raise RouteError(f"{where}: {dotted!r} goes through the repeated field {name!r}.")
        fields.append(field)
        message = field.message_type
    if fields[-1].message_type is not None:
        raise RouteError(f"{where}: {dotted!r} is a message; a path variable must be a scalar.")
    return tuple(fields)


def _top_level_field(message: Descriptor, name: str, where: str) -> FieldDescriptor:
    field = message.fields_by_name.get(name)
    if field is None:
        raise RouteError(f"{where}: {message.full_name} has no field {name!r}.")
    return field


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)
