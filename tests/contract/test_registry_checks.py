"""Registry checks through the whole stack: REST -> gateway -> service -> a real registry
(Debian's docker-registry) and the devcluster.

Each test writes a policy whose image rule asks for a check, starts the
service and the gateway with the registry flags it needs, and deploys to
``default/web`` (container ``app``, running ``nginx:1.25``). A refusal must
happen before the devcluster sees a single request, and the answer must say
what was wrong, naming the registry and the repository.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kubeupdate.client.errors import error_info
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from devcluster import DevCluster
from kubeupdate.auth.config import AuthConfig
from kubeupdate.auth.tokens import create_token
from kubeupdate.registry.config import RegistryConfig
from kubeupdate.registry.platforms import Platform
from kubeupdate.registry.signatures import CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION
from kubeupdate.service import ServerConfig, serve
from tests.registry.distribution import free_port
from tests.registry.fixtures import PASSWORD, USER, LiveRegistry
from tests.registry.fulcio import FulcioStandIn, identity_token
from tests.stack import Response, Stack, running_stack, seed_samples

# The stacks run unguarded: their journals must show a call's own Kubernetes access,
# and a guardian lists and watches Leases on its own (issue 12).

WEB_APP = "/deployment/default/web/app"
TOKEN_ID = "ci"


@dataclass
class Deployer:
    """One stack with a token ``ci`` that the test's policy lets deploy to default/web."""

    stack: Stack
    secret: str
    audit_log: Path

    @property
    def authorization(self) -> str:
        return "Basic " + base64.b64encode(f"{TOKEN_ID}:{self.secret}".encode()).decode()

    def set(self, image: str, **options: Any) -> Response:
        """Over REST, as curl would."""
        body = json.dumps({"Image": image, **options})
        headers = {"Authorization": self.authorization, "Content-Type": "application/json"}
        return self.stack.request("POST", WEB_APP, body, headers)

    def refusal_over_grpc(self, image: str) -> tuple[grpc.StatusCode, str]:
        """The code and message of the same call over gRPC (the gateway shortens some)."""
        code, message, _ = self.refusal_with_details(image)
        return code, message

    def refusal_with_details(self, image: str) -> tuple[grpc.StatusCode, str, dict[str, Any]]:
        """The code, message and ErrorInfo (reason and metadata) of the call over gRPC."""
        request = pb.SetContainerImageRequest(
            namespace="default", deployment="web", container="app", image=image
        )
        with grpc.insecure_channel(self.stack.grpc_target) as channel:
            stub = pb_grpc.DeploymentImageServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.SetContainerImage(
                    request, metadata=(("authorization", self.authorization),), timeout=30
                )
        error: Any = refused.value
        reason, metadata = error_info(error.trailing_metadata() or ())
        return error.code(), error.details(), {"reason": reason, **metadata}

    def image(self) -> str:
        return self.stack.image_of("default", "web", "app")

    def audit_lines(self) -> list[dict[str, Any]]:
        text = self.audit_log.read_text(encoding="utf-8") if self.audit_log.exists() else ""
        return [json.loads(line) for line in text.splitlines()]


class Start:
    """Starts a stack whose policy has one image rule; stops them all at the end."""

    def __init__(self, cluster: DevCluster, folder: Path, stack: contextlib.ExitStack) -> None:
        self._cluster = cluster
        self.folder = folder
        self._stack = stack

    def __call__(
        self,
        repositories: list[str],
        flags: RegistryConfig | None = None,
        **options: Any,
    ) -> Deployer:
        """``flags``: the service's registry flags; ``options``: the image rule's."""
        secret, entry = create_token(TOKEN_ID)
        tokens = self.folder / "tokens.yaml"
        tokens.write_text("tokens:\n" + entry.entry_yaml(), encoding="utf-8")
        rule = {
            "name": "ci deploys web",
            "subjects": [{"token": TOKEN_ID}],
            "targets": [{"namespace": "default", "deployment": "web"}],
            "access": ["read", "write"],
            "images": [{"repositories": repositories, **options}],
        }
        policy = self.folder / "policy.yaml"
        policy.write_text(yaml.safe_dump({"rules": [rule]}), encoding="utf-8")
        audit_log = self.folder / "audit.jsonl"
        auth = AuthConfig(
            tokens_file=tokens, policy_file=policy, audit_log=str(audit_log), rate_limit=0
        )
        stack = self._stack.enter_context(
            running_stack(self._cluster, auth, registry=flags or RegistryConfig(), guard=None)
        )
        return Deployer(stack, secret, audit_log)


