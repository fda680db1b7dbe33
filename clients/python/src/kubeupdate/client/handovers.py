"""When a waited change loses the server that follows it: what the client learns from the loss.

A waited ``set`` or ``undo`` is followed by one service replica. When that
replica shuts down it hands the rollout over to another one and answers
UNAVAILABLE with the reason ``ROLLOUT_HANDED_OVER``; its ErrorInfo names the
guarded rollout (:class:`HandOver`), which ``GetGuardedRollout`` follows to
its verdict. When the connection is lost without that answer, the write may
or may not have happened and no guarded rollout is known
(:func:`may_have_written`): the client can only watch the Deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeupdate.client.errors import UNREACHABLE, KubeUpdateError, Unavailable

#: The reason of the status a replica answers a waited change with when it shuts down.
ROLLOUT_HANDED_OVER = "ROLLOUT_HANDED_OVER"
#: The reason of GetGuardedRollout's NOT_FOUND: an unknown id, or a record kept no longer.
GUARDED_ROLLOUT_NOT_FOUND = "GUARDED_ROLLOUT_NOT_FOUND"

# Words of gRPC's own UNAVAILABLE when no connection was made: nothing was sent.
_NEVER_CONNECTED = ("failed to connect", "connection refused", "dns resolution failed")


@dataclass(frozen=True)
class HandOver:
    """A guarded rollout another replica follows now (the ErrorInfo of ROLLOUT_HANDED_OVER)."""

    rollout_id: str
    namespace: str
    deployment: str
    container: str
    #: The image the change applied, and the one it replaced.
    image: str
    previous_image: str
    #: The REST path that follows it: ``/rollout/<ns>/<deploy>/guarded/<id>?wait=true``.
    follow: str

    @classmethod
    def from_error(cls, error: KubeUpdateError) -> HandOver | None:
        """The hand-over an error announces, or None for any other error."""
        facts = error.metadata
        if error.reason != ROLLOUT_HANDED_OVER or not facts.get("rollout_id"):
            return None
        return cls(
            rollout_id=facts["rollout_id"],
            namespace=facts.get("namespace", ""),
            deployment=facts.get("deployment", ""),
            container=facts.get("container", ""),
            image=facts.get("image", ""),
            previous_image=facts.get("previous_image", ""),
            follow=facts.get("follow", ""),
        )


def may_have_written(error: KubeUpdateError) -> bool:
    """Whether a write that failed with ``error`` may still have been applied.

    True when the connection broke with no answer from the service (gRPC's
    own UNAVAILABLE) after it was made: the request may have been received.
    """
    if not isinstance(error, Unavailable) or error.reason != UNREACHABLE:
        return False
    message = error.message.lower()
    return not any(words in message for words in _NEVER_CONNECTED)
