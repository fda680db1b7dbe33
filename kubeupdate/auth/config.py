"""The security settings of ``kubeupdate serve`` and the objects built from them.

:class:`AuthConfig` is what the flags say; :class:`Auth` is the running
whole (the interceptor, the TLS credentials, the watched files, SIGHUP
reloading) that :func:`kubeupdate.service.serve` installs and closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

import grpc
import yaml

if TYPE_CHECKING:
    from kubeupdate.auth.oidc import JwksSource
    from kubeupdate.auth.policy import Policy
    from kubeupdate.auth.reloading import WatchedFile
    from kubeupdate.auth.tokens import TokenStore

log = logging.getLogger(__name__)


#: The issuer of GitHub Actions OIDC tokens (kept here, not in ``oidc``, so that
#: reading the flags does not import aiohttp and cryptography).
GITHUB_ISSUER: Final = "https://token.actions.githubusercontent.com"


class SecurityConfigError(Exception):
    """A security file or setting is unusable; the service must not start."""


@dataclass(frozen=True)
class AuthConfig:
    """Authentication, policy, audit and rate limits. Authentication is on by default."""

    enabled: bool = True
    tokens_file: Path | None = None
    policy_file: Path | None = None
    oidc_audience: str | None = None
    oidc_issuer: str = GITHUB_ISSUER
    oidc_jwks_file: Path | None = None
    oidc_leeway: float = 30.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    audit_log: str = "-"
    # Per identity: requests per second, and the burst allowed above it; 0 switches it off.
    rate_limit: float = 5.0
    rate_burst: int = 20
    # Failed authentications a source (or a token id) may make before back-off; 0: off.
    auth_failure_limit: int = 10
    # The longest back-off, in seconds; it doubles from 1 s with each failure past the limit.
    auth_failure_backoff_max: float = 300.0
    # Peers whose x-forwarded-for names the real client (the gateway), by address or
    # network, or by client certificate identity; nobody by default.
    trusted_proxies: tuple[str, ...] = ()
    trusted_proxy_certs: tuple[str, ...] = ()
    # The key of the gateway started in the same process (not a flag: made at start).
    proxy_key: str | None = field(default=None, repr=False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The security flags; read back by :func:`config_from`."""
    defaults = AuthConfig()
    group = parser.add_argument_group("security")
    group.add_argument(
        "--no-auth",
        action="store_true",
        help="accept every call without authentication or policy (only behind an "
        "authenticating proxy; logged as a warning)",
    )
    group.add_argument("--tokens-file", type=Path, help="YAML file of static token ids and hashes")
    group.add_argument(
        "--policy-file", type=Path, help="YAML policy: who may do what (default deny)"
    )
    group.add_argument(
        "--oidc-audience", help="accept GitHub Actions OIDC tokens with exactly this audience"
    )
    group.add_argument(
        "--oidc-issuer",
        default=defaults.oidc_issuer,
        help="exact OIDC issuer, e.g. for GitHub Enterprise Server (default: %(default)s)",
    )
    group.add_argument(
        "--oidc-jwks-file", type=Path, help="read the issuer's keys from this JWKS file"
    )
    group.add_argument(
        "--oidc-leeway",
        type=float,
        default=defaults.oidc_leeway,
        help="clock skew allowed for exp/nbf/iat, at most 60 s (default: %(default)s)",
    )
    group.add_argument("--tls-cert", type=Path, help="serve gRPC over TLS with this certificate")
    group.add_argument("--tls-key", type=Path, help="the private key of --tls-cert")
    group.add_argument(
        "--tls-client-ca", type=Path, help="accept client certificates signed by this CA (mTLS)"
    )
    group.add_argument(
        "--audit-log",
        default=defaults.audit_log,
        help="file to append audit lines to; '-' for stderr (default: %(default)s)",
    )
    group.add_argument(
        "--rate-limit",
        type=float,
        default=defaults.rate_limit,
        help="requests per second per identity; 0 for none (default: %(default)s)",
    )
    group.add_argument(
        "--rate-burst",
        type=int,
        default=defaults.rate_burst,
        help="requests an identity may burst above the rate (default: %(default)s)",
    )
    group.add_argument(
        "--auth-failure-limit",
        type=int,
        default=defaults.auth_failure_limit,
        help="failed authentications a source address or token id may make before it is "
        "backed off; 0 for no limit (default: %(default)s)",
    )
    group.add_argument(
        "--auth-failure-backoff-max",
        type=float,
        default=defaults.auth_failure_backoff_max,
        help="longest back-off after failed authentications, seconds; it doubles from 1 s "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--trusted-proxy",
        action="append",
        metavar="ADDRESS|NETWORK",
        help="a proxy (the gateway) whose x-forwarded-for is believed, by address or network "
        "such as 10.0.0.0/8 (repeatable; default: none, except the gateway started alongside)",
    )
    group.add_argument(
        "--trusted-proxy-cert",
        action="append",
        metavar="NAME",
        help="a proxy whose x-forwarded-for is believed, by the CN or a SAN of its client "
        "certificate (mTLS; repeatable)",
    )