@pytest.fixture
def start(devcluster: DevCluster, tmp_path: Path) -> Iterator[Start]:
    with contextlib.ExitStack() as stacks:
        yield Start(devcluster, tmp_path, stacks)


def plain(registry: LiveRegistry, **options: Any) -> RegistryConfig:
    """The flags for the anonymous plain-HTTP test registry."""
    return RegistryConfig(plain_http=(registry.host,), **options)


def write_public_key(folder: Path, name: str, key: ec.EllipticCurvePrivateKey) -> None:
    (folder / "keys").mkdir(exist_ok=True)
    (folder / "keys" / name).write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def assert_nothing_reached_kubernetes(deployer: Deployer) -> None:
    assert deployer.stack.cluster.journal.entries() == []
    assert deployer.image() == "nginx:1.25"


# -- existence and pinning ---------------------------------------------------------------


def test_an_existing_tag_deploys_with_its_digest_in_the_answer(
    start: Start, registry: LiveRegistry, repository: str
) -> None:
    pushed = registry.publisher.image(repository, "1.0")
    name = f"{registry.host}/{repository}"
    deployer = start([name], plain(registry), registry="check")

    answer = deployer.set(f"{name}:1.0")

    assert answer.status == 200, answer.body
    assert answer.json["Changed"] is True
    assert answer.json["Image"] == f"{name}:1.0"
    assert answer.json["Digest"] == pushed["digest"]
    assert answer.json["RegistryCheck"] == {
        "State": "STATE_PASSED",
        "Platforms": ["linux/amd64"],
        "Signer": "",
        "Detail": "",
    }
    assert deployer.image() == f"{name}:1.0"  # checked, not pinned
    (line,) = deployer.audit_lines()
    assert line["digest"] == pushed["digest"]
    assert line["registry_check"] == "passed"


def test_a_missing_tag_is_refused_before_any_kubernetes_call(
    start: Start, registry: LiveRegistry, repository: str
) -> None:
    registry.publisher.image(repository, "1.0")
    name = f"{registry.host}/{repository}"
    deployer = start([name], plain(registry), registry="check")

    answer = deployer.set(f"{name}:1.4.3")

    assert answer.status == 404, answer.body
    assert answer.json["Code"] == "NOT_FOUND"
    assert answer.json["Reason"] == "IMAGE_NOT_FOUND"
    assert answer.json["Detail"] == (
        f"image {name}:1.4.3 does not exist: in registry {registry.host}, "
        f"the repository {repository} has no tag 1.4.3"
    )
    assert_nothing_reached_kubernetes(deployer)
    (line,) = deployer.audit_lines()
    assert line["decision"] == "allow"
    assert line["outcome"] == "NOT_FOUND"
    _, _, details = deployer.refusal_with_details(f"{name}:1.4.3")
    assert details == {
        "reason": "IMAGE_NOT_FOUND",
        "registry": registry.host,
        "repository": repository,
        "reference": "1.4.3",
    }


