"""Table-driven tests of the devcluster's pure pieces: selectors, validation, printing, paths."""

from __future__ import annotations

import pytest
from devcluster.manifests import deployment
from devcluster.resources import DEPLOYMENTS, NAMESPACES, PODS, ResourceType
from devcluster.selectors import FieldSelector, LabelSelector
from devcluster.server import parse_path
from devcluster.statuses import ApiError
from devcluster.tables import human_duration
from devcluster.validation import validate


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("a=1", {"a": "1"}, True),
        ("a=1", {"a": "2"}, False),
        ("a!=1", {}, True),
        ("a in (1, 2)", {"a": "2"}, True),
        ("a notin (1,2),b", {"a": "3", "b": ""}, True),
        ("a notin (1,2),b", {"a": "3"}, False),
        ("!a", {"a": "1"}, False),
        ("", {"x": "y"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert LabelSelector.parse(selector).matches({"metadata": {"labels": labels}}) is matches


def test_field_selector_pins_a_name() -> None:
    selector = FieldSelector.parse("metadata.name=web,metadata.namespace!=kube-system", DEPLOYMENTS)
    assert selector.name() == "web"
    assert selector.matches({"metadata": {"name": "web", "namespace": "default"}})
    assert not selector.matches({"metadata": {"name": "web", "namespace": "kube-system"}})


POD = {
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "devcluster", "restartPolicy": "Always"},
    "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.7"}]},
}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("status.phase=Running", True),
        ("status.phase!=Running", False),
        ("spec.nodeName=devcluster,status.phase==Running", True),
        ("spec.host=devcluster", True),  # the old name of spec.nodeName
        ("status.podIP=10.0.0.7", True),
        ("spec.hostNetwork=false", True),
        ("spec.nodeName=other", False),
    ],
)
def test_pod_field_selectors(selector: str, matches: bool) -> None:
    assert FieldSelector.parse(selector, PODS).matches(POD) is matches


@pytest.mark.parametrize(
    ("resource", "selector", "message"),
    [
        # The kinds with a field label conversion of their own (pkg/apis/core/v1).
        (PODS, "spec.nodename=x", "field label not supported: spec.nodename"),
        (NAMESPACES, "metadata.namespace=x", "field label not supported: metadata.namespace"),
        # apps/v1 registers none: apimachinery's DefaultMetaV1FieldSelectorConversion.
        (
            DEPLOYMENTS,
            "status.phase=Running",
            '"status.phase" is not a known field selector: only "metadata.name",'
            ' "metadata.namespace"',
        ),
        (PODS, "status.phase", "invalid selector: 'status.phase'; can't understand 'status.phase'"),
    ],
)
def test_field_selectors_refuse_what_kube_apiserver_refuses(
    resource: ResourceType, selector: str, message: str
) -> None:
    with pytest.raises(ApiError) as exc:
        FieldSelector.parse(selector, resource)
    assert exc.value.code == 400
    assert exc.value.status["reason"] == "BadRequest"
    assert exc.value.status["message"] == message


@pytest.mark.parametrize(
    ("selector", "hint"),
    [
        ("app=web", ("app", frozenset({"web"}))),
        ("tier!=db,app in (a,b),pod-template-hash=x", ("pod-template-hash", frozenset({"x"}))),
        ("app", ("app", None)),
        ("app!=web,!tier", None),
    ],
)
def test_a_label_selector_names_the_requirement_an_index_can_answer(
    selector: str, hint: tuple[str, frozenset[str] | None] | None
) -> None:
    assert LabelSelector.parse(selector).index_hint() == hint


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (200, "3m20s"),
        (600, "10m"),
        (3 * 3600 + 60, "3h1m"),
        (30 * 3600, "30h"),
        (50 * 3600, "2d2h"),
        (400 * 86400, "400d"),
        (3 * 365 * 86400, "3y"),
    ],
)
def test_human_durations(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/apis/apps/v1/namespaces/default/deployments/web", ("deployments", "default", "web", "")),
        (
            "/apis/apps/v1/namespaces/d/deployments/web/status",
            ("deployments", "d", "web", "status"),
        ),
        ("/apis/apps/v1/deployments", ("deployments", None, "", "")),
        ("/api/v1/namespaces", ("namespaces", None, "", "")),
        ("/api/v1/namespaces/default", ("namespaces", None, "default", "")),
        ("/api/v1/namespaces/default/status", ("namespaces", None, "default", "status")),
        ("/api/v1/namespaces/default/pods", ("pods", "default", "", "")),
        ("/apis/apps/v1/namespaces/d/deployments/web/scale", ("deployments", "d", "web", "scale")),
        ("/apis/apps/v1/namespaces/d/deployments/web/rollback", None),
        ("/apis/batch/v1/jobs", None),
        ("/api/v1/pods/x/y/z", None),
    ],
)
def test_paths(path: str, expected: tuple[str, str | None, str, str] | None) -> None:
    target = parse_path(path)
    if expected is None:
        assert target is None
    else:
        assert target is not None
        assert (target.resource.name, target.namespace, target.name, target.subresource) == expected


def test_valid_deployment_has_no_causes() -> None:
    assert validate(DEPLOYMENTS, deployment("web")) == []


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (lambda d: d["spec"].update(replicas=-1), "spec.replicas", "FieldValueInvalid"),
        (lambda d: d["spec"].pop("selector"), "spec.selector", "FieldValueRequired"),
        (
            lambda d: d["spec"]["template"]["spec"].update(containers=[]),
            "spec.template.spec.containers",
            "FieldValueRequired",
        ),
        (
            lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image=" x "),
            "spec.template.spec.containers[0].image",
            "FieldValueInvalid",
        ),
        (
            lambda d: d["spec"]["template"]["spec"]["containers"].append(
                {"name": "app", "image": "y"}
            ),
            "spec.template.spec.containers[1].name",
            "FieldValueDuplicate",
        ),
    ],
)
def test_deployment_causes(change: object, field: str, reason: str) -> None:
    body = deployment("web")
    assert callable(change)
    change(body)
    causes = validate(DEPLOYMENTS, body)
    assert [(c.field, c.reason) for c in causes] == [(field, reason)]


def test_namespace_names_are_labels() -> None:
    causes = validate(NAMESPACES, {"metadata": {"name": "a.b"}})
    assert causes[0].message.startswith('Invalid value: "a.b": a lowercase RFC 1123 label')


def test_pod_containers_are_checked() -> None:
    causes = validate(PODS, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})
    assert [c.field for c in causes] == ["spec.containers[0].image"]
