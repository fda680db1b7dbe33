"""Registry credentials the operator grants explicitly, in Docker's ``config.json`` format.

kubeupdate never reads the cluster's image pull Secrets (that would need
``get`` on Secrets); it reads one file the operator mounts, typically the
``.dockerconfigjson`` of a Secret made for kubeupdate alone, or the file
``docker login`` writes::

    {"auths": {
        "ghcr.io": {"auth": "<base64 of user:password>"},
        "registry.example:5000": {"username": "ci", "password": "..."},
        "https://index.docker.io/v1/": {"identitytoken": "<OAuth2 refresh token>"}
    }}

Keys are folded with :func:`kubeupdate.registry.endpoints.registry_key`, so
Docker Hub's spellings all find the same entry. Credential helpers
(``credsStore``, ``credHelpers``) run programs and are refused: the operator
must write the secret into ``auths``. The file is re-read on change (and on
SIGHUP: :func:`watch_credentials`); a broken new version keeps the previous one.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeupdate.auth.reloading import WatchedFile
from kubeupdate.registry.endpoints import registry_key
from kubeupdate.registry.errors import ConfigurationError


@dataclass(frozen=True)
class Credential:
    """What to present to one registry. Secrets never appear in ``repr``."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # An OAuth2 refresh token (``docker login`` with an identity provider): traded
    # at the token realm for an access token, never sent to the registry itself.
    identity_token: str | None = field(default=None, repr=False)

    @property
    def has_basic(self) -> bool:
        return self.username is not None and self.password is not None


@dataclass(frozen=True)
class RegistryCredentials:
    """Credentials by registry key; an empty table means anonymous everywhere."""

    by_registry: Mapping[str, Credential] = field(default_factory=dict)

    def lookup(self, key: str) -> Credential | None:
        return self.by_registry.get(registry_key(key))

    def __repr__(self) -> str:
        return f"RegistryCredentials(registries={sorted(self.by_registry)})"


#: Where the client gets the credentials in force for each call.
CredentialSource = Callable[[], RegistryCredentials]


def parse_docker_config(data: Any) -> RegistryCredentials:
    """The credentials of a decoded ``config.json``; ConfigurationError (a ValueError) if bad."""
    if not isinstance(data, Mapping):
        raise ConfigurationError("a registry credentials file must hold a JSON object")
    for helper in ("credsStore", "credHelpers"):
        if data.get(helper):
            raise ConfigurationError(
                f"{helper!r} names a credential helper program, which kubeupdate does not run: "
                "write the credentials under 'auths'"
            )
    auths = data.get("auths", {})
    if not isinstance(auths, Mapping):
        raise ConfigurationError("'auths' must be an object of registry: credentials")
    table: dict[str, Credential] = {}
    spelled: dict[str, str] = {}
    for name, entry in auths.items():
        key = registry_key(str(name))
        if key in table:
            raise ConfigurationError(
                f"'auths' has two entries for the registry {key}: {spelled[key]!r} and {name!r}"
            )
        table[key] = _credential(str(name), entry)
        spelled[key] = str(name)
    return RegistryCredentials(table)


def watch_credentials(path: Path, *, interval: float = 1.0) -> WatchedFile[RegistryCredentials]:
    """The credentials file, re-read when it changes. Raises at start if it is unusable."""
    return WatchedFile(
        path,
        parse_docker_config,
        what="registry credentials file",
        interval=interval,
        decode=json.load,
    )


def _credential(name: str, entry: Any) -> Credential:
    if not isinstance(entry, Mapping):
        raise ConfigurationError(f"the entry for {name!r} must be an object")
    username = _text(entry, "username", name)
    password = _text(entry, "password", name)
    auth = _text(entry, "auth", name)
    if auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"the 'auth' of {name!r} is not base64 of user:password"
            ) from exc
        user, colon, secret = decoded.partition(":")
        if not colon:
            raise ConfigurationError(f"the 'auth' of {name!r} is not base64 of user:password")
        # docker writes both forms alike; 'auth' wins as in docker's own reading.
        username, password = user, secret
    identity_token = _text(entry, "identitytoken", name)
    credential = Credential(username or None, password or None, identity_token or None)
    if not credential.has_basic and credential.identity_token is None:
        raise ConfigurationError(
            f"the entry for {name!r} has no 'auth', 'username'+'password' or 'identitytoken'"
        )
    return credential


def _text(entry: Mapping[str, Any], key: str, name: str) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str):
        raise ConfigurationError(f"{key!r} of {name!r} must be a string")
    return value
