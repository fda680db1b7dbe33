"""What the contract says about each RPC: whether it reads or writes.

The proto states it once: an RPC marked ``idempotency_level =
NO_SIDE_EFFECTS`` reads; one that spells out another level (``IDEMPOTENT``,
or ``IDEMPOTENCY_UNKNOWN``) writes. An RPC that states none, or a method the
descriptors do not know, has no access at all: the security interceptor
refuses it, and a test fails while such an RPC exists, so a new RPC can never
silently become a read or a write.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from google.protobuf import descriptor_pb2, descriptor_pool

if TYPE_CHECKING:
    from kubeupdate.auth.policy import Access

_NO_SIDE_EFFECTS = descriptor_pb2.MethodOptions.IdempotencyLevel.NO_SIDE_EFFECTS


@functools.lru_cache(maxsize=256)
def access_of(full_method: str) -> Access | None:
    """``read`` or ``write`` for ``/package.Service/Method``; None when the proto does not say."""
    service, slash, method = full_method.lstrip("/").partition("/")
    if not slash:
        return None
    try:
        found = descriptor_pool.Default().FindServiceByName(service)
    except KeyError:
        return None
    descriptor = found.methods_by_name.get(method)
    if descriptor is None:
        return None
    options = descriptor.GetOptions()
    if not options.HasField("idempotency_level"):
        return None
    return "read" if options.idempotency_level == _NO_SIDE_EFFECTS else "write"
