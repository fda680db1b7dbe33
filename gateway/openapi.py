"""The gateway's OpenAPI 3.1 document, built from the same descriptors as its routes.

``build_openapi(services, comments=...)`` returns the document as a dict: one
operation per ``google.api.http`` route (``gateway.routes``), path parameters
for the path variables, a JSON request body for routes with ``body``, query
parameters for the fields a GET may set, and schemas that follow the proto3
JSON mapping as ``gateway.transcoding`` applies it:

- property names are the fields' ``json_name`` (PascalCase);
- 64-bit integers are decimal strings, ``Duration`` is ``"<seconds>s"``,
  ``Timestamp`` is RFC 3339, enums are their value names, repeated fields
  are arrays, messages are components named by their full proto name;
- in replies every field without presence is always written (so it is
  ``required``); message fields appear only when set;
- in requests ``null`` means "not set" (as ``json_format`` reads it) and
  unknown properties are refused (``additionalProperties: false``); fields the
  proto marks ``(google.api.field_behavior) = REQUIRED`` are ``required`` and
  not nullable (path variables are required path parameters anyway).

Descriptions come from the proto comments. Compiled stubs carry no comments,
so ``comments_from_descriptor_set`` reads them from a ``FileDescriptorSet``
made with ``protoc --include_source_info``; ``scripts/generate`` does so and
writes the committed ``gateway/openapi.json`` (``python -m gateway.openapi``);
``scripts/generate --check`` fails when it is stale.

Error answers use the ``Error`` schema. Each operation lists the HTTP
statuses of the gRPC codes its comment (or its service's comment) names,
through ``gateway.errors.HTTP_STATUS_BY_CODE``, plus those the gateway itself
may answer (400 for a request it cannot translate, 404 for a path that
matches no route, 413/415 for bodies, 500, 501 from a service that lacks the
call, 503 and 504).

At run time ``openapi_document(services)`` serves the committed document when
its structure equals what the running descriptors give, and the freshly built
one (without descriptions) otherwise, so ``GET /openapi.json`` never
describes routes the gateway does not serve.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.api import field_behavior_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
    ServiceDescriptor,
)
from kubeupdate.client import durations

from gateway.errors import HTTP_STATUS_BY_CODE, RETRY_AFTER_STATUSES
from gateway.routes import Route, routes_for_services
from gateway.streaming import NDJSON_CONTENT_TYPE
from gateway.transcoding import JSON_CONTENT_TYPE

logger = logging.getLogger(__name__)

OPENAPI_VERSION = "3.1.0"
DOCUMENT_PATH = Path(__file__).with_name("openapi.json")
ERROR_SCHEMA = "Error"
STATUS_SCHEMA = "Status"

_REF = "#/components/schemas/"
_CODE_NAMES = frozenset(code.name for code in grpc.StatusCode if code != grpc.StatusCode.OK)
_CODE_WORD = re.compile(r"\b[A-Z][A-Z_]+[A-Z]\b")
# Statuses the gateway itself can answer on any RPC route, whatever the service does.
_GATEWAY_STATUSES: dict[int, str] = {
    400: "The request cannot be translated: malformed JSON, an unknown or mistyped field, "
    "an empty or invalid path value, or a body that contradicts the path (INVALID_ARGUMENT).",
    404: "No route matches the path (for example a value holding '/') (NOT_FOUND).",
    500: "An internal error; the sentence is generic and details go to the log (INTERNAL).",
    501: "The service does not implement this call (UNIMPLEMENTED).",
    503: "The service cannot be reached or is overloaded; retry later (UNAVAILABLE).",
    504: "The service did not answer in time (DEADLINE_EXCEEDED).",
}
_BODY_STATUSES: dict[int, str] = {
    413: "The body is larger than the gateway accepts (INVALID_ARGUMENT).",
    415: "The body was sent with a content type other than JSON (INVALID_ARGUMENT).",
}

_INT64_PATTERN = r"^-?[0-9]+$"
_UINT64_PATTERN = r"^[0-9]+$"
_DURATION_PATTERN = r"^-?[0-9]+(\.[0-9]{1,9})?s$"

_STREAM_NOTE = (
    "The answer is newline-delimited JSON (`application/x-ndjson`): one reply per line, "
    "sent as soon as the service produces it. A failure before the first reply is an "
    "ordinary JSON error with its HTTP status; a failure after it ends the stream with "
    'one last line `{"Status":"failed","Detail":...,"Code":...,"Reason":...}` (status 200 '
    "was already sent). Closing the connection cancels the call."
)

# FileDescriptorProto / DescriptorProto / EnumDescriptorProto / ServiceDescriptorProto
# field numbers, as SourceCodeInfo paths use them.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM = 2, 3, 4
_ENUM_VALUE = 2
_SERVICE_METHOD = 2


# --- comments -------------------------------------------------------------------


def comments_from_descriptor_set(data: bytes) -> dict[str, str]:
    """Leading comments by full name, from a serialized ``FileDescriptorSet``.

    Keys are proto full names (``kubeupdate.v1.Rollout.state``); an enum value
    is keyed under its enum (``kubeupdate.v1.Rollout.State.STATE_COMPLETE``).
    """
    files = descriptor_pb2.FileDescriptorSet.FromString(data)
    comments: dict[str, str] = {}
    for file in files.file:
        names = _names_by_path(file)
        for location in file.source_code_info.location:
            name = names.get(tuple(location.path))
            text = _clean_comment(location.leading_comments)
            if name is not None and text:
                comments[name] = text
    return comments


def _names_by_path(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    prefix = f"{file.package}." if file.package else ""
    names: dict[tuple[int, ...], str] = {}

    def enum(path: tuple[int, ...], proto: descriptor_pb2.EnumDescriptorProto, scope: str) -> None:
        full = scope + proto.name
        names[path] = full
        for index, value in enumerate(proto.value):
            names[(*path, _ENUM_VALUE, index)] = f"{full}.{value.name}"

    def message(path: tuple[int, ...], proto: descriptor_pb2.DescriptorProto, scope: str) -> None:
        full = scope + proto.name
        names[path] = full
        for index, field in enumerate(proto.field):
            names[(*path, _MESSAGE_FIELD, index)] = f"{full}.{field.name}"
        for index, nested in enumerate(proto.nested_type):
            message((*path, _MESSAGE_NESTED, index), nested, full + ".")
        for index, nested_enum in enumerate(proto.enum_type):
            enum((*path, _MESSAGE_ENUM, index), nested_enum, full + ".")

    for index, message_proto in enumerate(file.message_type):
        message((_FILE_MESSAGE, index), message_proto, prefix)
    for index, enum_proto in enumerate(file.enum_type):
        enum((_FILE_ENUM, index), enum_proto, prefix)
    for index, service in enumerate(file.service):
        full = prefix + service.name
        names[(_FILE_SERVICE, index)] = full
        for method_index, method in enumerate(service.method):
            names[(_FILE_SERVICE, index, _SERVICE_METHOD, method_index)] = f"{full}.{method.name}"
    return names


def _clean_comment(text: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in text.split("\n")]
    return "\n".join(lines).strip()


# --- the document -----------------------------------------------------------------


def build_openapi(
    services: Sequence[ServiceDescriptor],
    *,
    comments: Mapping[str, str] | None = None,
    title: str = "kubeupdate REST API",
    version: str | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the gateway serving ``services``."""
    builder = _Builder(comments or {})
    routes = routes_for_services(services)
    paths: dict[str, dict[str, Any]] = {}
    _gateway_paths(paths)
    operation_ids: set[str] = set()
    for route in routes:
        operation = builder.operation(route, operation_ids)
        paths.setdefault(route.template, {})[route.http_method.lower()] = operation
    service_comments = [builder.comment(service.full_name) for service in services]
    description = "\n\n".join(text for text in service_comments if text)
    packages = sorted({service.file.package for service in services})
    info: dict[str, Any] = {
        "title": title,
        "version": version or ", ".join(packages) or "0",
    }
    if description:
        info["description"] = description
    return {
        "openapi": OPENAPI_VERSION,
        "info": info,
        "tags": [
            {"name": service.name, **_described(builder.comment(service.full_name))}
            for service in services
        ],
        "paths": paths,
        "components": {"schemas": builder.components()},
    }


