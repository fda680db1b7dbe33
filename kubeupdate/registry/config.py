"""The registry settings of ``kubeupdate serve`` and the checker built from them.

:class:`RegistryConfig` is what the ``--registry-*`` flags say;
:func:`build_checks` makes the one :class:`~kubeupdate.image_checks.ImageChecks`
of the process (a client, its credentials file watched, the resolution
cache). Reading the flags loads neither aiohttp nor cryptography: the
gateway-only process reads them too.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from kubeupdate.registry.endpoints import is_loopback, registry_key
from kubeupdate.registry.platforms import DEFAULT_PLATFORMS, Platform

if TYPE_CHECKING:
    from kubeupdate.image_checks import ImageChecks

#: ``--registry-check``: only where an image rule asks, or on every write.
CHECK_CHOICES: Final = ("policy", "always")
#: ``--registry-unreachable``: what a write does when its registry cannot be reached.
Unreachable = Literal["refuse", "allow"]
UNREACHABLE_CHOICES: Final = ("refuse", "allow")
DEFAULT_CACHE_TTL: Final = 10.0


@dataclass(frozen=True)
class RegistryConfig:
    """How to reach registries, and when to check images there."""

    #: A Docker ``config.json`` with the credentials kubeupdate may use; re-read on change.
    credentials_file: Path | None = None
    #: Registry (``host[:port]``) → the PEM file of the CAs that sign its certificate.
    ca_files: dict[str, Path] = field(default_factory=dict)
    #: Loopback registries spoken to in plain HTTP.
    plain_http: tuple[str, ...] = ()
    #: Seconds a tag's digest is kept (concurrent checks of one tag share one request).
    cache_ttl: float = DEFAULT_CACHE_TTL
    #: ``refuse``: a write whose registry cannot be reached fails (UNAVAILABLE);
    #: ``allow``: a check without pin or signature is skipped, and the answer says so.
    unreachable: Unreachable = "refuse"
    #: Check every write's image, even where no image rule asks.
    always: bool = False
    #: The platforms an image must offer where the rule names none.
    platforms: tuple[Platform, ...] = tuple(Platform.parse(p) for p in DEFAULT_PLATFORMS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The registry flags; read back by :func:`config_from`."""
    defaults = RegistryConfig()
    group = parser.add_argument_group("registry checks")
    group.add_argument(
        "--registry-check",
        choices=CHECK_CHOICES,
        default=CHECK_CHOICES[0],
        help="policy: check images where an image rule asks (registry: check, digest: pin, "
        "platforms, signature); always: check every write's image (default: %(default)s)",
    )
    group.add_argument(
        "--registry-config",
        type=Path,
        help="Docker config.json with registry credentials (its 'auths'); re-read on change",
    )
    group.add_argument(
        "--registry-ca",
        action="append",
        metavar="HOST=PATH",
        help="trust the CAs in PATH (PEM) for the registry HOST[:PORT] (repeatable)",
    )
    group.add_argument(
        "--registry-plain-http",
        action="append",
        metavar="HOST",
        help="talk plain HTTP to this loopback registry, e.g. 127.0.0.1:5000 (repeatable)",
    )
    group.add_argument(
        "--registry-cache-ttl",
        type=float,
        default=defaults.cache_ttl,
        help="seconds a tag's digest is kept; concurrent checks share one request "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--registry-unreachable",
        choices=UNREACHABLE_CHOICES,
        default=defaults.unreachable,
        help="refuse: a write whose registry cannot be reached fails (UNAVAILABLE); allow: "
        "it goes on without the check, unless the rule pins or requires a signature "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--registry-platform",
        action="append",
        metavar="OS/ARCH[/VARIANT]",
        help="a platform images must offer where the image rule names none (repeatable; "
        f"default: {', '.join(DEFAULT_PLATFORMS)})",
    )


def config_from(arguments: argparse.Namespace) -> RegistryConfig:
    """The :class:`RegistryConfig` for flags added by :func:`add_arguments`; ValueError."""
    ca_files: dict[str, Path] = {}
    for item in arguments.registry_ca or ():
        host, equals, path = item.partition("=")
        if not equals or not host or not path:
            raise ValueError(f"--registry-ca takes HOST=PATH, not {item!r}")
        ca_files[registry_key(host)] = Path(path)
    plain = tuple(registry_key(h) for h in arguments.registry_plain_http or ())
    for host in plain:
        if not is_loopback(host):
            raise ValueError(
                f"--registry-plain-http {host}: plain HTTP is only allowed for a loopback "
                "registry (localhost, 127.0.0.0/8, [::1])"
            )
    both = sorted(set(plain) & set(ca_files))
    if both:
        raise ValueError(f"{both[0]} has both --registry-ca and --registry-plain-http")
    if arguments.registry_cache_ttl < 0:
        raise ValueError("--registry-cache-ttl must be 0 or more seconds")
    try:
        platforms = tuple(Platform.parse(p) for p in arguments.registry_platform or ())
    except ValueError as exc:
        raise ValueError(f"--registry-platform: {exc}") from None
    return RegistryConfig(
        credentials_file=arguments.registry_config,
        ca_files=ca_files,
        plain_http=plain,
        cache_ttl=arguments.registry_cache_ttl,
        unreachable=arguments.registry_unreachable,
        always=arguments.registry_check == "always",
        platforms=platforms or RegistryConfig.platforms,
    )


def build_checks(config: RegistryConfig) -> ImageChecks:
    """The process's checker; ConfigurationError (a ValueError) when a file is unusable."""
    from kubeupdate.image_checks import ImageChecks
    from kubeupdate.registry.client import RegistryClient
    from kubeupdate.registry.credentials import RegistryCredentials, watch_credentials
    from kubeupdate.registry.hosts import HostSettings, RegistryHosts
    from kubeupdate.registry.verifier import ImageVerifier

    settings = {key: HostSettings(ca_file=path) for key, path in config.ca_files.items()}
    settings.update({key: HostSettings(plain_http=True) for key in config.plain_http})
    hosts = RegistryHosts(settings)
    reload = None
    if config.credentials_file is not None:
        watched = watch_credentials(config.credentials_file)
        client = RegistryClient(credentials=lambda: watched.value, hosts=hosts)
        reload = watched.reload
    else:
        client = RegistryClient(credentials=RegistryCredentials, hosts=hosts)
    return ImageChecks(
        ImageVerifier(client, ttl=config.cache_ttl),
        platforms=config.platforms,
        always=config.always,
        unreachable=config.unreachable,
        reload=reload,
    )
