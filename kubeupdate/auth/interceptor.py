"""The one gRPC interceptor that authenticates, rate-limits, authorises and audits.

It wraps the behaviour of every method handler, unary and server-streaming,
so it sees the request message: the target (``namespace``, ``deployment``,
``container``) and the new ``image`` are read generically from whichever of
those fields the message has. Whether a method needs ``read`` or ``write``
comes from the proto (:func:`kubeupdate.protocol.grpc.methods.access_of`); a
method whose access the proto does not state is refused.

The order: authenticate, rate-limit, check the syntax of the target and parse
the image (:func:`kubeupdate.protocol.grpc.targets.target_of`: an invalid name
is INVALID_ARGUMENT, never "target not allowed"), then the policy, which gets
the checked names and the parsed image. An allowed write's registry check (the
accepting image rule's, :attr:`~kubeupdate.auth.policy.Decision.check`) goes to
the servicer in a context variable (:func:`kubeupdate.image_checks.requested`),
as the caller does. A write whose request names no image (UndoContainerImage)
is authorised for its target first, and its image rules are decided when the
call knows the image, through the approval this interceptor sets for it
(:mod:`kubeupdate.approvals`). Health checking and
reflection stay open (probes, tooling); nothing else does.

Refusals abort the call here with the code of
:mod:`kubeupdate.protocol.grpc.statuses`, so streams get the same answers as
unary calls.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final, TypeAlias, cast

import grpc
import grpc.aio

from kubeupdate import approvals, errors, image_checks, request_ids
from kubeupdate import caller as current_caller
from kubeupdate.auth.audit import AuditLog, AuditRecord
from kubeupdate.auth.authenticator import (
    WWW_AUTHENTICATE,
    Authenticator,
    claimed_token_id,
    credentials_of,
    method_of,
)
from kubeupdate.auth.mtls import certificate_identities
from kubeupdate.auth.policy import DENIAL_REASONS, NO_RULE_FOR_CALLER, Access, Policy, Request
from kubeupdate.auth.proxies import ProxyTrust
from kubeupdate.auth.ratelimit import FailureBackoff, RateLimiter
from kubeupdate.auth.reloading import WatchedFile
from kubeupdate.caller import ANONYMOUS, Caller
from kubeupdate.image_checks import ImageCheck
from kubeupdate.images import ImageReference
from kubeupdate.protocol.grpc.interceptors import HandlerWrappingInterceptor
from kubeupdate.protocol.grpc.methods import access_of
from kubeupdate.protocol.grpc.statuses import DETAILS_KEY, rich_status, status_for
from kubeupdate.protocol.grpc.targets import target_of
from kubeupdate.targets import Target

log = logging.getLogger(__name__)

OPEN_SERVICES: Final = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)
TARGET_FIELDS: Final = ("namespace", "deployment", "container")

# Generic only in the type stubs, so the aliases are strings.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class AuthInterceptor(HandlerWrappingInterceptor):
    """Authentication, rate limits, policy and audit for every protected call.

    ``authenticator`` None means authentication is switched off (``--no-auth``):
    every call runs as the anonymous caller without policy, but is still
    rate-limited (by source address) and audited.
    """

    def __init__(
        self,
        *,
        authenticator: Authenticator | None,
        policy: WatchedFile[Policy] | Policy | None,
        audit: AuditLog,
        limiter: RateLimiter | None = None,
        failures: FailureBackoff | None = None,
        proxies: ProxyTrust | None = None,
    ) -> None:
        """``failures`` backs off sources and token ids whose authentications fail;
        ``proxies`` may name clients in ``x-forwarded-for`` (by default nobody may)."""
        self._authenticator = authenticator
        self._policy = policy
        self._audit = audit
        self._limiter = limiter
        self._failures = failures
        self._proxies = proxies if proxies is not None else ProxyTrust()
        super().__init__()

    def policy(self) -> Policy:
        if isinstance(self._policy, WatchedFile):
            return self._policy.value
        return self._policy if self._policy is not None else Policy()

    def wrap(self, handler: Handler, full_method: str) -> Handler:
        service = full_method.split("/")[1] if full_method.count("/") == 2 else ""
        if service in OPEN_SERVICES:
            return handler
        method = full_method.rsplit("/", 1)[-1]
        access = access_of(full_method)
        if access is None:
            log.error("%s states no idempotency_level in the proto: refused", full_method)
            return _refusing(handler, method)

        if handler.unary_unary is not None:
            unary = handler.unary_unary

            async def guarded_unary(request: Any, context: Context) -> Any:
                record, scope = await self._admit(method, access, request, context)
                try:
                    response = await unary(request, cast(Any, context))
                except BaseException as exc:
                    self._failed(record, exc, context)
                    raise
                finally:
                    scope.reset()
                self._succeeded(record, response)
                return response

            return grpc.unary_unary_rpc_method_handler(
                guarded_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream = handler.unary_stream

            async def guarded_stream(request: Any, context: Context) -> AsyncIterator[Any]:
                record, scope = await self._admit(method, access, request, context)
                last = None
                try:
                    result: Any = stream(request, cast(Any, context))
                    if hasattr(result, "__aiter__"):
                        async for message in result:
                            last = message
                            yield message
                    else:  # a handler that writes with context.write()
                        await result
                except BaseException as exc:
                    self._failed(record, exc, context)
                    raise
                finally:
                    # The generator may be finalised in another context than it started in.
                    with contextlib.suppress(ValueError):
                        scope.reset()
                self._succeeded(record, last)

            return grpc.unary_stream_rpc_method_handler(
                guarded_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        # Client streaming would need the messages before a decision: refuse until needed.
        return _refusing(handler, method)

    async def _admit(
        self, method: str, access: Access, request: Any, context: Context
    ) -> tuple[AuditRecord, _CallScope]:
        """Authenticate, limit and authorise, or audit the refusal and abort the call."""
        metadata = tuple(context.invocation_metadata() or ())
        rid = _request_id(metadata)
        request_ids.current.set(rid)
        # The certificate is read only where it matters: it costs a little per call.
        mtls = self._authenticator is not None and self._authenticator.mtls
        auth_context = _auth_context(context) if mtls or self._proxies.by_certificate else {}
        identities = certificate_identities(auth_context)
        origin = self._proxies.origin(metadata, context.peer(), identities)
        record = AuditRecord(rid, method, origin.source, peer=origin.peer)
        record.forwarded_for_ignored = origin.ignored
        if self._proxies.is_proxy(identities):
            # A proxy's certificate speaks for its clients, never for itself.
            auth_context = {}
        record.target = {f: v for f in TARGET_FIELDS if (v := _field(request, f))}
        if access == "write":
            record.image = _field(request, "image") or None
        # A write that names no image (UndoContainerImage) learns it later: its
        # image rules are decided then, by the approval set for the call below.
        image_pending = access == "write" and not _has_field(request, "image")
        try:
            caller = await self._authenticate(record, metadata, auth_context)
            self._limit(caller, record)
            target = _checked(request, record)
            check = self._authorise(caller, access, target, record, image_pending=image_pending)
        except errors.KubeupdateError as exc:
            code, message, trailers = status_for(exc, rid)
            record.outcome = code.name
            if not record.reason:
                record.reason = message
            self._audit.write(record)
            if isinstance(exc, errors.Unauthenticated):
                trailers = (*trailers, ("www-authenticate", WWW_AUTHENTICATE))
            log.info("%s [%s] refused: %s %s", method, rid, code.name, record.reason)
            await context.abort(code, message, trailing_metadata=trailers)
            raise AssertionError("abort() returned") from None  # for the type checker
        except Exception:
            # A bug here must still deny, be audited, and not leak details.
            log.exception("%s [%s] security checks failed unexpectedly", method, rid)
            code, message, trailers = status_for(Exception(), rid)
            record.outcome, record.reason = code.name, "internal error in the security checks"
            self._audit.write(record)
            await context.abort(code, message, trailing_metadata=trailers)
            raise AssertionError("abort() returned") from None
        approval = None
        if image_pending:
            approval = approvals.set_current(
                functools.partial(self._approve, caller, target, record)
            )
        return record, _CallScope(
            current_caller.set_current(caller), image_checks.set_requested(check), approval
        )

    async def _authenticate(
        self,
        record: AuditRecord,
        metadata: tuple[tuple[str, Any], ...],
        auth_context: dict[str, Any],
    ) -> Caller:
        if self._authenticator is None:
            return ANONYMOUS
        self._refuse_blocked_source(record)
        record.auth_method = "none"
        claimed: str | None = None
        try:
            credentials = credentials_of(metadata)
            if credentials is not None:
                record.auth_method = method_of(credentials)
                claimed = claimed_token_id(credentials)
            caller = await self._authenticator.authenticate(
                credentials, auth_context if self._authenticator.mtls else {}
            )
        except errors.KubeupdateError as exc:
            record.reason = f"authentication: {exc.message}"
            if isinstance(exc, errors.Unauthenticated):
                self._count_failure(record, claimed)
            raise
        if claimed is not None and self._failures is not None:
            self._failures.succeeded(f"token:{claimed}")
        record.caller = caller
        return caller

    def _refuse_blocked_source(self, record: AuditRecord) -> None:
        """A source in back-off is refused before its credentials are looked at."""
        if self._failures is None:
            return
        wait = self._failures.blocked(f"source:{record.source}")
        if wait > 0:
            record.limited = "source"
            record.reason = (
                f"authentication failures: {record.source} is blocked for {math.ceil(wait)} s"
            )
            raise errors.RateLimited(
                "Too many failed authentications from this address; retry later.",
                retry_after=wait,
                reason=errors.ErrorReason.AUTHENTICATION_BACKOFF,
            )

    def _count_failure(self, record: AuditRecord, claimed: str | None) -> None:
        """One more failure of the source and of the token id claimed, if any."""
        if self._failures is None:
            return
        blocked = self._failures.failed(f"source:{record.source}")
        if blocked > 0:
            record.limited = "source"
            record.reason += f" (the source is blocked for {math.ceil(blocked)} s)"
        if claimed is None:
            return
        blocked = self._failures.failed(f"token:{claimed}")
        if blocked > 0:
            # The holder of the right secret still gets in: only failures are answered so.
            record.limited = "token_id"
            record.reason += f" (token id {claimed} is limited for {math.ceil(blocked)} s)"
            raise errors.RateLimited(
                "Too many failed authentications for this token id; retry later.",
                retry_after=blocked,
                reason=errors.ErrorReason.AUTHENTICATION_BACKOFF,
            ) from None

    def _limit(self, caller: Caller, record: AuditRecord) -> None:
        if self._limiter is None:
            return
        # Anonymous callers are told apart by address, not lumped into one bucket.
        key = caller.name if caller is not ANONYMOUS else f"source:{record.source}"
        wait = self._limiter.acquire(key)
        if wait > 0:
            record.reason = "rate limit"
            raise errors.RateLimited(
                "Too many requests from this identity; retry later.", retry_after=wait
            )

    def _authorise(
        self,
        caller: Caller,
        access: Access,
        target: Target,
        record: AuditRecord,
        *,
        image_pending: bool = False,
        image: ImageReference | None = None,
    ) -> ImageCheck | None:
        """Raise Denied unless the policy allows; an allowed write's registry check."""
        if self._authenticator is None:
            record.decision, record.reason = "allow", "authentication disabled"
            return None
        request = Request(
            access,
            namespace=target.namespace,
            deployment=target.name,
            container=target.container,
            image=(image or target.image) if access == "write" else None,
            image_pending=image_pending,
        )
        decision = self.policy().decide(caller, request)
        record.rule = decision.rule
        record.reason = decision.reason
        if not decision.allowed:
            raise errors.Denied(
                _denial(caller, decision.reason), reason=DENIAL_REASONS[decision.reason]
            )
        record.decision = "allow"
        return decision.check

    def _approve(
        self, caller: Caller, target: Target, record: AuditRecord, image: ImageReference
    ) -> None:
        """The image rules for an image learnt during the call; it goes in the audit line."""
        record.image = str(image)
        record.decision = "deny"
        self._authorise(caller, "write", target, record, image=image)

    def _succeeded(self, record: AuditRecord, response: Any) -> None:
        record.outcome = "OK"
        if response is not None:
            record.previous_image = _field(response, "previous_image") or None
            if _has_field(response, "changed"):
                record.changed = bool(response.changed)
            if _has_field(response, "generation") and response.generation:
                record.generation = int(response.generation)
            record.digest = _field(response, "digest") or None
            if _has_field(response, "registry_check") and response.HasField("registry_check"):
                check = response.registry_check
                record.registry_check = f"skipped: {check.detail}" if check.detail else "passed"
            if _has_field(response, "dry_run") and response.dry_run:
                record.dry_run = True
            if _has_field(response, "rollout") and response.HasField("rollout"):
                record.rollout = response.rollout.State.Name(response.rollout.state)[6:]
        self._audit.write(record)

    def _failed(self, record: AuditRecord, exc: BaseException, context: Context) -> None:
        if isinstance(exc, grpc.aio.AbortError):
            code = context.code()
            record.outcome = (
                code.name if isinstance(code, grpc.StatusCode) else "ABORTED_BY_HANDLER"
            )
        elif isinstance(exc, errors.KubeupdateError):
            record.outcome = status_for(exc, record.request_id)[0].name
            # Cut short after its write (a wait, a hand-over): say what was written.
            facts = exc.metadata
            if "changed" in facts:
                record.changed = facts["changed"] == "true"
            record.previous_image = facts.get("previousImage") or facts.get("previous_image")
            record.rollout_id = facts.get("rolloutId") or facts.get("rollout_id")
        elif isinstance(exc, Exception):
            record.outcome = grpc.StatusCode.INTERNAL.name
        else:  # cancellation: the caller went away
            record.outcome = grpc.StatusCode.CANCELLED.name
        self._audit.write(record)


