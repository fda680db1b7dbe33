"""PATCH bodies applied to Deployment-shaped objects the way kube-apiserver applies them.

Three content types, chosen like ``apiserver/pkg/endpoints/handlers/patch.go``:

``application/json-patch+json``
    RFC 6902 (``add``/``remove``/``replace``/``move``/``copy``/``test``, RFC 6901
    pointers with ``~0``/``~1``, ``-`` appends). Failures carry evanphx/json-patch's
    wording, e.g. ``testing value /spec/template/spec/containers/0/name failed: test
    failed``. kube-apiserver answers every failure while *applying* with 422 Invalid
    and the generic message "the server rejected our request due to an error in our
    request"; a body that is not a list of operations with 400 BadRequest.
``application/merge-patch+json``
    RFC 7386: ``null`` deletes, objects merge, everything else (lists too) replaces.
``application/strategic-merge-patch+json``
    apimachinery's ``strategicpatch`` semantics with a table of patch strategies
    for apps/v1 Deployments (:data:`DEPLOYMENT_STRATEGIES`): lists with a merge key
    merge element by element, other lists are replaced; directives ``$patch``
    (``delete``/``replace``), ``$setElementOrder/<list>``, ``$retainKeys`` and
    ``$deleteFromPrimitiveList/<list>``. An element whose merge key is unknown is
    *added*: a container patched by a name that does not exist becomes a new
    container. Like apimachinery, patch elements are placed before the server-only
    elements they cannot be ordered against, so a lone new element comes first.

Deliberate differences from kube-apiserver (RFC 6902 wins over evanphx v4 quirks):
``replace`` of a missing object member fails instead of adding it; ``test`` of a
missing member fails even when the value is ``null``; negative array indices are
refused; ``test`` compares numbers by value (``1`` equals ``1.0``).

Everything is pure: the original is never mutated. Errors are :class:`PatchError`
subclasses carrying the HTTP ``code`` kube-apiserver would answer with.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

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
#: kube-apiserver refuses longer JSON patches with 413.
MAX_JSON_PATCH_OPERATIONS: Final = 10_000


# --- errors ----------------------------------------------------------------------------


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


# --- dispatch --------------------------------------------------------------------------


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
            raise InvalidPatch(_BAD_MERGE_PATCH) from None
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


# --- RFC 7386 merge patch --------------------------------------------------------------

_BAD_MERGE_PATCH: Final = "Invalid JSON Patch"  # evanphx's ErrBadJSONPatch, answered as 400


def apply_merge_patch(original: Mapping[str, Any], patch: Any) -> dict[str, Any]:
    """Apply an RFC 7386 merge patch (already decoded) to a copy of *original*."""
    if isinstance(patch, list):
        # The result would be the list itself, which no Deployment decodes from.
        raise InvalidPatch("a merge patch for an object must be a JSON object, not a list", 422)
    if not isinstance(patch, dict):
        raise InvalidPatch(_BAD_MERGE_PATCH)
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


# --- RFC 6902 JSON patch ---------------------------------------------------------------

_MISSING: Final = "missing value"
_BAD_INDEX: Final = "invalid index referenced"
_GO_TYPES: Final = {dict: "object", list: "array", str: "string", bool: "bool"}


def apply_json_patch(original: Any, operations: Any) -> Any:
    """Apply RFC 6902 *operations* (already decoded) to a copy of *original*."""
    if operations is None:  # Go decodes `null` as an empty patch
        return copy.deepcopy(original)
    if not isinstance(operations, list):
        raise InvalidPatch(
            f"json: cannot unmarshal {_go_type(operations)} into Go value of type jsonpatch.Patch"
        )
    for operation in operations:
        if operation is not None and not isinstance(operation, dict):
            raise InvalidPatch(
                f"json: cannot unmarshal {_go_type(operation)} "
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


def _go_type(value: Any) -> str:
    return _GO_TYPES.get(type(value), "number")


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


# --- strategic merge patch -------------------------------------------------------------


@dataclass(frozen=True)
class ListStrategy:
    """How a field merges: ``merge`` (by ``merge_key`` for lists of objects, as a set for
    lists of scalars) or ``replace``. Fields not in the table merge when they are
    objects and are replaced when they are lists."""

    strategy: Literal["merge", "replace"] = "merge"
    merge_key: str | None = None


def _merge(key: str | None = None) -> ListStrategy:
    return ListStrategy("merge", key)


def _object_meta(prefix: str) -> dict[str, ListStrategy]:
    return {f"{prefix}.finalizers": _merge(), f"{prefix}.ownerReferences": _merge("uid")}


def _containers(prefix: str) -> dict[str, ListStrategy]:
    return {
        prefix: _merge("name"),
        f"{prefix}[].env": _merge("name"),
        f"{prefix}[].ports": _merge("containerPort"),
        f"{prefix}[].volumeMounts": _merge("mountPath"),
        f"{prefix}[].volumeDevices": _merge("devicePath"),
        f"{prefix}[].envFrom": ListStrategy("replace"),
    }


_POD = "spec.template.spec"
#: Patch strategies of apps/v1 Deployment fields (the ``patchStrategy`` and
#: ``patchMergeKey`` struct tags of k8s.io/api), keyed by dotted path; ``[]``
#: stands for "every element of the list".
DEPLOYMENT_STRATEGIES: Final[Mapping[str, ListStrategy]] = {
    **_object_meta("metadata"),
    **_object_meta("spec.template.metadata"),
    **_containers(f"{_POD}.containers"),
    **_containers(f"{_POD}.initContainers"),
    **_containers(f"{_POD}.ephemeralContainers"),
    f"{_POD}.volumes": _merge("name"),
    f"{_POD}.imagePullSecrets": _merge("name"),
    f"{_POD}.hostAliases": _merge("ip"),
    f"{_POD}.topologySpreadConstraints": _merge("topologyKey"),
    f"{_POD}.schedulingGates": _merge("name"),
    f"{_POD}.resourceClaims": _merge("name"),
    f"{_POD}.tolerations": ListStrategy("replace"),
    "status.conditions": _merge("type"),
}

_PATCH: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_SET_ORDER: Final = "$setElementOrder"
_DELETE_FROM: Final = "$deleteFromPrimitiveList"

# apimachinery's mergepatch errors that kube-apiserver answers with 400.
_BAD_PRIMITIVE_LIST: Final = "invalid patch format of primitive list"
_BAD_RETAIN_KEYS: Final = "invalid patch format of retainKeys"
_BAD_SET_ORDER: Final = "invalid patch format of setElementOrder list"
# Errors kube-apiserver does not translate: it answers 500 with the raw text.
_RAW: Final = 500


def apply_strategic_merge_patch(
    original: Mapping[str, Any],
    patch: Any,
    strategies: Mapping[str, ListStrategy] = DEPLOYMENT_STRATEGIES,
) -> dict[str, Any]:
    """Apply a strategic merge patch (already decoded) to a copy of *original*."""
    if patch is None:  # Go decodes `null` into a nil map: nothing to do
        patch = {}
    if not isinstance(patch, dict):
        raise InvalidPatch(
            f"json: cannot unmarshal {_go_type(patch)} "
            "into Go value of type map[string]interface {}"
        )
    merger = _StrategicMerger(strategies)
    merged = merger.merge_map(copy.deepcopy(dict(original)), copy.deepcopy(patch), "")
    result = _strip_directives(merged)
    assert isinstance(result, dict)
    return result


class _StrategicMerger:
    """apimachinery's mergeMap/mergeSlice with MergeParallelList and IgnoreUnmatchedNulls
    on, as StrategicMergeMapPatch runs them. Works in place on private copies."""

    def __init__(self, strategies: Mapping[str, ListStrategy]) -> None:
        self.strategies = strategies

    def strategy(self, path: str) -> ListStrategy | None:
        return self.strategies.get(path)

    def merge_map(self, original: dict[str, Any], patch: dict[str, Any], path: str) -> Any:
        if _PATCH in patch:
            directive = patch.pop(_PATCH)
            if directive == "replace":
                return patch
            if directive == "delete":
                return {}
            raise InvalidPatch(f"unknown patch type: {directive} in map: {patch}", _RAW)
        self.retain_keys(original, patch)
        self.set_element_orders(original, patch, path)
        for key, patch_value in list(patch.items()):
            delete_list = key.startswith(_DELETE_FROM)
            if delete_list:
                key = _directive_target(key, _DELETE_FROM, _BAD_PRIMITIVE_LIST)
            if patch_value is None:
                original.pop(key, None)
                continue
            child = _child(path, key)
            if key not in original or _go_kind(original[key]) != _go_kind(patch_value):
                if not delete_list:
                    _discard_nulls(patch_value)
                    _set_or_drop(original, key, patch_value)
                continue
            current = original[key]
            strategy = self.strategy(child)
            if isinstance(current, dict):
                if strategy is not None and strategy.strategy == "replace":
                    original[key] = patch_value
                else:
                    original[key] = self.merge_map(current, patch_value, child)
            elif isinstance(current, list):
                if delete_list or (strategy is not None and strategy.strategy == "merge"):
                    key_name = strategy.merge_key if strategy else None
                    original[key] = self.merge_list(
                        current, patch_value, child, key_name, delete_list
                    )
                else:
                    original[key] = patch_value
            else:
                _set_or_drop(original, key, patch_value)
        return original

    def retain_keys(self, original: dict[str, Any], patch: dict[str, Any]) -> None:
        if _RETAIN_KEYS not in patch:
            return
        retained = patch.pop(_RETAIN_KEYS)
        if not isinstance(retained, list):
            raise InvalidPatch(_BAD_RETAIN_KEYS)
        keep = {k for k in retained if isinstance(k, str)}
        for key, value in patch.items():
            if value is None or key.startswith((_DELETE_FROM, _SET_ORDER)):
                continue
            if key not in keep:
                raise InvalidPatch(_BAD_RETAIN_KEYS)
        for key in [k for k in original if k not in keep]:
            del original[key]

    def set_element_orders(
        self, original: dict[str, Any], patch: dict[str, Any], path: str
    ) -> None:
        for directive in [k for k in patch if k.startswith(_SET_ORDER)]:
            order = patch.pop(directive)
            if not isinstance(order, list):
                raise InvalidPatch(
                    f"expected a []interface {{}}, but received a {_go_name(order)}", _RAW
                )
            key = _directive_target(directive, _SET_ORDER, _BAD_SET_ORDER)
            child = _child(path, key)
            strategy = self.strategy(child)
            merge_key = strategy.merge_key if strategy else None
            found_original, found_patch = key in original, key in patch
            original_list = _as_list(original.get(key)) if found_original else []
            patch_list = _as_list(patch.get(key)) if found_patch else []
            _check_order(patch_list, order, merge_key)
            if found_original and found_patch:
                if strategy is not None and strategy.strategy == "merge":
                    merged = self.merge_list(original_list, patch_list, child, merge_key, False)
                else:
                    merged = patch_list
            elif found_original:
                merged = original_list
            elif found_patch:
                merged = _remove_directives(patch_list)[0]
            else:
                continue
            kind = _element_kind(original_list, patch_list)
            in_order, server_only = _partition(merged, order, merge_key)
            original[key] = _normalize_order(
                in_order, server_only, order, original_list, merge_key, kind
            )
            patch.pop(key, None)

    def merge_list(
        self,
        original: list[Any],
        patch: list[Any],
        path: str,
        merge_key: str | None,
        delete_list: bool,
    ) -> list[Any]:
        if not original and not patch:
            return original
        kind = _element_kind(original, patch)
        if kind != "object":
            if delete_list:
                doomed = {_scalar_key(v) for v in patch}
                return [v for v in original if _scalar_key(v) not in doomed]
            merged = _deduplicate(original + patch)
            merge_key = None
        else:
            if not merge_key:
                raise InvalidPatch(f"cannot merge lists without merge key for {path}", _RAW)
            original, patch = _special_elements(original, patch, merge_key)
            merged = list(original)
            element_path = path + "[]"
            for element in patch:
                value = _merge_key_value(element, merge_key)
                position = _find(merged, merge_key, value)
                if position is None:
                    merged.append(element)
                else:
                    merged[position] = self.merge_map(merged[position], element, element_path)
        in_patch, server_only = _partition(merged, patch, merge_key)
        return _normalize_order(in_patch, server_only, patch, original, merge_key, kind)


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _directive_target(key: str, prefix: str, error: str) -> str:
    head, slash, rest = key.partition("/")
    if not slash or head != prefix:
        raise InvalidPatch(error)
    return rest


def _set_or_drop(target: dict[str, Any], key: str, value: Any) -> None:
    cleaned, keep = _remove_directives(value)
    if keep:
        target[key] = cleaned
    else:
        target.pop(key, None)


def _remove_directives(value: Any) -> tuple[Any, bool]:
    """A new value without ``$patch`` maps; (value, whether to keep it at all)."""
    if isinstance(value, dict):
        if _PATCH in value:
            return None, False
        cleaned: dict[str, Any] = {}
        for key, item in value.items():
            item, keep = _remove_directives(item)
            if keep:
                cleaned[key] = item
        return cleaned, True
    if isinstance(value, list):
        kept = [_remove_directives(item) for item in value]
        return [item for item, keep in kept if keep], True
    return value, True


def _discard_nulls(value: Any) -> None:
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for item in value.values():
            _discard_nulls(item)
    elif isinstance(value, list):
        for item in value:
            _discard_nulls(item)


def _strip_directives(value: Any) -> Any:
    """Drop directive keys left over in new values (Go drops them as unknown fields)."""
    if isinstance(value, dict):
        return {
            k: _strip_directives(v)
            for k, v in value.items()
            if k not in (_PATCH, _RETAIN_KEYS) and not k.startswith((_SET_ORDER, _DELETE_FROM))
        }
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _go_kind(value: Any) -> str:
    """The Go type a JSON value decodes to (reflect.TypeOf), for type comparisons."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "slice"
    return "object"