def config_from(arguments: argparse.Namespace) -> AuthConfig:
    """The :class:`AuthConfig` for flags added by :func:`add_arguments`."""
    if (arguments.tls_cert is None) != (arguments.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if arguments.tls_client_ca is not None and arguments.tls_cert is None:
        raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
    if arguments.oidc_jwks_file is not None and arguments.oidc_audience is None:
        raise ValueError("--oidc-jwks-file needs --oidc-audience")
    if arguments.trusted_proxy_cert and arguments.tls_client_ca is None:
        raise ValueError("--trusted-proxy-cert needs --tls-client-ca (client certificates)")
    from kubeupdate.auth.proxies import parse_network

    for text in arguments.trusted_proxy or ():
        parse_network(text)  # ValueError names the bad one
    return AuthConfig(
        enabled=not arguments.no_auth,
        tokens_file=arguments.tokens_file,
        policy_file=arguments.policy_file,
        oidc_audience=arguments.oidc_audience,
        oidc_issuer=arguments.oidc_issuer,
        oidc_jwks_file=arguments.oidc_jwks_file,
        oidc_leeway=arguments.oidc_leeway,
        tls_cert=arguments.tls_cert,
        tls_key=arguments.tls_key,
        tls_client_ca=arguments.tls_client_ca,
        audit_log=arguments.audit_log,
        rate_limit=arguments.rate_limit,
        rate_burst=arguments.rate_burst,
        auth_failure_limit=arguments.auth_failure_limit,
        auth_failure_backoff_max=arguments.auth_failure_backoff_max,
        trusted_proxies=tuple(arguments.trusted_proxy or ()),
        trusted_proxy_certs=tuple(arguments.trusted_proxy_cert or ()),
    )


class Auth:
    """Everything security needs while the server runs; :meth:`close` releases it."""

    def __init__(self, config: AuthConfig) -> None:
        """Loads the files; raises SecurityConfigError when one is unusable."""
        self._also_reload: list[Callable[[], object]] = []
        try:
            self._build(config)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise SecurityConfigError(str(exc)) from exc

    def _build(self, config: AuthConfig) -> None:
        # Imported here: the flags above are read by every sub-command (and by
        # `serve --only gateway`), which must not load the security stack.
        from kubeupdate.auth.audit import AuditLog
        from kubeupdate.auth.authenticator import Authenticator
        from kubeupdate.auth.interceptor import AuthInterceptor
        from kubeupdate.auth.mtls import server_credentials
        from kubeupdate.auth.oidc import (
            JwksDiscovery,
            JwksFile,
            KeyCache,
            OidcSettings,
            OidcVerifier,
        )
        from kubeupdate.auth.policy import load_policy
        from kubeupdate.auth.proxies import ProxyTrust
        from kubeupdate.auth.ratelimit import FailureBackoff, RateLimiter
        from kubeupdate.auth.reloading import WatchedFile
        from kubeupdate.auth.tokens import parse_tokens

        self.config = config
        self.tokens: WatchedFile[TokenStore] | None = None
        self.policy: WatchedFile[Policy] | None = None
        self._oidc_source: JwksSource | None = None
        authenticator: Authenticator | None = None
        if config.enabled:
            if config.tokens_file is not None:
                self.tokens = WatchedFile(config.tokens_file, parse_tokens, what="tokens file")
            if config.policy_file is not None:
                # Relative key and CA files of signature rules are next to the policy.
                folder = config.policy_file.parent
                self.policy = WatchedFile(
                    config.policy_file,
                    lambda document: load_policy(document, base=folder),
                    what="policy",
                )
            oidc = None
            if config.oidc_audience is not None:
                settings = OidcSettings(
                    config.oidc_issuer, config.oidc_audience, config.oidc_leeway
                )
                self._oidc_source = (
                    JwksFile(config.oidc_jwks_file)
                    if config.oidc_jwks_file is not None
                    else JwksDiscovery(config.oidc_issuer)
                )
                oidc = OidcVerifier(settings, KeyCache(self._oidc_source))
            authenticator = Authenticator(
                tokens=self.tokens, oidc=oidc, mtls=config.tls_client_ca is not None
            )
            if not authenticator.configured:
                log.warning(
                    "authentication is on but no tokens file, OIDC audience or client CA is "
                    "configured: every call will be refused"
                )
            if self.policy is None:
                log.warning("no --policy-file: every authenticated call will be denied")
        else:
            log.warning(
                "AUTHENTICATION IS OFF (--no-auth): anyone who reaches the gRPC port may change "
                "any Deployment this service account can patch"
            )
        self.server_credentials: grpc.ServerCredentials | None = None
        if config.tls_cert is not None and config.tls_key is not None:
            self.server_credentials = server_credentials(
                config.tls_cert, config.tls_key, config.tls_client_ca
            )
        self.audit = AuditLog(config.audit_log)
        limiter = (
            RateLimiter(config.rate_limit, config.rate_burst) if config.rate_limit > 0 else None
        )
        self.interceptor = AuthInterceptor(
            authenticator=authenticator,
            policy=self.policy,
            audit=self.audit,
            limiter=limiter,
            failures=(
                FailureBackoff(config.auth_failure_limit, max_delay=config.auth_failure_backoff_max)
                if config.auth_failure_limit > 0
                else None
            ),
            proxies=ProxyTrust(
                config.trusted_proxies, config.trusted_proxy_certs, config.proxy_key
            ),
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    def reload(self) -> None:
        """Re-read the policy and tokens files now (SIGHUP), then the others' files."""
        for watched in (self.policy, self.tokens):
            if watched is not None:
                watched.reload()
        for reload in self._also_reload:
            reload()

    def also_reload(self, reload: Callable[[], object]) -> None:
        """Run ``reload`` on SIGHUP too (one handler per signal: the registry credentials)."""
        self._also_reload.append(reload)

    def handle_sighup(self) -> None:
        """Reload on SIGHUP, where the platform and thread allow signal handlers."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, self.reload)
            self._loop = loop

    async def __aenter__(self) -> Auth:
        self.handle_sighup()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.remove_signal_handler(signal.SIGHUP)
            self._loop = None
        if self._oidc_source is not None:
            await self._oidc_source.close()
        self.audit.close()
