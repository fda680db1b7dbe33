"""RFC 6902 JSON patch (``application/json-patch+json``), worded as evanphx/json-patch words it.

``add``/``remove``/``replace``/``move``/``copy``/``test``, RFC 6901 pointers
with ``~0``/``~1``, ``-`` appends. Failures carry evanphx/json-patch's wording,
e.g. ``testing value /spec/template/spec/containers/0/name failed: test
failed``. kube-apiserver answers every failure while *applying* with 422
Invalid and the generic message "the server rejected our request due to an
error in our request"; a body that is not a list of operations with 400
BadRequest; more than :data:`MAX_JSON_PATCH_OPERATIONS` operations with 413.

Deliberate differences from kube-apiserver (RFC 6902 wins over evanphx v4
quirks): ``replace`` of a missing object member fails instead of adding it;
``test`` of a missing member fails even when the value is ``null``; negative
array indices are refused; ``test`` compares numbers by value (``1`` equals
``1.0``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from devcluster.patches.errors import InvalidPatch, PatchTestFailed, go_type

#: kube-apiserver refuses longer JSON patches with 413.
MAX_JSON_PATCH_OPERATIONS: Final = 10_000

_MISSING: Final = "missing value"
_BAD_INDEX: Final = "invalid index referenced"


def apply_json_patch(original: Any, operations: Any) -> Any:
    """Apply RFC 6902 *operations* (already decoded) to a copy of *original*."""
    if operations is None:  # Go decodes `null` as an empty patch
        return copy.deepcopy(original)
    if not isinstance(operations, list):
        raise InvalidPatch(
            f"json: cannot unmarshal {go_type(operations)} into Go value of type jsonpatch.Patch"
        )
    for operation in operations:
        if operation is not None and not isinstance(operation, dict):
            raise InvalidPatch(
                f"json: cannot unmarshal {go_type(operation)} "
                "into Go value of type jsonpatch.Operation"
            )
    if len(operations) > MAX_JSON_PATCH_OPERATIONS:
        raise InvalidPatch(
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
            f"got {len(operations)}",
            413,
        )
    document: Any = copy.deepcopy(original)
    for operation in operations:
        document = _apply_operation(document, operation or {})
    return document


def _apply_operation(document: Any, operation: Mapping[str, Any]) -> Any:
    kind = operation.get("op")
    if not isinstance(kind, str):
        kind = "unknown"  # what evanphx reports for a missing or non-string op
    handler = _OPERATIONS.get(kind)
    if handler is None:
        raise InvalidPatch(f"Unexpected kind: {kind}", 422)
    path = operation.get("path")
    if not isinstance(path, str):
        raise InvalidPatch(f"{kind} operation failed to decode path: {_MISSING}", 422)
    return handler(document, path, operation)


def _value(operation: Mapping[str, Any]) -> Any:
    if "value" not in operation:
        raise InvalidPatch(f"{operation['op']} operation, missing value field: {_MISSING}", 422)
    return copy.deepcopy(operation["value"])


def _from(operation: Mapping[str, Any]) -> str:
    source = operation.get("from")
    if not isinstance(source, str):
        raise InvalidPatch(f"{operation['op']} operation failed to decode from: {_MISSING}", 422)
    return source


@dataclass
class _Location:
    """The container a pointer's last segment lives in, and that segment."""

    parent: Any
    segment: str


def _locate(document: Any, path: str) -> _Location | None:
    """Resolve all but the last segment of *path*; None when the path does not exist."""
    if not path.startswith("/"):
        return None
    segments = [t.replace("~1", "/").replace("~0", "~") for t in path.split("/")[1:]]
    node = document
    for segment in segments[:-1]:
        if isinstance(node, dict):
            if segment not in node:
                return None
            node = node[segment]
        elif isinstance(node, list):
            index = _index(segment)
            if index is None or index >= len(node):
                return None
            node = node[index]
        else:
            return None
    if not isinstance(node, dict | list):
        return None
    return _Location(node, segments[-1])


def _index(segment: str) -> int | None:
    """An RFC 6901 array index: digits, no leading zero (negative indices refused)."""
    if segment.isdigit() and segment.isascii() and (segment == "0" or not segment.startswith("0")):
        return int(segment)
    return None


def _bad_index(segment: str) -> str:
    return f"Unable to access invalid index: {segment}: {_BAD_INDEX}"


def _get(location: _Location) -> tuple[bool, Any, str]:
    """(found, value, reason when not found) of the pointed-to value."""
    parent, segment = location.parent, location.segment
    if isinstance(parent, dict):
        if segment in parent:
            return True, parent[segment], ""
        return False, None, _MISSING
    index = _index(segment)
    if index is None or index >= len(parent):
        return False, None, _bad_index(segment)
    return True, parent[index], ""


