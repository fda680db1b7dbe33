"""Who may speak for a client: the proxies whose ``x-forwarded-for`` is believed.

The REST gateway calls the service for its clients and names each one in
``x-forwarded-for``. Anyone who reaches the gRPC port can send that metadata
too, so it is believed only from a peer the operator named, and only when it
is a list of IP addresses; otherwise the peer's own address is the source.
Three ways to name a proxy:

- ``--trusted-proxy``: an address or a network (``10.0.0.5``, ``10.0.0.0/8``);
- ``--trusted-proxy-cert``: the identity (CN or SAN) of a client certificate
  verified by mTLS, which pod addresses cannot forge;
- the gateway that ``kubeupdate serve`` starts in the same process proves
  itself with a key made at start, in ``x-kubeupdate-proxy`` metadata, so a
  local process on the loopback is not believed.

A trusted proxy appends the address it saw last, so the last element of the
list is the client. The audit line records the source and the peer, and a
forwarded address that was not believed (see :class:`Origin`).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

FORWARDED_FOR_KEY: Final = "x-forwarded-for"
PROXY_KEY: Final = "x-kubeupdate-proxy"


@dataclass(frozen=True)
class Origin:
    """Where a call comes from.

    ``source`` is the client the call is attributed to (rate limits, audit):
    the forwarded address when believed, else ``peer``, the address of the
    connection. ``ignored`` is a forwarded address that was not believed.
    """

    source: str
    peer: str
    ignored: str | None = None


class ProxyTrust:
    """The proxies the operator trusts; :meth:`origin` decides each call's source."""

    def __init__(
        self,
        networks: Iterable[str] = (),
        identities: Iterable[str] = (),
        key: str | None = None,
    ) -> None:
        """Raises ValueError for a network that does not parse."""
        self._networks = tuple(parse_network(text) for text in networks)
        self._identities = frozenset(identities)
        self._key = key.encode() if key else None

    def origin(
        self, metadata: Iterable[tuple[str, Any]], peer: str, identities: Iterable[str] = ()
    ) -> Origin:
        """The origin of a call from ``peer`` (``ipv4:10.0.0.5:4431``) with this metadata.

        ``identities`` are the names of the peer's verified client certificate.
        """
        host = peer_host(peer)
        values = _values(metadata)
        forwarded = values.get(FORWARDED_FOR_KEY)
        if forwarded is None:
            return Origin(host, host)
        client = last_address(forwarded)
        if client is None or not self._trusts(host, values.get(PROXY_KEY), identities):
            return Origin(host, host, forwarded)
        return Origin(client, host)

    @property
    def by_certificate(self) -> bool:
        """Whether some proxies are known by their client certificate."""
        return bool(self._identities)

    def is_proxy(self, identities: Iterable[str]) -> bool:
        """Whether a verified client certificate with these names is a trusted proxy's."""
        return not self._identities.isdisjoint(identities)

    def _trusts(self, host: str, key: str | None, identities: Iterable[str]) -> bool:
        if (
            self._key is not None
            and key is not None
            and hmac.compare_digest(key.encode(), self._key)
        ):
            return True
        if self.is_proxy(identities):
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An address or a network in CIDR form; ValueError with the text otherwise."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or network (e.g. 10.0.0.0/8)") from None


def last_address(forwarded: str) -> str | None:
    """The last address of an ``x-forwarded-for`` list, or None unless every element is one."""
    elements = [element.strip() for element in forwarded.split(",")]
    try:
        addresses = [ipaddress.ip_address(element) for element in elements]
    except ValueError:
        return None
    return str(addresses[-1])


def peer_host(peer: str) -> str:
    """The host of a gRPC peer: ``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``, ``unix:/path``."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    return peer


def _values(metadata: Iterable[tuple[str, Any]]) -> Mapping[str, str]:
    # The last value of each key wins; metadata keys arrive lowercase.
    return {key: value for key, value in metadata if isinstance(value, str)}
