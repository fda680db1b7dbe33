"""Where the Kubernetes API is and how to authenticate to it.

Loading is left to the ``kubernetes`` package's own loaders, so every auth
method they know (token files, exec plugins, OIDC, client certificates) keeps
working; we only read the resulting ``Configuration``. Its refresh hook is
called for every request, which is how a rotated service account token is
picked up; :meth:`Credentials.reload` starts over from the files after a 401.

The ``kubernetes`` package (about 20 MB resident: importing any of it runs its
``__init__``, which imports the whole generated client) is imported only when
credentials are loaded, so processes that never load any do not carry it.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kubeupdate.kube.errors import CredentialsError

if TYPE_CHECKING:
    from kubernetes.client import Configuration

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class Transport:
    """What a connection needs: base URL, TLS settings and proxy."""

    host: str
    ssl_context: ssl.SSLContext | bool
    server_hostname: str | None
    proxy: str | None


class Credentials:
    """A loaded ``kubernetes.client.Configuration`` plus the way to load it again."""

    def __init__(self, load: Callable[[Configuration], None], source: str) -> None:
        self._load = load
        self.source = source
        # The kubernetes loaders are synchronous and may run in a worker thread.
        self._lock = threading.Lock()
        self._configuration, self._transport = self._load_new()

    @classmethod
    def in_cluster(
        cls,
        directory: str | Path = SERVICE_ACCOUNT_DIR,
        environ: Mapping[str, str] | None = None,
    ) -> Credentials:
        """The Pod's service account: token and ca.crt in ``directory``.

        ``environ`` must hold KUBERNETES_SERVICE_HOST and _PORT (default: the
        process environment).
        """
        folder = Path(directory)
        env = dict(os.environ if environ is None else environ)

        def load(configuration: Configuration) -> None:
            from kubernetes.config.incluster_config import InClusterConfigLoader

            InClusterConfigLoader(  # type: ignore[no-untyped-call]
                token_filename=str(folder / "token"),
                cert_filename=str(folder / "ca.crt"),
                try_refresh_token=True,
                environ=env,
            ).load_and_set(configuration)

        return cls(load, f"service account in {folder}")

    @classmethod
    def from_kubeconfig(cls, path: str | Path, context: str | None = None) -> Credentials:
        """A kubeconfig file, with its current context or ``context``."""

        def load(configuration: Configuration) -> None:
            from kubernetes.config.kube_config import load_kube_config

            load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(path), context=context, client_configuration=configuration
            )

        label = f"kubeconfig {path}" + (f" (context {context})" if context else "")
        return cls(load, label)

    @property
    def transport(self) -> Transport:
        return self._transport

    def authorization(self) -> str | None:
        """The ``Authorization`` header value for the next request, if any.

        Calls the loader's refresh hook, which re-reads a service account token
        once a minute and re-runs an expired exec plugin.
        """
        with self._lock:
            configuration = self._configuration
            token = configuration.get_api_key_with_prefix("BearerToken")
            if not token:
                token = configuration.get_api_key_with_prefix("authorization")
            if token:
                scheme, _, value = str(token).partition(" ")
                if value and scheme.lower() == "bearer":
                    # The in-cluster loader writes "bearer"; the scheme is
                    # case-insensitive, but not every proxy or emulator knows it.
                    return f"Bearer {value}"
                return str(token)
            if configuration.username or configuration.password:
                return str(configuration.get_basic_auth_token())
            return None

    def reload(self) -> None:
        """Load everything again from the files (token, certificates, server)."""
        configuration, transport = self._load_new()
        with self._lock:
            self._configuration = configuration
            self._transport = transport

    def _load_new(self) -> tuple[Configuration, Transport]:
        from kubernetes.client import Configuration
        from kubernetes.config import ConfigException

        configuration = Configuration()
        try:
            self._load(configuration)
            # The loaders' refresh hook sets ``host`` again before every request,
            # and that setter re-reads the proxy variables of the whole environment
            # (~40 µs a request). The proxy is taken once, here, into the
            # Transport; assigning it stops the re-reading.
            configuration.proxy = configuration.proxy
            if not configuration.host:
                raise ValueError("no API server address")
            return configuration, _transport(configuration)
        except (ConfigException, OSError, ValueError, KeyError, TypeError) as exc:
            raise CredentialsError(
                f"cannot load Kubernetes credentials from {self.source}: {exc}"
            ) from exc


def _transport(configuration: Configuration) -> Transport:
    host = str(configuration.host).rstrip("/")
    ssl_context: ssl.SSLContext | bool = False
    if host.startswith("https://"):
        ssl_context = _ssl_context(configuration)
    return Transport(
        host=host,
        ssl_context=ssl_context,
        server_hostname=configuration.tls_server_name or None,
        proxy=configuration.proxy or None,
    )


def _ssl_context(configuration: Configuration) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    if not configuration.verify_ssl:
        # The kubeconfig asked for insecure-skip-tls-verify; honour it explicitly.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
