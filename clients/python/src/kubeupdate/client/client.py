"""``DeploymentImageClient``: the typed, synchronous client of DeploymentImageService.

::

    from kubeupdate.client import DeploymentImageClient, RolloutFailed

    with DeploymentImageClient("kubeupdate.example.com:443", tls=True,
                               audience="kubeupdate") as client:
        client.get("default", "web", "app").image
        change = client.set("default", "web", "app", "ghcr.io/acme/web:1.4.2",
                            wait=True, timeout=300, rollback_on_failure=True,
                            reason="release 1.4.2")
        change.rollout.state          # RolloutState.COMPLETE (else RolloutFailed)

Failures raise the exceptions of :mod:`kubeupdate.client.errors`; results are
the dataclasses of :mod:`kubeupdate.client.results`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from types import TracebackType
from typing import TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration
from kubeupdate.client.conversions import (
    container_from_pb,
    image_change_from_pb,
    revision_from_pb,
    rollout_from_pb,
)
from kubeupdate.client.credentials import TokenSource, token_source
from kubeupdate.client.errors import (
    KubeUpdateError,
    RolloutFailed,
    Unauthenticated,
    Unavailable,
    from_rpc_error,
)
from kubeupdate.client.results import (
    Container,
    ContainerImage,
    ImageChange,
    Revision,
    Rollout,
    RolloutState,
)
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

DEFAULT_TIMEOUT = 30.0
# The server's default wait when `timeout` is unset.
DEFAULT_WAIT = 300.0
# Between two watches while following a waited set (a watch ends at a terminal
# state, which may be the one before the change).
_REWATCH_INTERVAL = 0.5

Request = TypeVar("Request")
Response = TypeVar("Response")
# The requests of the writes, which may wait: they name a Deployment and have `wait`.
Write = TypeVar("Write", pb.SetContainerImageRequest, pb.UndoContainerImageRequest)
ProgressCallback = Callable[[Rollout], None]


class DeploymentImageClient:
    """A client of one kubeupdate gRPC service.

    ``target`` is ``host:port``. ``tls``: None or False for plaintext, True for
    TLS with the system's roots, or ``grpc.ChannelCredentials`` (e.g. a private
    CA, or mTLS). The bearer token comes from ``token``, else
    ``KUBEUPDATE_TOKEN``, else GitHub Actions OIDC for ``audience`` (or
    ``KUBEUPDATE_AUDIENCE``); see :mod:`kubeupdate.client.credentials`.
    ``timeout`` is the deadline in seconds of each call (a waited ``set``
    gets its wait on top). ``environ`` replaces ``os.environ`` (tests).
    """

    def __init__(
        self,
        target: str,
        token: str | None = None,
        tls: bool | grpc.ChannelCredentials | None = None,
        audience: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        *,
        environ: Mapping[str, str] | None = None,
        options: tuple[tuple[str, str | int], ...] = (),
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._tokens: TokenSource = token_source(token, audience, environ)
        self._tls = tls is not None and tls is not False
        if tls is None or tls is False:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            credentials = grpc.ssl_channel_credentials() if tls is True else tls
            self._channel = grpc.secure_channel(target, credentials, options=options)
        self._stub = pb_grpc.DeploymentImageServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> DeploymentImageClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def get(self, namespace: str, deployment: str, container: str) -> ContainerImage:
        """The image of one container (init containers too)."""
        request = pb.GetContainerImageRequest(
            namespace=namespace, deployment=deployment, container=container
        )
        answer = self._call(self._stub.GetContainerImage, request)
        return ContainerImage(answer.namespace, answer.deployment, answer.container, answer.image)

    def set(
        self,
        namespace: str,
        deployment: str,
        container: str,
        image: str,
        *,
        wait: bool = False,
        timeout: float | timedelta | None = None,
        rollback_on_failure: bool = False,
        dry_run: bool = False,
        reason: str = "",
        progress: ProgressCallback | None = None,
        check: bool = True,
    ) -> ImageChange:
        """Sets the image of one container; with ``wait``, also waits for the rollout.

        ``timeout`` (seconds or a timedelta) bounds the wait on the server
        (its default: 5 minutes). ``progress`` is called with each
        intermediate rollout state while waiting. With ``check`` (default) a
        rollout that ends FAILED, TIMED_OUT, ROLLED_BACK or PAUSED raises
        :class:`RolloutFailed` carrying the answer; otherwise it is returned.
        """
        wait_seconds = _seconds(timeout)
        request = pb.SetContainerImageRequest(
            namespace=namespace,
            deployment=deployment,
            container=container,
            image=image,
            wait=wait,
            rollback_on_failure=rollback_on_failure,
            dry_run=dry_run,
            reason=reason,
        )
        if wait_seconds is not None:
            request.timeout.CopyFrom(_duration(wait_seconds))
        answer = self._write(self._stub.SetContainerImage, request, wait_seconds, progress)
        result = image_change_from_pb(answer)
        if check and result.rollout is not None and result.rollout.state.failed:
            raise RolloutFailed(result)
        return result

    def undo(
        self,
        namespace: str,
        deployment: str,
        container: str,
        *,
        to_revision: int = 0,
        wait: bool = False,
        timeout: float | timedelta | None = None,
        rollback_on_failure: bool = False,
        reason: str = "",
        progress: ProgressCallback | None = None,
        check: bool = True,
    ) -> ImageChange:
        """Sets the image the container had in an earlier revision again.

        The revision before the current one, or ``to_revision`` (as
        :meth:`history` numbers them); only this container changes, by a
        compare-and-swap. ``result.revision`` is the revision whose image was
        set again. The other arguments work as for :meth:`set`.
        """
        wait_seconds = _seconds(timeout)
        request = pb.UndoContainerImageRequest(
            namespace=namespace,
            deployment=deployment,
            container=container,
            to_revision=to_revision,
            wait=wait,
            rollback_on_failure=rollback_on_failure,
            reason=reason,
        )
        if wait_seconds is not None:
            request.timeout.CopyFrom(_duration(wait_seconds))
        answer = self._write(self._stub.UndoContainerImage, request, wait_seconds, progress)
        result = image_change_from_pb(answer)
        if check and result.rollout is not None and result.rollout.state.failed:
            raise RolloutFailed(result)
        return result

    def list(self, namespace: str, deployment: str) -> tuple[Container, ...]:
        """Every init container, then every container, with its image."""
        request = pb.ListContainerImagesRequest(namespace=namespace, deployment=deployment)
        answer = self._call(self._stub.ListContainerImages, request)
        return tuple(container_from_pb(c) for c in answer.containers)

    def rollout_status(self, namespace: str, deployment: str) -> Rollout:
        """The rollout status of a Deployment now."""
        request = pb.GetRolloutStatusRequest(namespace=namespace, deployment=deployment)
        answer = self._call(self._stub.GetRolloutStatus, request)
        return rollout_from_pb(answer.namespace, answer.deployment, answer.rollout)

    def watch(
        self, namespace: str, deployment: str, *, timeout: float | None = None
    ) -> Iterator[Rollout]:
        """The rollout status now, then each change, until COMPLETE or FAILED.

        ``timeout`` is the deadline of the whole stream (default: none).
        Closing the iterator early cancels the stream.
        """
        request = pb.WatchRolloutRequest(namespace=namespace, deployment=deployment)
        stream = self._stub.WatchRollout(request, timeout=timeout, metadata=self._metadata())
        try:
            for message in stream:
                yield rollout_from_pb(message.namespace, message.deployment, message.rollout)
        except grpc.RpcError as exc:
            raise self._error(exc) from exc
        finally:
            stream.cancel()

    def history(self, namespace: str, deployment: str) -> tuple[Revision, ...]:
        """The revisions of a Deployment, newest first."""
        request = pb.ListRevisionsRequest(namespace=namespace, deployment=deployment)
        answer = self._call(self._stub.ListRevisions, request)
        return tuple(revision_from_pb(r) for r in answer.revisions)

    def _error(self, exc: grpc.RpcError) -> KubeUpdateError:
        """The exception for a failed call, with what to change when the client knows it."""
        error = from_rpc_error(exc)
        if isinstance(error, Unauthenticated):
            error.hint = self._tokens.hint()
        elif isinstance(error, Unavailable):
            error.hint = connection_hint(self.target, error.message, tls=self._tls)
        return error

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        token = self._tokens.token()
        return (("authorization", f"Bearer {token}"),) if token else ()

    def _call(
        self,
        method: grpc.UnaryUnaryMultiCallable[Request, Response],
        request: Request,
        deadline: float | None = None,
    ) -> Response:
        try:
            return method(
                request,
                timeout=deadline if deadline is not None else self.timeout,
                metadata=self._metadata(),
            )
        except grpc.RpcError as exc:
            raise self._error(exc) from exc

    def _write(
        self,
        method: grpc.UnaryUnaryMultiCallable[Write, Response],
        request: Write,
        wait_seconds: float | None,
        progress: ProgressCallback | None,
    ) -> Response:
        """A write, with a wait when the request asks for one; ``progress`` follows it."""
        deadline = self.timeout
        if request.wait and deadline is not None:
            # The server ends the wait itself at `timeout`; give it room to answer.
            deadline += wait_seconds if wait_seconds is not None else DEFAULT_WAIT
        if not request.wait or progress is None:
            return self._call(method, request, deadline)
        return self._following(method, request, deadline, progress)

    def _following(
        self,
        method: grpc.UnaryUnaryMultiCallable[Write, Response],
        request: Write,
        deadline: float | None,
        progress: ProgressCallback,
    ) -> Response:
        """The waited write, while watches report the rollout's progress.

        The first watch opens before the change is sent: its first state is
        the rollout as it was, which is never reported (nor repeated), so the
        first report is about this change.
        """
        metadata = self._metadata()
        follower = _ProgressWatch(
            self._stub, request.namespace, request.deployment, deadline, metadata, progress
        )
        follower.open()
        future = method.future(request, timeout=deadline, metadata=metadata)
        future.add_done_callback(follower.stop)
        try:
            follower.run()
            return future.result()
        except grpc.RpcError as exc:
            raise self._error(exc) from exc
        finally:
            future.cancel()  # only matters when leaving early (e.g. Ctrl-C in progress)
            follower.stop()


class _ProgressWatch:
    """Reports PROGRESSING states of a rollout, except the one before the change, until stopped."""

    def __init__(
        self,
        stub: pb_grpc.DeploymentImageServiceStub,
        namespace: str,
        deployment: str,
        deadline: float | None,
        metadata: tuple[tuple[str, str], ...],
        progress: ProgressCallback,
    ) -> None:
        self._stub = stub
        self._namespace = namespace
        self._deployment = deployment
        self._deadline = deadline
        self._metadata = metadata
        self._progress = progress
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._stream: Iterator[pb.WatchRolloutResponse] | None = None
        self._before: Rollout | None = None

    def open(self) -> None:
        """Opens the first watch and reads the state before the change from it."""
        stream = self._watch()
        if stream is None:
            return
        try:
            first = next(stream, None)
        except grpc.RpcError:
            # Progress is a courtesy: without a watch, just wait for the answer.
            self.stop()
            return
        if first is not None:
            self._before = self._rollout(first)

    def stop(self, _: object = None) -> None:
        with self._lock:
            self._done.set()
            if isinstance(self._stream, grpc.Call):
                self._stream.cancel()

    def run(self) -> None:
        stream = self._stream
        while not self._done.is_set():
            if stream is None:
                stream = self._watch()
                if stream is None:
                    return
            try:
                for message in stream:
                    rollout = self._rollout(message)
                    # A terminal state here may be the one before the change;
                    # the call's own answer tells how the rollout ended.
                    shown = rollout.state is RolloutState.PROGRESSING and rollout != self._before
                    if shown and not self._done.is_set():
                        self._progress(rollout)
            except grpc.RpcError as exc:
                if exc.code() not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
                    return
            stream = None
            self._done.wait(_REWATCH_INTERVAL)

    def _watch(self) -> Iterator[pb.WatchRolloutResponse] | None:
        """A new watch, unless stopped."""
        request = pb.WatchRolloutRequest(namespace=self._namespace, deployment=self._deployment)
        with self._lock:
            if self._done.is_set():
                return None
            self._stream = self._stub.WatchRollout(
                request, timeout=self._deadline, metadata=self._metadata
            )
            return self._stream

    def _rollout(self, message: pb.WatchRolloutResponse) -> Rollout:
        return rollout_from_pb(self._namespace, self._deployment, message.rollout)


def connection_hint(target: str, details: str, *, tls: bool) -> str:
    """What a connection failure's details mean for the user, when they are recognised."""
    if "http1.x server" in details:
        return (
            f"{target} answers HTTP/1.1: this looks like the REST port of kubeupdate's "
            "gateway; kubeupdate-client speaks gRPC: give --server the gRPC port "
            "(kubeupdate serve --grpc-port, 50051 by default)"
        )
    if tls and "WRONG_VERSION_NUMBER" in details:
        return f"{target} does not speak TLS: give --insecure if it is a plaintext gRPC port"
    return ""


def _seconds(value: float | timedelta | None) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromTimedelta(timedelta(seconds=seconds))
    return duration
