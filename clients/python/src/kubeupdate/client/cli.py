"""``kubeupdate-client``: the command line of the kubeupdate Python client.

Usage::

    kubeupdate-client [--server HOST:PORT] [--token T] [--tls|--insecure] [--json] COMMAND
    kubeupdate-client get     NAMESPACE/DEPLOYMENT/CONTAINER
    kubeupdate-client set     NAMESPACE/DEPLOYMENT/CONTAINER IMAGE
                              [--wait [--timeout 5m] [--rollback-on-failure]]
                              [--dry-run] [--reason TEXT]
    kubeupdate-client undo    NAMESPACE/DEPLOYMENT/CONTAINER [--to-revision N]
                              [--wait [--timeout 5m] [--rollback-on-failure]]
                              [--reason TEXT]
    kubeupdate-client list    NAMESPACE/DEPLOYMENT
    kubeupdate-client status  NAMESPACE/DEPLOYMENT
    kubeupdate-client watch   NAMESPACE/DEPLOYMENT
    kubeupdate-client history NAMESPACE/DEPLOYMENT
    kubeupdate-client --version

The server defaults to ``$KUBEUPDATE_SERVER``, else ``127.0.0.1:50051``;
TLS is used unless the server is a loopback address or ``--insecure`` is
given. The token comes from ``--token``, ``$KUBEUPDATE_TOKEN``, or inside
GitHub Actions an OIDC token for ``--audience`` (``$KUBEUPDATE_AUDIENCE``,
else ``kubeupdate``).
Results go to stdout (``--json``: one JSON document, or one per line for
``watch``); progress and errors go to stderr.

0    success (``status``/``watch``: the rollout is not failed)
1    any other error (the server failed, an unexpected answer), and the
     server's own Kubernetes access refused (reasons
     KUBERNETES_PERMISSION_MISSING, KUBERNETES_CREDENTIALS_INVALID): an
     operator must fix the server, retrying will not help
2    usage error: bad command line, or the server refused the request as
     invalid (INVALID_ARGUMENT)
3    the rollout failed: FAILED, TIMED_OUT, ROLLED_BACK or PAUSED (``set --wait``,
     ``undo --wait``, ``status``, ``watch``)
4    authentication failed or permission denied (UNAUTHENTICATED,
     PERMISSION_DENIED, or no token could be obtained)
5    not found: the namespace, the Deployment or the container
6    unavailable: the server or Kubernetes cannot be reached, is
     overloaded, or the deadline passed (UNAVAILABLE, RESOURCE_EXHAUSTED,
     DEADLINE_EXCEEDED); retrying later may work
7    the change was refused: the Deployment kept changing (ABORTED, safe to
     retry) or Kubernetes rejected it (FAILED_PRECONDITION)
130  interrupted (Ctrl-C); a change already sent may still happen
===  ==================================================================

The codes are chosen by the error's gRPC code and, where the code alone is
too coarse, its ErrorInfo reason (``REASON_EXIT_CODES``); never by its
sentence. An error line names both: ``kubeupdate-client: NotFound
(CONTAINER_NOT_FOUND): ...``.
=======
Exit codes (:class:`ExitCode`) are chosen by the error's gRPC code and,
where the code alone would mislead, its ErrorInfo reason
(``REASON_EXIT_CODES``); never by its sentence. The one table of exit codes
and the reasons behind each is in the client's README ("Exit codes and
reasons"); a test checks it against :class:`ExitCode` and every value of the
contract's ``ErrorReason``. An error line names the kind and the reason:
``kubeupdate-client: NotFound (CONTAINER_NOT_FOUND): ...``; with ``--json``,
stdout also gets ``{"error": {"kind", "code", "reason", "message",
"metadata", "hint", "exit_code"}}`` (one line for ``watch``).
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import ipaddress
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import grpc
from kubeupdate.client.client import (
    DEFAULT_TIMEOUT,
    DeploymentImageClient,
    NoticeCallback,
    ProgressCallback,
)
from kubeupdate.client.durations import format_duration, parse_duration
from kubeupdate.client.errors import (
    AuthError,
    Conflict,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    KubeUpdateError,
    NotFound,
    RolloutFailed,
    Unavailable,
)
from kubeupdate.client.progress import ProgressDisplay, describe
from kubeupdate.client.results import (
    Container,
    ImageChange,
    Revision,
    Rollout,
    RolloutState,
    to_json,
)

PROG = "kubeupdate-client"
SERVER_ENV = "KUBEUPDATE_SERVER"
DEFAULT_SERVER = "127.0.0.1:50051"


class ExitCode(enum.IntEnum):
    """The exit codes (the client's README has them with their reasons)."""

    OK = 0  # success (status/watch: the rollout has not failed)
    ERROR = 1  # anything else, the server's own Kubernetes access among it
    USAGE = 2  # a bad command line, or a request the server finds invalid
    ROLLOUT_FAILED = 3  # FAILED, TIMED_OUT or ROLLED_BACK
    AUTH = 4  # not authenticated, or not allowed
    NOT_FOUND = 5  # namespace, Deployment, container or revision
    UNAVAILABLE = 6  # unreachable, overloaded, deadline passed: retrying may work
    REFUSED = 7  # the change was refused (kept changing, or Kubernetes said no)
    INTERRUPTED = 130  # Ctrl-C; a change already sent may still happen


# Checked in order: the first class the error is an instance of decides.
EXIT_CODE_FOR_ERROR: tuple[tuple[type[KubeUpdateError], ExitCode], ...] = (
    (RolloutFailed, ExitCode.ROLLOUT_FAILED),
    (InvalidArgument, ExitCode.USAGE),
    (AuthError, ExitCode.AUTH),
    (NotFound, ExitCode.NOT_FOUND),
    (Unavailable, ExitCode.UNAVAILABLE),
    (DeadlineExceeded, ExitCode.UNAVAILABLE),
    (Conflict, ExitCode.REFUSED),
    (FailedPrecondition, ExitCode.REFUSED),
)


# Reasons whose code would mislead.
REASON_EXIT_CODES: dict[str, ExitCode] = {
    "KUBERNETES_PERMISSION_MISSING": ExitCode.ERROR,  # PERMISSION_DENIED, but not the caller's
    "KUBERNETES_CREDENTIALS_INVALID": ExitCode.ERROR,  # UNAVAILABLE, but retrying won't help
    # RESOURCE_EXHAUSTED, but the caller's credentials failed: fix them, not the timing.
    "AUTHENTICATION_BACKOFF": ExitCode.AUTH,
}


class UsageError(Exception):
    """A command line that parses but makes no sense (reported like argparse's)."""


def exit_code_for(error: KubeUpdateError) -> ExitCode:
    if error.reason in REASON_EXIT_CODES:
        return REASON_EXIT_CODES[error.reason]
    for kind, code in EXIT_CODE_FOR_ERROR:
        if isinstance(error, kind):
            return code
    return ExitCode.ERROR


def run() -> int:
    """The ``kubeupdate-client`` process: :func:`main`, with gRPC's C core kept quiet."""
    _quiet_grpc_core()
    return main()


def _quiet_grpc_core() -> None:
    """Keeps gRPC's C core from logging on the terminal, unless asked to.

    It writes to file descriptor 2 on its own (say, a TLS handshake failure)
    before our error says the same in words. Descriptor 2 goes to the null
    device; Python's ``sys.stderr`` keeps writing where it did.
    """
    if "GRPC_VERBOSITY" in os.environ or "GRPC_TRACE" in os.environ:
        return  # someone is debugging: let it speak
    os.environ["GRPC_VERBOSITY"] = "NONE"
    try:
        ours = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    sys.stderr.flush()
    os.dup2(null, 2)
    os.close(null)
    sys.stderr = open(  # noqa: SIM115 - stays open for the life of the process
        ours, "w", encoding=sys.stderr.encoding, errors="backslashreplace", buffering=1
    )


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Runs one command; returns its exit code (never raises SystemExit)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    args: argparse.Namespace | None = None
    try:
        # argparse prints help and usage errors on sys.stdout/sys.stderr itself.
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
        return int(Command(args, out, err)())
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    except UsageError as exc:
        parser.print_usage(err)
        err.write(f"{PROG}: error: {exc}\n")
        return ExitCode.USAGE
    except KubeUpdateError as exc:
        kind = f"{type(exc).__name__} ({exc.reason})" if exc.reason else type(exc).__name__
        message = exc.message
        if isinstance(exc, RolloutFailed) and exc.result.rollout is not None:
            # The answer, with the rollout's sentence, is on stdout already.
            rollout = exc.result.rollout
            message = rollout.state.name + (f" ({rollout.reason})" if rollout.reason else "")
        err.write(f"{PROG}: {kind}: {message}\n")
        if exc.hint:
            err.write(f"{PROG}: hint: {exc.hint}\n")
        code = exit_code_for(exc)
        # A failed rollout's answer is the JSON document already printed.
        if args is not None and args.json and not isinstance(exc, RolloutFailed):
            document = {"error": {**error_json(exc), "exit_code": int(code)}}
            indent = None if args.command == "watch" else 2  # watch prints JSON lines
            out.write(json.dumps(document, indent=indent) + "\n")
            out.flush()
        return code
    except KeyboardInterrupt:
        err.write(f"{PROG}: interrupted\n")
        return ExitCode.INTERRUPTED


def error_json(error: KubeUpdateError) -> dict[str, Any]:
    """An error as ``--json`` prints it: what programs switch on, and the sentence."""
    return {
        "kind": type(error).__name__,
        "code": error.code.name if error.code is not None else None,
        "reason": error.reason,
        "message": error.message,
        "metadata": error.metadata,
        "hint": error.hint,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Read and change container images of Kubernetes Deployments "
        "through a kubeupdate server.",
        epilog="exit codes: 0 ok, 1 error, 2 usage/invalid request, 3 rollout failed, "
        "4 authentication/permission, 5 not found, 6 unavailable/deadline, 7 refused/conflict, "
        "130 interrupted",
    )
    parser.add_argument("--version", action=VersionAction, distribution="kubeupdate-client")
    _add_connection_arguments(parser, suppress=False)
    # The same options after the command too; SUPPRESS keeps the values given before it.
    common = argparse.ArgumentParser(add_help=False)
    _add_connection_arguments(common, suppress=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    get = commands.add_parser("get", parents=[common], help="print a container's image")
    get.add_argument("target", metavar="NAMESPACE/DEPLOYMENT/CONTAINER")

    set_ = commands.add_parser("set", parents=[common], help="set a container's image")
    set_.add_argument("target", metavar="NAMESPACE/DEPLOYMENT/CONTAINER")
    set_.add_argument("image", metavar="IMAGE")
    _add_wait_arguments(set_, "set the previous image again when the rollout fails (with --wait)")
    set_.add_argument(
        "--dry-run", action="store_true", help="validate in Kubernetes but store nothing"
    )

    undo = commands.add_parser(
        "undo",
        parents=[common],
        help="set a container's image of an earlier revision again (as kubectl rollout undo)",
    )
    undo.add_argument("target", metavar="NAMESPACE/DEPLOYMENT/CONTAINER")
    undo.add_argument(
        "--to-revision",
        type=int,
        default=0,
        metavar="N",
        help="the revision whose image to set again, as `history` lists them "
        "(default: the one before the current one)",
    )
    _add_wait_arguments(undo, "set the image from before the undo again when its rollout fails")

    for name, text in (
        ("list", "list the containers of a Deployment and their images"),
        ("status", "print the rollout status of a Deployment"),
        ("watch", "follow the rollout of a Deployment until it completes or fails"),
        ("history", "list the revisions of a Deployment"),
    ):
        sub = commands.add_parser(name, parents=[common], help=text)
        sub.add_argument("target", metavar="NAMESPACE/DEPLOYMENT")
    return parser


def _add_wait_arguments(parser: argparse.ArgumentParser, rollback: str) -> None:
    """The options of a write that may wait for its rollout (set, undo)."""
    parser.add_argument("--wait", action="store_true", help="wait for the rollout to finish")
    parser.add_argument(
        "--timeout",
        type=positive_duration,
        help="longest wait, e.g. 300, 90s, 5m, 1h30m (with --wait; server default 5m)",
    )
    parser.add_argument("--rollback-on-failure", action="store_true", help=rollback)
    parser.add_argument("--reason", default="", help="why (recorded as the change cause)")


def _add_connection_arguments(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("connection")
    group.add_argument(
        "--server",
        default=default(os.environ.get(SERVER_ENV, DEFAULT_SERVER)),
        help=f"gRPC address host:port (default: ${SERVER_ENV} or {DEFAULT_SERVER})",
    )
    group.add_argument(
        "--token", default=default(None), help="bearer token (default: $KUBEUPDATE_TOKEN)"
    )
    group.add_argument(
        "--audience",
        default=default(None),
        help="audience of the GitHub OIDC token (default: $KUBEUPDATE_AUDIENCE)",
    )
    tls = group.add_mutually_exclusive_group()
    tls.add_argument(
        "--tls",
        dest="tls",
        action="store_const",
        const=True,
        default=default(None),
        help="use TLS (default: TLS unless the server is a loopback address)",
    )
    tls.add_argument(
        "--insecure",
        dest="tls",
        action="store_const",
        const=False,
        default=default(None),
        help="plaintext gRPC",
    )
    group.add_argument(
        "--ca-file", type=Path, default=default(None), help="CA bundle to verify the server with"
    )
    # The default is written out: under SUPPRESS, "%(default)s" has nothing to show.
    group.add_argument(
        "--deadline",
        type=positive_duration,
        default=default(DEFAULT_TIMEOUT),
        help=f"how long each call may take, a wait excluded, e.g. 30, 30s, 2m "
        f"(default: {DEFAULT_TIMEOUT:g}s)",
    )
    group.add_argument(
        "--json", action="store_true", default=default(False), help="print results as JSON"
    )
    group.add_argument(
        "--quiet", "-q", action="store_true", default=default(False), help="no progress display"
    )


def positive_duration(text: str) -> float:
    """Seconds in ``text`` (``300``, ``90s``, ``5m``, ``1h30m``), for argparse."""
    try:
        seconds = float(parse_duration(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"the duration must be positive: {text!r}")
    return seconds


def split_target(text: str, parts: int) -> list[str]:
    """``ns/deploy[/container]`` split into ``parts`` non-empty names."""
    names = text.split("/")
    if len(names) != parts or not all(names):
        shape = "NAMESPACE/DEPLOYMENT" + ("/CONTAINER" if parts == 3 else "")
        raise UsageError(f"expected {shape}, got {text!r}")
    return names


def is_loopback(target: str) -> bool:
    host = target.rsplit(":", 1)[0] if ":" in target else target
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Command:
    """One parsed command line, ready to run against the server."""

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.out = out
        self.err = err

    def __call__(self) -> ExitCode:
        args = self.args
        if args.command in ("set", "undo"):
            self._check_wait_flags()
        names = split_target(args.target, 3 if args.command in ("get", "set", "undo") else 2)
        with self._client() as client:
            if args.command == "get":
                return self._get(client, *names)
            if args.command == "set":
                return self._set(client, names)
            if args.command == "undo":
                return self._undo(client, names)
            if args.command == "list":
                return self._print(client.list(*names), self._containers_text)
            if args.command == "status":
                rollout = client.rollout_status(*names)
                self._print(rollout, describe)
                return ExitCode.ROLLOUT_FAILED if rollout.state.failed else ExitCode.OK
            if args.command == "watch":
                return self._watch(client, *names)
            return self._print(client.history(*names), self._history_text)

    def _check_wait_flags(self) -> None:
        args = self.args
        if not args.wait:
            for flag, given in (
                ("--timeout", args.timeout is not None),
                ("--rollback-on-failure", args.rollback_on_failure),
            ):
                if given:
                    raise UsageError(f"{flag} needs --wait")
        elif getattr(args, "dry_run", False):
            raise UsageError("--dry-run cannot be combined with --wait")
        if getattr(args, "to_revision", 0) < 0:
            raise UsageError("--to-revision must be a revision number (see history)")

    def _client(self) -> DeploymentImageClient:
        args = self.args
        tls: bool | grpc.ChannelCredentials = (
            args.tls if args.tls is not None else not is_loopback(args.server)
        )
        if args.ca_file is not None:
            try:
                roots = args.ca_file.read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read --ca-file: {exc}") from exc
            tls = grpc.ssl_channel_credentials(root_certificates=roots)
        return DeploymentImageClient(
            args.server, token=args.token, tls=tls, audience=args.audience, timeout=args.deadline
        )

    def _get(self, client: DeploymentImageClient, *names: str) -> ExitCode:
        found = client.get(*names)
        # Plain output is the image alone, for IMAGE=$(kubeupdate-client get ...).
        return self._print(found, lambda value: value.image)

    def _set(self, client: DeploymentImageClient, names: Sequence[str]) -> ExitCode:
        args = self.args
        namespace, deployment, container = names

        def change(progress: ProgressCallback | None, notify: NoticeCallback) -> ImageChange:
            return client.set(
                namespace,
                deployment,
                container,
                args.image,
                wait=args.wait,
                timeout=args.timeout,
                rollback_on_failure=args.rollback_on_failure,
                dry_run=args.dry_run,
                reason=args.reason,
                progress=progress,
                notify=notify,
            )

        return self._write(change, f"{'/'.join(names)}: {args.image}")

    def _undo(self, client: DeploymentImageClient, names: Sequence[str]) -> ExitCode:
        args = self.args
        namespace, deployment, container = names

        def change(progress: ProgressCallback | None, notify: NoticeCallback) -> ImageChange:
            return client.undo(
                namespace,
                deployment,
                container,
                to_revision=args.to_revision,
                wait=args.wait,
                timeout=args.timeout,
                rollback_on_failure=args.rollback_on_failure,
                reason=args.reason,
                progress=progress,
                notify=notify,
            )

        revision = f"revision {args.to_revision}" if args.to_revision else "the previous revision"
        return self._write(change, f"{'/'.join(names)}: back to the image of {revision}")

    def _write(
        self,
        change: Callable[[ProgressCallback | None, NoticeCallback], ImageChange],
        description: str,
    ) -> ExitCode:
        """Runs a write that may wait, showing its progress; prints the result."""
        args = self.args
        display = ProgressDisplay(self.err)
        if args.wait and not args.quiet:
            display.start(self._waiting_for(description))
        try:
            # A hand-over is said even with --quiet: the wait took another way.
            result = change(None if args.quiet else display.update, display.say)
        except RolloutFailed as failed:
            display.finish()
            self._print(failed.result, self._change_text)
            raise
        finally:
            display.finish()
        return self._print(result, self._change_text)

    def _waiting_for(self, change: str) -> str:
        """The first line of a waited change: which one, how long, and what on failure."""
        args = self.args
        line = f"{change}, waiting"
        if args.timeout is not None:
            line += f" up to {format_duration(args.timeout)}"
        line += " for the rollout"
        if args.rollback_on_failure:
            line += " (rollback on failure)"
        return line

    def _watch(self, client: DeploymentImageClient, *names: str) -> ExitCode:
        last: Rollout | None = None
        display = None if self.args.json else ProgressDisplay(self.out)
        try:
            for rollout in client.watch(*names):
                last = rollout
                if display is None:
                    self.out.write(json.dumps(to_json(rollout)) + "\n")
                    self.out.flush()
                else:
                    display.update(rollout)
        finally:
            if display is not None:
                display.finish()
        if last is not None and last.state.failed:
            return ExitCode.ROLLOUT_FAILED
        return ExitCode.OK

    def _print(self, value: Any, text: Any) -> ExitCode:
        if self.args.json:
            self.out.write(json.dumps(to_json(value), indent=2) + "\n")
        else:
            self.out.write(f"{text(value)}\n")
        self.out.flush()
        return ExitCode.OK

    @staticmethod
    def _change_text(change: ImageChange) -> str:
        where = f"{change.namespace}/{change.deployment}/{change.container}"
        if change.dry_run:
            line = f"{where}: {change.previous_image} -> {change.image} (dry run, nothing stored)"
        elif change.changed:
            # After a rollback `image` is what runs again; the change was to the failed one.
            applied = change.rollout.failed_image if change.rollout else ""
            line = f"{where}: {change.previous_image} -> {applied or change.image}"
            of_revision = f"revision {change.revision}, " if change.revision else ""
            line += f" ({of_revision}generation {change.generation})"
        else:
            line = f"{where}: already {change.image}, nothing changed"
        rollout = change.rollout
        if rollout is not None:
            line += f"\nrollout {rollout.state.name}"
            if rollout.message or rollout.reason:
                line += f": {rollout.message or rollout.reason}"
            if rollout.state is RolloutState.ROLLED_BACK:
                line += f"\nrolled back: {rollout.failed_image} -> {rollout.restored_image}"
        if change.rollout_id:
            line += f"\nfollowed after a hand-over as guarded rollout {change.rollout_id}"
        return line

    @staticmethod
    def _containers_text(containers: Sequence[Container]) -> str:
        rows = [(c.name, c.image + ("  (init)" if c.init_container else "")) for c in containers]
        return _table(("NAME", "IMAGE"), rows)

    @staticmethod
    def _history_text(revisions: Sequence[Revision]) -> str:
        rows = [
            (
                str(r.revision),
                ",".join(f"{c.name}={c.image}" for c in r.containers),
                r.change_cause or "<none>",
            )
            for r in revisions
        ]
        return _table(("REVISION", "IMAGES", "CHANGE-CAUSE"), rows)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    lines = []
    for row in (header, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)


class VersionAction(argparse.Action):
    """``--version``: print the installed distribution's version and exit.

    The metadata is read only when asked: importing importlib.metadata adds
    about 25 ms to the start of every other command.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, *, distribution: str) -> None:
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help=f"print the version of the {distribution} distribution and exit",
        )
        self.distribution = distribution

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        from importlib.metadata import version

        sys.stdout.write(f"{parser.prog} {version(self.distribution)}\n")
        parser.exit()
