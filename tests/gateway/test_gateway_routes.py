"""Routes come from the google.api.http annotations, including ones added later.

A synthetic service, built here as a FileDescriptorProto the way protoc would
describe it, stands for "a new annotated RPC": it must be served without any
gateway code, with every HTTP method, body form and path form the gateway
supports.
"""

from __future__ import annotations

import json

import falcon.testing
import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, FileDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from kubeupdate.v1 import deployment_image_service_pb2 as pb

from gateway.app import DEFAULT_SERVICES, create_app
from gateway.routes import Route, RouteError, Rpc, parse_template, routes_for_services
from gateway.upstream import Metadata, ReplyStream, StreamCall, UnaryCall

FieldProto = descriptor_pb2.FieldDescriptorProto

FILE_NAME = "gatewaytest/v1/widgets.proto"


def _field(
    name: str,
    number: int,
    kind: int = FieldProto.TYPE_STRING,
    *,
    type_name: str = "",
    repeated: bool = False,
) -> FieldProto:
    json_name = "".join(part.capitalize() for part in name.split("_"))
    field = FieldProto(
        name=name,
        number=number,
        type=kind,  # type: ignore[arg-type]
        json_name=json_name,
        label=FieldProto.LABEL_REPEATED if repeated else FieldProto.LABEL_OPTIONAL,
    )
    if type_name:  # an explicit empty type_name is an error in a descriptor
        field.type_name = type_name
    return field


def _method(
    service: descriptor_pb2.ServiceDescriptorProto,
    name: str,
    request: str,
    rule: http_pb2.HttpRule | None,
    *,
    server_streaming: bool = False,
) -> None:
    method = service.method.add(
        name=name,
        input_type=f".gatewaytest.v1.{request}",
        output_type=".gatewaytest.v1.Widget",
        server_streaming=server_streaming,
    )
    if rule is not None:
        method.options.Extensions[annotations_pb2.http].CopyFrom(rule)


def widget_file() -> FileDescriptor:
    """A small service like one a later proto change would add."""
    pool = descriptor_pool.Default()
    try:
        return pool.FindFileByName(FILE_NAME)
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto(
        name=FILE_NAME,
        package="gatewaytest.v1",
        syntax="proto3",
        dependency=["google/api/annotations.proto"],
    )
    proto.message_type.add(name="Shelf", field=[_field("shelf_id", 1)])
    proto.message_type.add(
        name="Widget",
        field=[
            _field("name", 1),
            _field("shelf", 2, FieldProto.TYPE_MESSAGE, type_name=".gatewaytest.v1.Shelf"),
            _field("size", 3, FieldProto.TYPE_INT64),
            _field("enabled", 4, FieldProto.TYPE_BOOL),
            _field("tags", 5, repeated=True),
        ],
    )
    proto.message_type.add(
        name="WidgetRequest",
        field=[
            _field("name", 1),
            _field("shelf", 2, FieldProto.TYPE_MESSAGE, type_name=".gatewaytest.v1.Shelf"),
            _field("page_size", 3, FieldProto.TYPE_INT32),
            _field("tags", 4, repeated=True),
            _field("widget", 5, FieldProto.TYPE_MESSAGE, type_name=".gatewaytest.v1.Widget"),
            _field("size", 6, FieldProto.TYPE_INT64),
        ],
    )
    service = proto.service.add(name="WidgetService")
    get = http_pb2.HttpRule(get="/v1/widgets/{name}")
    get.additional_bindings.add(get="/v1/shelves/{shelf.shelf_id}/widgets/{name}")
    _method(service, "GetWidget", "WidgetRequest", get)
    _method(service, "ListWidgets", "WidgetRequest", http_pb2.HttpRule(get="/v1/widgets"))
    _method(
        service,
        "UpdateWidget",
        "WidgetRequest",
        http_pb2.HttpRule(put="/v1/widgets/{name}", body="widget"),
    )
    _method(
        service, "PatchWidget", "Widget", http_pb2.HttpRule(patch="/v1/widgets/{name}", body="*")
    )
    _method(
        service, "DeleteWidget", "WidgetRequest", http_pb2.HttpRule(delete="/v1/widgets/{name}")
    )
    _method(
        service,
        "ResizeWidget",
        "WidgetRequest",
        http_pb2.HttpRule(post="/v1/sizes/{size}/widgets/{name}:resize"),
    )
    _method(
        service,
        "WatchWidgets",
        "WidgetRequest",
        http_pb2.HttpRule(get="/v1/watch/widgets"),
        server_streaming=True,
    )
    _method(
        service,
        "GetWidgetTags",
        "WidgetRequest",
        http_pb2.HttpRule(get="/v1/widgets/{name}/tags", response_body="tags"),
    )
    _method(service, "InternalOnly", "WidgetRequest", None)
    pool.Add(proto)
    return pool.FindFileByName(FILE_NAME)


