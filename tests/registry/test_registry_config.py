"""The --registry-* flags of kubeupdate serve: read, checked, and the checker they build."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from pathlib import Path

import pytest

from kubeupdate import errors
from kubeupdate.image_checks import ImageCheck
from kubeupdate.images import parse_image
from kubeupdate.registry.config import RegistryConfig, add_arguments, build_checks, config_from
from kubeupdate.registry.errors import ConfigurationError
from kubeupdate.registry.platforms import Platform
from tests.registry.fixtures import PASSWORD, USER, LiveRegistry


def read(*flags: str) -> RegistryConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from(parser.parse_args(list(flags)))


def test_the_defaults_check_where_the_policy_asks_and_refuse_when_unreachable() -> None:
    config = read()
    assert config == RegistryConfig()
    assert not config.always
    assert config.unreachable == "refuse"
    assert config.cache_ttl == 10.0
    assert config.platforms == (Platform.parse("linux/amd64"),)


def test_every_flag_is_read(tmp_path: Path) -> None:
    config = read(
        "--registry-check", "always",
        "--registry-config", str(tmp_path / "config.json"),
        "--registry-ca", f"Registry.Example:5000={tmp_path / 'ca.pem'}",
        "--registry-ca", f"index.docker.io={tmp_path / 'hub.pem'}",
        "--registry-plain-http", "localhost:5000",
        "--registry-plain-http", "127.0.0.1:5001",
        "--registry-cache-ttl", "2.5",
        "--registry-unreachable", "allow",
        "--registry-platform", "linux/amd64",
        "--registry-platform", "linux/arm64",
    )  # fmt: skip
    assert config == RegistryConfig(
        credentials_file=tmp_path / "config.json",
        ca_files={"registry.example:5000": tmp_path / "ca.pem", "docker.io": tmp_path / "hub.pem"},
        plain_http=("localhost:5000", "127.0.0.1:5001"),
        cache_ttl=2.5,
        unreachable="allow",
        always=True,
        platforms=(Platform.parse("linux/amd64"), Platform.parse("linux/arm64/v8")),
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--registry-ca", "ca.pem"], "--registry-ca takes HOST=PATH, not 'ca.pem'"),
        (["--registry-ca", "=ca.pem"], "--registry-ca takes HOST=PATH"),
        (
            ["--registry-plain-http", "registry.example:5000"],
            "--registry-plain-http registry.example:5000: plain HTTP is only allowed for a "
            "loopback registry",
        ),
        (
            ["--registry-plain-http", "localhost:5000", "--registry-ca", "localhost:5000=c"],
            "localhost:5000 has both --registry-ca and --registry-plain-http",
        ),
        (["--registry-cache-ttl", "-1"], "--registry-cache-ttl must be 0 or more seconds"),
        (["--registry-platform", "amd64"], "--registry-platform: 'amd64' is not a platform"),
    ],
)
def test_bad_flags_are_refused_with_a_sentence(flags: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        read(*flags)


def test_an_unreadable_ca_file_stops_the_service_at_start(tmp_path: Path) -> None:
    config = RegistryConfig(ca_files={"registry.example": tmp_path / "missing.pem"})
    with pytest.raises(ConfigurationError, match=r"CA file .*missing\.pem for registry\.example"):
        build_checks(config)


def test_a_credentials_file_with_a_helper_stops_the_service_at_start(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credsStore": "desktop"}))
    with pytest.raises(ConfigurationError, match="credential helper"):
        build_checks(RegistryConfig(credentials_file=path))


async def test_a_credentials_file_that_changes_is_read_again(
    basic_registry: LiveRegistry, repository: str, tmp_path: Path
) -> None:
    basic_registry.publisher.image(repository, "1.0")
    image = parse_image(f"{basic_registry.host}/{repository}:1.0")
    path = tmp_path / "config.json"

    def grant(password: str) -> None:
        entry = {"username": USER, "password": password}
        path.write_text(json.dumps({"auths": {basic_registry.host: entry}}))

    grant("wrong")
    assert basic_registry.running.ca_file is not None
    config = RegistryConfig(
        credentials_file=path,
        ca_files={basic_registry.host: basic_registry.running.ca_file},
        cache_ttl=0,
    )
    async with build_checks(config) as checks:
        with pytest.raises(errors.Unavailable, match=r"credentials configured .* were refused"):
            await checks.check(image, ImageCheck())
        grant(PASSWORD)
        # The file is looked at again at most once a second: wait for it, not for a time.
        give_up = time.monotonic() + 30
        while True:
            try:
                checked = await checks.check(image, ImageCheck())
                break
            except errors.Unavailable:
                if time.monotonic() > give_up:
                    raise
                await asyncio.sleep(0.1)
    assert checked.digest is not None
