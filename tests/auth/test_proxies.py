"""Whose x-forwarded-for is believed, and what a call's source is then."""

from __future__ import annotations

import pytest

from kubeupdate.auth.proxies import Origin, ProxyTrust, last_address, parse_network, peer_host

FORWARDED = (("x-forwarded-for", "198.51.100.1, 203.0.113.9"),)


@pytest.mark.parametrize(
    ("trust", "metadata", "peer", "identities", "origin"),
    [
        # Nobody is trusted by default: not even loopback.
        (ProxyTrust(), FORWARDED, "ipv4:127.0.0.1:5000", (), ("127.0.0.1", FORWARDED[0][1])),
        (ProxyTrust(), (), "ipv4:127.0.0.1:5000", (), ("127.0.0.1", None)),
        # By address or network: the last address of the list is the client.
        (ProxyTrust(["10.0.0.5"]), FORWARDED, "ipv4:10.0.0.5:1", (), ("203.0.113.9", None)),
        (ProxyTrust(["10.0.0.0/8"]), FORWARDED, "ipv4:10.9.8.7:1", (), ("203.0.113.9", None)),
        (
            ProxyTrust(["10.0.0.0/8"]),
            FORWARDED,
            "ipv4:11.0.0.1:1",
            (),
            ("11.0.0.1", FORWARDED[0][1]),
        ),
        (
            ProxyTrust(["fd00::/8"]),
            (("x-forwarded-for", "2001:db8::7"),),
            "ipv6:[fd00::1]:443",
            (),
            ("2001:db8::7", None),
        ),
        # By client certificate identity.
        (
            ProxyTrust(identities=["gw"]),
            FORWARDED,
            "ipv4:10.0.0.9:1",
            {"gw"},
            ("203.0.113.9", None),
        ),
        (
            ProxyTrust(identities=["gw"]),
            FORWARDED,
            "ipv4:10.0.0.9:1",
            {"someone"},
            ("10.0.0.9", FORWARDED[0][1]),
        ),
        # By the key of the gateway started alongside.
        (
            ProxyTrust(key="k" * 43),
            (*FORWARDED, ("x-kubeupdate-proxy", "k" * 43)),
            "ipv4:127.0.0.1:1",
            (),
            ("203.0.113.9", None),
        ),
        (
            ProxyTrust(key="k" * 43),
            (*FORWARDED, ("x-kubeupdate-proxy", "guess")),
            "ipv4:127.0.0.1:1",
            (),
            ("127.0.0.1", FORWARDED[0][1]),
        ),
    ],
)
def test_the_source_of_a_call(
    trust: ProxyTrust,
    metadata: tuple[tuple[str, str], ...],
    peer: str,
    identities: set[str],
    origin: tuple[str, str | None],
) -> None:
    found = trust.origin(metadata, peer, identities)
    assert (found.source, found.ignored) == origin
    assert found.peer == peer_host(peer)


@pytest.mark.parametrize(
    "forwarded",
    ["nonsense", "203.0.113.9, nonsense", "", " , ", "203.0.113.9:443", "[2001:db8::1]", "a\nb"],
)
def test_a_forwarded_value_that_is_not_a_list_of_addresses_is_not_believed(
    forwarded: str,
) -> None:
    trust = ProxyTrust(["127.0.0.1"])
    origin = trust.origin((("x-forwarded-for", forwarded),), "ipv4:127.0.0.1:5000")
    assert origin == Origin("127.0.0.1", "127.0.0.1", forwarded)
    assert last_address(forwarded) is None


def test_networks_must_parse() -> None:
    assert str(parse_network("10.1.2.3/8")) == "10.0.0.0/8"
    with pytest.raises(ValueError, match="'loopback' is not an IP address or network"):
        ProxyTrust(["loopback"])


def test_peer_hosts() -> None:
    assert peer_host("ipv4:127.0.0.1:5000") == "127.0.0.1"
    assert peer_host("ipv6:[::1]:5000") == "::1"
    assert peer_host("unix:/tmp/s") == "unix:/tmp/s"