def widget_service() -> ServiceDescriptor:
    return widget_file().services_by_name["WidgetService"]


def widget_class(name: str) -> type[Message]:
    descriptor: Descriptor = widget_file().message_types_by_name[name]
    return GetMessageClass(descriptor)


def table(routes: list[Route]) -> list[tuple[str, str, str, str, str]]:
    return [
        (route.http_method, route.template, route.uri_template, route.body, route.rpc.path)
        for route in routes
    ]


# --- derivation ----------------------------------------------------------------


def test_kubeupdate_routes_come_from_the_proto() -> None:
    service = "/kubeupdate.v1.DeploymentImageService"
    path3 = "/deployment/{namespace}/{deployment}/{container}"
    assert table(routes_for_services(DEFAULT_SERVICES)) == [
        ("GET", path3, "/deployment/{p0}/{p1}/{p2}", "", f"{service}/GetContainerImage"),
        ("POST", path3, "/deployment/{p0}/{p1}/{p2}", "*", f"{service}/SetContainerImage"),
        (
            "GET",
            "/deployment/{namespace}/{deployment}",
            "/deployment/{p0}/{p1}",
            "",
            f"{service}/ListContainerImages",
        ),
        (
            "GET",
            "/rollout/{namespace}/{deployment}",
            "/rollout/{p0}/{p1}",
            "",
            f"{service}/GetRolloutStatus",
        ),
        (
            "GET",
            "/rollout/{namespace}/{deployment}/watch",
            "/rollout/{p0}/{p1}/watch",
            "",
            f"{service}/WatchRollout",
        ),
        (
            "GET",
            "/history/{namespace}/{deployment}",
            "/history/{p0}/{p1}",
            "",
            f"{service}/ListRevisions",
        ),
        (
            "GET",
            "/rollout/{namespace}/{deployment}/guarded/{id}",
            "/rollout/{p0}/{p1}/guarded/{p2}",
            "",
            f"{service}/GetGuardedRollout",
        ),
        (
            "POST",
            f"{path3}/undo",
            "/deployment/{p0}/{p1}/{p2}/undo",
            "*",
            f"{service}/UndoContainerImage",
        ),
    ]
    assert [route.rpc.server_streaming for route in routes_for_services(DEFAULT_SERVICES)] == [
        False,
        False,
        False,
        False,
        True,
        False,
        False,
        False,
    ]
    route = routes_for_services(DEFAULT_SERVICES)[1]
    assert route.rpc.request_type is pb.SetContainerImageRequest
    assert route.rpc.response_type is pb.SetContainerImageResponse
    assert [variable.name for variable in route.variables] == [
        "namespace",
        "deployment",
        "container",
    ]


def test_a_new_annotated_service_gets_routes() -> None:
    service = "/gatewaytest.v1.WidgetService"
    assert table(routes_for_services([widget_service()])) == [
        ("GET", "/v1/widgets/{name}", "/v1/widgets/{p0}", "", f"{service}/GetWidget"),
        (
            "GET",
            "/v1/shelves/{shelf.shelf_id}/widgets/{name}",
            "/v1/shelves/{p0}/widgets/{p1}",
            "",
            f"{service}/GetWidget",
        ),
        ("GET", "/v1/widgets", "/v1/widgets", "", f"{service}/ListWidgets"),
        ("PUT", "/v1/widgets/{name}", "/v1/widgets/{p0}", "widget", f"{service}/UpdateWidget"),
        ("PATCH", "/v1/widgets/{name}", "/v1/widgets/{p0}", "*", f"{service}/PatchWidget"),
        ("DELETE", "/v1/widgets/{name}", "/v1/widgets/{p0}", "", f"{service}/DeleteWidget"),
        (
            "POST",
            "/v1/sizes/{size}/widgets/{name}:resize",
            "/v1/sizes/{p0}/widgets/{p1}:resize",
            "",
            f"{service}/ResizeWidget",
        ),
        ("GET", "/v1/watch/widgets", "/v1/watch/widgets", "", f"{service}/WatchWidgets"),
        (
            "GET",
            "/v1/widgets/{name}/tags",
            "/v1/widgets/{p0}/tags",
            "",
            f"{service}/GetWidgetTags",
        ),
    ]


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("/v1/{name=shelves/*}", "segment"),
        ("/v1/**", "segment"),
        ("/v1/*/widgets", "segment"),
        ("/v1/{missing}", "no field"),
        ("/v1/{shelf}", "message"),
        ("/v1/{tags}", "repeated"),
        ("/v1/{name.deeper}", "not a message"),
        ("v1/widgets", "start with"),
        ("/v1/{name}/{name}", "twice"),
    ],
)
def test_unservable_templates_are_refused_at_start(template: str, reason: str) -> None:
    request = widget_file().message_types_by_name["WidgetRequest"]
    with pytest.raises(RouteError, match=reason):
        parse_template(template, request)


