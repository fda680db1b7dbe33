"""The soak: many REST clients writing and reading at once, with no lost update.

Each client owns one container and, round after round, POSTs a new image to
it and GETs it back. One writer per container makes "the last write
acknowledged" well defined; several containers per Deployment make the
writers' patches race on the same objects. The reliability suite runs a
short version (tests/reliability/test_load_soak.py), the benchmark the full one.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

#: (namespace, deployment, container)
Owner = tuple[str, str, str]


@dataclass
class Tally:
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    #: owner -> the image of its last POST answered 200.
    acknowledged: dict[Owner, str] = field(default_factory=dict)
    #: Reads that did not return the owner's last acknowledged image.
    stale_reads: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def image_for(round_: int) -> str:
    return f"registry.example/soak:{round_ + 1}"


async def client(
    session: aiohttp.ClientSession, base: str, owner: Owner, rounds: range, tally: Tally
) -> None:
    namespace, deployment, container = owner
    route = f"{base}/deployment/{namespace}/{deployment}/{container}"
    for round_ in rounds:
        image = image_for(round_)
        async with session.post(route, json={"Image": image}) as answer:
            await answer.read()
            tally.statuses[answer.status] += 1
            if answer.status == 200:
                tally.acknowledged[owner] = image
        async with session.get(route) as answer:
            body = await answer.json(content_type=None)
            tally.statuses[answer.status] += 1
            expected = tally.acknowledged.get(owner)
            if answer.status == 200 and expected is not None and body["Image"] != expected:
                tally.stale_reads.append(f"{route}: read {body['Image']}, wrote {expected}")


async def run_clients(base: str, owners: Sequence[Owner], rounds: range, tally: Tally) -> None:
    """One client per owner, all at once, each doing ``rounds``."""
    connector = aiohttp.TCPConnector(limit=len(owners))
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        asyncio.TaskGroup() as group,
    ):
        for owner in owners:
            group.create_task(client(session, base, owner, rounds, tally))


def lost_updates(tally: Tally, image_of: Callable[[Owner], str]) -> list[str]:
    """Owners whose container does not hold the last acknowledged image."""
    lost = []
    for owner, acknowledged in sorted(tally.acknowledged.items()):
        actual = image_of(owner)
        if actual != acknowledged:
            lost.append(f"{'/'.join(owner)}: holds {actual}, last acknowledged {acknowledged}")
    return lost
