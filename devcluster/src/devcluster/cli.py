"""``devcluster``: the Kubernetes API emulator as a standalone server.

    devcluster --seed kubeupdate/demo-deployments.yaml --kubeconfig-out dc.kubeconfig
    kubectl --kubeconfig dc.kubeconfig get deployments -A

Runs until SIGINT or SIGTERM, then exits 0. ``kubeupdate devcluster`` runs the
same command when this distribution is installed.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import yaml

from devcluster.cluster import DevCluster
from devcluster.controllers import StaticCatalog
from devcluster.manifests import load_manifests

#: kube-apiserver's secure port; ``--port 0`` picks a free one.
DEFAULT_PORT = 6443


def main(argv: Sequence[str] | None = None) -> int:
    """The ``devcluster`` console script."""
    logging.basicConfig(level=logging.WARNING)
    return run(build_parser().parse_args(argv))


def build_parser(prog: str = "devcluster") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Run the Kubernetes API emulator.")
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)"
    )
    parser.add_argument(
        "--seed",
        type=Path,
        help="multi-document YAML of Namespaces and Deployments to create at start",
    )
    parser.add_argument(
        "--kubeconfig-out",
        type=Path,
        help="where to write the kubeconfig (default: a temporary file, removed on exit)",
    )
    parser.add_argument(
        "--insecure-http",
        action="store_true",
        help="serve plain HTTP without authentication (default: HTTPS and a bearer token)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per real second for rollouts (default 1; 0 stops time)",
    )
    parser.add_argument(
        "--no-events",
        action="store_true",
        help="write no Events (the controllers and the kubelet write them by default)",
    )
    parser.add_argument(
        "--bookmark-interval",
        type=positive_seconds,
        default=1.0,
        help="real seconds between the bookmarks of a watch that asked for them (default 1; "
        "kube-apiserver sends one a minute)",
    )
    parser.add_argument(
        "--image-catalog",
        type=Path,
        help="YAML file of the repositories and tags that exist (default: the shipped catalogue;"
        " see the devcluster README)",
    )


def positive_seconds(text: str) -> float:
    """A number of seconds above zero (argparse says which option was wrong)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not seconds > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be above 0 seconds: {text!r}")
    return seconds


def run(args: argparse.Namespace, prog: str = "devcluster") -> int:
    try:
        seed = load_manifests(args.seed) if args.seed else []
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"{prog}: cannot read the seed: {exc}", file=sys.stderr)
        return 2
    try:
        catalog = StaticCatalog.load(args.image_catalog) if args.image_catalog else None
    except (OSError, ValueError) as exc:
        print(f"{prog}: cannot read the image catalogue: {exc}", file=sys.stderr)
        return 2
    cluster = DevCluster(
        tls=not args.insecure_http,
        speed=args.speed,
        seed=seed,
        host=args.host,
        port=args.port,
        image_catalog=catalog,
        record_events=not args.no_events,
        bookmark_interval=args.bookmark_interval,
    )
    try:
        cluster.start()
    except OSError as exc:
        print(f"{prog}: cannot listen: {exc}", file=sys.stderr)
        print("Another program may hold the port: try --port 0.", file=sys.stderr)
        return 2
    except Exception as exc:  # a bad seed object: say which, as kubectl would
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    kubeconfig = args.kubeconfig_out or cluster.kubeconfig_path
    try:
        if args.kubeconfig_out:
            cluster.write_kubeconfig(args.kubeconfig_out)
        print(banner(cluster, kubeconfig), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        cluster.stop()
        if args.kubeconfig_out:
            # Its token dies with the server; a stale file would only mislead.
            args.kubeconfig_out.unlink(missing_ok=True)
    print("devcluster stopped.", flush=True)
    return 0


def banner(cluster: DevCluster, kubeconfig: Path) -> str:
    auth = "HTTPS, bearer token" if cluster.tls else "plain HTTP, no authentication"
    if cluster.clock.speed == 0:
        time = f"""
Simulated time stands still (--speed 0). Move it from anywhere:

  echo '{{"seconds": 30}}' | kubectl --kubeconfig {kubeconfig} create --raw \\
       /devcluster/v1/clock/advance -f -
"""
    else:
        time = f"\nSimulated time runs at {cluster.clock.speed:g}x (GET /devcluster/v1/clock).\n"
    return f"""devcluster is serving the Kubernetes API at {cluster.url} ({auth}).
kubeconfig: {kubeconfig}  (context "devcluster")

  kubectl --kubeconfig {kubeconfig} get deployments -A
  export KUBECONFIG={kubeconfig}
{time}
Ctrl-C stops it."""
