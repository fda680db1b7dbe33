"""The container image's HEALTHCHECK: exit 0 when this container's server is ready.

One image runs either role, so it asks every way: the gateway's ``/readyz``
(which checks the service behind it), else the service's ``/readyz`` on its
metrics port (it works when the gRPC port speaks TLS), else the gRPC health
service of a plaintext service. Ports come from the variables the entrypoint reads.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT = 3.0


def http_ready(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=TIMEOUT) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def service_serving(port: str) -> bool:
    # Imported here: a gateway-only check needs no gRPC machinery.
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=TIMEOUT
            )
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def main() -> int:
    http_port = os.environ.get("KUBEUPDATE_HTTP_PORT", "8080")
    grpc_port = os.environ.get("KUBEUPDATE_GRPC_PORT", "50051")
    metrics_port = os.environ.get("KUBEUPDATE_METRICS_PORT", "9090")
    ready = http_ready(http_port) or http_ready(metrics_port) or service_serving(grpc_port)
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main())
