"""What a request is about, its syntax checked: the one place a request's names and image
are checked.

:func:`check_target` runs first, before anything matches a policy glob against
a name or Kubernetes sees one: a name that is not a valid Kubernetes name, or
an image that is not a valid reference, is INVALID_ARGUMENT with a sentence
that says why (:mod:`kubeupdate.names`, :mod:`kubeupdate.images`), never
"target not allowed". The image is parsed here, once; the policy and the
domain receive the parsed :class:`~kubeupdate.images.ImageReference`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeupdate import names
from kubeupdate.images import ImageReference, parse_image


@dataclass(frozen=True)
class Target:
    """A workload (and maybe one of its containers, and a new image), checked."""

    namespace: str
    #: The workload's name (a Deployment's, today).
    name: str
    #: Empty when the request names no container (list, rollout status, history).
    container: str = ""
    #: The new image of a write; None for reads.
    image: ImageReference | None = None

    def new_image(self) -> ImageReference:
        """The image a write sets (a write's target always has one)."""
        if self.image is None:
            raise ValueError("this target carries no image")
        return self.image


def check_target(
    namespace: str, name: str, container: str | None = None, image: str | None = None
) -> Target:
    """The checked target; raises InvalidArgument for the first thing that is wrong.

    ``container`` and ``image`` are None when the request has no such field;
    an empty one is checked (and refused as missing).
    """
    names.check_namespace(namespace)
    names.check_deployment(name)
    if container is not None:
        names.check_container(container)
    return Target(
        namespace,
        name,
        container or "",
        parse_image(image) if image is not None else None,
    )
