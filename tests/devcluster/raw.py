"""Raw HTTP to a devcluster, for what the kubernetes client hides (bytes, headers, bodies)."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass

from devcluster import DevCluster


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def call(
    cluster: DevCluster,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str | None = None,
    accept: str = "application/json",
) -> Answer:
    """One request with the cluster's token; error statuses are answered, not raised."""
    headers = {"Accept": accept}
    if cluster.token is not None:
        headers["Authorization"] = f"Bearer {cluster.token}"
    if content_type is not None:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(  # noqa: S310
        f"{cluster.url}{path}", data=body, method=method, headers=headers
    )
    context = ssl.create_default_context(cafile=str(cluster.ca_path)) if cluster.tls else None
    try:
        with urllib.request.urlopen(request, context=context) as response:  # noqa: S310
            return Answer(response.status, response.headers["Content-Type"], response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers["Content-Type"], exc.read())
