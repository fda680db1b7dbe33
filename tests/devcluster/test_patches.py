"""Tests for devcluster.patches: PATCH bodies as kube-apiserver applies them."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from devcluster.patches import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    InvalidPatch,
    ListStrategy,
    PatchError,
    PatchTestFailed,
    UnsupportedPatchType,
    apply_json_patch,
    apply_merge_patch,
    apply_patch,
    apply_strategic_merge_patch,
)
from hypothesis import given, settings
from hypothesis import strategies as st

Obj = dict[str, Any]
CONTAINERS = "/spec/template/spec/containers"


def deployment(*containers: Obj, **pod_spec: Any) -> Obj:
    """A small apps/v1 Deployment with the given containers."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "tier": "front"},
            "finalizers": ["a/x", "b/y"],
        },
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": list(containers), **pod_spec},
            },
        },
        "status": {
            "conditions": [
                {"type": "Available", "status": "True"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ]
        },
    }


APP = {
    "name": "app",
    "image": "ghcr.io/acme/app:1",
    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
    "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443, "name": "https"}],
    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    "envFrom": [{"configMapRef": {"name": "one"}}],
}
SIDE = {"name": "side", "image": "ghcr.io/acme/side:1"}
LOG = {"name": "log", "image": "busybox:1"}
ORIGINAL = deployment(
    APP,
    SIDE,
    LOG,
    volumes=[{"name": "data", "emptyDir": {}}, {"name": "cache", "emptyDir": {"medium": "Memory"}}],
    imagePullSecrets=[{"name": "ghcr"}],
    tolerations=[{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}],
)


def pod(patch: Obj) -> Obj:
    """Wrap a PodSpec fragment in a Deployment patch."""
    return {"spec": {"template": {"spec": patch}}}


def containers_of(obj: Obj) -> list[Obj]:
    result: list[Obj] = obj["spec"]["template"]["spec"]["containers"]
    return result


def with_containers(*containers: Obj) -> Obj:
    expected = copy.deepcopy(ORIGINAL)
    expected["spec"]["template"]["spec"]["containers"] = list(containers)
    return expected


def with_pod(**changes: Any) -> Obj:
    expected = copy.deepcopy(ORIGINAL)
    for key, value in changes.items():
        if value is None:
            del expected["spec"]["template"]["spec"][key]
        else:
            expected["spec"]["template"]["spec"][key] = value
    return expected


def changed(path: str, value: Any) -> Obj:
    """ORIGINAL with the dotted *path* set to *value* (deleted when value is ...)."""
    expected = copy.deepcopy(ORIGINAL)
    *parents, last = path.split(".")
    node = expected
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return expected


# --- dispatch ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/apply-patch+yaml",
        "text/plain",
        "",
        "Application/merge-patch+json",  # compared exactly, like kube-apiserver
        " application/merge-patch+json",
    ],
)
def test_unsupported_content_type_is_415(content_type: str) -> None:
    with pytest.raises(UnsupportedPatchType) as info:
        apply_patch(ORIGINAL, b"{}", content_type)
    assert info.value.code == 415
    assert info.value.message == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json"
    )


@pytest.mark.parametrize(
    "content_type",
    [
        MERGE_PATCH,
        f"{MERGE_PATCH}; charset=utf-8",
        f"{MERGE_PATCH};charset=UTF-8",
    ],
)
def test_content_type_parameters_are_ignored(content_type: str) -> None:
    result = apply_patch(ORIGINAL, b'{"spec": {"replicas": 3}}', content_type)
    assert result["spec"]["replicas"] == 3


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"spec": {"replicas": 3}}', MERGE_PATCH),
        ('{"spec": {"replicas": 3}}', STRATEGIC_MERGE_PATCH),
        ({"spec": {"replicas": 3}}, STRATEGIC_MERGE_PATCH),
        (bytearray(b'[{"op": "replace", "path": "/spec/replicas", "value": 3}]'), JSON_PATCH),
        ([{"op": "replace", "path": "/spec/replicas", "value": 3}], JSON_PATCH),
    ],
)
def test_body_may_be_bytes_text_or_decoded(body: Any, content_type: str) -> None:
    assert apply_patch(ORIGINAL, body, content_type) == changed("spec.replicas", 3)


@pytest.mark.parametrize("content_type", [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH])
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            [
                {"op": "replace", "path": f"{CONTAINERS}/1/image", "value": "x:2"},
                {"op": "remove", "path": "/metadata/labels"},
            ],
            id="json-patch",
        ),
        pytest.param(
            {"metadata": {"labels": None}, **pod({"containers": [{"name": "side", "image": "x"}]})},
            id="merge",
        ),
    ],
)
def test_original_is_never_mutated(content_type: str, body: Any) -> None:
    original = copy.deepcopy(ORIGINAL)
    patch_body = copy.deepcopy(body)
    try:
        result = apply_patch(original, patch_body, content_type)
    except PatchError:
        result = None
    assert original == ORIGINAL
    assert patch_body == body
    if result is not None:
        # The result shares nothing with the original.
        containers_of(result).append({"name": "z"})
        assert original == ORIGINAL


