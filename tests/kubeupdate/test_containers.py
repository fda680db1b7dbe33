"""Reading and changing container images, against an in-memory Kubernetes (no network, no grpc)."""

from __future__ import annotations

from typing import Any

import pytest

from kubeupdate import errors
from kubeupdate.containers import ContainerImages, ImageChange, Restoration
from kubeupdate.kube import errors as kube_errors
from kubeupdate.kube.api import JsonObject
from kubeupdate.operations import operations
from kubeupdate.patches import image_patch
from kubeupdate.targets import check_target
from kubeupdate.workloads.templates import ContainerImage, ContainerSlot
from tests.kubeupdate.kube.memory import InMemoryDeploymentApi


@pytest.fixture
def api() -> InMemoryDeploymentApi:
    api = InMemoryDeploymentApi()
    api.add_deployment(
        "prod",
        "web",
        {"app": "acme/web:1.0", "sidecar": "envoy:1.30"},
        init_containers={"migrate": "acme/migrate:1.0"},
    )
    api.namespaces.add("empty")
    return api


@pytest.fixture
def images(api: InMemoryDeploymentApi) -> ContainerImages:
    return operations(api, attempts=5, backoff=0).images


def _api_error(cls: type[kube_errors.ApiError], code: int, **kwargs: Any) -> kube_errors.ApiError:
    return cls(code, method="GET", path="/x", **kwargs)


@pytest.mark.parametrize(
    ("slot", "expected_prefix"),
    [
        (ContainerSlot(0, False, "a:1"), "/spec/template/spec/containers/0"),
        (ContainerSlot(3, False, "a:1"), "/spec/template/spec/containers/3"),
        (ContainerSlot(1, True, "a:1"), "/spec/template/spec/initContainers/1"),
    ],
)
def test_image_patch_pins_position_name_and_previous_image(
    slot: ContainerSlot, expected_prefix: str
) -> None:
    assert image_patch(slot, "app", "a:2") == [
        {"op": "test", "path": f"{expected_prefix}/name", "value": "app"},
        {"op": "test", "path": f"{expected_prefix}/image", "value": "a:1"},
        {"op": "replace", "path": f"{expected_prefix}/image", "value": "a:2"},
    ]


async def test_get_container_image(images: ContainerImages) -> None:
    assert await images.get_container_image(check_target("prod", "web", "sidecar")) == "envoy:1.30"


async def test_get_finds_init_containers(images: ContainerImages) -> None:
    assert (
        await images.get_container_image(check_target("prod", "web", "migrate"))
        == "acme/migrate:1.0"
    )


async def test_list_gives_init_containers_first(images: ContainerImages) -> None:
    assert await images.list_container_images(check_target("prod", "web")) == [
        ContainerImage("migrate", "acme/migrate:1.0", True),
        ContainerImage("app", "acme/web:1.0", False),
        ContainerImage("sidecar", "envoy:1.30", False),
    ]


async def test_set_sends_one_patch_and_reports_the_change(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    change = await images.set_container_image(check_target("prod", "web", "sidecar", "envoy:1.31"))
    assert change == ImageChange("prod", "web", "sidecar", "envoy:1.31", "envoy:1.30", True, 2)
    assert api.patches == [
        image_patch(ContainerSlot(1, False, "envoy:1.30"), "sidecar", "envoy:1.31")
    ]
    assert api.image("prod", "web", "sidecar") == "envoy:1.31"
    assert api.image("prod", "web", "app") == "acme/web:1.0"


async def test_set_init_container(images: ContainerImages, api: InMemoryDeploymentApi) -> None:
    change = await images.set_container_image(
        check_target("prod", "web", "migrate", "acme/migrate:2.0")
    )
    assert change.previous_image == "acme/migrate:1.0"
    assert api.patches[0][-1]["path"] == "/spec/template/spec/initContainers/0/image"


async def test_same_image_writes_nothing(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    change = await images.set_container_image(check_target("prod", "web", "app", "acme/web:1.0"))
    assert change == ImageChange("prod", "web", "app", "acme/web:1.0", "acme/web:1.0", False, 1)
    assert api.patches == []


async def test_failed_test_is_retried_on_a_fresh_read(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    def someone_else_writes_first(current: JsonObject) -> None:
        api.before_patch = None
        current["spec"]["template"]["spec"]["containers"][0]["image"] = "acme/web:1.5"

    api.before_patch = someone_else_writes_first
    change = await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))
    assert change.previous_image == "acme/web:1.5"
    assert change.changed
    assert len(api.patches) == 2
    assert api.patches[1][1]["value"] == "acme/web:1.5"
    assert api.image("prod", "web", "app") == "acme/web:2.0"


async def test_container_moved_meanwhile_is_found_at_its_new_index(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    def reorder(current: JsonObject) -> None:
        api.before_patch = None
        current["spec"]["template"]["spec"]["containers"].reverse()

    api.before_patch = reorder
    await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))
    assert api.patches[1][-1]["path"] == "/spec/template/spec/containers/1/image"
    assert api.image("prod", "web", "app") == "acme/web:2.0"
    assert api.image("prod", "web", "sidecar") == "envoy:1.30"


