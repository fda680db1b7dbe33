"""RFC 7386 JSON merge patch (``application/merge-patch+json``), as evanphx/json-patch applies it.

``null`` deletes, objects merge, everything else (lists too) replaces.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from devcluster.patches.errors import InvalidPatch

BAD_MERGE_PATCH: Final = "Invalid JSON Patch"  # evanphx's ErrBadJSONPatch, answered as 400


def apply_merge_patch(original: Mapping[str, Any], patch: Any) -> dict[str, Any]:
    """Apply an RFC 7386 merge patch (already decoded) to a copy of *original*."""
    if isinstance(patch, list):
        # The result would be the list itself, which no Deployment decodes from.
        raise InvalidPatch("a merge patch for an object must be a JSON object, not a list", 422)
    if not isinstance(patch, dict):
        raise InvalidPatch(BAD_MERGE_PATCH)
    return _merge_objects(copy.deepcopy(dict(original)), patch)


def _merge_objects(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in patch.items():
        current = target.get(key)
        if value is None:
            target.pop(key, None)
        elif not isinstance(current, dict):
            target[key] = _without_null_members(value)
        elif isinstance(value, dict):
            target[key] = _merge_objects(current, value)
        else:
            # evanphx keeps a non-object that replaces an object exactly as sent.
            target[key] = copy.deepcopy(value)
    return target


def _without_null_members(value: Any) -> Any:
    """A new value as a merge patch writes it: members set to null are dropped."""
    if isinstance(value, dict):
        return {k: _without_null_members(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        # evanphx also cleans objects inside lists; null elements themselves stay.
        return [_without_null_members(v) for v in value]
    return value
