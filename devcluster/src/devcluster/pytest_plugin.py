"""The ``devcluster`` pytest fixture: a fresh emulator per test.

Enable with ``pytest_plugins = ["devcluster.pytest_plugin"]``.
The CA and serving key are made once per process, so each start costs a
few milliseconds. A test that needs other options (plain HTTP, a speed, a
seed) builds its own ``DevCluster`` in a ``with`` block.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devcluster.cluster import DevCluster


@pytest.fixture
def devcluster() -> Iterator[DevCluster]:
    """A started devcluster (HTTPS, token auth, clock stopped: use ``advance``)."""
    with DevCluster() as cluster:
        yield cluster