async def test_aborted_after_bounded_attempts(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    counter = iter(range(1000))

    def always_changes(current: JsonObject) -> None:
        current["spec"]["template"]["spec"]["containers"][0]["image"] = (
            f"acme/web:9.{next(counter)}"
        )

    api.before_patch = always_changes
    with pytest.raises(errors.Aborted, match=r"kept changing.*after 5 attempts"):
        await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))
    assert len(api.patches) == 5


async def test_container_removed_meanwhile_is_not_found(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    def remove(current: JsonObject) -> None:
        del current["spec"]["template"]["spec"]["containers"][0]

    api.before_patch = remove
    with pytest.raises(errors.NotFound, match='container "app" not found'):
        await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))


# What kube-apiserver answers a JSON patch that does not apply, whatever the reason.
GENERIC_422 = kube_errors.Invalid(
    422,
    method="PATCH",
    path="/apis/apps/v1/namespaces/prod/deployments/web",
    reason="Invalid",
    message="the server rejected our request due to an error in our request",
    details={},
)


async def test_a_generic_422_after_a_change_undone_meanwhile_is_a_conflict(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    def changed_and_changed_back(current: JsonObject) -> None:
        # acme/web:1.5, then acme/web:1.0 again: the image reads the same, the spec's
        # generation shows two writes. The patch met 1.5 and its test failed.
        api.before_patch = None
        current["metadata"]["generation"] += 2
        current["metadata"]["resourceVersion"] = "99"
        raise GENERIC_422

    api.before_patch = changed_and_changed_back
    change = await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))

    assert change.changed
    assert len(api.patches) == 2
    assert api.image("prod", "web", "app") == "acme/web:2.0"


async def test_a_generic_422_on_an_unchanged_object_is_a_refusal_not_retried(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    api.fail_next("patch_deployment", GENERIC_422)

    with pytest.raises(errors.Rejected) as refused:
        await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))

    assert refused.value.reason == errors.ErrorReason.KUBERNETES_REJECTED
    assert refused.value.message == (
        'Kubernetes refused to set the image of container "app" in deployment prod/web: '
        "the server rejected our request due to an error in our request"
    )
    assert len(api.patches) == 1


def _policy_denial(reason: str, code: int) -> kube_errors.ApiError:
    denial = (
        "ValidatingAdmissionPolicy 'signed-images' with binding 'prod' denied request: "
        "image test failed: not signed"
    )
    cls = kube_errors.Invalid if code == 422 else kube_errors.Forbidden
    return cls(
        code,
        method="PATCH",
        path="/apis/apps/v1/namespaces/prod/deployments/web",
        reason=reason,
        message=f'deployments.apps "web" is forbidden: {denial}',
        details={
            "name": "web",
            "group": "apps",
            "kind": "deployments",
            "causes": [{"message": denial}],
        },
    )