def _gateway_paths(paths: dict[str, dict[str, Any]]) -> None:
    def ok(sentence: str) -> dict[str, Any]:
        return {"description": sentence, "content": _json(_ref(STATUS_SCHEMA))}

    paths["/"] = {
        "get": {
            "operationId": "Root",
            "tags": ["Gateway"],
            "summary": "The original service's liveness answer.",
            "responses": {"200": ok('Always `{"Status":"okay","Detail":"server is running"}`.')},
        }
    }
    paths["/healthz"] = {
        "get": {
            "operationId": "Liveness",
            "tags": ["Gateway"],
            "summary": "The gateway process answers; the service is not asked.",
            "responses": {"200": ok("The gateway is running.")},
        }
    }
    paths["/readyz"] = {
        "get": {
            "operationId": "Readiness",
            "tags": ["Gateway"],
            "summary": "Ready when the service's grpc.health.v1 check says SERVING.",
            "responses": {
                "200": ok("The service is serving."),
                "503": _error("The service cannot be reached or is not serving (UNAVAILABLE)."),
            },
        }
    }
    paths["/openapi.json"] = {
        "get": {
            "operationId": "OpenApi",
            "tags": ["Gateway"],
            "summary": "This document.",
            "responses": {
                "200": {
                    "description": "The OpenAPI document of the gateway.",
                    "content": _json({"type": "object"}),
                }
            },
        }
    }


