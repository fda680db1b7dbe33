"""``kubeupdate demo``: the whole product on one machine, no cluster needed.

Starts the devcluster seeded with sample Deployments (``default/web`` with
containers ``app`` and ``sidecar``; ``staging/api`` with ``api`` and the init
container ``migrate``), then the gRPC service and the REST gateway, and prints
commands ready to paste. Ctrl-C stops everything.

Authentication stays on, as in production: the demo makes a fresh token
``demo`` (its secret is printed in the curl lines) and a policy letting it
read and change ``default/web`` and ``staging/api``, with images of a few
public repositories (Docker Hub's official nginx and busybox, and anything under
``ghcr.io/acme/``) and never ``latest``. Audit lines go to stderr.

The devcluster is its own distribution (``kubeupdate-devcluster``), installed
by the development environment, never in the production image: this module
imports it, so ``kubeupdate`` imports this module only to run the demo.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from devcluster.manifests import load_manifests

from devcluster import DevCluster
from gateway.settings import GatewaySettings
from kubeupdate.auth.config import AuthConfig
from kubeupdate.auth.tokens import create_token
from kubeupdate.service import ServerConfig
from kubeupdate.serving import Listening, serve_all

SAMPLES = Path(__file__).with_name("demo-deployments.yaml")
DEMO_TOKEN_ID = "demo"  # noqa: S105 (an id; the secret is made at start)
DEMO_POLICY = f"""\
rules:
  - name: demo token on the sample Deployments
    subjects: [{{token: {DEMO_TOKEN_ID}}}]
    targets:
      - {{namespace: default, deployment: web}}
      - {{namespace: staging, deployment: api}}
    access: [read, write]
    images:
      - repositories:
          - docker.io/library/nginx
          - docker.io/library/busybox
          - ghcr.io/acme/
"""


def build_parser(prog: str = "kubeupdate demo") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the devcluster, the gRPC service and the REST gateway, "
        "with sample Deployments.",
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--http-port", type=int, default=8080, help="REST gateway (0: any free)")
    parser.add_argument("--grpc-port", type=int, default=50051, help="gRPC service (0: any free)")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per real second for rollouts in the devcluster",
    )
    parser.add_argument(
        "--seed",
        type=Path,
        default=SAMPLES,
        help="multi-document YAML of Namespaces and Deployments (default: the samples)",
    )


def run(args: argparse.Namespace) -> int:
    seed = load_manifests(args.seed)
    print("Starting the devcluster (a Kubernetes API emulator) ...", flush=True)
    with (
        DevCluster(tls=True, speed=args.speed, seed=seed) as cluster,
        tempfile.TemporaryDirectory(prefix="kubeupdate-demo-") as directory,
    ):
        secret, auth = write_demo_security(Path(directory))
        config = ServerConfig(port=args.grpc_port, kubeconfig=cluster.kubeconfig_path, auth=auth)
        settings = GatewaySettings(upstream="", port=args.http_port)

        def ready(listening: Listening) -> None:
            assert listening.grpc_port is not None
            assert listening.http_port is not None
            print(banner(cluster, listening.grpc_port, listening.http_port, secret), flush=True)

        try:
            asyncio.run(serve_all(config, settings, ready=ready))
        except OSError as exc:
            print(f"kubeupdate demo: {exc}", file=sys.stderr)
            print(
                "Another program may hold the port: pick free ones with\n"
                '  make demo ARGS="--http-port 0 --grpc-port 0"\n'
                "or kubeupdate demo --http-port 0 --grpc-port 0 (the banner shows the ports)."
            )
            return 2
    print("Stopped.")
    return 0


def write_demo_security(directory: Path) -> tuple[str, AuthConfig]:
    """A fresh demo token and the demo policy in ``directory``; the secret and the config."""
    secret, entry = create_token(DEMO_TOKEN_ID)
    tokens = directory / "tokens.yaml"
    tokens.write_text("tokens:\n" + entry.entry_yaml(), encoding="utf-8")
    policy = directory / "policy.yaml"
    policy.write_text(DEMO_POLICY, encoding="utf-8")
    return secret, AuthConfig(tokens_file=tokens, policy_file=policy)


def banner(cluster: DevCluster, grpc_port: int, http_port: int, secret: str) -> str:
    rest = f"http://127.0.0.1:{http_port}"
    path = "/deployment/default/web/app"
    user = f"{DEMO_TOKEN_ID}:{secret}"
    # The full path: a second shell has no .venv/bin on its PATH.
    installed = Path(sys.executable).with_name("kubeupdate-client")
    CLIENT = str(installed) if installed.exists() else "kubeupdate-client"
    return f"""