def _webhook_denial(code: int, reason: str) -> kube_errors.ApiError:
    cls = kube_errors.error_class(code)
    return cls(
        code,
        method="PATCH",
        path="/apis/apps/v1/namespaces/prod/deployments/web",
        reason=reason,
        message='admission webhook "validate.kyverno.svc-fail" denied the request: '
        "policy Deployment/prod/web for resource violation: require-digest",
    )


RBAC_DENIAL = kube_errors.Forbidden(
    403,
    method="PATCH",
    path="/apis/apps/v1/namespaces/prod/deployments/web",
    reason="Forbidden",
    message='deployments.apps "web" is forbidden: User "system:serviceaccount:kubeupdate:'
    'kubeupdate" cannot patch resource "deployments" in API group "apps" in the namespace "prod"',
    details={"name": "web", "group": "apps", "kind": "deployments"},
)

QUOTA_DENIAL = kube_errors.Forbidden(
    403,
    method="PATCH",
    path="/apis/apps/v1/namespaces/prod/deployments/web",
    reason="Forbidden",
    message='deployments.apps "web" is forbidden: exceeded quota: compute, requested: '
    "limits.cpu=2, used: limits.cpu=8, limited: limits.cpu=9",
    details={"name": "web", "group": "apps", "kind": "deployments"},
)


@pytest.mark.parametrize(
    ("failure", "error", "reason", "metadata"),
    [
        (
            _policy_denial("Invalid", 422),
            errors.Rejected,
            errors.ErrorReason.ADMISSION_POLICY_DENIED,
            {"policy": "signed-images", "binding": "prod"},
        ),
        (
            _policy_denial("Forbidden", 403),
            errors.Rejected,
            errors.ErrorReason.ADMISSION_POLICY_DENIED,
            {"policy": "signed-images", "binding": "prod"},
        ),
        (
            _webhook_denial(403, "Forbidden"),
            errors.Rejected,
            errors.ErrorReason.ADMISSION_WEBHOOK_DENIED,
            {"webhook": "validate.kyverno.svc-fail"},
        ),
        (
            _webhook_denial(400, ""),
            errors.Rejected,
            errors.ErrorReason.ADMISSION_WEBHOOK_DENIED,
            {"webhook": "validate.kyverno.svc-fail"},
        ),
        (
            _webhook_denial(422, "Invalid"),
            errors.Rejected,
            errors.ErrorReason.ADMISSION_WEBHOOK_DENIED,
            {"webhook": "validate.kyverno.svc-fail"},
        ),
        (
            QUOTA_DENIAL,
            errors.Rejected,
            errors.ErrorReason.KUBERNETES_REJECTED,
            {"namespace": "prod"},
        ),
        (
            RBAC_DENIAL,
            errors.PermissionMissing,
            errors.ErrorReason.KUBERNETES_PERMISSION_MISSING,
            {"verb": "patch", "resource": "deployments.apps", "namespace": "prod"},
        ),
    ],
    ids=[
        "policy-422",
        "policy-403",
        "webhook-403",
        "webhook-400",
        "webhook-422",
        "quota-403",
        "rbac-403",
    ],
)
async def test_refusals_are_told_apart_by_their_status_body_and_never_retried(
    images: ContainerImages,
    api: InMemoryDeploymentApi,
    failure: kube_errors.ApiError,
    error: type[errors.KubeupdateError],
    reason: errors.Reason,
    metadata: dict[str, str],
) -> None:
    api.fail_next("patch_deployment", failure)

    with pytest.raises(error) as refused:
        await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))

    assert type(refused.value) is error
    assert refused.value.reason == reason
    assert refused.value.metadata == metadata
    assert len(api.patches) == 1
    assert api.image("prod", "web", "app") == "acme/web:1.0"


async def test_validation_422_is_rejected_not_retried(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    api.fail_next(
        "patch_deployment",
        kube_errors.Invalid(
            422,
            method="PATCH",
            path="/x",
            reason="Invalid",
            message='Deployment.apps "web" is invalid: denied by policy',
        ),
    )
    with pytest.raises(errors.Rejected, match="denied by policy"):
        await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))
    assert len(api.patches) == 1