def _go_name(value: Any) -> str:
    return {
        "object": "map[string]interface {}",
        "slice": "[]interface {}",
        "nil": "<nil>",
    }.get(_go_kind(value), _go_kind(value))


def _as_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidPatch(f"expected a []interface {{}}, but received a {_go_name(value)}", _RAW)
    return value


def _element_kind(*lists: list[Any]) -> str:
    kinds = {_go_kind(item) for items in lists for item in items}
    if not kinds:
        raise InvalidPatch("no elements in any of the given slices", _RAW)
    if "slice" in kinds:
        raise InvalidPatch("lists of lists are not supported", 422)
    if len(kinds) > 1:
        raise InvalidPatch(f"list element types are not identical: {list(lists)}", _RAW)
    return kinds.pop()


def _scalar_key(value: Any) -> tuple[str, Any]:
    """Go interface equality: same type and same value (1 and 1.0 and True differ)."""
    kind = _go_kind(value)
    if kind in ("object", "slice"):  # unhashable: compare their canonical JSON
        return kind, json.dumps(value, sort_keys=True)
    return kind, value


def _same(left: Any, right: Any) -> bool:
    return _scalar_key(left) == _scalar_key(right)


def _deduplicate(values: list[Any]) -> list[Any]:
    seen: set[tuple[str, Any]] = set()
    unique = []
    for value in values:
        if _scalar_key(value) not in seen:
            seen.add(_scalar_key(value))
            unique.append(value)
    return unique