@pytest.mark.parametrize(
    ("body", "content_type", "code", "message"),
    [
        (b"{", STRATEGIC_MERGE_PATCH, 400, "the patch is not valid JSON"),
        (b"{", JSON_PATCH, 400, "the patch is not valid JSON"),
        (b"{", MERGE_PATCH, 400, "Invalid JSON Patch"),
        (b"NaN", STRATEGIC_MERGE_PATCH, 400, "NaN is not a JSON value"),
        (b'{"a": Infinity}', JSON_PATCH, 400, "Infinity is not a JSON value"),
        (b"\xff{}", STRATEGIC_MERGE_PATCH, 400, "not valid UTF-8"),
        (b"", STRATEGIC_MERGE_PATCH, 400, "the patch is not valid JSON"),
        (b"[]", STRATEGIC_MERGE_PATCH, 400, "cannot unmarshal array into Go value of type map"),
        (b'"x"', STRATEGIC_MERGE_PATCH, 400, "cannot unmarshal string into Go value"),
        (b"{}", JSON_PATCH, 400, "cannot unmarshal object into Go value of type jsonpatch.Patch"),
        (b"[1]", JSON_PATCH, 400, "cannot unmarshal number into Go value of type jsonpatch.Op"),
        (b"5", MERGE_PATCH, 400, "Invalid JSON Patch"),
        (b"null", MERGE_PATCH, 400, "Invalid JSON Patch"),
        (b"[]", MERGE_PATCH, 422, "must be a JSON object"),
    ],
)
def test_malformed_bodies(body: bytes, content_type: str, code: int, message: str) -> None:
    with pytest.raises(InvalidPatch) as info:
        apply_patch(ORIGINAL, body, content_type)
    assert info.value.code == code
    assert message in info.value.message


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"null", JSON_PATCH),
        (b"null", STRATEGIC_MERGE_PATCH),
        (b"{}", STRATEGIC_MERGE_PATCH),
        (b"[]", JSON_PATCH),
        (b"{}", MERGE_PATCH),
    ],
)
def test_empty_patches_change_nothing(body: bytes, content_type: str) -> None:
    assert apply_patch(ORIGINAL, body, content_type) == ORIGINAL


# --- RFC 7386 merge patch ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"spec": {"replicas": 5}}, changed("spec.replicas", 5)),
        ({"metadata": {"labels": {"tier": None}}}, changed("metadata.labels", {"app": "web"})),
        (
            {"metadata": {"labels": {"new": "1"}}},
            changed("metadata.labels", {"app": "web", "tier": "front", "new": "1"}),
        ),
        ({"metadata": {"finalizers": None}}, changed("metadata.finalizers", ...)),
        ({"metadata": {"nothere": None}}, ORIGINAL),
        # Lists are replaced whole: one container left.
        (
            pod({"containers": [{"name": "side", "image": "x:2"}]}),
            with_containers({"name": "side", "image": "x:2"}),
        ),
        # A scalar replaced by an object keeps none of the nulls inside it.
        (
            {"spec": {"replicas": {"a": 1, "b": None}}},
            changed("spec.replicas", {"a": 1}),
        ),
        (
            {"spec": {"strategy": {"rollingUpdate": None, "type": "Recreate"}}},
            changed("spec.strategy", {"type": "Recreate"}),
        ),
        ({"spec": {"strategy": "x"}}, changed("spec.strategy", "x")),
        # Nulls inside a new value are dropped, also in objects inside lists...
        (
            pod({"containers": [{"name": "a", "image": None}]}),
            with_containers({"name": "a"}),
        ),
        # ...except where a non-object replaces an object: evanphx keeps it as sent.
        ({"spec": {"strategy": [{"a": None}]}}, changed("spec.strategy", [{"a": None}])),
    ],
)
def test_merge_patch(patch: Obj, expected: Obj) -> None:
    assert apply_merge_patch(ORIGINAL, patch) == expected
    assert apply_patch(ORIGINAL, json.dumps(patch).encode(), MERGE_PATCH) == expected


# --- RFC 6902 JSON patch -----------------------------------------------------------------

DOC: Obj = {
    "a": {"b": [1, 2, 3], "c": "x"},
    "m~n": 1,
    "s/t": 2,
    "n": None,
    "f": 1.5,
    "t": True,
}