@pytest.mark.parametrize(
    ("namespace", "deployment", "container", "message"),
    [
        ("nowhere", "web", "app", 'namespace "nowhere" not found'),
        ("empty", "web", "app", 'deployment "web" not found in namespace "empty"'),
        (
            "prod",
            "web",
            "db",
            'container "db" not found in deployment prod/web; '
            "it has containers: app, sidecar; init containers: migrate",
        ),
    ],
)
async def test_not_found_names_the_missing_level(
    images: ContainerImages, namespace: str, deployment: str, container: str, message: str
) -> None:
    with pytest.raises(errors.NotFound) as get_info:
        await images.get_container_image(check_target(namespace, deployment, container))
    assert str(get_info.value) == message
    with pytest.raises(errors.NotFound) as set_info:
        await images.set_container_image(
            check_target(namespace, deployment, container, "acme/web:2.0")
        )
    assert str(set_info.value) == message


async def test_namespace_unreadable_means_deployment_not_found(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    api.fail_next("get_namespace", _api_error(kube_errors.Forbidden, 403, message="no"))
    with pytest.raises(errors.NotFound, match='deployment "web" not found in namespace "x"'):
        await images.list_container_images(check_target("x", "web"))


@pytest.mark.parametrize(
    ("failure", "expected", "message"),
    [
        (
            _api_error(
                kube_errors.Forbidden,
                403,
                message='deployments.apps "web" is forbidden: cannot get',
                details={"name": "web", "group": "apps", "kind": "deployments"},
            ),
            errors.PermissionMissing,
            r"kubeupdate's service account may not get deployments\.apps in namespace \"prod\"",
        ),
        (
            kube_errors.TooManyRequests(429, retry_after=3, method="GET", path="/x"),
            errors.Unavailable,
            r"overloaded \(429\); retry after 3s",
        ),
        (_api_error(kube_errors.ServerError, 503, message="etcd"), errors.Unavailable, "503"),
        (kube_errors.ConnectionFailed("cannot connect"), errors.Unavailable, "cannot connect"),
        (_api_error(kube_errors.Unauthorized, 401), errors.Unavailable, "401"),
        (kube_errors.CredentialsError("no token"), errors.Unavailable, "no token"),
        (kube_errors.Timeout("too slow"), errors.DeadlineExceeded, "too slow"),
    ],
)
async def test_kubernetes_errors_on_read(
    images: ContainerImages,
    api: InMemoryDeploymentApi,
    failure: kube_errors.KubeError,
    expected: type[errors.KubeupdateError],
    message: str,
) -> None:
    api.fail_next("get_deployment", failure)
    with pytest.raises(expected, match=message) as info:
        await images.get_container_image(check_target("prod", "web", "app"))
    assert info.value.__cause__ is failure


async def test_retry_after_is_kept_for_the_caller(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    api.fail_next(
        "get_deployment", kube_errors.TooManyRequests(429, retry_after=7, method="GET", path="/x")
    )
    with pytest.raises(errors.Unavailable) as info:
        await images.list_container_images(check_target("prod", "web"))
    assert info.value.retry_after == 7


async def test_forbidden_patch_names_the_verb(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    api.fail_next("patch_deployment", RBAC_DENIAL)
    with pytest.raises(errors.PermissionMissing, match=r"may not patch deployments\.apps"):
        await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))


async def test_unknown_status_is_not_disguised(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    failure = _api_error(kube_errors.UnexpectedStatus, 415, message="unsupported media type")
    api.fail_next("patch_deployment", failure)
    with pytest.raises(kube_errors.UnexpectedStatus):
        await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))


async def test_lost_patch_answer_is_success_when_the_image_is_set(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    # The patch lands, then the answer is lost: re-reading shows our image.
    def land_then_drop(current: JsonObject) -> None:
        api.before_patch = None
        current["spec"]["template"]["spec"]["containers"][0]["image"] = "acme/web:2.0"
        raise kube_errors.ConnectionFailed("reset", outcome_unknown=True)

    api.before_patch = land_then_drop
    change = await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))
    assert (change.changed, change.previous_image) == (True, "acme/web:1.0")
    assert len(api.patches) == 1


