"""The domain error → gRPC status table, and the interceptor that applies it."""

from __future__ import annotations

import grpc
import pytest

from kubeupdate import errors
from kubeupdate.protocol.grpc.statuses import STATUS_CODES, status_for


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidArgument("bad"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFound("gone"), grpc.StatusCode.NOT_FOUND),
        (errors.Aborted("busy"), grpc.StatusCode.ABORTED),
        (errors.Rejected("no"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.PermissionMissing("rbac"), grpc.StatusCode.PERMISSION_DENIED),
        (errors.Unavailable("down"), grpc.StatusCode.UNAVAILABLE),
        (errors.DeadlineExceeded("slow"), grpc.StatusCode.DEADLINE_EXCEEDED),
    ],
)
def test_each_domain_error_has_its_code(
    error: errors.KubeupdateError, code: grpc.StatusCode
) -> None:
    assert status_for(error, "r1") == (code, error.message, ())


def test_every_domain_error_class_is_in_the_table() -> None:
    assert set(errors.KubeupdateError.__subclasses__()) == set(STATUS_CODES)


def test_a_subclass_maps_like_its_parent() -> None:
    class Gone(errors.NotFound):
        pass

    assert status_for(Gone("x"), "r1")[0] == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(("seconds", "header"), [(3, "3"), (2.1, "3"), (0, "0")])
def test_retry_after_goes_to_trailing_metadata(seconds: float, header: str) -> None:
    assert status_for(errors.Unavailable("429", retry_after=seconds), "r1")[2] == (
        ("retry-after", header),
    )


def test_unknown_errors_are_internal_with_a_generic_message() -> None:
    code, message, trailers = status_for(KeyError("secret detail"), "r42")
    assert (code, message, trailers) == (
        grpc.StatusCode.INTERNAL,
        "internal error (request id r42)",
        (),
    )
