"""The compare-and-swap patch and the record of the change it writes."""

from __future__ import annotations

import json

import pytest

from kubeupdate.kube.api import JsonObject
from kubeupdate.patches import ChangeRecord, RecordedChange, image_patch
from kubeupdate.workloads.templates import ContainerSlot, template_digest, template_with_image

ME = ChangeRecord("token:release-bot", "ticket 7", "req-1")
NOTE = RecordedChange.of("app", "a:1", "a:2", ME, template="sha256:ab")


def test_the_record_says_what_changed_in_words() -> None:
    assert RecordedChange.of("app", "nginx:1.25", "nginx:1.26", ME, template="").sentence() == (
        "kubeupdate: container app nginx:1.25 → nginx:1.26 by token:release-bot (ticket 7)"
    )
    anonymous = ChangeRecord("anonymous")
    assert RecordedChange.of("app", "a:1", "a:2", anonymous, template="").sentence() == (
        "kubeupdate: container app a:1 → a:2 by anonymous"
    )
    back = RecordedChange.of("app", "a:2", "a:1", ME, template="", rollback=True)
    assert back.sentence().startswith("kubeupdate: rolled back container app a:2 → a:1 by ")


def test_the_record_survives_its_annotation_and_malformed_ones_are_none() -> None:
    assert RecordedChange.parse(NOTE.annotation()) == NOTE
    assert json.loads(NOTE.annotation())["request_id"] == "req-1"
    wrong_type = NOTE.annotation().replace('"rollback":false', '"rollback":"no"')
    for value in (None, "", "not json", "[]", '{"container": "app"}', 7, wrong_type):
        assert RecordedChange.parse(value) is None


def test_a_record_names_only_the_template_its_change_produced() -> None:
    obj: JsonObject = {
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "a:1"}]},
            }
        }
    }
    slot = ContainerSlot(0, False, "a:1")
    produced = template_with_image(obj, slot, "a:2")
    assert produced["spec"]["containers"][0]["image"] == "a:2"
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "a:1"  # a copy
    note = RecordedChange.of("app", "a:1", "a:2", ME, template=template_digest(produced))
    assert note.made(template_digest(json.loads(json.dumps(produced))))
    produced["spec"]["containers"][0]["env"] = [{"name": "X", "value": "1"}]
    assert not note.made(template_digest(produced))
    assert not RecordedChange.of("app", "a:1", "a:2", ME, template="").made("")


def test_image_patch_records_the_change_in_the_same_patch() -> None:
    slot = ContainerSlot(0, False, "a:1")
    with_map = {"metadata": {"annotations": {"other": "x"}, "resourceVersion": "7"}}
    assert image_patch(slot, "app", "a:2", NOTE, target=with_map)[3:] == [
        {
            "op": "add",
            "path": "/metadata/annotations/kubeupdate.dev~1change",
            "value": NOTE.annotation(),
        }
    ]
    without = {"metadata": {"resourceVersion": "7"}}
    assert image_patch(slot, "app", "a:2", NOTE, target=without)[3:] == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {
            "op": "add",
            "path": "/metadata/annotations",
            "value": {"kubeupdate.dev/change": NOTE.annotation()},
        },
    ]
    assert len(image_patch(slot, "app", "a:2")) == 3


@pytest.mark.parametrize("cause", ["kubeupdate: container app a:0 → a:1 by ci", "ticket 3"])
def test_a_change_cause_found_is_removed_never_written(cause: str) -> None:
    slot = ContainerSlot(0, False, "a:1")
    target = {"metadata": {"annotations": {"kubernetes.io/change-cause": cause}}}
    operations = image_patch(slot, "app", "a:2", NOTE, target=target)
    assert operations[-1] == {
        "op": "remove",
        "path": "/metadata/annotations/kubernetes.io~1change-cause",
    }
    assert not any(op.get("value") == cause for op in operations)
