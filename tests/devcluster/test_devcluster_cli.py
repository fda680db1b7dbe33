"""``python -m devcluster`` as a new user would run it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml
from devcluster.manifests import deployment, namespace

from .test_devcluster_kubectl import kubectl_binary


def test_serves_the_seed_to_kubectl_and_stops_on_sigterm(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        yaml.safe_dump_all([namespace("staging"), deployment("web"), deployment("api", "staging")])
    )
    kubeconfig = tmp_path / "dc.kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devcluster",
            "--port",
            "0",
            "--seed",
            str(seed),
            "--kubeconfig-out",
            str(kubeconfig),
            "--speed",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = []
        for line in process.stdout:
            banner.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(banner)
        assert f"kubectl --kubeconfig {kubeconfig} get deployments -A" in text
        listed = subprocess.run(
            [kubectl_binary(), "--kubeconfig", str(kubeconfig), "get", "deployments", "-A"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.splitlines()
        assert [line.split()[:2] for line in listed[1:]] == [["default", "web"], ["staging", "api"]]
        # Seeded rollouts are finished before the server answers.
        assert listed[1].split()[2] == "1/1"
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "devcluster stopped." in out
    assert not kubeconfig.exists()


def test_an_unreadable_seed_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "devcluster",
            "--port",
            "0",
            "--seed",
            str(tmp_path / "missing.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "cannot read the seed" in result.stderr


def test_an_unreadable_image_catalogue_exits_2(tmp_path: Path) -> None:
    catalogue = tmp_path / "images.yaml"
    catalogue.write_text("repositories: {nginx: 1.25}\n")
    result = subprocess.run(
        [sys.executable, "-m", "devcluster", "--port", "0", "--image-catalog", str(catalogue)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"devcluster: cannot read the image catalogue: {catalogue}:"
        " 'repositories' must map repositories to lists of tags\n"
    )


def test_bookmark_interval_sets_how_often_a_watch_gets_one(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "devcluster", "--port", "0", "--insecure-http", "--speed", "0",
         "--bookmark-interval", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        address = next(
            line.split("serving the Kubernetes API at ")[1].split()[0]
            for line in process.stdout
            if "serving the Kubernetes API at" in line
        )
        url = (
            f"{address}/api/v1/namespaces/default/pods"
            "?watch=true&resourceVersion=1&allowWatchBookmarks=true&timeoutSeconds=1"
        )
        with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 - http://127.0.0.1
            events = [json.loads(line) for line in answer.read().splitlines() if line.strip()]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    # About twenty in the watch's one second; the default interval would give at most one.
    assert sum(1 for event in events if event["type"] == "BOOKMARK") >= 5


def test_a_bookmark_interval_of_zero_is_refused_with_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devcluster", "--port", "0", "--bookmark-interval", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--bookmark-interval: must be above 0 seconds: '0'" in done.stderr