class _Builder:
    """Collects component schemas while operations are built."""

    def __init__(self, comments: Mapping[str, str]) -> None:
        self._comments = comments
        self._schemas: dict[str, dict[str, Any]] = {}
        self._schemas[ERROR_SCHEMA] = _error_schema()
        self._schemas[STATUS_SCHEMA] = _status_schema()

    def comment(self, full_name: str) -> str:
        return self._comments.get(full_name, "")

    def components(self) -> dict[str, Any]:
        return dict(sorted(self._schemas.items()))

    # -- operations

    def operation(self, route: Route, operation_ids: set[str]) -> dict[str, Any]:
        method = route.rpc.descriptor
        service = method.containing_service
        comment = self.comment(method.full_name)
        operation_id = method.name
        suffix = 1
        while operation_id in operation_ids:
            operation_id = f"{method.name}_{suffix}"
            suffix += 1
        operation_ids.add(operation_id)
        operation: dict[str, Any] = {"operationId": operation_id, "tags": [service.name]}
        if comment:
            operation["summary"] = _first_sentence(comment)
        description = comment
        if route.rpc.server_streaming:
            description = f"{comment}\n\n{_STREAM_NOTE}" if comment else _STREAM_NOTE
        if description:
            operation["description"] = description
        parameters = self._path_parameters(route) + self._query_parameters(route)
        if parameters:
            operation["parameters"] = parameters
        if route.body:
            body = self._body_schema(route)
            operation["requestBody"] = {
                # A body whose message has required fields must be sent.
                "required": bool(body.get("required")),
                "description": "JSON; an empty body is the empty message.",
                "content": _json(body),
            }
        operation["responses"] = self._responses(
            route, comment + "\n" + self.comment(service.full_name)
        )
        return operation

    def _path_parameters(self, route: Route) -> list[dict[str, Any]]:
        parameters = []
        for variable in route.variables:
            leaf = variable.field_path[-1]
            schema = self._scalar(leaf, output=False, nullable=False)
            if schema.get("type") == "string":
                schema["minLength"] = 1
            parameter: dict[str, Any] = {
                "name": variable.name,
                "in": "path",
                "required": True,
                "schema": schema,
            }
            parameter.update(_described(self._field_comment(leaf)))
            parameters.append(parameter)
        return parameters

    def _query_parameters(self, route: Route) -> list[dict[str, Any]]:
        # The fields gateway.transcoding reads from the query string.
        if route.body == "*":
            return []
        bound = {variable.field_path[0].name for variable in route.variables} | {route.body}
        parameters = []
        for field in route.rpc.descriptor.input_type.fields:
            if field.name in bound or field.message_type is not None:
                continue
            schema = self._scalar(field, output=False, nullable=False)
            parameter: dict[str, Any] = {"name": field.json_name, "in": "query"}
            if field.is_repeated:
                parameter.update({"schema": {"type": "array", "items": schema}, "explode": True})
            else:
                parameter["schema"] = schema
            parameter.update(_described(self._field_comment(field)))
            parameters.append(parameter)
        return parameters

    def _body_schema(self, route: Route) -> dict[str, Any]:
        request = route.rpc.descriptor.input_type
        if route.body != "*":
            return self._field(request.fields_by_name[route.body], output=False)
        # Path variables are taken from the path; grpc-gateway leaves them out too.
        bound = {variable.field_path[0].name for variable in route.variables}
        return self._object(request, output=False, skip=bound)

    def _responses(self, route: Route, comments: str) -> dict[str, Any]:
        response = route.rpc.descriptor.output_type
        if route.response_body:
            schema = self._field(response.fields_by_name[route.response_body], output=True)
        else:
            schema = _ref(self._message(response, output=True))
        if route.rpc.server_streaming:
            line = {"oneOf": [schema, _ref(ERROR_SCHEMA)]}
            ok = {
                "description": "One JSON document per line: each reply, then a failure line "
                "if the call failed after the first reply.",
                "content": {NDJSON_CONTENT_TYPE: {"schema": line}},
            }
        else:
            ok = {"description": "The reply.", "content": _json(schema)}
        responses: dict[str, Any] = {"200": ok}
        statuses: dict[int, list[str]] = {}
        for code in sorted(_codes_named(comments)):
            http_status = HTTP_STATUS_BY_CODE[grpc.StatusCode[code]]
            statuses.setdefault(http_status, []).append(code)
        extra = dict(_GATEWAY_STATUSES)
        if route.body:
            extra.update(_BODY_STATUSES)
        for http_status in sorted(set(statuses) | set(extra)):
            if http_status == 499:
                continue  # CANCELLED: the client is gone and reads no answer
            parts = []
            if http_status in statuses:
                parts.append("From the service: " + ", ".join(statuses[http_status]) + ".")
            if http_status in extra:
                parts.append(extra[http_status])
            responses[str(http_status)] = _error(
                " ".join(parts), retry_after=http_status in RETRY_AFTER_STATUSES
            )
        return responses

    # -- schemas

    def _message(self, message: Descriptor, *, output: bool) -> str:
        """The component name of a message, built on first use."""
        name = message.full_name if output else message.full_name + ".Input"
        if name not in self._schemas:
            self._schemas[name] = {}  # placeholder: messages may be recursive
            self._schemas[name] = self._object(message, output=output)
        return name

    def _object(
        self, message: Descriptor, *, output: bool, skip: Iterable[str] = ()
    ) -> dict[str, Any]:
        skipped = set(skip)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in message.fields:
            if field.name in skipped:
                continue
            properties[field.json_name] = self._field(field, output=output)
            if (output and not field.has_presence) or (not output and _required_input(field)):
                required.append(field.json_name)
        schema: dict[str, Any] = {"type": "object"}
        schema.update(_described(self.comment(message.full_name)))
        schema["properties"] = properties
        if required:
            schema["required"] = required
        if not output:
            schema["additionalProperties"] = False
        return schema

    def _field(self, field: FieldDescriptor, *, output: bool) -> dict[str, Any]:
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            value = entry.fields_by_name["value"]
            schema: dict[str, Any] = {
                "type": "object",
                "additionalProperties": self._value(value, output=output),
            }
        elif field.is_repeated:
            schema = {"type": "array", "items": self._value(field, output=output)}
        else:
            schema = self._value(field, output=output)
        if not output and not _required_input(field):
            schema = _nullable(schema)
        text = self._field_comment(field)
        if text and schema.get("description"):
            text = f"{text}\n\n{schema['description']}"  # the field's words, then the enum's
        schema.update(_described(text))
        return schema

    def _value(self, field: FieldDescriptor, *, output: bool) -> dict[str, Any]:
        message = field.message_type
        if message is None:
            return self._scalar(field, output=output, nullable=False)
        well_known = _well_known(message.full_name)
        if (
            well_known is not None
            and message.full_name == "google.protobuf.Duration"
            and not output
        ):
            # Requests also take the durations people write ("5m", "1h30m"): the gateway
            # rewrites them (gateway.transcoding); replies are always protobuf's "120s".
            return {**well_known, "pattern": durations.PATTERN, "examples": ["300s", "5m", "1h30m"]}
        if well_known is not None:
            return well_known
        return _ref(self._message(message, output=output))

    def _scalar(self, field: FieldDescriptor, *, output: bool, nullable: bool) -> dict[str, Any]:
        schema: dict[str, Any]
        if field.enum_type is not None:
            schema = self._enum(field.enum_type, output=output)
        else:
            schema = dict(_SCALARS[field.type])
        return _nullable(schema) if nullable else schema

    def _enum(self, enum: EnumDescriptor, *, output: bool) -> dict[str, Any]:
        names = [value.name for value in enum.values]
        lines = []
        for value in enum.values:
            text = self.comment(f"{enum.full_name}.{value.name}")
            if text:
                lines.append(f"- `{value.name}`: {' '.join(text.split())}")
        schema: dict[str, Any] = {"type": "string", "enum": names}
        if not output:
            # json_format reads an enum's number as well as its name.
            schema = {"anyOf": [schema, {"type": "integer", "format": "int32"}]}
        described = self.comment(enum.full_name)
        if lines:
            described = (described + "\n\n" if described else "") + "\n".join(lines)
        schema.update(_described(described))
        return schema

    def _field_comment(self, field: FieldDescriptor) -> str:
        return self.comment(field.full_name)