def test_a_get_with_a_body_is_refused() -> None:
    rpc = routes_for_services([widget_service()])[0].rpc
    bad = http_pb2.HttpRule(get="/v1/widgets/{name}", body="*")
    with pytest.raises(RouteError, match="body"):
        _route_for(bad, rpc)


def test_an_unknown_body_field_is_refused() -> None:
    rpc = routes_for_services([widget_service()])[0].rpc
    with pytest.raises(RouteError, match="no field 'nope'"):
        _route_for(http_pb2.HttpRule(post="/v1/widgets", body="nope"), rpc)


def test_an_unserved_custom_method_is_refused() -> None:
    rpc = routes_for_services([widget_service()])[0].rpc
    rule = http_pb2.HttpRule(custom=http_pb2.CustomHttpPattern(kind="HEAD", path="/v1/widgets"))
    with pytest.raises(RouteError, match="HEAD"):
        _route_for(rule, rpc)


def _route_for(rule: http_pb2.HttpRule, rpc: Rpc) -> Route:
    from gateway import routes  # the per-rule builder is private; reach it for these cases

    return routes._route(rule, rpc)


def test_two_services_with_the_same_route_are_refused() -> None:
    with pytest.raises(RouteError, match="same shape"):
        routes_for_services([*DEFAULT_SERVICES, *DEFAULT_SERVICES])


# --- served through the app ----------------------------------------------------