def test_pin_writes_the_digest_resolved_at_the_check(
    start: Start, registry: LiveRegistry, repository: str
) -> None:
    first = registry.publisher.image(repository, "1.0")
    name = f"{registry.host}/{repository}"
    deployer = start([name], plain(registry, cache_ttl=0), digest="pin")

    answer = deployer.set(f"{name}:1.0")

    pinned = f"{name}:1.0@{first['digest']}"
    assert answer.status == 200, answer.body
    assert answer.json["Image"] == pinned
    assert answer.json["Digest"] == first["digest"]
    assert deployer.image() == pinned
    (line,) = deployer.audit_lines()
    assert line["digest"] == first["digest"]
    assert line["image"] == f"{name}:1.0"  # what the caller asked for

    # The tag moves: the next deploy of the same tag pins the new digest.
    second = registry.publisher.image(repository, "1.0")
    assert second["digest"] != first["digest"]
    answer = deployer.set(f"{name}:1.0")
    assert answer.status == 200, answer.body
    assert answer.json["Changed"] is True
    assert deployer.image() == f"{name}:1.0@{second['digest']}"


def test_a_tag_whose_digest_already_runs_changes_nothing(
    start: Start, registry: LiveRegistry, repository: str
) -> None:
    pushed = registry.publisher.image(repository, "1.0")
    name = f"{registry.host}/{repository}"
    deployer = start([name], plain(registry), digest="pin")
    assert deployer.set(f"{name}:1.0").status == 200
    deployer.stack.cluster.journal.clear()

    # Another tag for the same digest: what runs would not change.
    registry.publisher.manifest(repository, "stable", _manifest_of(registry, repository, "1.0"))
    for image in (f"{name}:1.0", f"{name}:stable"):
        answer = deployer.set(image)
        assert answer.status == 200, answer.body
        assert answer.json["Changed"] is False
        assert answer.json["Image"] == f"{name}:1.0@{pushed['digest']}"  # what runs
        assert answer.json["Digest"] == pushed["digest"]
    assert deployer.stack.cluster.journal.writes() == []


def _manifest_of(registry: LiveRegistry, repository: str, tag: str) -> dict[str, Any]:
    """The manifest a tag points to, as JSON (to push it again under another tag)."""
    status, _, body = registry.publisher.get_manifest(repository, tag)
    assert status == 200
    document: dict[str, Any] = json.loads(body)
    return document


# -- private repositories ------------------------------------------------------------------


def write_docker_config(folder: Path, host: str, entry: dict[str, str]) -> Path:
    path = folder / "registry-config.json"
    path.write_text(json.dumps({"auths": {host: entry}}), encoding="utf-8")
    return path


def test_a_private_repository_behind_basic_auth_and_tls_deploys(
    start: Start, basic_registry: LiveRegistry, repository: str
) -> None:
    pushed = basic_registry.publisher.image(repository, "1.0")
    name = f"{basic_registry.host}/{repository}"
    pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    credentials = write_docker_config(start.folder, basic_registry.host, {"auth": pair})
    assert basic_registry.running.ca_file is not None
    flags = RegistryConfig(
        credentials_file=credentials, ca_files={basic_registry.host: basic_registry.running.ca_file}
    )
    deployer = start([name], flags, registry="check")

    answer = deployer.set(f"{name}:1.0")

    assert answer.status == 200, answer.body
    assert answer.json["Digest"] == pushed["digest"]
    missing = deployer.set(f"{name}:2.0")
    assert missing.status == 404, missing.body
    assert f"the repository {repository} has no tag 2.0" in missing.json["Detail"]


def test_wrong_registry_credentials_are_unavailable_not_the_callers_fault(
    start: Start, basic_registry: LiveRegistry, repository: str
) -> None:
    basic_registry.publisher.image(repository, "1.0")
    name = f"{basic_registry.host}/{repository}"
    pair = base64.b64encode(f"{USER}:wrong".encode()).decode()
    credentials = write_docker_config(start.folder, basic_registry.host, {"auth": pair})
    assert basic_registry.running.ca_file is not None
    flags = RegistryConfig(
        credentials_file=credentials, ca_files={basic_registry.host: basic_registry.running.ca_file}
    )
    deployer = start([name], flags, registry="check")

    answer = deployer.set(f"{name}:1.0")

    assert answer.status == 503, answer.body
    assert answer.json["Code"] == "UNAVAILABLE"
    assert answer.json["Reason"] == "REGISTRY_ACCESS_DENIED"
    code, message = deployer.refusal_over_grpc(f"{name}:1.0")
    assert code == grpc.StatusCode.UNAVAILABLE
    assert message == (
        f"registry {basic_registry.host} refused to let kubeupdate read repository "
        f"{repository} (HTTP 401): the credentials configured for {basic_registry.host} "
        "were refused"
    )
    assert_nothing_reached_kubernetes(deployer)


