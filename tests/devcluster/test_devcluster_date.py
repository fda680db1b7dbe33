"""The Date of every answer is the devcluster's clock, the one its timestamps are written with.

kube-apiserver sends Go's ``Date`` header from the clock that also writes
``creationTimestamp`` and every condition time; kubeupdate learns the cluster's
time from it (``kubeupdate.kube.clock``), so the simulated clock must show there.
"""

from __future__ import annotations

import email.utils
import ssl
import urllib.request

from devcluster import DevCluster


def date_of(cluster: DevCluster, path: str) -> float:
    headers = {"Authorization": f"Bearer {cluster.token}"} if cluster.token else {}
    request = urllib.request.Request(f"{cluster.url}{path}", headers=headers)  # noqa: S310
    context = ssl.create_default_context(cafile=str(cluster.ca_path)) if cluster.tls else None
    with urllib.request.urlopen(request, context=context) as response:  # noqa: S310
        return email.utils.parsedate_to_datetime(response.headers["Date"]).timestamp()


def test_the_date_header_follows_the_simulated_clock(devcluster: DevCluster) -> None:
    before = date_of(devcluster, "/api/v1/namespaces/default")
    devcluster.advance(3600)
    after = date_of(devcluster, "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1")

    assert after - before >= 3600
    assert abs(after - devcluster.clock.now()) < 2  # Date has whole seconds
