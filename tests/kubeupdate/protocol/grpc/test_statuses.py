"""The domain error → gRPC status table, and the reasons every status carries."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from kubeupdate import errors
from kubeupdate.errors import ErrorReason
from kubeupdate.protocol.grpc.statuses import DETAILS_KEY, STATUS_CODES, Metadata, status_for

PROTO = Path(__file__).resolve().parents[4] / "proto" / "kubeupdate" / "v1" / "error_reason.proto"


def error_info(trailers: Metadata) -> tuple[status_pb2.Status, error_details_pb2.ErrorInfo]:
    """The google.rpc.Status in the trailers, and its one ErrorInfo."""
    (raw,) = [value for key, value in trailers if key == DETAILS_KEY]
    assert isinstance(raw, bytes)
    status = status_pb2.Status.FromString(raw)
    (detail,) = status.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    return status, info


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (errors.InvalidArgument("bad"), grpc.StatusCode.INVALID_ARGUMENT, "OPTIONS_INVALID"),
        (errors.NotFound("gone"), grpc.StatusCode.NOT_FOUND, "DEPLOYMENT_NOT_FOUND"),
        (errors.Aborted("busy"), grpc.StatusCode.ABORTED, "CONFLICT_RETRIES_EXHAUSTED"),
        (errors.Rejected("no"), grpc.StatusCode.FAILED_PRECONDITION, "KUBERNETES_REJECTED"),
        (
            errors.PermissionMissing("rbac"),
            grpc.StatusCode.PERMISSION_DENIED,
            "KUBERNETES_PERMISSION_MISSING",
        ),
        (errors.Unavailable("down"), grpc.StatusCode.UNAVAILABLE, "KUBERNETES_UNAVAILABLE"),
        (
            errors.DeadlineExceeded("slow"),
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "CALL_DEADLINE_EXCEEDED",
        ),
        (errors.Unauthenticated("who?"), grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_MISSING"),
        (errors.Denied("no"), grpc.StatusCode.PERMISSION_DENIED, "TARGET_NOT_ALLOWED"),
        (errors.RateLimited("slow down"), grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED"),
    ],
)
def test_each_domain_error_has_its_code_and_a_default_reason(
    error: errors.KubeupdateError, code: grpc.StatusCode, reason: str
) -> None:
    got_code, message, trailers = status_for(error, "r1")
    assert (got_code, message) == (code, error.message)
    status, info = error_info(trailers)
    assert (status.code, status.message) == (code.value[0], error.message)
    assert (info.reason, info.domain, dict(info.metadata)) == (reason, "kubeupdate.dev", {})


def test_every_domain_error_class_is_in_the_table() -> None:
    assert set(errors.KubeupdateError.__subclasses__()) == set(STATUS_CODES)


def test_a_raise_names_a_precise_reason_with_metadata() -> None:
    error = errors.NotFound(
        'container "db" not found',
        reason=ErrorReason.CONTAINER_NOT_FOUND,
        metadata={"container": "db"},
    )
    _, info = error_info(status_for(error, "r1")[2])
    assert (info.reason, dict(info.metadata)) == ("CONTAINER_NOT_FOUND", {"container": "db"})


def test_a_subclass_maps_like_its_parent() -> None:
    class Gone(errors.NotFound):
        pass

    assert status_for(Gone("x"), "r1")[0] == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(("seconds", "header"), [(3, "3"), (2.1, "3"), (0, "0")])
def test_retry_after_goes_to_trailing_metadata_and_the_details(seconds: float, header: str) -> None:
    trailers = status_for(errors.Unavailable("429", retry_after=seconds), "r1")[2]
    assert trailers[0] == ("retry-after", header)
    assert error_info(trailers)[1].metadata["retryAfterSeconds"] == header


def test_unknown_errors_are_internal_with_a_generic_message() -> None:
    code, message, trailers = status_for(KeyError("secret detail"), "r42")
    assert (code, message) == (grpc.StatusCode.INTERNAL, "internal error (request id r42)")
    status, info = error_info(trailers)
    assert info.reason == "INTERNAL"
    assert "secret" not in status.SerializeToString().decode(errors="replace")


def test_every_reason_is_documented_in_the_proto() -> None:
    # The proto is the one list of reasons, for clients and docs: each value has its comment.
    lines = PROTO.read_text(encoding="utf-8").splitlines()
    values = [i for i, line in enumerate(lines) if re.fullmatch(r"  [A-Z_]+ = \d+;", line)]
    assert len(values) == len(ErrorReason.keys())
    undocumented = [lines[i].strip() for i in values if not lines[i - 1].strip().startswith("//")]
    assert undocumented == []