def _merge_key_value(element: Any, merge_key: str) -> Any:
    if not isinstance(element, dict):
        raise InvalidPatch(
            f"expected a map[string]interface {{}}, but received a {_go_name(element)}", _RAW
        )
    if merge_key not in element:
        raise InvalidPatch(f"map: {element} does not contain declared merge key: {merge_key}", _RAW)
    return element[merge_key]


def _find(elements: list[Any], merge_key: str, value: Any) -> int | None:
    for position, element in enumerate(elements):
        if not isinstance(element, dict):
            raise InvalidPatch(f"value for key {position} is not a map", _RAW)
        if merge_key in element and _same(element[merge_key], value):
            return position
    return None


def _special_elements(
    original: list[Any], patch: list[Any], merge_key: str
) -> tuple[list[Any], list[Any]]:
    """Apply ``$patch`` elements of a merging list; return (original, plain patch)."""
    plain = []
    replace = False
    for element in patch:
        if not isinstance(element, dict) or _PATCH not in element:
            plain.append(element)
            continue
        directive = element[_PATCH]
        if directive == "delete":
            value = _merge_key_value(element, merge_key)
            original = [
                e
                for e in original
                if not (isinstance(e, dict) and merge_key in e and _same(e[merge_key], value))
            ]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise InvalidPatch("merging lists cannot yet be specified in the patch", _RAW)
        else:
            raise InvalidPatch(f"unknown patch type: {directive} in map: {element}", _RAW)
    if replace:
        return plain, []
    return original, plain


