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
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import timedelta
from types import TracebackType
from typing import TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration
from kubeupdate.client.conversions import (
    container_from_pb,
    guarded_rollout_from_pb,
    image_change_from_pb,
    revision_from_pb,
    rollout_from_pb,
)
from kubeupdate.client.credentials import TokenSource, token_source
from kubeupdate.client.errors import (
    LOCAL_REASONS,
    DeadlineExceeded,
    KubeUpdateError,
    NotFound,
    RolloutFailed,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    from_rpc_error,
)
from kubeupdate.client.handovers import (
    GUARDED_ROLLOUT_NOT_FOUND,
    HandOver,
    may_have_written,
)
from kubeupdate.client.results import (
    Container,
    ContainerImage,
    GuardedRollout,
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
# After a hand-over: the time a replica gets to answer GetGuardedRollout once
# its wait ends, and the pause before asking again when a replica went away.
_ANSWER_ROOM = 2.0
_RETRY_PAUSE = 0.5

Request = TypeVar("Request")
Response = TypeVar("Response")
# The requests of the writes, which may wait: they name a Deployment and have `wait`.
Write = TypeVar("Write", pb.SetContainerImageRequest, pb.UndoContainerImageRequest)
WriteResponse = TypeVar(
    "WriteResponse", pb.SetContainerImageResponse, pb.UndoContainerImageResponse
)
# The calls whose wait the progress watch follows: they name a Deployment.
Followed = TypeVar(
    "Followed",
    pb.SetContainerImageRequest,
    pb.UndoContainerImageRequest,
    pb.GetGuardedRolloutRequest,
)
ProgressCallback = Callable[[Rollout], None]
NoticeCallback = Callable[[str], None]


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
        notify: NoticeCallback | None = None,
    ) -> ImageChange:
        """Sets the image of one container; with ``wait``, also waits for the rollout.

        ``timeout`` (seconds or a timedelta) bounds the wait on the server
        (its default: 5 minutes). ``progress`` is called with each
        intermediate rollout state while waiting. With ``check`` (default) a
        rollout that ends FAILED, TIMED_OUT, ROLLED_BACK or PAUSED raises
        :class:`RolloutFailed` carrying the answer; otherwise it is returned.

        When the replica following the wait shuts down, it hands the rollout
        over to another one; the client then follows it there
        (``GetGuardedRollout``) within the same budget, and ``notify`` is
        called with a sentence saying so. ``result.rollout_id`` then names
        the guarded rollout. When the connection is lost with no hand-over,
        the client watches the Deployment instead and says, in the rollout's
        message, that a rollback by another replica cannot be confirmed.
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
        result = self._write(self._stub.SetContainerImage, request, wait_seconds, progress, notify)
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
        notify: NoticeCallback | None = None,
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
        result = self._write(self._stub.UndoContainerImage, request, wait_seconds, progress, notify)
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

    def guarded_rollout(
        self,
        namespace: str,
        deployment: str,
        rollout_id: str,
        *,
        wait: bool = False,
        timeout: float | timedelta | None = None,
    ) -> GuardedRollout:
        """A waited change as the service records it (after a hand-over: its verdict).

        With ``wait``, the answer comes when the verdict is final or after
        ``timeout`` (then ``closed`` is False). An unknown or expired id
        raises :class:`NotFound` (reason ``GUARDED_ROLLOUT_NOT_FOUND``).
        """
        wait_seconds = _seconds(timeout)
        request = pb.GetGuardedRolloutRequest(
            namespace=namespace, deployment=deployment, id=rollout_id, wait=wait
        )
        deadline = self.timeout
        if wait:
            wait_seconds = DEFAULT_WAIT if wait_seconds is None else wait_seconds
            request.timeout.CopyFrom(_duration(wait_seconds))
            deadline = None if deadline is None else deadline + wait_seconds
        return guarded_rollout_from_pb(self._call(self._stub.GetGuardedRollout, request, deadline))

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
        *,
        wait_for_ready: bool = False,
    ) -> Response:
        try:
            return method(
                request,
                timeout=deadline if deadline is not None else self.timeout,
                metadata=self._metadata(),
                wait_for_ready=wait_for_ready,
            )
        except grpc.RpcError as exc:
            raise self._error(exc) from exc

    def _write(
        self,
        method: grpc.UnaryUnaryMultiCallable[Write, WriteResponse],
        request: Write,
        wait_seconds: float | None,
        progress: ProgressCallback | None,
        notify: NoticeCallback | None,
    ) -> ImageChange:
        """A write, with a wait when the request asks for one; ``progress`` follows it.

        A waited write whose replica hands the rollout over, or whose
        connection breaks, is followed to its end by :class:`_Reattachment`.
        """
        deadline = self.timeout
        if request.wait and deadline is not None:
            # The server ends the wait itself at `timeout`; give it room to answer.
            deadline += wait_seconds if wait_seconds is not None else DEFAULT_WAIT
        ends = None if deadline is None else time.monotonic() + deadline
        try:
            if not request.wait or progress is None:
                answer = self._call(method, request, deadline)
            else:
                answer = self._following(method, request, deadline, progress)
        except KubeUpdateError as error:
            if not request.wait:
                raise
            again = _Reattachment(self, request, ends, progress, notify or _ignore)
            handed = HandOver.from_error(error)
            if handed is not None:
                return again.follow_guarded(handed)
            if may_have_written(error):
                return again.watch_after_loss(error)
            raise
        return image_change_from_pb(answer)

    def _following(
        self,
        method: grpc.UnaryUnaryMultiCallable[Followed, Response],
        request: Followed,
        deadline: float | None,
        progress: ProgressCallback,
        *,
        wait_for_ready: bool = False,
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
        future = method.future(
            request, timeout=deadline, metadata=metadata, wait_for_ready=wait_for_ready
        )
        future.add_done_callback(follower.stop)
        try:
            follower.run()
            return future.result()
        except grpc.RpcError as exc:
            raise self._error(exc) from exc
        finally:
            future.cancel()  # only matters when leaving early (e.g. Ctrl-C in progress)
            follower.stop()


class _Reattachment:
    """Follows a waited write to its verdict after its replica or its connection is lost.

    ``ends`` is the write's own deadline (``time.monotonic()``), which the
    re-attached calls share: the caller's budget does not grow. Calls wait
    for the connection (``wait_for_ready``), since another replica may take a
    moment to be reachable at the same address.
    """

    def __init__(
        self,
        client: DeploymentImageClient,
        request: pb.SetContainerImageRequest | pb.UndoContainerImageRequest,
        ends: float | None,
        progress: ProgressCallback | None,
        notify: NoticeCallback,
    ) -> None:
        self._client = client
        self._request = request
        self._ends = ends
        self._progress = progress
        self._notify = notify

    def follow_guarded(self, handed: HandOver) -> ImageChange:
        """The verdict of the guarded rollout another replica follows now."""
        where = f"{self._request.namespace}/{self._request.deployment}"
        self._notify(
            f"{where}: the server's replica shut down and handed the rollout over; "
            f"following guarded rollout {handed.rollout_id} on another replica"
        )
        request = pb.GetGuardedRolloutRequest(
            namespace=self._request.namespace,
            deployment=self._request.deployment,
            id=handed.rollout_id,
            wait=True,
        )
        holder = ""
        while (remaining := self._remaining()) is None or remaining > 0:
            # The server answers at its timeout with Closed=false; leave it room to.
            wait = (
                DEFAULT_WAIT if remaining is None else max(remaining - _ANSWER_ROOM, remaining / 2)
            )
            request.timeout.CopyFrom(_duration(wait))
            try:
                answer = self._guarded(request, remaining)
            except (NotFound, Unimplemented) as error:
                if isinstance(error, NotFound) and error.reason != GUARDED_ROLLOUT_NOT_FOUND:
                    raise
                # Kept no longer, or a replica without the call: watch the Deployment.
                return self.watch_after_loss(error, handed)
            except (Unavailable, DeadlineExceeded):
                if self._spent():
                    break
                time.sleep(_RETRY_PAUSE)  # that replica went away too: ask again
                continue
            if answer.closed:
                return replace(image_change_from_pb(answer.change), rollout_id=answer.id)
            holder = answer.holder
        raise DeadlineExceeded(
            f"the wait ended before the verdict of guarded rollout {handed.rollout_id} of {where}"
            + (f", which {holder} still follows" if holder else "")
            + (f"; follow it with GET {handed.follow}" if handed.follow else ""),
            grpc.StatusCode.DEADLINE_EXCEEDED,
            reason=LOCAL_REASONS[grpc.StatusCode.DEADLINE_EXCEEDED],
            metadata={"rollout_id": handed.rollout_id, "follow": handed.follow},
        )

    def watch_after_loss(
        self, error: KubeUpdateError, handed: HandOver | None = None
    ) -> ImageChange:
        """Without a guarded rollout to follow: the Deployment's rollout, and the image now."""
        request = self._request
        where = f"{request.namespace}/{request.deployment}"
        requested = handed.image if handed else getattr(request, "image", "")
        self._notify(
            f"{where}: {error.message}; the change may have been made: following the "
            "Deployment's rollout (a rollback by another replica cannot be confirmed)"
        )
        last = self._watch_to_the_end()
        image = self._client._call(
            self._client._stub.GetContainerImage,
            pb.GetContainerImageRequest(
                namespace=request.namespace,
                deployment=request.deployment,
                container=request.container,
            ),
            wait_for_ready=True,
        ).image
        note = (
            "the wait's connection was lost, the Deployment was watched instead: "
            "a rollback by another replica cannot be confirmed"
        )
        if last is None:
            last = Rollout(request.namespace, request.deployment, RolloutState.TIMED_OUT)
        if requested and image != requested:
            last = replace(
                last,
                state=RolloutState.FAILED,
                message=f"the container runs {image}, not {requested}: the change was not "
                "made, or it was rolled back",
            )
        rollout = replace(last, message=f"{last.message} ({note})" if last.message else note)
        return ImageChange(
            namespace=request.namespace,
            deployment=request.deployment,
            container=request.container,
            image=image,
            previous_image=handed.previous_image if handed else "",
            changed=bool(requested) and image == requested,
            generation=0,
            rollout=rollout,
            rollout_id=handed.rollout_id if handed else "",
        )

    def _guarded(
        self, request: pb.GetGuardedRolloutRequest, remaining: float | None
    ) -> pb.GetGuardedRolloutResponse:
        client = self._client
        if self._progress is None:
            return client._call(
                client._stub.GetGuardedRollout, request, remaining, wait_for_ready=True
            )
        return client._following(
            client._stub.GetGuardedRollout, request, remaining, self._progress, wait_for_ready=True
        )

    def _watch_to_the_end(self) -> Rollout | None:
        """The rollout's last state: terminal, or where it stood when the budget ended."""
        request = self._request
        watch = pb.WatchRolloutRequest(namespace=request.namespace, deployment=request.deployment)
        last: Rollout | None = None
        while not self._spent():
            stream = self._client._stub.WatchRollout(
                watch,
                timeout=self._remaining(),
                metadata=self._client._metadata(),
                wait_for_ready=True,
            )
            try:
                for message in stream:
                    last = rollout_from_pb(request.namespace, request.deployment, message.rollout)
                    if last.state is RolloutState.PROGRESSING and self._progress is not None:
                        self._progress(last)
                if last is not None and last.state.terminal:
                    return last
            except grpc.RpcError as exc:
                error = self._client._error(exc)
                if not isinstance(error, Unavailable | DeadlineExceeded):
                    raise error from exc
                if not self._spent():
                    time.sleep(_RETRY_PAUSE)
            finally:
                stream.cancel()
        if last is not None and not last.state.terminal:
            last = replace(last, state=RolloutState.TIMED_OUT)
        return last

    def _remaining(self) -> float | None:
        return None if self._ends is None else self._ends - time.monotonic()

    def _spent(self) -> bool:
        remaining = self._remaining()
        return remaining is not None and remaining <= 0


def _ignore(_: str) -> None:
    pass


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