class RecordingUpstream:
    """Answers every RPC with a fixed Widget and records what was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Message]] = []

    def unary_unary(self, rpc: Rpc) -> UnaryCall:
        async def call(request: Message, *, timeout: float, metadata: Metadata) -> Message:  # noqa: ASYNC109
            self.calls.append((rpc.path, request))
            return widget_class("Widget")(name="w1", size=5, tags=["blue"])

        return call

    def unary_stream(self, rpc: Rpc) -> StreamCall:
        def call(request: Message, *, timeout: float, metadata: Metadata) -> ReplyStream:
            self.calls.append((rpc.path, request))
            return TwoWidgets()

        return call

    async def check_health(self, *, timeout: float) -> str:  # noqa: ASYNC109
        return "SERVING"


class TwoWidgets:
    """A stream of two widgets, then the end."""

    def __init__(self) -> None:
        self._names = ["w1", "w2"]

    async def next(self) -> Message | None:
        if not self._names:
            return None
        return widget_class("Widget")(name=self._names.pop(0))

    def cancel(self) -> None:
        self._names = []


@pytest.fixture
def upstream() -> RecordingUpstream:
    return RecordingUpstream()


@pytest.fixture
def client(upstream: RecordingUpstream) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(upstream, services=[widget_service()]))


def widget_request(**fields: object) -> Message:
    return widget_class("WidgetRequest")(**fields)


def test_new_get_route_is_served(
    client: falcon.testing.TestClient, upstream: RecordingUpstream
) -> None:
    result = client.simulate_get("/v1/widgets/w1")
    assert result.status_code == 200
    # Shelf is a message, so it has presence and is left out when unset.
    assert result.content == b'{"Name":"w1","Size":"5","Enabled":false,"Tags":["blue"]}\n'
    assert upstream.calls == [
        ("/gatewaytest.v1.WidgetService/GetWidget", widget_request(name="w1"))
    ]


def test_additional_binding_fills_a_nested_field(
    client: falcon.testing.TestClient, upstream: RecordingUpstream
) -> None:
    assert client.simulate_get("/v1/shelves/s9/widgets/w1").status_code == 200
    expected = widget_request(name="w1")
    expected.shelf.shelf_id = "s9"  # type: ignore[attr-defined]
    assert upstream.calls[-1][1] == expected


def test_query_parameters_fill_unbound_fields(
    client: falcon.testing.TestClient, upstream: RecordingUpstream
) -> None:
    result = client.simulate_get(
        "/v1/widgets", query_string="page_size=20&Tags=a&tags=b&unknown=1&shelf.shelf_id=x"
    )
    assert result.status_code == 200
    assert upstream.calls[-1][1] == widget_request(page_size=20, tags=["a", "b"])


def test_query_parameter_of_the_wrong_type_is_400(
    client: falcon.testing.TestClient, upstream: RecordingUpstream
) -> None:
    result = client.simulate_get("/v1/widgets", query_string="page_size=many")
    assert result.status_code == 400
    assert json.loads(result.text)["Code"] == "INVALID_ARGUMENT"
    assert upstream.calls == []


def test_query_does_not_override_a_path_variable(
    client: falcon.testing.TestClient, upstream: RecordingUpstream
) -> None:
    assert client.simulate_get("/v1/widgets/w1", query_string="name=w2").status_code == 200
    assert upstream.calls[-1][1] == widget_request(name="w1")


def test_put_with_a_body_field(
    client: falcon.testing.TestClient, upstream: RecordingUpstream
) -> None:
    result = client.simulate_put(
        "/v1/widgets/w1", json={"Size": "9", "Tags": ["x"]}, query_string="page_size=3"
    )
    assert result.status_code == 200
    expected = widget_request(name="w1", page_size=3)
    expected.widget.size = 9  # type: ignore[attr-defined]
    expected.widget.tags.append("x")  # type: ignore[attr-defined]
    assert upstream.calls[-1] == ("/gatewaytest.v1.WidgetService/UpdateWidget", expected)


def test_put_body_field_must_fit_its_message(client: falcon.testing.TestClient) -> None:
    result = client.simulate_put("/v1/widgets/w1", json={"Colour": "red"})
    assert result.status_code == 400
    result = client.simulate_put("/v1/widgets/w1", json=["not", "a", "widget"])
    assert result.status_code == 400


def test_patch_with_the_whole_body(
    client: falcon.testing.TestClient, upstream: RecordingUpstream
) -> None:
    result = client.simulate_patch("/v1/widgets/w1", json={"Enabled": True, "Size": 4})
    assert result.status_code == 200
    assert upstream.calls[-1][1] == widget_class("Widget")(name="w1", enabled=True, size=4)
    assert client.simulate_patch("/v1/widgets/w1", json={"Name": "w2"}).status_code == 400


def test_delete_and_custom_verb_with_a_typed_path_variable(
    client: falcon.testing.TestClient, upstream: RecordingUpstream
) -> None:
    assert client.simulate_delete("/v1/widgets/w1").status_code == 200
    assert upstream.calls[-1][0].endswith("/DeleteWidget")
    assert client.simulate_post("/v1/sizes/12/widgets/w1:resize").status_code == 200
    assert upstream.calls[-1][1] == widget_request(name="w1", size=12)
    result = client.simulate_post("/v1/sizes/big/widgets/w1:resize")
    assert result.status_code == 400
    assert "Size" in json.loads(result.text)["Detail"]


def test_a_new_streaming_method_is_served_as_ndjson(
    client: falcon.testing.TestClient, upstream: RecordingUpstream
) -> None:
    result = client.simulate_get("/v1/watch/widgets", query_string="page_size=2")
    assert result.status_code == 200
    assert result.headers["content-type"] == "application/x-ndjson"
    assert result.content == (
        b'{"Name":"w1","Size":"0","Enabled":false,"Tags":[]}\n'
        b'{"Name":"w2","Size":"0","Enabled":false,"Tags":[]}\n'
    )
    assert upstream.calls == [
        ("/gatewaytest.v1.WidgetService/WatchWidgets", widget_request(page_size=2))
    ]


def test_unannotated_methods_are_not_served(
    client: falcon.testing.TestClient, upstream: RecordingUpstream
) -> None:
    for path in ("/v1/internal", "/gatewaytest.v1.WidgetService/InternalOnly"):
        assert client.simulate_get(path).status_code == 404
    assert all("InternalOnly" not in path for path, _ in upstream.calls)


def test_a_route_on_a_gateway_path_is_refused(upstream: RecordingUpstream) -> None:
    pool = descriptor_pool.Default()
    name = "gatewaytest/v1/clash.proto"
    try:
        file = pool.FindFileByName(name)
    except KeyError:
        proto = descriptor_pb2.FileDescriptorProto(
            name=name,
            package="gatewaytest.clash",
            syntax="proto3",
            dependency=["google/api/annotations.proto", FILE_NAME],
        )
        service = proto.service.add(name="ClashService")
        method = service.method.add(
            name="Health",
            input_type=".gatewaytest.v1.Widget",
            output_type=".gatewaytest.v1.Widget",
        )
        method.options.Extensions[annotations_pb2.http].get = "/healthz"
        pool.Add(proto)
        file = pool.FindFileByName(name)
    with pytest.raises(RouteError, match="/healthz"):
        create_app(upstream, services=[file.services_by_name["ClashService"]])


def test_response_body_answers_one_field(client: falcon.testing.TestClient) -> None:
    result = client.simulate_get("/v1/widgets/w1/tags")
    assert result.status_code == 200
    assert result.content == b'["blue"]\n'