@pytest.mark.parametrize(
    ("operations", "expected"),
    [
        ([{"op": "add", "path": "/a/d", "value": 4}], {**DOC, "a": {**DOC["a"], "d": 4}}),
        ([{"op": "add", "path": "/a/c", "value": "y"}], {**DOC, "a": {**DOC["a"], "c": "y"}}),
        (
            [{"op": "add", "path": "/a/b/0", "value": 0}],
            {**DOC, "a": {"b": [0, 1, 2, 3], "c": "x"}},
        ),
        (
            [{"op": "add", "path": "/a/b/3", "value": 4}],
            {**DOC, "a": {"b": [1, 2, 3, 4], "c": "x"}},
        ),
        (
            [{"op": "add", "path": "/a/b/-", "value": 4}],
            {**DOC, "a": {"b": [1, 2, 3, 4], "c": "x"}},
        ),
        (
            [{"op": "add", "path": "/a/b/1", "value": [9]}],
            {**DOC, "a": {"b": [1, [9], 2, 3], "c": "x"}},
        ),
        ([{"op": "add", "path": "/x", "value": None}], {**DOC, "x": None}),
        ([{"op": "add", "path": "/", "value": 0}], {**DOC, "": 0}),
        ([{"op": "remove", "path": "/a/b/1"}], {**DOC, "a": {"b": [1, 3], "c": "x"}}),
        ([{"op": "remove", "path": "/a/c"}], {**DOC, "a": {"b": [1, 2, 3]}}),
        ([{"op": "remove", "path": "/n"}], {k: v for k, v in DOC.items() if k != "n"}),
        (
            [{"op": "replace", "path": "/a/b/2", "value": 30}],
            {**DOC, "a": {"b": [1, 2, 30], "c": "x"}},
        ),
        ([{"op": "replace", "path": "/n", "value": 1}], {**DOC, "n": 1}),
        ([{"op": "replace", "path": "", "value": {"z": 1}}], {"z": 1}),
        # RFC 6901 escapes: ~1 is '/', ~0 is '~'.
        ([{"op": "replace", "path": "/m~0n", "value": 10}], {**DOC, "m~n": 10}),
        ([{"op": "replace", "path": "/s~1t", "value": 20}], {**DOC, "s/t": 20}),
        (
            [{"op": "move", "from": "/a/c", "path": "/c"}],
            {**DOC, "a": {"b": [1, 2, 3]}, "c": "x"},
        ),
        (
            [{"op": "move", "from": "/a/b/0", "path": "/a/b/-"}],
            {**DOC, "a": {"b": [2, 3, 1], "c": "x"}},
        ),
        ([{"op": "move", "from": "/a", "path": "/a"}], DOC),
        (
            [{"op": "copy", "from": "/a/b", "path": "/b"}],
            {**DOC, "b": [1, 2, 3]},
        ),
        (
            [{"op": "copy", "from": "/a/b/2", "path": "/a/b/0"}],
            {**DOC, "a": {"b": [3, 1, 2, 3], "c": "x"}},
        ),
        # test compares JSON values: key order never matters, 1 equals 1.0.
        ([{"op": "test", "path": "/a", "value": {"c": "x", "b": [1, 2, 3]}}], DOC),
        ([{"op": "test", "path": "/a/b/0", "value": 1.0}], DOC),
        ([{"op": "test", "path": "/f", "value": 1.5}], DOC),
        ([{"op": "test", "path": "/n", "value": None}], DOC),
        ([{"op": "test", "path": "/t", "value": True}], DOC),
        ([{"op": "test", "path": "/m~0n", "value": 1}], DOC),
        ([{"op": "test", "path": "", "value": DOC}], DOC),
        # Operations apply in order, each to the result of the previous one.
        (
            [
                {"op": "add", "path": "/a/b/-", "value": 4},
                {"op": "test", "path": "/a/b/3", "value": 4},
                {"op": "remove", "path": "/a/b/0"},
            ],
            {**DOC, "a": {"b": [2, 3, 4], "c": "x"}},
        ),
    ],
)
def test_json_patch(operations: list[Obj], expected: Any) -> None:
    assert apply_json_patch(DOC, operations) == expected