async def test_lost_patch_is_sent_again_when_it_did_not_land(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    api.fail_next("patch_deployment", kube_errors.Timeout("slow", outcome_unknown=True))
    change = await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))
    assert change.changed
    assert len(api.patches) == 2
    assert api.image("prod", "web", "app") == "acme/web:2.0"


async def test_patch_whose_connection_always_breaks_is_unavailable(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    broken = [kube_errors.ConnectionFailed("reset", outcome_unknown=True) for _ in range(5)]
    api.fail_next("patch_deployment", *broken)
    with pytest.raises(errors.Unavailable, match="kept breaking") as failure:
        await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))
    assert "unchanged" in failure.value.message
    assert len(api.patches) == 5
    assert api.image("prod", "web", "app") == "acme/web:1.0"


async def test_rollback_is_a_compare_and_swap(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))
    restored = await images.restore_container_image(
        "prod", "web", "app", expected="acme/web:2.0", image="acme/web:1.0"
    )
    assert (restored.restored, restored.image) == (True, "acme/web:1.0")
    assert restored.generation == api.deployments[("prod", "web")]["metadata"]["generation"]
    assert {
        "op": "test",
        "path": "/spec/template/spec/containers/0/image",
        "value": "acme/web:2.0",
    } in api.patches[-1]
    await images.set_container_image(
        check_target("prod", "web", "app", "acme/web:3.0")
    )  # someone newer
    skipped = await images.restore_container_image(
        "prod", "web", "app", expected="acme/web:2.0", image="acme/web:1.0"
    )
    assert skipped == Restoration(restored=False, image="acme/web:3.0")
    assert api.image("prod", "web", "app") == "acme/web:3.0"


async def test_rollback_loses_a_race_to_a_newer_change(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))

    def newer(current: JsonObject) -> None:
        current["spec"]["template"]["spec"]["containers"][0]["image"] = "acme/web:3.0"
        api.before_patch = None

    api.before_patch = newer  # lands between our read and our patch
    skipped = await images.restore_container_image(
        "prod", "web", "app", expected="acme/web:2.0", image="acme/web:1.0"
    )
    assert skipped == Restoration(restored=False, image="acme/web:3.0")
    assert api.image("prod", "web", "app") == "acme/web:3.0"


async def test_patch_that_was_never_sent_is_unavailable(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    api.fail_next("patch_deployment", kube_errors.ConnectionFailed("refused"))
    with pytest.raises(errors.Unavailable, match="refused"):
        await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))
    assert api.image("prod", "web", "app") == "acme/web:1.0"


async def test_dry_run_changes_nothing(images: ContainerImages, api: InMemoryDeploymentApi) -> None:
    change = await images.set_container_image(
        check_target("prod", "web", "app", "acme/web:2.0"), dry_run=True
    )
    assert change.changed
    assert api.image("prod", "web", "app") == "acme/web:1.0"


async def test_conflict_is_retried_on_a_fresh_read(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    api.fail_next("patch_deployment", _api_error(kube_errors.Conflict, 409, message="changed"))
    change = await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))
    assert change.changed
    assert [c[0] for c in api.calls] == [
        "get_deployment",
        "patch_deployment",
        "get_deployment",
        "patch_deployment",
    ]


async def test_lost_patch_and_failed_reread_say_the_outcome_is_unknown(
    images: ContainerImages, api: InMemoryDeploymentApi
) -> None:
    def drop_and_go_away(current: JsonObject) -> None:
        api.fail_next(
            "get_deployment",
            kube_errors.TooManyRequests(429, retry_after=2, method="GET", path="/x"),
        )
        raise kube_errors.ConnectionFailed("reset", outcome_unknown=True)

    api.before_patch = drop_and_go_away
    with pytest.raises(errors.Unavailable, match="may or may not have been applied") as info:
        await images.set_container_image(check_target("prod", "web", "app", "acme/web:2.0"))
    assert info.value.retry_after == 2