def _denial(caller: Caller, reason: str) -> str:
    """The sentence of a refusal: the reason, and for a caller no rule names, who it is.

    A workflow's owner then sees which of its claims the policy was asked about
    (its own, so nothing leaks); which rules exist, the caller never learns.
    """
    if reason == NO_RULE_FOR_CALLER and caller.method == "oidc":
        shown = ("repository", "repository_id", "ref", "environment", "job_workflow_ref")
        claims = ", ".join(f"{k} {caller.claims[k]}" for k in shown if k in caller.claims)
        return f"Permission denied: {reason} ({claims})."
    return f"Permission denied: {reason}."


@dataclass(frozen=True)
class _CallScope:
    """What the security checks hand to the handler for one call, undone at its end."""

    caller: contextvars.Token[Caller | None]
    check: contextvars.Token[ImageCheck | None]
    approval: contextvars.Token[approvals.ImageApproval | None] | None = None

    def reset(self) -> None:
        if self.approval is not None:
            approvals.reset(self.approval)
        image_checks.reset_requested(self.check)
        current_caller.reset(self.caller)


def _checked(request: Any, record: AuditRecord) -> Target:
    """The call's target with its syntax checked, before any policy glob sees a name."""
    try:
        return target_of(request)
    except errors.InvalidArgument as exc:
        record.reason = f"invalid request: {exc.message}"
        raise