@pytest.mark.parametrize(
    ("operation", "error", "message"),
    [
        # test failures: a value that differs, a missing member, a bad index.
        (
            {"op": "test", "path": "/a/c", "value": "y"},
            PatchTestFailed,
            "testing value /a/c failed: test failed",
        ),
        (
            {"op": "test", "path": "/t", "value": 1},
            PatchTestFailed,
            "testing value /t failed: test failed",
        ),
        (
            {"op": "test", "path": "/a/b/0", "value": True},
            PatchTestFailed,
            "testing value /a/b/0 failed",
        ),
        (
            {"op": "test", "path": "/a/b", "value": [3, 2, 1]},
            PatchTestFailed,
            "testing value /a/b failed",
        ),
        (
            {"op": "test", "path": "/a", "value": {"c": "x"}},
            PatchTestFailed,
            "testing value /a failed",
        ),
        (
            {"op": "test", "path": "/a/zz", "value": None},
            PatchTestFailed,
            "testing value /a/zz failed: test failed",
        ),
        (
            {"op": "test", "path": "/zz/y", "value": 1},
            PatchTestFailed,
            "test operation does not apply: is missing path: /zz/y: missing value",
        ),
        (
            {"op": "test", "path": "/a/b/7", "value": 1},
            PatchTestFailed,
            "error in test for path: '/a/b/7': "
            "Unable to access invalid index: 7: invalid index referenced",
        ),
        ({"op": "test", "path": "/a/c"}, PatchTestFailed, "missing value field"),
        # other operations on paths that do not exist
        (
            {"op": "add", "path": "/zz/y", "value": 1},
            InvalidPatch,
            'add operation does not apply: doc is missing path: "/zz/y": missing value',
        ),
        (
            {"op": "add", "path": "/a/b/4", "value": 1},
            InvalidPatch,
            "error in add for path: '/a/b/4': Unable to access invalid index: 4",
        ),
        (
            {"op": "add", "path": "/a/b/x", "value": 1},
            InvalidPatch,
            "value was not a proper array index: 'x'",
        ),
        (
            {"op": "add", "path": "/a/b/01", "value": 1},
            InvalidPatch,
            "value was not a proper array index: '01'",
        ),
        (
            {"op": "add", "path": "/a/b/-1", "value": 1},
            InvalidPatch,
            "value was not a proper array index: '-1'",
        ),
        ({"op": "add", "path": "a/b", "value": 1}, InvalidPatch, "add operation does not apply"),
        ({"op": "add", "path": "/a/c/x", "value": 1}, InvalidPatch, "add operation does not apply"),
        ({"op": "add", "path": "/a/b"}, InvalidPatch, "add operation, missing value field"),
        (
            {"op": "remove", "path": "/a/zz"},
            InvalidPatch,
            "error in remove for path: '/a/zz': "
            "Unable to remove nonexistent key: zz: missing value",
        ),
        ({"op": "remove", "path": "/a/b/3"}, InvalidPatch, "Unable to access invalid index: 3"),
        ({"op": "remove", "path": "/a/b/-"}, InvalidPatch, "Unable to access invalid index: -"),
        (
            {"op": "remove", "path": "/q/r"},
            InvalidPatch,
            'remove operation does not apply: doc is missing path: "/q/r"',
        ),
        (
            {"op": "replace", "path": "/a/zz", "value": 1},
            InvalidPatch,
            "replace operation does not apply: doc is missing key: /a/zz: missing value",
        ),
        (
            {"op": "replace", "path": "/q/r", "value": 1},
            InvalidPatch,
            "replace operation does not apply: doc is missing path: /q/r",
        ),
        (
            {"op": "replace", "path": "/a/b/-", "value": 1},
            InvalidPatch,
            "doc is missing key: /a/b/-",
        ),
        (
            {"op": "move", "from": "/zz", "path": "/y"},
            InvalidPatch,
            "error in move for path: 'zz': Unable to remove nonexistent key",
        ),
        (
            {"op": "move", "from": "/q/r", "path": "/y"},
            InvalidPatch,
            "move operation does not apply: doc is missing from path: /q/r",
        ),
        ({"op": "move", "from": "/a", "path": "/a/c/d"}, InvalidPatch, "into its own child"),
        (
            {"op": "move", "from": "/a/c", "path": "/q/r"},
            InvalidPatch,
            "doc is missing destination path: /q/r",
        ),
        (
            {"op": "copy", "from": "/zz", "path": "/y"},
            InvalidPatch,
            "error in copy for from: '/zz': missing value",
        ),
        (
            {"op": "copy", "from": "/a", "path": "/q/r"},
            InvalidPatch,
            "copy operation does not apply: doc is missing destination path",
        ),
        ({"op": "move", "path": "/y"}, InvalidPatch, "move operation failed to decode from"),
        # malformed operations
        ({"op": "frobnicate", "path": "/a"}, InvalidPatch, "Unexpected kind: frobnicate"),
        ({"path": "/a"}, InvalidPatch, "Unexpected kind: unknown"),
        ({"op": 1, "path": "/a"}, InvalidPatch, "Unexpected kind: unknown"),
        ({"op": "remove"}, InvalidPatch, "remove operation failed to decode path: missing value"),
        ({"op": "remove", "path": 3}, InvalidPatch, "remove operation failed to decode path"),
    ],
)
def test_json_patch_failures(operation: Obj, error: type[InvalidPatch], message: str) -> None:
    with pytest.raises(error) as info:
        apply_json_patch(DOC, [operation])
    assert message in info.value.message
    assert info.value.code == 422


def test_json_patch_null_operation_is_unknown_kind() -> None:
    with pytest.raises(InvalidPatch, match="Unexpected kind: unknown") as info:
        apply_patch(DOC, b"[null]", JSON_PATCH)
    assert info.value.code == 422


def test_json_patch_failure_applies_nothing() -> None:
    original = copy.deepcopy(DOC)
    with pytest.raises(PatchTestFailed):
        apply_json_patch(
            original, [{"op": "remove", "path": "/a"}, {"op": "test", "path": "/a", "value": 1}]
        )
    assert original == DOC


def test_json_patch_result_must_be_an_object() -> None:
    with pytest.raises(InvalidPatch, match="not a JSON object") as info:
        apply_patch(DOC, [{"op": "replace", "path": "", "value": [1]}], JSON_PATCH)
    assert info.value.code == 422