def test_credentials_put_right_in_the_file_are_used_without_a_restart(
    start: Start, basic_registry: LiveRegistry, repository: str
) -> None:
    pushed = basic_registry.publisher.image(repository, "1.0")
    name = f"{basic_registry.host}/{repository}"

    def grant(password: str) -> Path:
        pair = base64.b64encode(f"{USER}:{password}".encode()).decode()
        return write_docker_config(start.folder, basic_registry.host, {"auth": pair})

    credentials = grant("wrong")
    assert basic_registry.running.ca_file is not None
    flags = RegistryConfig(
        credentials_file=credentials, ca_files={basic_registry.host: basic_registry.running.ca_file}
    )
    deployer = start([name], flags, registry="check")
    refused = deployer.set(f"{name}:1.0")
    assert refused.status == 503, refused.body
    assert refused.json["Reason"] == "REGISTRY_ACCESS_DENIED"

    grant(PASSWORD)
    # The service looks at the file at most once a second: ask until it has (no timing asserted).
    answer = deployer.set(f"{name}:1.0")
    for _ in range(300):
        if answer.status != 503:
            break
        time.sleep(0.1)
        answer = deployer.set(f"{name}:1.0")

    assert answer.status == 200, answer.body
    assert answer.json["Digest"] == pushed["digest"]
    assert deployer.image() == f"{name}:1.0"


def test_a_private_repository_behind_bearer_tokens_deploys(
    start: Start, token_registry: LiveRegistry, repository: str
) -> None:
    pushed = token_registry.publisher.image(repository, "1.0")
    name = f"{token_registry.host}/{repository}"
    credentials = write_docker_config(
        start.folder, token_registry.host, {"username": USER, "password": PASSWORD}
    )
    flags = RegistryConfig(credentials_file=credentials, plain_http=(token_registry.host,))
    deployer = start([name], flags, digest="pin")

    answer = deployer.set(f"{name}:1.0")

    assert answer.status == 200, answer.body
    assert deployer.image() == f"{name}:1.0@{pushed['digest']}"


# -- the registry is down --------------------------------------------------------------------


@pytest.fixture
def down() -> str:
    """A loopback registry address where nothing listens."""
    return f"127.0.0.1:{free_port()}"


def test_a_registry_that_is_down_answers_unavailable(start: Start, down: str) -> None:
    deployer = start([f"{down}/acme/web"], RegistryConfig(plain_http=(down,)), registry="check")

    answer = deployer.set(f"{down}/acme/web:1.0")

    assert answer.status == 503, answer.body
    assert answer.json["Code"] == "UNAVAILABLE"
    assert answer.json["Reason"] == "REGISTRY_UNAVAILABLE"
    code, message = deployer.refusal_over_grpc(f"{down}/acme/web:1.0")
    assert code == grpc.StatusCode.UNAVAILABLE
    assert message.startswith(f"cannot connect to registry {down}: ")
    assert_nothing_reached_kubernetes(deployer)


def test_allow_lets_a_write_through_a_registry_that_is_down_and_says_so(
    start: Start, down: str
) -> None:
    flags = RegistryConfig(plain_http=(down,), unreachable="allow")
    deployer = start([f"{down}/acme/web"], flags, registry="check")

    answer = deployer.set(f"{down}/acme/web:1.0")

    assert answer.status == 200, answer.body
    assert deployer.image() == f"{down}/acme/web:1.0"
    assert "Digest" not in answer.json
    check = answer.json["RegistryCheck"]
    assert check["State"] == "STATE_SKIPPED"
    assert check["Detail"].startswith(
        f"the registry could not be reached: cannot connect to registry {down}: "
    )
    (line,) = deployer.audit_lines()
    assert line["registry_check"] == f"skipped: {check['Detail']}"


