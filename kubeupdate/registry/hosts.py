"""How to reach each registry: HTTPS with the system's CAs unless the operator says otherwise.

Two per-registry settings, keyed like the credentials
(:func:`kubeupdate.registry.endpoints.registry_key`):

- ``ca_file``: a PEM bundle of the CAs that sign that registry's certificate
  (a private registry), used instead of the system's.
- ``plain_http``: talk HTTP, not HTTPS. Only for loopback registries
  (``localhost``, ``127.0.0.0/8``, ``[::1]``), where nothing travels over a
  network; anything else is a configuration error rather than a silent
  downgrade.

The same settings apply to a token realm on that host.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kubeupdate.registry.endpoints import is_loopback, registry_key
from kubeupdate.registry.errors import ConfigurationError


@dataclass(frozen=True)
class HostSettings:
    ca_file: Path | None = None
    plain_http: bool = False


@dataclass
class RegistryHosts:
    """The settings of every registry the operator named; defaults for the others."""

    settings: Mapping[str, HostSettings] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.settings = {registry_key(name): value for name, value in self.settings.items()}
        self._contexts: dict[str, ssl.SSLContext] = {}
        for key, value in self.settings.items():
            if value.plain_http and not is_loopback(key):
                raise ConfigurationError(
                    f"plain HTTP is only allowed for a loopback registry, not {key}"
                )
            if value.ca_file is not None:
                try:
                    self._contexts[key] = ssl.create_default_context(cafile=str(value.ca_file))
                except (OSError, ssl.SSLError) as exc:
                    raise ConfigurationError(
                        f"the CA file {value.ca_file} for {key} is unusable: {exc}"
                    ) from exc
        self._default = ssl.create_default_context()

    def scheme(self, key: str) -> str:
        setting = self.settings.get(registry_key(key))
        return "http" if setting is not None and setting.plain_http else "https"

    def ssl_context(self, key: str) -> ssl.SSLContext:
        return self._contexts.get(registry_key(key), self._default)
