"""Strategic merge patch (``application/strategic-merge-patch+json``) for apps/v1 Deployments.

apimachinery's ``strategicpatch`` semantics with a table of patch strategies
for apps/v1 Deployments (:data:`DEPLOYMENT_STRATEGIES`): lists with a merge key
merge element by element, other lists are replaced; directives ``$patch``
(``delete``/``replace``), ``$setElementOrder/<list>``, ``$retainKeys`` and
``$deleteFromPrimitiveList/<list>``. An element whose merge key is unknown is
*added*: a container patched by a name that does not exist becomes a new
container. Like apimachinery, patch elements are placed before the
server-only elements they cannot be ordered against, so a lone new element
comes first.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from devcluster.patches.errors import InvalidPatch, go_type


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
            f"json: cannot unmarshal {go_type(patch)} "
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