@pytest.mark.parametrize(
    "options",
    [{"digest": "pin"}, {"signature": {"keys": ["keys/release.pub"]}}],
    ids=["pin", "signature"],
)
def test_allow_never_skips_a_pin_or_a_signature(
    start: Start, down: str, options: dict[str, Any]
) -> None:
    write_public_key(start.folder, "release.pub", ec.generate_private_key(ec.SECP256R1()))
    flags = RegistryConfig(plain_http=(down,), unreachable="allow")
    deployer = start([f"{down}/acme/web"], flags, **options)

    answer = deployer.set(f"{down}/acme/web:1.0")

    assert answer.status == 503, answer.body
    assert_nothing_reached_kubernetes(deployer)


# -- platforms ----------------------------------------------------------------------------


def test_an_index_missing_the_required_platform_is_refused_with_what_it_has(
    start: Start, registry: LiveRegistry, repository: str
) -> None:
    registry.publisher.index(repository, "1.0", ["linux/arm64", "linux/arm/v7"])
    name = f"{registry.host}/{repository}"
    deployer = start([name], plain(registry), registry="check")  # the default: linux/amd64

    answer = deployer.set(f"{name}:1.0")

    assert answer.status == 400, answer.body
    assert answer.json["Code"] == "FAILED_PRECONDITION"
    assert answer.json["Reason"] == "IMAGE_PLATFORM_MISSING"
    assert answer.json["Detail"] == (
        f"image {name}:1.0 has no image for linux/amd64; it has linux/arm/v7, linux/arm64/v8"
    )
    assert_nothing_reached_kubernetes(deployer)


def test_the_rule_names_the_platforms_it_needs(
    start: Start, registry: LiveRegistry, repository: str
) -> None:
    registry.publisher.index(repository, "1.0", ["linux/amd64", "linux/arm64"])
    registry.publisher.index(repository, "amd64-only", ["linux/amd64"])
    name = f"{registry.host}/{repository}"
    deployer = start([name], plain(registry), platforms=["linux/amd64", "linux/arm64"])

    answer = deployer.set(f"{name}:1.0")
    assert answer.status == 200, answer.body
    assert answer.json["RegistryCheck"]["Platforms"] == ["linux/amd64", "linux/arm64/v8"]

    refused = deployer.set(f"{name}:amd64-only")
    assert refused.status == 400, refused.body
    assert "has no image for linux/arm64" in refused.json["Detail"]


def test_the_servers_platforms_apply_where_the_rule_names_none(
    start: Start, registry: LiveRegistry, repository: str
) -> None:
    registry.publisher.index(repository, "1.0", ["linux/arm64"])
    name = f"{registry.host}/{repository}"
    flags = plain(registry, platforms=(Platform.parse("linux/arm64"),))
    deployer = start([name], flags, registry="check")

    answer = deployer.set(f"{name}:1.0")

    assert answer.status == 200, answer.body
    assert answer.json["RegistryCheck"]["Platforms"] == ["linux/arm64/v8"]


# -- signatures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_an_unsigned_image_is_refused_naming_the_key_expected(
    start: Start, registry: LiveRegistry, repository: str, release_key: ec.EllipticCurvePrivateKey
) -> None:
    pushed = registry.publisher.image(repository, "1.0")
    name = f"{registry.host}/{repository}"
    write_public_key(start.folder, "release.pub", release_key)
    deployer = start([name], plain(registry), signature={"keys": ["keys/release.pub"]})

    answer = deployer.set(f"{name}:1.0")

    assert answer.status == 400, answer.body
    assert answer.json["Code"] == "FAILED_PRECONDITION"
    assert answer.json["Reason"] == "IMAGE_SIGNATURE_MISSING"
    detail = answer.json["Detail"]
    assert detail.startswith(f"image {name}@{pushed['digest']} is not signed: ")
    assert f"expected a signature by key {start.folder / 'keys' / 'release.pub'} (sha256:" in detail
    assert_nothing_reached_kubernetes(deployer)