_T = FieldDescriptor
_SCALARS: dict[int, dict[str, Any]] = {
    _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_INT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SINT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    _T.TYPE_UINT32: {"type": "integer", "minimum": 0, "maximum": 4294967295},
    _T.TYPE_FIXED32: {"type": "integer", "minimum": 0, "maximum": 4294967295},
    _T.TYPE_INT64: {"type": "string", "format": "int64", "pattern": _INT64_PATTERN},
    _T.TYPE_SINT64: {"type": "string", "format": "int64", "pattern": _INT64_PATTERN},
    _T.TYPE_SFIXED64: {"type": "string", "format": "int64", "pattern": _INT64_PATTERN},
    _T.TYPE_UINT64: {"type": "string", "format": "uint64", "pattern": _UINT64_PATTERN},
    _T.TYPE_FIXED64: {"type": "string", "format": "uint64", "pattern": _UINT64_PATTERN},
    _T.TYPE_FLOAT: {"type": "number", "format": "float"},
    _T.TYPE_DOUBLE: {"type": "number", "format": "double"},
}


def _well_known(full_name: str) -> dict[str, Any] | None:
    if full_name == "google.protobuf.Duration":
        return {
            "type": "string",
            "format": "google-duration",
            "pattern": _DURATION_PATTERN,
            "examples": ["120s", "1.5s"],
        }
    if full_name == "google.protobuf.Timestamp":
        return {"type": "string", "format": "date-time"}
    if full_name in ("google.protobuf.Struct",):
        return {"type": "object"}
    if full_name == "google.protobuf.Value":
        return {}
    if full_name.startswith("google.protobuf.") and full_name.endswith("Value"):
        return {}  # wrappers: the wrapped scalar's JSON
    if full_name.startswith("google.protobuf."):
        return {}
    return None