def _identity(item: Any, merge_key: str | None) -> tuple[str, Any]:
    if merge_key is None:
        return _scalar_key(item)
    value = item.get(merge_key) if isinstance(item, dict) else None
    return _scalar_key(value)


def _position(items: list[Any], item: Any, merge_key: str | None) -> int:
    identity = _identity(item, merge_key)
    for index, candidate in enumerate(items):
        if _identity(candidate, merge_key) == identity:
            return index
    return -1


def _partition(
    merged: list[Any], by: list[Any], merge_key: str | None
) -> tuple[list[Any], list[Any]]:
    """Split *merged* into the elements named in *by* and the others (server-only)."""
    if merge_key is not None:
        for item in merged:
            _merge_key_value(item, merge_key)
        for index, item in enumerate(by):
            if not isinstance(item, dict):
                raise InvalidPatch(f"value for key {index} is not a map", _RAW)
    named = {_identity(item, merge_key) for item in by}
    inside = [item for item in merged if _identity(item, merge_key) in named]
    outside = [item for item in merged if _identity(item, merge_key) not in named]
    return inside, outside


def _check_order(patch_list: list[Any], order: list[Any], merge_key: str | None) -> None:
    """The patch list must follow ``$setElementOrder`` and name nothing outside it."""
    if not patch_list or not order:
        return
    items = [
        item for item in patch_list if not (isinstance(item, dict) and item.get(_PATCH) == "delete")
    ]
    i = j = 0
    while i < len(items) and j < len(order):
        if isinstance(items[i], dict) and _PATCH in items[i]:
            i += 1
            continue
        if merge_key is None:
            equal = _same(items[i], order[j])
        else:
            equal = _same(
                _merge_key_value(items[i], merge_key), _merge_key_value(order[j], merge_key)
            )
        if equal:
            i += 1
        j += 1
    if i < len(items):
        raise InvalidPatch(
            f"The order in patch list:\n{patch_list}\n doesn't match {_SET_ORDER} list:\n{order}\n",
            _RAW,
        )