def test_an_image_signed_by_another_key_is_refused_saying_what_was_found(
    start: Start,
    registry: LiveRegistry,
    repository: str,
    release_key: ec.EllipticCurvePrivateKey,
    other_key: ec.EllipticCurvePrivateKey,
) -> None:
    pushed = registry.publisher.image(repository, "1.0")
    registry.publisher.sign(repository, pushed["digest"], other_key)
    name = f"{registry.host}/{repository}"
    write_public_key(start.folder, "release.pub", release_key)
    deployer = start([name], plain(registry), signature={"keys": ["keys/release.pub"]})

    answer = deployer.set(f"{name}:1.0")

    assert answer.status == 400, answer.body
    assert answer.json["Reason"] == "IMAGE_SIGNATURE_INVALID"
    detail = answer.json["Detail"]
    assert detail.startswith(f"image {name}@{pushed['digest']} has no signature by key ")
    assert detail.endswith("; found: a cosign signature by another key")
    assert_nothing_reached_kubernetes(deployer)


def test_an_image_signed_by_the_expected_key_deploys_pinned(
    start: Start,
    registry: LiveRegistry,
    repository: str,
    release_key: ec.EllipticCurvePrivateKey,
    other_key: ec.EllipticCurvePrivateKey,
) -> None:
    pushed = registry.publisher.image(repository, "1.0")
    registry.publisher.sign(repository, pushed["digest"], other_key)
    registry.publisher.sign(repository, pushed["digest"], release_key)
    name = f"{registry.host}/{repository}"
    write_public_key(start.folder, "release.pub", release_key)
    deployer = start(
        [name], plain(registry), digest="pin", signature={"keys": ["keys/release.pub"]}
    )

    answer = deployer.set(f"{name}:1.0")

    assert answer.status == 200, answer.body
    assert answer.json["RegistryCheck"]["Signer"].startswith(
        f"key {start.folder / 'keys' / 'release.pub'} (sha256:"
    )
    assert deployer.image() == f"{name}:1.0@{pushed['digest']}"


def test_keyless_signatures_are_judged_by_identity(
    start: Start, registry: LiveRegistry, repository: str
) -> None:
    # cosign's keyless format (certificate annotations), made with a stand-in Fulcio.
    fulcio = FulcioStandIn()
    subject, issuer = "release@acme.example", "https://accounts.acme.example"
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    public_pem = ephemeral.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    proof = ephemeral.sign(subject.encode(), ec.ECDSA(hashes.SHA256()))
    leaf, root = fulcio.issue(identity_token(issuer, subject), public_pem.decode(), proof)
    signed = registry.publisher.image(repository, "signed")
    registry.publisher.sign(
        repository, signed["digest"], ephemeral,
        annotations={CERTIFICATE_ANNOTATION: leaf, CHAIN_ANNOTATION: root},
    )  # fmt: skip
    registry.publisher.image(repository, "unsigned")
    (start.folder / "fulcio.pem").write_bytes(fulcio.root_pem)
    name = f"{registry.host}/{repository}"
    rule = {"identities": [{"issuer": issuer, "subject": subject}], "ca": "fulcio.pem"}
    deployer = start([name], plain(registry), signature=rule)

    answer = deployer.set(f"{name}:signed")
    assert answer.status == 200, answer.body
    assert answer.json["RegistryCheck"]["Signer"] == f"identity {subject} (issuer {issuer})"

    refused = deployer.set(f"{name}:unsigned")
    assert refused.status == 400, refused.body
    assert (
        f"expected a signature by identity {subject} (issuer {issuer})" in (refused.json["Detail"])
    )


# -- the server's own flag ----------------------------------------------------------------