def _add(document: Any, path: str, operation: Mapping[str, Any]) -> Any:
    value = _value(operation)
    if path == "":
        return value
    location = _locate(document, path)
    if location is None:
        raise InvalidPatch(
            f'add operation does not apply: doc is missing path: "{path}": {_MISSING}', 422
        )
    _insert(location, value, f"error in add for path: '{path}'")
    return document


def _insert(location: _Location, value: Any, context: str) -> None:
    parent, segment = location.parent, location.segment
    if isinstance(parent, dict):
        parent[segment] = value
        return
    if segment == "-":
        parent.append(value)
        return
    index = _index(segment)
    if index is None:
        raise InvalidPatch(f"{context}: value was not a proper array index: '{segment}'", 422)
    if index > len(parent):
        raise InvalidPatch(f"{context}: {_bad_index(segment)}", 422)
    parent.insert(index, value)


def _remove(document: Any, path: str, operation: Mapping[str, Any]) -> Any:
    location = _locate(document, path)
    if location is None:
        raise InvalidPatch(
            f'remove operation does not apply: doc is missing path: "{path}": {_MISSING}', 422
        )
    _take(location, f"error in remove for path: '{path}'")
    return document


def _take(location: _Location, context: str) -> Any:
    parent, segment = location.parent, location.segment
    if isinstance(parent, dict):
        if segment not in parent:
            raise InvalidPatch(
                f"{context}: Unable to remove nonexistent key: {segment}: {_MISSING}", 422
            )
        return parent.pop(segment)
    index = _index(segment)
    if index is None or index >= len(parent):
        raise InvalidPatch(f"{context}: {_bad_index(segment)}", 422)
    return parent.pop(index)


def _replace(document: Any, path: str, operation: Mapping[str, Any]) -> Any:
    value = _value(operation)
    if path == "":
        return value
    location = _locate(document, path)
    if location is None:
        raise InvalidPatch(
            f"replace operation does not apply: doc is missing path: {path}: {_MISSING}", 422
        )
    found, _, _ = _get(location)
    if not found:
        raise InvalidPatch(
            f"replace operation does not apply: doc is missing key: {path}: {_MISSING}", 422
        )
    if isinstance(location.parent, dict):
        location.parent[location.segment] = value
    else:
        index = _index(location.segment)
        assert index is not None
        location.parent[index] = value
    return document


def _move(document: Any, path: str, operation: Mapping[str, Any]) -> Any:
    source = _from(operation)
    location = _locate(document, source)
    if location is None:
        raise InvalidPatch(
            f"move operation does not apply: doc is missing from path: {source}: {_MISSING}", 422
        )
    if path == source:
        return document
    if path.startswith(source + "/"):
        raise InvalidPatch(
            f"move operation does not apply: cannot move {source} into its own child {path}", 422
        )
    value = _take(location, f"error in move for path: '{location.segment}'")
    target = _locate(document, path)
    if target is None:
        raise InvalidPatch(
            f"move operation does not apply: doc is missing destination path: {path}: {_MISSING}",
            422,
        )
    _insert(target, value, f"error in move for path: '{path}'")
    return document


def _copy(document: Any, path: str, operation: Mapping[str, Any]) -> Any:
    source = _from(operation)
    location = _locate(document, source)
    if location is None:
        raise InvalidPatch(
            f"copy operation does not apply: doc is missing from path: {source}: {_MISSING}", 422
        )
    found, value, reason = _get(location)
    if not found:
        raise InvalidPatch(f"error in copy for from: '{source}': {reason}", 422)
    target = _locate(document, path)
    if target is None:
        raise InvalidPatch(
            f"copy operation does not apply: doc is missing destination path: {path}: {_MISSING}",
            422,
        )
    _insert(target, copy.deepcopy(value), "error while adding value during copy")
    return document


def _test(document: Any, path: str, operation: Mapping[str, Any]) -> Any:
    if "value" not in operation:
        raise PatchTestFailed(f"test operation, missing value field: {_MISSING}")
    expected = operation["value"]
    if path == "":
        actual = document
    else:
        location = _locate(document, path)
        if location is None:
            raise PatchTestFailed(
                f"test operation does not apply: is missing path: {path}: {_MISSING}"
            )
        found, actual, reason = _get(location)
        if not found:
            if reason != _MISSING:
                raise PatchTestFailed(f"error in test for path: '{path}': {reason}")
            raise PatchTestFailed(f"testing value {path} failed: test failed")
    if not _json_equal(actual, expected):
        raise PatchTestFailed(f"testing value {path} failed: test failed")
    return document


_Operation = Callable[[Any, str, Mapping[str, Any]], Any]
_OPERATIONS: Final[dict[str, _Operation]] = {
    "add": _add,
    "remove": _remove,
    "replace": _replace,
    "move": _move,
    "copy": _copy,
    "test": _test,
}


def _json_equal(left: Any, right: Any) -> bool:
    """RFC 6902 equality: bool is not a number, numbers compare by value, order of keys
    does not matter, order of list elements does."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_json_equal, left, right))
    return type(left) is type(right) and left == right
