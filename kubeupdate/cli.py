"""The ``kubeupdate`` command line: ``serve``, ``demo``, ``devcluster``, ``token``, ``policy``,
``certs``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import grpc
from kubeupdate.client.cli import VersionAction  # one --version for both commands

from gateway.server import add_limit_arguments, limits_from_args
from gateway.settings import GatewaySettings
from kubeupdate import logs, loops, service
from kubeupdate.auth import cli as token_cli
from kubeupdate.auth.config import SecurityConfigError
from kubeupdate.kube.errors import CredentialsError
from kubeupdate.loops import EVENT_LOOPS
from kubeupdate.service import ServerConfig

log = logging.getLogger("kubeupdate")


#: Sub-commands that bring their own parser; the rest of the command line is theirs.
DELEGATED = ("demo", "devcluster")

#: What to say where the emulator is not installed (the production image).
NO_DEVCLUSTER = (
    "kubeupdate {command}: the devcluster (the Kubernetes API emulator for tests and the demo) "
    "is not installed here; from a clone of the repository, run `make demo` or "
    "`pip install ./devcluster`"
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in DELEGATED:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    logs.configure(args.log_level, args.log_format)
    if args.command in DELEGATED:
        return run_with_devcluster(args.command, rest)
    # serve runs its service half as a child with the same command line.
    args.argv = list(sys.argv[1:] if argv is None else argv)
    code: int = args.run(args)
    return code


def run_with_devcluster(command: str, argv: list[str]) -> int:
    """``demo`` and ``devcluster``: they need the emulator, its own distribution.

    Imported only here, so ``serve`` never loads it, and a missing emulator is
    one clear line instead of a traceback.
    """
    try:
        if command == "demo":
            from kubeupdate import demo

            return demo.run(demo.build_parser(f"kubeupdate {command}").parse_args(argv))
        from devcluster import cli as devcluster_cli
    except ModuleNotFoundError as exc:
        if exc.name != "devcluster" and not (exc.name or "").startswith("devcluster."):
            raise
        print(NO_DEVCLUSTER.format(command=command), file=sys.stderr)
        return 2
    prog = f"kubeupdate {command}"
    return devcluster_cli.run(devcluster_cli.build_parser(prog).parse_args(argv), prog)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubeupdate",
        description="Change the image of one container in one Kubernetes Deployment.",
    )
    parser.add_argument("--version", action=VersionAction, distribution="kubeupdate")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.add_argument(
        "--log-format",
        default="text",
        choices=logs.FORMATS,
        help="text lines for a terminal, or one JSON object per line for a log collector "
        "(default: %(default)s)",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND", dest="command")

    serve_parser = commands.add_parser("serve", help="run the gRPC service and the REST gateway")
    add_serve_arguments(serve_parser)
    serve_parser.set_defaults(run=run_serve)

    # Their flags (and --help) are parsed by the command itself, which needs the devcluster.
    commands.add_parser(
        "demo",
        help="run everything against an embedded devcluster with sample Deployments",
        add_help=False,
    )
    commands.add_parser(
        "devcluster", help="run the Kubernetes API emulator on its own", add_help=False
    )

    token_parser = commands.add_parser("token", help="make static tokens for the tokens file")
    token_cli.add_arguments(token_parser)
    policy_parser = commands.add_parser(
        "policy", help="check a policy file; explain what it allows a caller"
    )
    token_cli.add_policy_arguments(policy_parser)
    certs_parser = commands.add_parser(
        "certs", help="the CA and certificates of the mutual TLS between gateway and service"
    )
    token_cli.add_certificate_arguments(certs_parser)
    return parser


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    halves = parser.add_mutually_exclusive_group()
    halves.add_argument(
        "--only",
        choices=["grpc", "gateway"],
        help="run just the gRPC service or just the REST gateway (default: both, the "
        "service in a child process)",
    )
    halves.add_argument(
        "--one-process",
        action="store_true",
        help="run both in this one process: less memory, at most one core for both",
    )
    parser.add_argument(
        "--event-loop",
        choices=EVENT_LOOPS,
        default=EVENT_LOOPS[0],
        help="the event loop to run on (default: %(default)s; uvloop falls back to asyncio's "
        "where it is not installed)",
    )
    service.add_arguments(parser)
    parser.add_argument(
        "--external",
        action="store_true",
        help="use ~/.kube/config (the original kube-update-api's -external)",
    )
    rest = parser.add_argument_group("REST gateway")
    defaults = GatewaySettings()
    rest.add_argument(
        "--http-host", default=defaults.host, help="address to listen on (default: %(default)s)"
    )
    rest.add_argument(
        "--http-port",
        type=int,
        default=defaults.port,
        help="port; 0 picks a free one (default: %(default)s)",
    )
    rest.add_argument(
        "--upstream",
        help="gRPC target to call (default: the service started alongside, "
        f"or 127.0.0.1:{ServerConfig.port} with --only gateway)",
    )
    rest.add_argument(
        "--call-timeout",
        type=float,
        default=defaults.call_timeout,
        help="deadline of each forwarded call in seconds (default: %(default)s)",
    )
    rest.add_argument(
        "--forwarded-allow-ips",
        default=defaults.forwarded_allow_ips,
        help="proxies (an ingress, a tunnel) trusted for X-Forwarded-For: addresses or "
        "networks, comma-separated, '*' for any (default: none)",
    )
    add_limit_arguments(rest, prefix="http-")
    rest.add_argument(
        "--no-access-log",
        action="store_true",
        help="do not log one line per REST request (they cost CPU under heavy load)",
    )
    rest.add_argument(
        "--upstream-ca",
        type=Path,
        help="call the service over TLS, verifying its certificate with this CA "
        "(default with both servers and --tls-cert: that certificate)",
    )
    rest.add_argument(
        "--upstream-cert", type=Path, help="client certificate for a service that requires mTLS"
    )
    rest.add_argument("--upstream-key", type=Path, help="the private key of --upstream-cert")


def run_serve(args: argparse.Namespace) -> int:
    if args.external and args.kubeconfig is None:
        args.kubeconfig = Path.home() / ".kube" / "config"
    try:
        config = service.config_from(args) if args.only != "gateway" else None
    except ValueError as exc:
        print(f"kubeupdate serve: {exc}", file=sys.stderr)
        return 2
    gateway = None
    if args.only != "grpc":
        # An empty upstream means the service started alongside.
        upstream = args.upstream or ("" if config else f"127.0.0.1:{ServerConfig.port}")
        gateway = GatewaySettings(
            upstream=upstream,
            host=args.http_host,
            port=args.http_port,
            call_timeout=args.call_timeout,
            forwarded_allow_ips=args.forwarded_allow_ips,
            access_log=not args.no_access_log,
            metrics=not args.no_metrics,
            **limits_from_args(args, prefix="http_"),
            # A waited change may take the longest wait the service allows.
            wait_call_timeout=args.max_wait_timeout + args.call_timeout,
        )
    try:
        channel_credentials = upstream_credentials(args)
        if config is not None and gateway is not None and not args.one_process:
            return run_split(args, config, gateway, channel_credentials)
        loops.run(run_here(config, gateway, channel_credentials), args.event_loop)
    except CredentialsError as exc:
        print(f"kubeupdate: {exc}", file=sys.stderr)  # it says which credentials
        if config is not None and config.kubeconfig is None:
            print(
                "Outside a cluster, give --kubeconfig PATH (or --external for ~/.kube/config).",
                file=sys.stderr,
            )
        return 2
    except SecurityConfigError as exc:
        print(f"kubeupdate: security settings: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"kubeupdate: {exc}", file=sys.stderr)
        return 2
    return 0


async def run_here(
    config: ServerConfig | None,
    gateway: GatewaySettings | None,
    channel_credentials: grpc.ChannelCredentials | None,
) -> None:
    """The halves asked for, in this process; stopped with the parent that started it, if any."""
    # Imported here: with --only gateway, the service's stack stays unloaded.
    from kubeupdate.serving import serve_all
    from kubeupdate.supervisor import ParentLink

    stop = asyncio.Event()
    link = ParentLink.from_environment()
    if link is not None:
        link.watch(stop)
        if config is not None and link.proxy_key is not None:
            # The parent's gateway: believed when it names its clients.
            config = replace(config, auth=replace(config.auth, proxy_key=link.proxy_key))
    try:
        await serve_all(
            config,
            gateway,
            channel_credentials=channel_credentials,
            stop=stop,
            ready=None if link is None else link.ready,
        )
    finally:
        if link is not None:
            link.close()


def run_split(
    args: argparse.Namespace,
    config: ServerConfig,
    gateway: GatewaySettings,
    channel_credentials: grpc.ChannelCredentials | None,
) -> int:
    """Both halves: the service in a child process, the gateway here."""
    from kubeupdate.serving import alongside_credentials
    from kubeupdate.supervisor import serve_split

    if channel_credentials is None:
        channel_credentials = alongside_credentials(config)
    return loops.run(
        serve_split(
            [*args.argv, "--only", "grpc"],
            gateway,
            service_host=config.host,
            grace=config.grace,
            channel_credentials=channel_credentials,
        ),
        args.event_loop,
    )


def upstream_credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """TLS (and mTLS) credentials for the gateway's channel, when asked for."""
    if args.upstream_ca is None and args.upstream_cert is None:
        return None
    if (args.upstream_cert is None) != (args.upstream_key is None):
        raise ValueError("--upstream-cert and --upstream-key go together")
    return grpc.ssl_channel_credentials(
        root_certificates=args.upstream_ca.read_bytes() if args.upstream_ca else None,
        private_key=args.upstream_key.read_bytes() if args.upstream_key else None,
        certificate_chain=args.upstream_cert.read_bytes() if args.upstream_cert else None,
    )