def test_json_patch_operation_limit_is_413() -> None:
    operations = [{"op": "test", "path": "/t", "value": True}] * 10_001
    with pytest.raises(
        InvalidPatch, match="maximum operations in a JSON patch is 10000, got 10001"
    ) as info:
        apply_json_patch(DOC, operations)
    assert info.value.code == 413


# What kubeupdate sends: pin index and name, then replace the image.
def pinned_image_patch(index: int, name: str, image: str) -> list[Obj]:
    return [
        {"op": "test", "path": f"{CONTAINERS}/{index}/name", "value": name},
        {"op": "replace", "path": f"{CONTAINERS}/{index}/image", "value": image},
    ]


@pytest.mark.parametrize(
    ("index", "name", "expected"),
    [
        (0, "app", with_containers({**APP, "image": "x:2"}, SIDE, LOG)),
        (1, "side", with_containers(APP, {**SIDE, "image": "x:2"}, LOG)),
        (2, "log", with_containers(APP, SIDE, {**LOG, "image": "x:2"})),
    ],
)
def test_pinned_image_patch(index: int, name: str, expected: Obj) -> None:
    body = json.dumps(pinned_image_patch(index, name, "x:2")).encode()
    assert apply_patch(ORIGINAL, body, JSON_PATCH) == expected


@pytest.mark.parametrize(
    ("index", "name", "message"),
    [
        (1, "app", f"testing value {CONTAINERS}/1/name failed: test failed"),  # moved
        (0, "gone", f"testing value {CONTAINERS}/0/name failed: test failed"),  # removed
        (
            3,
            "app",
            f"test operation does not apply: is missing path: {CONTAINERS}/3/name: missing value",
        ),
    ],
)
def test_pinned_image_patch_fails_when_the_container_moved(
    index: int, name: str, message: str
) -> None:
    with pytest.raises(PatchTestFailed) as info:
        apply_patch(ORIGINAL, pinned_image_patch(index, name, "x:2"), JSON_PATCH)
    assert info.value.message == message
    assert info.value.code == 422


def test_compare_and_swap_on_the_image() -> None:
    swap = [
        {"op": "test", "path": f"{CONTAINERS}/1/image", "value": "ghcr.io/acme/side:0"},
        {"op": "replace", "path": f"{CONTAINERS}/1/image", "value": "x:2"},
    ]
    with pytest.raises(PatchTestFailed):
        apply_patch(ORIGINAL, swap, JSON_PATCH)