def _refusing(handler: Handler, method: str) -> Handler:
    code, message = grpc.StatusCode.UNIMPLEMENTED, f"{method} is not available."
    details = rich_status(code, message, errors.ErrorReason.METHOD_NOT_AVAILABLE)

    async def refuse(request: Any, context: Context) -> Any:
        await context.abort(code, message, trailing_metadata=((DETAILS_KEY, details),))

    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            refuse, handler.request_deserializer, handler.response_serializer
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            refuse, handler.request_deserializer, handler.response_serializer
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            refuse, handler.request_deserializer, handler.response_serializer
        )
    return grpc.stream_stream_rpc_method_handler(
        refuse, handler.request_deserializer, handler.response_serializer
    )


def _field(message: Any, name: str) -> str:
    if not _has_field(message, name):
        return ""
    value = getattr(message, name)
    return value if isinstance(value, str) else ""


def _has_field(message: Any, name: str) -> bool:
    descriptor = getattr(message, "DESCRIPTOR", None)
    return descriptor is not None and name in descriptor.fields_by_name


def _auth_context(context: Context) -> dict[str, Any]:
    try:
        return dict(context.auth_context())
    except Exception:  # an insecure port has no auth context to speak of
        return {}


def _request_id(metadata: tuple[tuple[str, Any], ...]) -> str:
    """The call's id, as the error interceptor (outside this one) chose it."""
    current = request_ids.current.get()
    if current != request_ids.NONE:
        return current
    return request_ids.from_metadata(metadata)  # run without the error interceptor