def test_always_checks_every_write_even_without_authentication(
    devcluster: DevCluster, registry: LiveRegistry, repository: str
) -> None:
    registry.publisher.image(repository, "1.0")
    name = f"{registry.host}/{repository}"
    no_auth = AuthConfig(enabled=False, rate_limit=0)
    with running_stack(
        devcluster, no_auth, registry=plain(registry, always=True), guard=None
    ) as stack:
        missing = stack.post_json(WEB_APP, {"Image": f"{name}:2.0"})
        assert missing.status == 404, missing.body
        assert devcluster.journal.entries() == []

        answer = stack.post_json(WEB_APP, {"Image": f"{name}:1.0"})
        assert answer.status == 200, answer.body
        assert answer.json["RegistryCheck"]["State"] == "STATE_PASSED"
        assert stack.image_of("default", "web", "app") == f"{name}:1.0"


def test_without_a_check_nothing_asks_the_registry(start: Start, down: str) -> None:
    # The registry is down, and the rule asks no check: the write goes through untouched.
    deployer = start([f"{down}/acme/web"], RegistryConfig(plain_http=(down,)))

    answer = deployer.set(f"{down}/acme/web:1.0")

    assert answer.status == 200, answer.body
    assert "RegistryCheck" not in answer.json
    assert "Digest" not in answer.json


# -- the README's examples, run as printed --------------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"


@dataclass(frozen=True)
class Example:
    comment: str
    data: str  # the -d argument
    status: int
    body: str  # with digests shortened to …


def readme_section() -> str:
    return README.read_text().split("\n## Registry checks\n", 1)[1].split("\n## ", 1)[0]


def readme_examples() -> tuple[str, str, list[Example]]:
    """The policy, the curl command and each example of README's "Registry checks"."""
    section = readme_section()
    (policy,) = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    (command,) = re.findall(r"`(curl [^`]*)`", section)
    (block,) = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    examples = []
    for chunk in block.strip().split("\n\n"):
        lines = chunk.splitlines()
        comment = " ".join(line[2:] for line in lines[:-2])
        data, answer = lines[-2], lines[-1]
        assert re.fullmatch(r"-d '.*'", data), data
        status, _, body = answer.removeprefix("# ").partition(" ")
        examples.append(Example(comment, data[4:-1], int(status), body))
    return policy, command, examples