# --- strategic merge patch ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        pytest.param(
            pod({"containers": [{"name": "side", "image": "x:2"}]}),
            with_containers(APP, {**SIDE, "image": "x:2"}, LOG),
            id="one-container-image-by-name-keeps-the-others",
        ),
        pytest.param(
            pod({"containers": [{"name": "app", "image": "x:2"}, {"name": "log", "image": "y:2"}]}),
            with_containers({**APP, "image": "x:2"}, SIDE, {**LOG, "image": "y:2"}),
            id="two-containers",
        ),
        pytest.param(
            pod({"containers": [{"name": "new", "image": "n:1"}]}),
            # Added, not rejected. apimachinery puts patch elements before the
            # server-only elements it cannot order them against: first.
            with_containers({"name": "new", "image": "n:1"}, APP, SIDE, LOG),
            id="unknown-container-name-is-added",
        ),
        pytest.param(
            pod(
                {"containers": [{"name": "side", "image": "x:2"}, {"name": "new", "image": "n:1"}]}
            ),
            with_containers(APP, {**SIDE, "image": "x:2"}, {"name": "new", "image": "n:1"}, LOG),
            id="new-container-follows-the-patched-one",
        ),
        pytest.param(
            pod({"containers": [{"name": "side", "$patch": "delete"}]}),
            with_containers(APP, LOG),
            id="delete-list-element-by-key",
        ),
        pytest.param(
            pod({"containers": [{"name": "nope", "$patch": "delete"}]}),
            ORIGINAL,
            id="delete-missing-element-is-a-no-op",
        ),
        pytest.param(
            pod({"containers": [{"name": "solo", "image": "s:1"}, {"$patch": "replace"}]}),
            with_containers({"name": "solo", "image": "s:1"}),
            id="replace-whole-list",
        ),
        pytest.param(
            pod({"containers": [{"name": "side", "image": None}]}),
            with_containers(APP, {"name": "side"}, LOG),
            id="null-deletes-a-key-in-an-element",
        ),
        pytest.param(
            pod(
                {
                    "containers": [
                        {
                            "name": "app",
                            "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                        }
                    ]
                }
            ),
            with_containers(
                {
                    **APP,
                    "env": [
                        {"name": "A", "value": "1"},
                        {"name": "B", "value": "20"},
                        {"name": "C", "value": "3"},
                    ],
                },
                SIDE,
                LOG,
            ),
            id="env-merges-by-name",
        ),
        pytest.param(
            pod({"containers": [{"name": "app", "env": [{"name": "A", "$patch": "delete"}]}]}),
            with_containers({**APP, "env": [{"name": "B", "value": "2"}]}, SIDE, LOG),
            id="env-delete-by-name",
        ),
        pytest.param(
            pod(
                {"containers": [{"name": "app", "ports": [{"containerPort": 443, "name": "tls"}]}]}
            ),
            with_containers(
                {
                    **APP,
                    "ports": [
                        {"containerPort": 80, "name": "http"},
                        {"containerPort": 443, "name": "tls"},
                    ],
                },
                SIDE,
                LOG,
            ),
            id="ports-merge-by-containerPort",
        ),
        pytest.param(
            pod(
                {
                    "containers": [
                        {
                            "name": "app",
                            "volumeMounts": [
                                {"name": "data", "mountPath": "/data", "readOnly": True}
                            ],
                        }
                    ]
                }
            ),
            with_containers(
                {**APP, "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}]},
                SIDE,
                LOG,
            ),
            id="volumeMounts-merge-by-mountPath",
        ),
        pytest.param(
            pod({"containers": [{"name": "app", "envFrom": [{"secretRef": {"name": "two"}}]}]}),
            with_containers({**APP, "envFrom": [{"secretRef": {"name": "two"}}]}, SIDE, LOG),
            id="envFrom-is-replaced",
        ),
        pytest.param(
            pod({"volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}}]}),
            with_pod(
                volumes=[
                    {"name": "data", "emptyDir": {}},
                    {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                ]
            ),
            id="volumes-merge-by-name",
        ),
        pytest.param(
            pod(
                {
                    "volumes": [
                        {
                            "name": "cache",
                            "$retainKeys": ["name", "configMap"],
                            "configMap": {"name": "c"},
                        }
                    ]
                }
            ),
            with_pod(
                volumes=[
                    {"name": "data", "emptyDir": {}},
                    {"name": "cache", "configMap": {"name": "c"}},
                ]
            ),
            id="retainKeys-drops-the-old-volume-source",
        ),
        pytest.param(
            pod({"imagePullSecrets": [{"name": "quay"}]}),
            with_pod(imagePullSecrets=[{"name": "quay"}, {"name": "ghcr"}]),
            id="imagePullSecrets-merge-by-name",
        ),
        pytest.param(
            pod({"tolerations": [{"key": "c", "operator": "Exists"}]}),
            with_pod(tolerations=[{"key": "c", "operator": "Exists"}]),
            id="tolerations-are-replaced",
        ),
        pytest.param(
            pod({"initContainers": [{"name": "init", "image": "i:1"}]}),
            with_pod(initContainers=[{"name": "init", "image": "i:1"}]),
            id="new-list-is-taken-as-is",
        ),
        pytest.param(
            pod({"tolerations": None}),
            with_pod(tolerations=None),
            id="null-deletes-a-list",
        ),
        pytest.param(
            {"metadata": {"labels": {"tier": None, "new": "1"}}},
            changed("metadata.labels", {"app": "web", "new": "1"}),
            id="maps-merge",
        ),
        pytest.param(
            {"metadata": {"labels": {"$patch": "replace", "only": "1"}}},
            changed("metadata.labels", {"only": "1"}),
            id="replace-a-map",
        ),
        pytest.param(
            {"metadata": {"labels": {"$patch": "delete"}}},
            changed("metadata.labels", {}),
            id="delete-a-map-leaves-it-empty",
        ),
        pytest.param(
            {"metadata": {"annotations": {"$patch": "delete"}}},
            ORIGINAL,
            id="delete-a-missing-map-adds-nothing",
        ),
        pytest.param(
            {"metadata": {"annotations": {"a": "1", "b": None}}},
            changed("metadata.annotations", {"a": "1"}),
            id="nulls-in-new-maps-are-dropped",
        ),
        pytest.param(
            {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
            changed("spec.strategy", {"type": "Recreate"}),
            id="retainKeys-on-a-map",
        ),
        pytest.param(
            {"metadata": {"finalizers": ["c/z", "a/x"]}},
            changed("metadata.finalizers", ["c/z", "a/x", "b/y"]),
            id="primitive-merge-list-is-a-set",
        ),
        pytest.param(
            {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a/x", "nope"]}},
            changed("metadata.finalizers", ["b/y"]),
            id="deleteFromPrimitiveList",
        ),
        pytest.param(
            {"metadata": {"$deleteFromPrimitiveList/nothere": ["a"]}},
            ORIGINAL,
            id="deleteFromPrimitiveList-of-a-missing-list",
        ),
        pytest.param(
            {"status": {"conditions": [{"type": "Available", "status": "False"}]}},
            changed(
                "status.conditions",
                [
                    {"type": "Available", "status": "False"},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
                ],
            ),
            id="conditions-merge-by-type",
        ),
        pytest.param(
            {"spec": {"replicas": 3, "paused": True}},
            changed("spec", {**ORIGINAL["spec"], "replicas": 3, "paused": True}),
            id="scalars",
        ),
        pytest.param(
            {"spec": {"template": {"spec": {"containers": {"not": "a list"}}}}},
            with_pod(containers={"not": "a list"}),
            id="a-value-of-another-type-replaces",
        ),
    ],
)
def test_strategic_merge_patch(patch: Obj, expected: Obj) -> None:
    assert apply_strategic_merge_patch(ORIGINAL, patch) == expected
    assert apply_patch(ORIGINAL, json.dumps(patch).encode(), STRATEGIC_MERGE_PATCH) == expected


def test_owner_references_merge_by_uid() -> None:
    original = {
        "metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]}
    }
    patch = {"metadata": {"ownerReferences": [{"uid": "2", "controller": True}]}}
    assert apply_strategic_merge_patch(original, patch) == {
        "metadata": {
            "ownerReferences": [
                {"uid": "1", "name": "a"},
                {"uid": "2", "name": "b", "controller": True},
            ]
        }
    }


def names(items: list[Obj]) -> list[str]:
    return [item["name"] for item in items]


ORDERED = deployment(*({"name": n} for n in ["a", "b", "c", "d"]))


def order(*names_: str) -> list[Obj]:
    return [{"name": n} for n in names_]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        # $setElementOrder alone reorders; named elements take the given order.
        ({"$setElementOrder/containers": order("d", "b", "c", "a")}, ["d", "b", "c", "a"]),
        # Elements it does not name keep their place relative to the server order.
        ({"$setElementOrder/containers": order("b", "a")}, ["b", "a", "c", "d"]),
        # A server-only element goes before a named one it precedes on the server.
        ({"$setElementOrder/containers": order("d", "a")}, ["b", "c", "d", "a"]),
        ({"$setElementOrder/containers": order("c", "a", "d")}, ["b", "c", "a", "d"]),
        # With a patch list: new elements go where the order says.
        (
            {
                "$setElementOrder/containers": order("a", "e", "b", "c", "d"),
                "containers": order("e"),
            },
            ["a", "e", "b", "c", "d"],
        ),
        (
            {
                "$setElementOrder/containers": order("a", "b", "c", "d", "e"),
                "containers": order("e"),
            },
            ["a", "b", "c", "d", "e"],
        ),
        # With a deletion in the patch list.
        (
            {
                "$setElementOrder/containers": order("d", "c", "a"),
                "containers": [{"name": "b", "$patch": "delete"}],
            },
            ["d", "c", "a"],
        ),
        # Without $setElementOrder: patch order, then the server-only elements.
        ({"containers": order("c", "a")}, ["b", "c", "a", "d"]),
        ({"containers": order("b", "x")}, ["a", "b", "x", "c", "d"]),
    ],
)
def test_strategic_merge_patch_order(patch: Obj, expected: list[str]) -> None:
    result = apply_strategic_merge_patch(ORDERED, pod(patch))
    assert names(containers_of(result)) == expected
    assert "$setElementOrder/containers" not in result["spec"]["template"]["spec"]


def test_set_element_order_on_a_primitive_list() -> None:
    patch = {
        "metadata": {"$setElementOrder/finalizers": ["b/y", "c/z", "a/x"], "finalizers": ["c/z"]}
    }
    result = apply_strategic_merge_patch(ORIGINAL, patch)
    assert result["metadata"]["finalizers"] == ["b/y", "c/z", "a/x"]


def test_set_element_order_creates_the_list_from_the_patch() -> None:
    patch = pod({"$setElementOrder/initContainers": order("i"), "initContainers": order("i")})
    result = apply_strategic_merge_patch(ORIGINAL, patch)
    assert result["spec"]["template"]["spec"]["initContainers"] == order("i")


def test_custom_strategies_table() -> None:
    strategies = {"items": ListStrategy("merge", "id"), "tags": ListStrategy("replace")}
    original = {"items": [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}], "tags": {"x": 1}}
    patch = {"items": [{"id": 2, "v": "B"}], "tags": {"y": 2}}
    assert apply_strategic_merge_patch(original, patch, strategies) == {
        "items": [{"id": 1, "v": "a"}, {"id": 2, "v": "B"}],
        "tags": {"y": 2},
    }


def test_merge_key_values_compare_by_json_type() -> None:
    strategies = {"items": ListStrategy("merge", "id")}
    original = {"items": [{"id": 1, "v": "int"}, {"id": True, "v": "bool"}]}
    result = apply_strategic_merge_patch(
        original, {"items": [{"id": True, "v": "BOOL"}]}, strategies
    )
    assert result == {"items": [{"id": 1, "v": "int"}, {"id": True, "v": "BOOL"}]}


@pytest.mark.parametrize(
    ("patch", "code", "message"),
    [
        (pod({"containers": [{"image": "x"}]}), 500, "does not contain declared merge key: name"),
        (
            pod({"containers": [{"$patch": "delete"}]}),
            500,
            "does not contain declared merge key: name",
        ),
        (
            pod({"containers": [{"name": "a", "$patch": "merge"}]}),
            500,
            "merging lists cannot yet be specified",
        ),
        (pod({"containers": [{"name": "a", "$patch": "bogus"}]}), 500, "unknown patch type: bogus"),
        ({"metadata": {"labels": {"$patch": "bogus"}}}, 500, "unknown patch type: bogus"),
        (pod({"containers": [["x"]]}), 422, "lists of lists are not supported"),
        (pod({"containers": ["x"]}), 500, "list element types are not identical"),
        (
            {"spec": {"strategy": {"$retainKeys": "type", "type": "Recreate"}}},
            400,
            "invalid patch format of retainKeys",
        ),
        (
            {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}},
            400,
            "invalid patch format of retainKeys",
        ),
        (
            {"metadata": {"$deleteFromPrimitiveListfinalizers": ["a/x"]}},
            400,
            "invalid patch format of primitive list",
        ),
        (
            pod({"$setElementOrderContainers": order("a")}),
            400,
            "invalid patch format of setElementOrder list",
        ),
        (
            pod({"$setElementOrder/containers": "a"}),
            500,
            "expected a []interface {}, but received a string",
        ),
        (
            pod({"$setElementOrder/containers": order("side", "app"), "containers": order("log")}),
            500,
            "doesn't match $setElementOrder list",
        ),
        (
            pod({"$setElementOrder/containers": [{"image": "x"}]}),
            500,
            "does not contain declared merge key",
        ),
        (
            {"status": {"conditions": [{"status": "x"}]}},
            500,
            "does not contain declared merge key: type",
        ),
    ],
)
def test_strategic_merge_patch_errors(patch: Obj, code: int, message: str) -> None:
    with pytest.raises(InvalidPatch) as info:
        apply_patch(ORIGINAL, json.dumps(patch).encode(), STRATEGIC_MERGE_PATCH)
    assert info.value.code == code
    assert message in info.value.message


def test_lists_of_objects_without_merge_strategy_and_a_merge_key_fail() -> None:
    strategies = {"items": ListStrategy("merge")}
    with pytest.raises(InvalidPatch, match="cannot merge lists without merge key for items"):
        apply_strategic_merge_patch({"items": [{"a": 1}]}, {"items": [{"a": 2}]}, strategies)


def test_directives_never_reach_the_result() -> None:
    patch = pod(
        {
            "initContainers": [{"name": "i", "env": [{"name": "A", "$patch": "delete"}]}],
            "securityContext": {"$retainKeys": ["runAsUser"], "runAsUser": 1},
            "affinity": {"$setElementOrder/x": [1], "nodeAffinity": {"$patch": "delete"}},
        }
    )
    result = apply_strategic_merge_patch(ORIGINAL, patch)
    assert "$" not in json.dumps(result)
    spec = result["spec"]["template"]["spec"]
    assert spec["initContainers"] == [{"name": "i", "env": []}]
    assert spec["securityContext"] == {"runAsUser": 1}
    assert spec["affinity"] == {}


def test_server_only_elements_stay_between_the_ordered_ones() -> None:
    # Shaped like apimachinery's "set elements order in a list with server-only items 3".
    original = deployment(*order("a", "b", "p", "q", "r", "c", "d"))
    patch = pod({"$setElementOrder/containers": order("b", "a", "d", "c")})
    result = apply_strategic_merge_patch(original, patch)
    assert names(containers_of(result)) == ["b", "a", "p", "q", "r", "d", "c"]


# --- properties --------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "image",
                    "spec",
                    "template",
                    "containers",
                    "metadata",
                    "labels",
                    "op",
                    "path",
                    "value",
                    "from",
                    "$patch",
                    "$retainKeys",
                    "$setElementOrder/containers",
                    "$deleteFromPrimitiveList/finalizers",
                    "finalizers",
                    "env",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)
