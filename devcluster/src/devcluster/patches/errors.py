"""What a patch that cannot be applied raises, with the HTTP status kube-apiserver answers.

Messages keep the wording of the Go libraries kube-apiserver uses (evanphx/json-patch,
apimachinery's strategicpatch, encoding/json), which clients may show or match.
"""

from __future__ import annotations

from typing import Any, Final

_GO_TYPES: Final = {dict: "object", list: "array", str: "string", bool: "bool"}


class PatchError(Exception):
    """A patch that cannot be applied; ``code`` is kube-apiserver's HTTP status for it."""

    default_code = 400

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = self.default_code if code is None else code


class UnsupportedPatchType(PatchError):
    """The Content-Type names no patch format we apply (415 UnsupportedMediaType)."""

    default_code = 415


class InvalidPatch(PatchError):
    """The patch is malformed (400) or does not apply to the object (``code`` 422).

    A few malformed strategic merge patches make kube-apiserver answer 500 with the
    raw error (e.g. a list element without its merge key); ``code`` says so.
    """


class PatchTestFailed(InvalidPatch):
    """A JSON-patch ``test`` operation did not hold (422 Invalid)."""

    default_code = 422


def go_type(value: Any) -> str:
    """encoding/json's name for a JSON value's type, as its decode errors write it."""
    return _GO_TYPES.get(type(value), "number")
