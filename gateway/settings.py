"""The gateway's settings, shared by the app, the server and the command line."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GatewaySettings:
    """Everything the gateway can be told; defaults suit a local demo."""

    # The gRPC service, as a grpc target ("host:port", "dns:///name:port", ...).
    upstream: str = "127.0.0.1:50051"
    host: str = "127.0.0.1"
    port: int = 8080  # 0 picks a free port; GatewayServer.port tells which
    # Deadline of every forwarded call, in seconds.
    call_timeout: float = 30.0
    # Deadline of a unary call whose request declares a google.protobuf.Duration
    # `timeout` field (a call that may wait, such as a waited SetContainerImage),
    # in seconds: a little over the service's longest wait (30 minutes by default),
    # so the service, not the gateway, decides when the wait ends.
    wait_call_timeout: float = 1830.0
    # Deadline of every forwarded server-streaming call (a rollout watch), in
    # seconds; above the service's longest wait (30 minutes by default).
    stream_timeout: float = 3600.0
    # Deadline of the /readyz health check, in seconds.
    health_timeout: float = 5.0
    # grpc.health.v1 service name asked by /readyz; "" is the whole server.
    health_service: str = ""
    max_body_bytes: int = 64 * 1024
    # Slow or idle clients (gateway.connections): seconds from a connection's start, or
    # the end of the previous response, to the end of the request headers; and from
    # there to the end of the body. A keep-alive connection idle this long is closed.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: int = 5
    # The request line and headers together, in bytes (431 above).
    max_header_bytes: int = 16 * 1024
    # Connections and requests in progress together; above it uvicorn answers 503.
    max_connections: int = 1000
    # Proxies trusted for X-Forwarded-For/-Proto (uvicorn's forwarded_allow_ips:
    # addresses and networks, comma-separated; "*" for any); none by default, so a
    # client cannot name itself. The client address the gateway forwards to the
    # service as x-forwarded-for is the one they vouch for.
    forwarded_allow_ips: str = ""
    # Sent as x-kubeupdate-proxy with every call, when the gateway runs in the
    # service's process: the service then believes its x-forwarded-for.
    proxy_key: str = field(default="", repr=False)
    # One access line per request (logger "gateway.access"), with its request id.
    access_log: bool = True
    # GET /metrics (Prometheus) on the gateway's port.
    metrics: bool = True
