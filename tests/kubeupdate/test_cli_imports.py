"""``kubeupdate serve --only gateway`` loads the gateway, not the service's stack.

Memory is the point: the kubernetes package, aiohttp and cryptography weigh
~40 MB that a gateway process must not carry. Checked in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys

from kubeupdate import cli, serving  # noqa: F401 - what run_serve imports

args = cli.build_parser().parse_args(["serve", "--only", "gateway"])
assert args.only == "gateway"
loaded = sorted(
    name
    for name in sys.modules
    if name.partition(".")[0] in {"kubernetes", "aiohttp", "cryptography"}
    or name.startswith(("kubeupdate.devcluster", "kubeupdate.kube.client", "kubeupdate.auth.oidc"))
)
print(" ".join(loaded))
"""


def test_serve_only_gateway_does_not_import_the_service_stack() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_sub_commands_still_parse_their_own_flags() -> None:
    from kubeupdate.cli import build_parser

    parser = build_parser()
    devcluster = parser.parse_args(["devcluster", "--port", "0"])
    assert devcluster.port == 0
    assert callable(devcluster.run)
    demo = parser.parse_args(["demo", "--http-port", "0"])
    assert demo.http_port == 0
    assert callable(demo.run)
