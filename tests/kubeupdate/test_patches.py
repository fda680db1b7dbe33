"""The compare-and-swap patch and the change-cause it records."""

from __future__ import annotations

from kubeupdate.patches import ChangeRecord, change_cause, image_patch
from kubeupdate.workloads.templates import ContainerSlot


def test_change_cause_sentence() -> None:
    me = ChangeRecord("token:release-bot", "ticket 7")
    assert change_cause("app", "nginx:1.25", "nginx:1.26", me) == (
        "kubeupdate: container app nginx:1.25 → nginx:1.26 by token:release-bot (ticket 7)"
    )
    assert change_cause("app", "a:1", "a:2", ChangeRecord("anonymous")) == (
        "kubeupdate: container app a:1 → a:2 by anonymous"
    )
    assert change_cause("app", "a:2", "a:1", me, rollback=True).startswith(
        "kubeupdate: rolled back container app a:2 → a:1 by "
    )


def test_image_patch_records_the_change_in_the_same_patch() -> None:
    slot = ContainerSlot(0, False, "a:1")
    with_map = {"metadata": {"annotations": {"other": "x"}, "resourceVersion": "7"}}
    assert image_patch(slot, "app", "a:2", "why", target=with_map)[3:] == [
        {"op": "add", "path": "/metadata/annotations/kubernetes.io~1change-cause", "value": "why"}
    ]
    without = {"metadata": {"resourceVersion": "7"}}
    assert image_patch(slot, "app", "a:2", "why", target=without)[3:] == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {
            "op": "add",
            "path": "/metadata/annotations",
            "value": {"kubernetes.io/change-cause": "why"},
        },
    ]
    assert len(image_patch(slot, "app", "a:2")) == 3
