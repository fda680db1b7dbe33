"""A request's target is checked once, first: names, then the image, parsed."""

from __future__ import annotations

import pytest

from kubeupdate import errors
from kubeupdate.images import ImageReference
from kubeupdate.targets import Target, check_target


@pytest.mark.parametrize(
    ("namespace", "deployment", "container", "image", "field"),
    [
        ("Prod", "web", "app", "a:1", "namespace"),
        ("prod", "web_1", "app", "a:1", "deployment"),
        ("prod", "web", "", "a:1", "container"),
        ("prod", "web", "app", "UPPER:1", "image"),
        ("prod", "web", "app", "", "image"),
        # The first thing that is wrong is the one reported.
        ("Prod", "web_1", "", "UPPER:1", "namespace"),
    ],
)
def test_the_first_invalid_field_is_told(
    namespace: str, deployment: str, container: str, image: str, field: str
) -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        check_target(namespace, deployment, container, image)
    assert refused.value.message.startswith(field)


def test_a_write_carries_the_parsed_image() -> None:
    target = check_target("prod", "web", "app", "ghcr.io/acme/web:1.2")
    assert target == Target("prod", "web", "app", ImageReference("ghcr.io", "acme/web", "1.2"))
    assert str(target.new_image()) == "ghcr.io/acme/web:1.2"


def test_a_read_has_no_image_and_maybe_no_container() -> None:
    assert check_target("prod", "web") == Target("prod", "web")
    with pytest.raises(ValueError, match="no image"):
        check_target("prod", "web", "app").new_image()