kubeupdate demo is running. Ctrl-C stops everything.

  REST gateway   {rest}      (OpenAPI: {rest}/openapi.json)
  gRPC service   127.0.0.1:{grpc_port}  (reflection on)
  devcluster     {cluster.url}
  kubeconfig     {cluster.kubeconfig_path}
  demo token     {DEMO_TOKEN_ID}  (new secret each run; audit lines go to stderr)

Paste this first: the demo token as id:secret for curl -u (HTTP Basic).

  DEMO={user}

The original kube-update-api calls:

  curl {rest}/
  curl -u "$DEMO" {rest}{path}
  curl -u "$DEMO" -X POST -H 'Content-Type: application/json' -d '{{"Image":"nginx:1.27"}}' \\
       {rest}{path}

Deploy and wait for the rollout (rolled back if it fails), watch it, see the history:

  curl -u "$DEMO" -X POST {rest}{path} \\
       -d '{{"Image":"nginx:1.28","Wait":true,"Timeout":"2m","Reason":"demo"}}'
  curl -u "$DEMO" -X POST -d '{{"Image":"nginx:1.29-bad","Wait":true,"RollbackOnFailure":true}}' \\
       {rest}{path}    # ImagePullBackOff: fails after the 30 s grace, rolled back
  curl -u "$DEMO" -N {rest}/rollout/default/web/watch   # live, one JSON line per change
  curl -u "$DEMO" {rest}/history/default/web

More answers:

  curl -u "$DEMO" {rest}/deployment/default/web          # every container of default/web
  curl -u "$DEMO" {rest}/deployment/default/web/nope     # 404: no such container
  curl -u "$DEMO" -X POST -d '{{"Image":"Nginx:1.27"}}' {rest}{path}          # 400: invalid image
  curl -u "$DEMO" -X POST -d '{{"Image":"nginx:latest"}}' {rest}{path}        # 403: latest refused
  curl -u "$DEMO" -X POST -d '{{"Image":"evil.example.com/x:1"}}' {rest}{path}  # 403: registry
  curl -u "$DEMO" -X POST -d '{{"Image":"acme/api:2.4.0"}}' {rest}{path}  # 403: Docker Hub's acme
  curl {rest}{path}                                      # 401: no credentials
  curl -H "Authorization: Bearer ${{DEMO#*:}}" {rest}{path}   # the secret alone is a Bearer token

The Python client's CLI, and gRPC with grpcurl (if installed):

  KUBEUPDATE_TOKEN=${{DEMO#*:}} {CLIENT} --server 127.0.0.1:{grpc_port} \\
       set default/web/app nginx:1.30 --wait
  grpcurl -plaintext -H "authorization: Bearer ${{DEMO#*:}}" \\
       -d '{{"namespace":"default","deployment":"web","container":"app"}}' \\
       127.0.0.1:{grpc_port} kubeupdate.v1.DeploymentImageService/GetContainerImage

kubectl sees the same cluster:

  kubectl --kubeconfig {cluster.kubeconfig_path} rollout history deployment/web
  kubectl --kubeconfig {cluster.kubeconfig_path} get deployments -A
"""