def _required_input(field: FieldDescriptor) -> bool:
    """A request field the proto marks ``(google.api.field_behavior) = REQUIRED``."""
    behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.FieldBehavior.REQUIRED in behaviors


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str):
        schema = dict(schema)
        schema["type"] = [kind, "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
        return schema
    if not schema:
        return schema  # anything already
    return {"anyOf": [schema, {"type": "null"}]}


def _codes_named(text: str) -> set[str]:
    return {word for word in _CODE_WORD.findall(text) if word in _CODE_NAMES}


def _first_sentence(text: str) -> str:
    paragraph = " ".join(text.split("\n\n", 1)[0].split())
    match = re.match(r"(.+?\.)(\s|$)", paragraph)
    return match.group(1) if match else paragraph


def _described(text: str) -> dict[str, str]:
    return {"description": text} if text else {}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF + name}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON_CONTENT_TYPE: {"schema": schema}}


def _error(sentence: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": sentence, "content": _json(_ref(ERROR_SCHEMA))}
    if retry_after:
        response["headers"] = {
            "Retry-After": {
                "description": "Passed on from the service when it names one.",
                "schema": {"type": "string"},
            }
        }
    return response


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Every error answer, whether the gateway or the service refused.",
        "properties": {
            "Status": {"type": "string", "const": "failed"},
            "Detail": {"type": "string", "description": "A sentence for humans."},
            "Code": {
                "type": "string",
                "description": "The gRPC status code name, e.g. NOT_FOUND.",
                "enum": sorted(_CODE_NAMES),
            },
            "Reason": {
                "type": "string",
                "description": "Why, for programs: a value name of the contract's ErrorReason "
                "(proto/kubeupdate/v1/error_reason.proto), e.g. CONTAINER_NOT_FOUND. "
                "New reasons may be added: treat an unknown one as its Code alone.",
            },
            "Metadata": {
                "type": "object",
                "description": "Facts for programs, from the service's ErrorInfo, sent with "
                "ROLLOUT_HANDED_OVER only: rollout_id, namespace, deployment, container, "
                "image, previous_image and follow (the path that waits for the verdict).",
                "additionalProperties": {"type": "string"},
            },
        },
        "required": ["Status", "Detail", "Code", "Reason"],
        "additionalProperties": False,
    }