def _sort_by(items: list[Any], order: list[Any], merge_key: str | None, kind: str) -> list[Any]:
    deleted: list[Any] = []
    if kind == "object" and merge_key is not None:
        for item in items + order:
            _merge_key_value(item, merge_key)
        deleted = [i for i in items if i.get(_PATCH) == "delete"]
        items = [i for i in items if i.get(_PATCH) != "delete"]

    def rank(item: Any) -> int:
        found = _position(order, item, merge_key)
        return found if found >= 0 else len(order)

    return sorted(items, key=rank) + deleted


def _normalize_order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str | None,
    kind: str,
) -> list[Any]:
    """apimachinery's normalizeElementOrder: patch items in patch order, server-only
    items in server order, interleaved where the server order can tell."""
    if kind == "object" and merge_key is None:
        raise InvalidPatch("cannot order a list of objects that has no merge key", _RAW)
    right = _sort_by(patch_items, patch_order, merge_key, kind)
    left = _sort_by(server_only, server_order, merge_key, kind)
    merged: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            merged.append(left[i])
            i += 1
        elif i >= len(left):
            merged.append(right[j])
            j += 1
        else:
            li = _position(server_order, left[i], merge_key)
            ri = _position(server_order, right[j], merge_key)
            # Only when both are known to the server can a server-only item go first.
            if li >= 0 and ri >= 0 and li < ri:
                merged.append(left[i])
                i += 1
            else:
                merged.append(right[j])
                j += 1
    return merged
