"""PATCH bodies applied to Deployment-shaped objects the way kube-apiserver applies them.

:func:`apply_patch` picks the algorithm by content type, as
``apiserver/pkg/endpoints/handlers/patch.go`` does:

- ``application/json-patch+json``: RFC 6902, :mod:`devcluster.patches.json_patch`;
- ``application/merge-patch+json``: RFC 7386, :mod:`devcluster.patches.merge_patch`;
- ``application/strategic-merge-patch+json``: apimachinery's strategic merge,
  :mod:`devcluster.patches.strategic_merge`.

Everything is pure: the original is never mutated. Errors are
:class:`~devcluster.patches.errors.PatchError` subclasses carrying the HTTP
``code`` kube-apiserver would answer with.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, Final

from devcluster.patches.errors import (
    InvalidPatch,
    PatchError,
    PatchTestFailed,
    UnsupportedPatchType,
)
from devcluster.patches.json_patch import MAX_JSON_PATCH_OPERATIONS, apply_json_patch
from devcluster.patches.merge_patch import BAD_MERGE_PATCH, apply_merge_patch
from devcluster.patches.strategic_merge import (
    DEPLOYMENT_STRATEGIES,
    ListStrategy,
    apply_strategic_merge_patch,
)

__all__ = [
    "DEPLOYMENT_STRATEGIES",
    "JSON_PATCH",
    "MAX_JSON_PATCH_OPERATIONS",
    "MERGE_PATCH",
    "PATCH_CONTENT_TYPES",
    "STRATEGIC_MERGE_PATCH",
    "InvalidPatch",
    "ListStrategy",
    "PatchError",
    "PatchTestFailed",
    "UnsupportedPatchType",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_patch",
    "apply_strategic_merge_patch",
]

JSON_PATCH: Final = "application/json-patch+json"
MERGE_PATCH: Final = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
#: The content types :func:`apply_patch` accepts, in kube-apiserver's order.
PATCH_CONTENT_TYPES: Final = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)


def apply_patch(original: Mapping[str, Any], patch_body: Any, content_type: str) -> dict[str, Any]:
    """Apply *patch_body* to a copy of *original* according to *content_type*.

    *patch_body* is the raw body (``bytes`` or ``str`` holding JSON) or an already
    decoded JSON value. Parameters after ``;`` in the content type (``charset``) are
    ignored, as kube-apiserver does; the type itself is compared exactly.
    """
    semicolon = content_type.find(";")
    media_type = content_type[:semicolon] if semicolon > 0 else content_type
    if media_type not in PATCH_CONTENT_TYPES:
        raise UnsupportedPatchType(
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(PATCH_CONTENT_TYPES)
        )
    if media_type == MERGE_PATCH:
        try:
            patch = _decode(patch_body)
        except InvalidPatch:
            raise InvalidPatch(BAD_MERGE_PATCH) from None
        return apply_merge_patch(original, patch)
    patch = _decode(patch_body)
    if media_type == JSON_PATCH:
        result = apply_json_patch(original, patch)
        if not isinstance(result, dict):
            raise InvalidPatch("the patched document is not a JSON object", 422)
        return result
    return apply_strategic_merge_patch(original, patch)


def _decode(body: Any) -> Any:
    if isinstance(body, bytes | bytearray | memoryview):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidPatch(f"the patch is not valid UTF-8: {exc.reason}") from None
    if not isinstance(body, str):
        return copy.deepcopy(body)
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError and the constants refused below
        raise InvalidPatch(f"the patch is not valid JSON: {exc}") from None


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are Python extensions, not JSON.
    raise ValueError(f"{name} is not a JSON value")
