"""A container's life and image references, as the kubelet sees them: pure functions, tables."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from devcluster.controllers.catalog import Found, Missing, StaticCatalog
from devcluster.controllers.lifecycle import (
    Phase,
    Step,
    completes,
    creating,
    failed_pulls,
    go_duration,
    runs,
    stopped,
)
from devcluster.controllers.references import InvalidReference, parse_reference


def first(steps: Iterator[Step], count: int) -> list[tuple[float, Phase, int, float]]:
    """(time, phase, restartCount, back-off) of the first ``count`` steps."""
    return [(s.at, s.phase, s.restarts, s.back_off) for s in itertools.islice(steps, count)]


# --- crash loops ----------------------------------------------------------------------


def test_a_crashing_container_restarts_at_once_then_with_a_doubling_back_off() -> None:
    R, E, B = Phase.RUNNING, Phase.EXITED, Phase.CRASH_BACK_OFF
    assert first(runs(100.0, runs_for=1.0), 12) == [
        (100, R, 0, 0),
        (101, E, 0, 0),  # the first exit: restarted at the kubelet's next look
        (102, R, 1, 0),
        (103, E, 1, 0),
        (104, B, 1, 10),  # then back-off: 10 s after the exit
        (113, R, 2, 0),
        (114, E, 2, 0),
        (115, B, 2, 20),
        (134, R, 3, 0),
        (135, E, 3, 0),
        (136, B, 3, 40),
        (175, R, 4, 0),
    ]


def test_the_crash_back_off_stops_growing_at_five_minutes() -> None:
    back_offs = [s.back_off for s in itertools.islice(runs(0.0, 1.0), 40) if s.back_off]
    assert back_offs[:7] == [10, 20, 40, 80, 160, 300, 300]


def test_a_run_longer_than_ten_minutes_starts_the_back_off_over() -> None:
    steps = list(itertools.islice(runs(0.0, runs_for=700.0), 6))
    assert [s.phase for s in steps] == [Phase.RUNNING, Phase.EXITED] * 3
    assert [s.at for s in steps] == [0, 700, 701, 1401, 1402, 2102]  # never waits in back-off


def test_a_crash_keeps_the_exit_as_the_last_state() -> None:
    steps = list(itertools.islice(runs(0.0, 1.0), 5))
    back_off = steps[4]
    assert back_off.phase is Phase.CRASH_BACK_OFF
    assert back_off.last is not None
    assert (back_off.last.run, back_off.last.exit_code, back_off.last.reason) == (1, 1, "Error")
    assert (back_off.last.started_at, back_off.last.finished_at) == (2, 3)
    assert steps[2].last is not None
    assert steps[2].last.run == 0


def test_a_container_that_works_runs_for_good() -> None:
    assert first(runs(5.0, None), 3) == [(5, Phase.RUNNING, 0, 0)]


def test_an_init_container_completes() -> None:
    steps = list(completes(5.0, 1.0))
    assert [(s.at, s.phase) for s in steps] == [(5, Phase.RUNNING), (6, Phase.EXITED)]
    assert steps[1].terminated is not None
    assert (steps[1].terminated.exit_code, steps[1].terminated.reason) == (0, "Completed")


# --- pulls ----------------------------------------------------------------------------


def test_failed_pulls_alternate_err_image_pull_and_image_pull_back_off() -> None:
    F, B = Phase.PULL_FAILED, Phase.PULL_BACK_OFF
    assert first(failed_pulls(50.0), 10) == [
        (50, F, 0, 0),
        (51, B, 0, 10),
        (60, F, 0, 0),  # tried again when the 10 s back-off ends
        (61, B, 0, 20),
        (80, F, 0, 0),
        (81, B, 0, 40),
        (120, F, 0, 0),
        (121, B, 0, 80),
        (200, F, 0, 0),
        (201, B, 0, 160),
    ]
    later = [s.back_off for s in itertools.islice(failed_pulls(0.0), 20) if s.back_off]
    assert later[5:8] == [300, 300, 300]


# --- stopping -------------------------------------------------------------------------


def life(*steps: Iterator[Step]) -> Iterator[Step]:
    return itertools.chain([creating(0.0)], *steps)


def test_sigterm_stops_a_running_container_in_time() -> None:
    steps = list(stopped(life(runs(1.0, None)), killed_at=10.0, deadline=40.0, stop_seconds=1.0))
    assert [(s.at, s.phase) for s in steps] == [
        (0, Phase.CREATING),
        (1, Phase.RUNNING),
        (11, Phase.STOPPED),
    ]
    end = steps[-1].terminated
    assert end is not None
    assert (end.exit_code, end.reason, end.started_at, end.finished_at) == (0, "Completed", 1, 11)


def test_a_container_that_outlives_the_grace_period_is_killed() -> None:
    steps = list(stopped(life(runs(1.0, None)), killed_at=10.0, deadline=40.0, stop_seconds=61))
    end = steps[-1]
    assert end.at == 40
    assert end.terminated is not None
    assert (end.terminated.exit_code, end.terminated.reason) == (137, "Error")


def test_a_waiting_container_ends_as_status_unknown_when_its_pod_goes() -> None:
    steps = list(stopped(life(failed_pulls(1.0)), killed_at=5.0, deadline=35.0, stop_seconds=1))
    assert [(s.at, s.phase) for s in steps] == [
        (0, Phase.CREATING),
        (1, Phase.PULL_FAILED),
        (2, Phase.PULL_BACK_OFF),
        (5, Phase.STOPPED),
    ]
    end = steps[-1].terminated
    assert end is not None
    assert (end.exit_code, end.reason, end.finished_at) == (137, "ContainerStatusUnknown", None)
    assert end.message == "The container could not be located when the pod was terminated"


def test_a_crashed_container_is_not_restarted_once_its_pod_goes() -> None:
    steps = list(stopped(life(runs(1.0, 1.0)), killed_at=2.5, deadline=32.5, stop_seconds=1))
    assert [(s.at, s.phase) for s in steps] == [
        (0, Phase.CREATING),
        (1, Phase.RUNNING),
        (2, Phase.EXITED),
    ]


def test_a_container_that_crashes_while_stopping_keeps_its_own_exit() -> None:
    steps = list(stopped(life(runs(1.0, 5.0)), killed_at=3.0, deadline=33.0, stop_seconds=10))
    assert [(s.at, s.phase) for s in steps][-1] == (6, Phase.EXITED)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.5, "500ms"), (1, "1s"), (1.25, "1.25s"), (10, "10s"), (80, "1m20s"),
     (160, "2m40s"), (300, "5m0s"), (3600, "1h0m0s"), (3725.5, "1h2m5.5s")],
)  # fmt: skip
def test_durations_read_as_go_prints_them(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


# --- references -----------------------------------------------------------------------

FORMAT = "invalid reference format"


@pytest.mark.parametrize(
    ("image", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io/library/nginx", "latest", None),
        ("nginx:1.25", "docker.io/library/nginx", "1.25", None),
        ("acme/web:1.0", "docker.io/acme/web", "1.0", None),
        ("index.docker.io/library/busybox:1", "docker.io/library/busybox", "1", None),
        ("ghcr.io/acme/app:v1", "ghcr.io/acme/app", "v1", None),
        ("localhost/app", "localhost/app", "latest", None),
        ("127.0.0.1:5000/a/b:v1", "127.0.0.1:5000/a/b", "v1", None),
        ("Registry.Example/app:1", "Registry.Example/app", "1", None),
        ("nginx@sha256:" + "a" * 64, "docker.io/library/nginx", None, "sha256:" + "a" * 64),
        ("nginx:1.25@sha256:" + "b" * 64, "docker.io/library/nginx", "1.25", "sha256:" + "b" * 64),
    ],
)
def test_references_normalize_as_the_kubelet_reads_them(
    image: str, repository: str, tag: str | None, digest: str | None
) -> None:
    reference = parse_reference(image)
    assert (reference.repository, reference.tag, reference.digest) == (repository, tag, digest)


@pytest.mark.parametrize(
    ("image", "error"),
    [
        ("Nginx:1.27", f"{FORMAT}: repository name (library/Nginx) must be lowercase"),
        ("ghcr.io/Acme/app:1", f"{FORMAT}: repository name (Acme/app) must be lowercase"),
        ("nginx:1.27 alpine", "invalid reference format"),
        ("nginx::1", "invalid reference format"),
        ("nginx:-1", "invalid reference format"),
        ("-nginx", "invalid reference format"),
        ("a" * 64, f"invalid repository name ({'a' * 64}), cannot specify 64-byte hexadecimal"
                   " strings"),
        ("nginx@sha256:abc", "invalid reference format"),
        ("nginx@sha256:" + "a" * 63 + "A", "invalid checksum digest format"),
        ("nginx@md5:" + "a" * 32, "unsupported digest algorithm"),
        ("nginx@sha512:" + "a" * 64, "invalid checksum digest length"),
    ],
)  # fmt: skip
def test_references_the_kubelet_cannot_parse_say_why(image: str, error: str) -> None:
    with pytest.raises(InvalidReference) as raised:
        parse_reference(image)
    quoted = f'"{image}"'
    assert str(raised.value) == (
        f"Failed to apply default image tag {quoted}: couldn't parse image name {quoted}: {error}"
    )


# --- the catalogue --------------------------------------------------------------------


def resolve(catalog: StaticCatalog, image: str) -> Found | Missing:
    answer = catalog.resolve(parse_reference(image))
    assert isinstance(answer, Found | Missing)
    return answer


def test_the_shipped_catalogue_knows_the_demo_and_common_images() -> None:
    catalog = StaticCatalog.default()
    exists = [
        "nginx:1.25", "nginx:1.27-alpine", "nginx:1.30", "nginx:latest", "nginx", "busybox:1.36",
        "docker.io/library/nginx:1.26", "ghcr.io/acme/api:2.3.0",
        "ghcr.io/acme/api-migrations:2.3.0", "envoy:1.30", "acme/web:1.0", "x:1",
    ]  # fmt: skip
    missing = ["nginx:does-not-exist", "nginx:2", "busybox:0.1", "ghcr.io/acme/api:3.0"]
    assert [image for image in exists if isinstance(resolve(catalog, image), Missing)] == []
    assert [image for image in missing if isinstance(resolve(catalog, image), Found)] == []


def test_a_missing_tag_fails_with_containerds_not_found() -> None:
    answer = resolve(StaticCatalog.default(), "nginx:does-not-exist")
    ref = "docker.io/library/nginx:does-not-exist"
    assert answer == Missing(
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{ref}":'
        f' failed to resolve reference "{ref}": {ref}: not found'
    )


def test_unknown_repositories_exist_unless_the_catalogue_is_closed() -> None:
    catalog = StaticCatalog({"nginx": ["1.25"]})
    assert isinstance(resolve(catalog, "acme/web:9"), Found)
    catalog.unknown_repositories = "missing"
    hub = resolve(catalog, "acme/web:9")
    assert isinstance(hub, Missing)
    assert "pull access denied, repository does not exist or may require authorization" in hub.error
    other = resolve(catalog, "registry.example/app:1")
    assert isinstance(other, Missing)
    assert other.error.endswith("registry.example/app:1: not found")


def test_a_catalogue_changes_say_so() -> None:
    catalog = StaticCatalog()
    before = catalog.generation
    catalog.add("nginx", "1.2[0-9]")
    assert catalog.generation > before
    assert isinstance(resolve(catalog, "nginx:1.27"), Found)
    assert isinstance(resolve(catalog, "nginx:1.3"), Missing)
    catalog.remove("docker.io/library/nginx")
    assert isinstance(resolve(catalog, "nginx:1.3"), Found)


def test_digests_are_stable_and_pinned_ones_kept() -> None:
    catalog = StaticCatalog.default()
    one, again = resolve(catalog, "nginx:1.25"), resolve(catalog, "nginx:1.25")
    assert isinstance(one, Found)
    assert one == again
    assert one.digest.startswith("sha256:")
    assert len(one.digest) == 71
    pinned = "sha256:" + "c" * 64
    answer = resolve(catalog, f"nginx:1.25@{pinned}")
    assert isinstance(answer, Found)
    assert answer.digest == pinned


def test_a_catalogue_file_is_checked(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("unknownRepositories: missing\nrepositories:\n  acme/web: ['1.*']\n")
    catalog = StaticCatalog.load(good)
    assert catalog.repositories == {"docker.io/acme/web": ("1.*",)}
    assert catalog.unknown_repositories == "missing"
    for text, error in [
        ("[1, 2]", "expected a mapping"),
        ("repositories: {nginx: 1.25}", "lists of tags"),
        ("unknownRepositories: maybe", "'exist' or 'missing'"),
        ("repositories: {'nginx:1.25': ['1']}", "neither a tag nor a digest"),
        ("repositories: {'Nginx': ['1']}", "not a repository name"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ValueError, match=error):
            StaticCatalog.load(bad)