def _status_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The gateway's own health answers.",
        "properties": {
            "Status": {"type": "string", "const": "okay"},
            "Detail": {"type": "string"},
        },
        "required": ["Status", "Detail"],
        "additionalProperties": False,
    }


# --- the committed document ----------------------------------------------------------


def render(document: Mapping[str, Any]) -> bytes:
    """The committed form: indented, UTF-8, newline-terminated."""
    return json.dumps(document, indent=2, ensure_ascii=False).encode() + b"\n"


def openapi_document(
    services: Sequence[ServiceDescriptor], *, committed: Path = DOCUMENT_PATH
) -> dict[str, Any]:
    """The document to serve: the committed one when it fits ``services``."""
    built = build_openapi(services)
    try:
        stored: dict[str, Any] = json.loads(committed.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return built
    if _structure(stored) == _structure(built):
        return stored
    logger.warning("%s does not match the served routes; serving one without comments", committed)
    return built


def _structure(value: Any) -> Any:
    """What must match between the committed and the running document.

    Descriptions, the info block, tags and error answers depend on comments,
    which the running stubs lack; routes, parameters and schemas do not.
    """
    if isinstance(value, dict):
        kept: dict[str, Any] = {}
        for key, item in value.items():
            if key in ("description", "summary") and isinstance(item, str):
                continue
            if key in ("info", "tags"):
                continue
            if key == "responses" and isinstance(item, dict):
                item = {status: answer for status, answer in item.items() if status == "200"}
            kept[key] = _structure(item)
        return kept
    if isinstance(value, list):
        return [_structure(item) for item in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gateway.openapi --descriptor-set FILE [--out FILE]``."""
    from gateway.app import DEFAULT_SERVICES  # the app imports this module

    parser = argparse.ArgumentParser(prog="gateway.openapi", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--descriptor-set",
        type=Path,
        help="a FileDescriptorSet from protoc --include_source_info (for descriptions)",
    )
    parser.add_argument("--out", type=Path, help="where to write; standard output if absent")
    args = parser.parse_args(argv)
    comments = {}
    if args.descriptor_set is not None:
        comments = comments_from_descriptor_set(args.descriptor_set.read_bytes())
    data = render(build_openapi(DEFAULT_SERVICES, comments=comments))
    if args.out is None:
        sys.stdout.buffer.write(data)
    else:
        args.out.write_bytes(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
