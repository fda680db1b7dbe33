"""The request journal: what clients sent, so tests can prove what was (not) written."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """One request and the status answered (None when the connection was dropped)."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: bytes
    status: int | None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def is_write(self) -> bool:
        return self.method not in ("GET", "HEAD", "OPTIONS")


class Journal:
    """Every request in arrival order; bounded so a long demo cannot grow without end.

    Iterating, indexing and :meth:`entries` work on a copy, so the server can
    keep appending while a test reads.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._lock = threading.Lock()
        # A deque drops the oldest entry in O(1), keeping each request's cost constant.
        self._entries: collections.deque[Entry] = collections.deque(maxlen=limit)

    def append(self, entry: Entry) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries)

    def writes(self) -> list[Entry]:
        """Requests that could change something (not GET, LIST or WATCH)."""
        return [e for e in self.entries() if e.is_write]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __getitem__(self, index: int) -> Entry:
        with self._lock:
            return self._entries[index]
