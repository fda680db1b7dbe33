"""What the controllers keep so that finding their work never scans the store.

kube-controller-manager does not list every object on every change: informers
keep indexes current from watch events and put the objects an event touched on
a work queue. The devcluster's controllers do the same with the store's
events, so the cost of a write does not grow with the objects stored:

- :class:`Ownership` answers "which objects does this uid control?" and
  "which object has this uid?";
- :class:`Timers` holds, per object, the simulated time its next change is
  due (a Pod becoming Ready, a progress deadline), soonest first.
"""

from __future__ import annotations

import heapq

#: (resource, namespace, name): how the store names an object.
Key = tuple[str, str, str]


class Ownership:
    """Stored objects by uid, and the objects each uid controls (its controller references)."""

    def __init__(self) -> None:
        self._keys: dict[str, Key] = {}
        self._owner_of: dict[Key, str] = {}
        # A dict keeps one entry per child, like a set, and drops it in O(1).
        self._children: dict[str, dict[Key, None]] = {}

    def key_of(self, uid: str) -> Key | None:
        """The stored object with this uid, or None."""
        return self._keys.get(uid)

    def children(self, uid: str) -> list[Key]:
        """What ``uid`` controls, by namespace and name (the store's list order)."""
        return sorted(self._children.get(uid, ()))

    def stored(self, key: Key, uid: str, owner: str | None) -> str | None:
        """Records an object as stored with controller ``owner``; returns its previous owner."""
        self._keys[uid] = key
        previous = self._owner_of.get(key)
        if previous != owner:
            if previous is not None:
                self._unlink(previous, key)
            if owner is not None:
                self._owner_of[key] = owner
                self._children.setdefault(owner, {})[key] = None
        return previous

    def deleted(self, key: Key, uid: str) -> str | None:
        """Forgets a deleted object; returns the owner it had."""
        if self._keys.get(uid) == key:
            del self._keys[uid]
        previous = self._owner_of.get(key)
        if previous is not None:
            self._unlink(previous, key)
        return previous

    def _unlink(self, owner: str, key: Key) -> None:
        del self._owner_of[key]
        children = self._children[owner]
        del children[key]
        if not children:
            del self._children[owner]


class Timers:
    """One wake-up time per object; the soonest first.

    With ``strict``, an object is due only once the clock is *past* its time
    (a progress deadline counts as exceeded after it, not at it); otherwise
    from that time on. Setting a new time replaces the old one.
    """

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self._at: dict[Key, float] = {}
        # Replaced times stay in the heap until they reach its top (lazy deletion).
        self._heap: list[tuple[float, Key]] = []

    def set(self, key: Key, when: float | None) -> None:
        """Wakes ``key`` at ``when``; None forgets it."""
        if when is None:
            self._at.pop(key, None)
            return
        if self._at.get(key) == when:
            return
        self._at[key] = when
        heapq.heappush(self._heap, (when, key))
        # An object rescheduled over and over (a Deployment patched in a loop) must not
        # grow the heap: rebuild it once most of it is stale.
        if len(self._heap) > 2 * len(self._at) + 64:
            self._heap = [(at, k) for k, at in self._at.items()]
            heapq.heapify(self._heap)

    def discard(self, key: Key) -> None:
        self._at.pop(key, None)

    def next(self) -> float | None:
        """The soonest time set, or None."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[Key]:
        """Takes out every object whose time has come."""
        keys: list[Key] = []
        while True:
            self._drop_stale()
            if not self._heap:
                return keys
            when, key = self._heap[0]
            if when > now or (self.strict and when == now):
                return keys
            heapq.heappop(self._heap)
            del self._at[key]
            keys.append(key)

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap and self._at.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