def run_example(deployer: Deployer, command: str, example: Example, names: dict[str, str]) -> None:
    def named(text: str) -> str:
        for readme, here in names.items():
            text = text.replace(readme, here)
        return text

    url = f"http://127.0.0.1:{deployer.stack.http_port}/"
    line = command.replace("http://127.0.0.1:8080/", url)
    line = re.sub(r"-d '.*'$", lambda _: f"-d '{named(example.data)}'", line)
    done = subprocess.run(
        ["bash", "-c", line + " -w '\\n%{http_code}'"],
        env={"PATH": os.environ["PATH"], "SECRET": deployer.secret},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    body, _, status = done.stdout.rstrip("\n").rpartition("\n")
    body = body.rstrip("\n")
    expected = re.escape(named(example.body)).replace("…", "[0-9a-f]+")
    assert (int(status), example.comment) == (example.status, example.comment), body
    assert re.fullmatch(expected, body), f"{example.comment}\n{body}\n{named(example.body)}"


def start_readme_stack(
    devcluster: DevCluster, folder: Path, names: dict[str, str], flags: RegistryConfig
) -> contextlib.AbstractContextManager[Stack]:
    policy, _, _ = readme_examples()
    for readme, here in names.items():
        policy = policy.replace(readme, here)
    (folder / "policy.yaml").write_text(policy, encoding="utf-8")
    return running_stack(devcluster, readme_auth(folder), registry=flags, guard=None)


def readme_auth(folder: Path) -> AuthConfig:
    return AuthConfig(
        tokens_file=folder / "tokens.yaml",
        policy_file=folder / "policy.yaml",
        audit_log=os.devnull,
        rate_limit=0,
    )


def readme_token(folder: Path) -> str:
    secret, entry = create_token("release-bot")
    (folder / "tokens.yaml").write_text("tokens:\n" + entry.entry_yaml(), encoding="utf-8")
    return secret


pytest_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


@pytest_curl
def test_the_readme_examples_answer_as_printed(
    devcluster: DevCluster,
    registry: LiveRegistry,
    repository: str,
    tmp_path: Path,
    release_key: ec.EllipticCurvePrivateKey,
    other_key: ec.EllipticCurvePrivateKey,
) -> None:
    publisher = registry.publisher
    release = publisher.index(repository, "1.4.2", ["linux/amd64", "linux/arm64"])
    publisher.sign(repository, release["digest"], release_key)
    publisher.index(repository, "1.5.0-arm", ["linux/arm64"])
    publisher.image(repository, "nightly")
    old = publisher.image(repository, "1.4.1")
    publisher.sign(repository, old["digest"], other_key)
    write_public_key(tmp_path, "release.pub", release_key)
    names = {
        "ghcr.io/acme/web": f"{registry.host}/{repository}",
        "registry ghcr.io,": f"registry {registry.host},",
        "repository acme/web": f"repository {repository}",
        "/etc/kubeupdate/": f"{tmp_path}/",
    }
    secret = readme_token(tmp_path)
    _, command, examples = readme_examples()
    assert len(examples) == 6
    with start_readme_stack(devcluster, tmp_path, names, plain(registry)) as stack:
        deployer = Deployer(stack, secret, tmp_path / "audit")
        for example in examples:
            if "cannot be reached" not in example.comment:
                run_example(deployer, command, example, names)


@pytest_curl
def test_the_readme_example_of_a_registry_that_is_down_answers_as_printed(
    devcluster: DevCluster, down: str, tmp_path: Path
) -> None:
    write_public_key(tmp_path, "release.pub", ec.generate_private_key(ec.SECP256R1()))
    names = {"ghcr.io/acme/web": f"{down}/acme/web"}
    secret = readme_token(tmp_path)
    _, command, examples = readme_examples()
    (example,) = [e for e in examples if "cannot be reached" in e.comment]
    flags = RegistryConfig(plain_http=(down,))
    with start_readme_stack(devcluster, tmp_path, names, flags) as stack:
        run_example(Deployer(stack, secret, tmp_path / "audit"), command, example, names)
        assert devcluster.journal.entries() == []


async def test_sighup_reads_the_registry_credentials_again_at_once(
    devcluster: DevCluster, basic_registry: LiveRegistry, repository: str, tmp_path: Path
) -> None:
    basic_registry.publisher.image(repository, "1.0")
    name = f"{basic_registry.host}/{repository}"

    def grant(password: str) -> Path:
        pair = base64.b64encode(f"{USER}:{password}".encode()).decode()
        return write_docker_config(tmp_path, basic_registry.host, {"auth": pair})

    assert basic_registry.running.ca_file is not None
    registry = RegistryConfig(
        credentials_file=grant("wrong"),
        ca_files={basic_registry.host: basic_registry.running.ca_file},
        always=True,
    )
    seed_samples(devcluster)
    config = ServerConfig(
        port=0,
        kubeconfig=devcluster.kubeconfig_path,
        auth=AuthConfig(enabled=False, rate_limit=0, audit_log=os.devnull),
        registry=registry,
    )
    ready: asyncio.Queue[int] = asyncio.Queue()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, ready=ready.put_nowait, stop=stop))
    port = await ready.get()
    request = pb.SetContainerImageRequest(
        namespace="default", deployment="web", container="app", image=f"{name}:1.0"
    )

    async def reason() -> str:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.DeploymentImageServiceStub(channel)
            try:
                await stub.SetContainerImage(request, timeout=30)
            except grpc.aio.AioRpcError as exc:
                return error_info(exc.trailing_metadata() or ())[0]
        return "OK"

    try:
        assert await reason() == "REGISTRY_ACCESS_DENIED"
        grant(PASSWORD)
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0)  # let the loop run the signal handler
        assert await reason() == "OK"  # at once: the file's own once-a-second look has not come
    finally:
        stop.set()
        await task
