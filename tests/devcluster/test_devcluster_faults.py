"""Fault switches and the request journal."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest
import urllib3
from devcluster.manifests import deployment
from kubernetes.client.exceptions import ApiException

from devcluster import DevCluster, faults

DEPLOYMENT_PATH = "/apis/apps/v1/namespaces/*/deployments/*"
SET_IMAGE = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x:2"}]}}}}


def status_of(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.value.body or "")
    return body


@pytest.fixture
def web(devcluster: DevCluster) -> None:
    devcluster.create(deployment("web"))


@pytest.mark.usefixtures("web")
def test_forbidden_has_the_rbac_message(devcluster: DevCluster, apps: Any) -> None:
    devcluster.faults.add(method="PATCH", path=DEPLOYMENT_PATH, action=faults.forbidden())
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment("web", "default", SET_IMAGE)
    assert exc.value.status == 403
    assert status_of(exc) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "web" is forbidden: User'
        ' "system:serviceaccount:kubeupdate:kubeupdate" cannot patch resource "deployments"'
        ' in API group "apps" in the namespace "default"',
        "reason": "Forbidden",
        "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 403,
    }
    # count=1 by default: the next request goes through.
    apps.patch_namespaced_deployment("web", "default", SET_IMAGE)


@pytest.mark.usefixtures("web")
def test_forbidden_on_a_list_names_the_verb(devcluster: DevCluster, apps: Any) -> None:
    devcluster.faults.add(method="GET", path="*", action=faults.forbidden(user="alice"))
    with pytest.raises(ApiException) as exc:
        apps.list_namespaced_deployment("default")
    assert status_of(exc)["message"] == (
        'deployments.apps is forbidden: User "alice" cannot list resource "deployments"'
        ' in API group "apps" in the namespace "default"'
    )


@pytest.mark.usefixtures("web")
def test_too_many_requests_has_retry_after(devcluster: DevCluster) -> None:
    devcluster.faults.add(path=DEPLOYMENT_PATH, action=faults.too_many_requests(retry_after=3))
    # A raw request: urllib3 (under the kubernetes client) would sleep and retry by itself.
    request = urllib.request.Request(  # noqa: S310
        f"{devcluster.url}/apis/apps/v1/namespaces/default/deployments/web",
        headers={"Authorization": f"Bearer {devcluster.token}"},
    )
    context = ssl.create_default_context(cafile=str(devcluster.ca_path))
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(request, context=context)  # noqa: S310
    assert exc.value.code == 429
    assert exc.value.headers["Retry-After"] == "3"
    assert json.loads(exc.value.read()) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Too many requests, please try again later.",
        "reason": "TooManyRequests",
        "details": {"retryAfterSeconds": 3},
        "code": 429,
    }


@pytest.mark.usefixtures("web")
@pytest.mark.parametrize(
    ("action", "code", "reason"),
    [
        (faults.internal_error(), 500, "InternalError"),
        (faults.unavailable(), 503, "ServiceUnavailable"),
        (faults.conflict(), 409, "Conflict"),
    ],
)
def test_error_answers(
    devcluster: DevCluster, apps: Any, action: faults.Action, code: int, reason: str
) -> None:
    devcluster.faults.add(method="PATCH", path=DEPLOYMENT_PATH, action=action)
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment("web", "default", SET_IMAGE)
    assert exc.value.status == code
    assert status_of(exc)["reason"] == reason
    got = devcluster.get("deployments", "default", "web") or {}
    assert got["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"


@pytest.mark.usefixtures("web")
def test_count_and_until_cleared(devcluster: DevCluster, apps: Any) -> None:
    devcluster.faults.add(path=DEPLOYMENT_PATH, action=faults.internal_error(), count=2)
    for _ in range(2):
        with pytest.raises(ApiException):
            apps.read_namespaced_deployment("web", "default")
    apps.read_namespaced_deployment("web", "default")
    devcluster.faults.add(path=DEPLOYMENT_PATH, action=faults.internal_error(), count=None)
    for _ in range(3):
        with pytest.raises(ApiException):
            apps.read_namespaced_deployment("web", "default")
    devcluster.faults.clear()
    apps.read_namespaced_deployment("web", "default")


@pytest.mark.usefixtures("web")
def test_regex_paths_and_methods_select(devcluster: DevCluster, apps: Any) -> None:
    devcluster.faults.add(method="PATCH", path=r"^/apis/apps/v1/.*/web$", action=faults.conflict())
    apps.read_namespaced_deployment("web", "default")  # GET does not match
    with pytest.raises(ApiException):
        apps.patch_namespaced_deployment("web", "default", SET_IMAGE)


@pytest.mark.usefixtures("web")
def test_delay_then_proceeds(devcluster: DevCluster, apps: Any) -> None:
    devcluster.faults.add(path=DEPLOYMENT_PATH, action=faults.delay(50))
    assert apps.read_namespaced_deployment("web", "default").metadata.name == "web"
    assert devcluster.journal.entries()[-1].status == 200


@pytest.mark.usefixtures("web")
def test_a_short_client_timeout_fires_during_a_delay(devcluster: DevCluster, apps: Any) -> None:
    devcluster.faults.add(path=DEPLOYMENT_PATH, action=faults.delay(1000), count=None)
    # urllib3 retries the GET after each read timeout, then gives up.
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        apps.read_namespaced_deployment("web", "default", _request_timeout=0.2)


@pytest.mark.usefixtures("web")
def test_drop_connection_answers_nothing(devcluster: DevCluster, apps: Any) -> None:
    devcluster.faults.add(
        method="PATCH", path=DEPLOYMENT_PATH, action=faults.drop_connection(), count=None
    )
    with pytest.raises(urllib3.exceptions.HTTPError):
        apps.patch_namespaced_deployment("web", "default", SET_IMAGE)
    # urllib3 retried a few times; every attempt was dropped unanswered.
    patches = [e for e in devcluster.journal.entries() if e.method == "PATCH"]
    assert patches
    assert all(e.status is None for e in patches)
    got = devcluster.get("deployments", "default", "web") or {}
    assert got["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"


@pytest.mark.usefixtures("web")
def test_journal_records_requests(devcluster: DevCluster, apps: Any) -> None:
    devcluster.journal.clear()
    apps.read_namespaced_deployment("web", "default")
    apps.patch_namespaced_deployment("web", "default", SET_IMAGE, dry_run="All")
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment("nope", "default")
    entries = devcluster.journal.entries()
    assert [(e.method, e.path, e.status) for e in entries] == [
        ("GET", "/apis/apps/v1/namespaces/default/deployments/web", 200),
        ("PATCH", "/apis/apps/v1/namespaces/default/deployments/web", 200),
        ("GET", "/apis/apps/v1/namespaces/default/deployments/nope", 404),
    ]
    patch = entries[1]
    assert patch.query == {"dryRun": "All"}
    assert patch.content_type == "application/strategic-merge-patch+json"
    assert json.loads(patch.body) == SET_IMAGE
    assert json.loads(patch.text) == SET_IMAGE
    assert devcluster.journal.writes() == [patch]


def test_journal_records_unauthorized_requests(devcluster: DevCluster) -> None:
    request = urllib.request.Request(f"{devcluster.url}/api")  # noqa: S310
    context = ssl.create_default_context(cafile=str(devcluster.ca_path))
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(request, context=context)  # noqa: S310
    assert devcluster.journal.entries()[-1].status == 401


# -- admission refusals: 403s (and 422s) that are not RBAC --------------------------


@pytest.mark.usefixtures("web")
def test_a_webhook_denial_is_403_without_details_as_gatekeeper_answers(
    devcluster: DevCluster, apps: Any
) -> None:
    devcluster.faults.add(
        method="PATCH",
        path=DEPLOYMENT_PATH,
        action=faults.webhook_denied(
            "validation.gatekeeper.sh", "[pinned-images] images must be pinned by digest"
        ),
    )
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment("web", "default", SET_IMAGE)
    assert exc.value.status == 403
    assert status_of(exc) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'admission webhook "validation.gatekeeper.sh" denied the request:'
        " [pinned-images] images must be pinned by digest",
        "reason": "Forbidden",
        "code": 403,
    }
    got = devcluster.get("deployments", "default", "web") or {}
    assert got["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"


@pytest.mark.usefixtures("web")
def test_a_webhook_that_sets_no_code_or_reason_is_answered_400(
    devcluster: DevCluster, apps: Any
) -> None:
    # Kyverno answers with a message only: the apiserver raises the code to 400.
    devcluster.faults.add(
        path=DEPLOYMENT_PATH,
        action=faults.webhook_denied("validate.kyverno.svc-fail", "blocked", code=0, reason=""),
    )
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment("web", "default", SET_IMAGE)
    assert exc.value.status == 400
    assert "reason" not in status_of(exc)
    assert status_of(exc)["message"] == (
        'admission webhook "validate.kyverno.svc-fail" denied the request: blocked'
    )


@pytest.mark.usefixtures("web")
def test_a_policy_denial_is_422_invalid_by_default_with_its_message_as_a_cause(
    devcluster: DevCluster, apps: Any
) -> None:
    devcluster.faults.add(
        path=DEPLOYMENT_PATH,
        action=faults.policy_denied(
            "pinned-images", "test of the image failed", binding="pinned-images-binding"
        ),
    )
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment("web", "default", SET_IMAGE)
    denial = (
        "ValidatingAdmissionPolicy 'pinned-images' with binding 'pinned-images-binding'"
        " denied request: test of the image failed"
    )
    assert exc.value.status == 422
    assert status_of(exc) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'deployments.apps "web" is forbidden: {denial}',
        "reason": "Invalid",
        "details": {
            "name": "web",
            "group": "apps",
            "kind": "deployments",
            "causes": [{"message": denial}],
        },
        "code": 422,
    }


def test_a_policy_with_reason_forbidden_is_403_and_names_a_created_object(
    devcluster: DevCluster, apps: Any
) -> None:
    devcluster.faults.add(
        method="POST",
        path="*",
        action=faults.policy_denied("no-web", "not here", reason="Forbidden"),
    )
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment("default", deployment("web"))
    assert exc.value.status == 403
    assert status_of(exc)["message"] == (
        "deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'no-web' denied"
        " request: not here"
    )
    assert devcluster.get("deployments", "default", "web") is None


@pytest.mark.usefixtures("web")
def test_admission_runs_after_the_patch_applies_and_never_on_reads(
    devcluster: DevCluster, apps: Any
) -> None:
    devcluster.faults.add(path="*", action=faults.webhook_denied("hook", "no"), count=1)
    apps.read_namespaced_deployment("web", "default")
    apps.list_namespaced_deployment("default")
    with pytest.raises(ApiException) as missing:
        apps.patch_namespaced_deployment("nope", "default", SET_IMAGE)
    assert missing.value.status == 404
    failed_test = [{"op": "test", "path": "/metadata/name", "value": "other"}]
    with pytest.raises(ApiException) as invalid:
        apps.patch_namespaced_deployment(
            "web", "default", failed_test, _content_type="application/json-patch+json"
        )
    assert invalid.value.status == 422
    assert len(devcluster.faults) == 1  # none of these reached admission
    with pytest.raises(ApiException) as denied:
        apps.patch_namespaced_deployment("web", "default", SET_IMAGE, dry_run="All")
    assert denied.value.status == 403  # a dry run is admitted too
    assert len(devcluster.faults) == 0
    apps.patch_namespaced_deployment("web", "default", SET_IMAGE)


def test_an_unknown_policy_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="reason"):
        faults.policy_denied("p", "m", reason="Conflict")
