"""kubeupdate's REST gateway: HTTP/JSON in front of the gRPC service.

The gateway translates only; it holds no Kubernetes credentials. Its routes come
from the ``google.api.http`` annotations of the service descriptor
(``gateway.routes``), requests and replies are translated with
``google.protobuf.json_format`` (``gateway.transcoding``), calls go over one
``grpc.aio`` channel (``gateway.upstream``), and ``gateway.app.create_app``
assembles the Falcon ASGI app that ``gateway.server.GatewayServer`` runs under
uvicorn. Server-streaming RPCs answer newline-delimited JSON
(``gateway.streaming``). ``gateway.openapi`` builds the OpenAPI document from
the same descriptors; the committed ``gateway/openapi.json`` is served at
``GET /openapi.json``.
"""