json_pointers = st.lists(
    st.sampled_from(
        [
            "spec",
            "template",
            "containers",
            "0",
            "1",
            "3",
            "-",
            "name",
            "image",
            "metadata",
            "labels",
            "~0",
            "~1",
            "x",
        ]
    ),
    max_size=6,
).map(lambda parts: "".join("/" + p for p in parts))
operations = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "x"]),
        "path": json_pointers,
    },
    optional={"value": json_values, "from": json_pointers},
)


def _wrapped(value: Any) -> Obj:
    return pod({"containers": value}) if isinstance(value, list) else {"spec": value}


@given(
    body=st.one_of(json_values, json_values.map(_wrapped), st.lists(operations, max_size=5)),
    content_type=st.sampled_from([JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH]),
)
@settings(max_examples=300)
def test_patches_fail_only_with_patch_errors(body: Any, content_type: str) -> None:
    original = copy.deepcopy(ORIGINAL)
    code = 200
    try:
        result = apply_patch(original, json.dumps(body).encode(), content_type)
    except PatchError as exc:
        code = exc.code
    else:
        assert isinstance(result, dict)
    assert code in (200, 400, 413, 422, 500)
    assert original == ORIGINAL


@given(st.dictionaries(st.text(max_size=4), json_values, max_size=5))
def test_merge_patch_of_an_object_is_idempotent(patch: Obj) -> None:
    once = apply_merge_patch(ORIGINAL, patch)
    assert apply_merge_patch(once, patch) == once
