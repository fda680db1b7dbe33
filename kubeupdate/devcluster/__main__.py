"""``python -m kubeupdate.devcluster``: the same as ``kubeupdate devcluster``."""

from __future__ import annotations

import argparse
import logging

from kubeupdate.devcluster import cli


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kubeupdate.devcluster", description="Run the Kubernetes API emulator."
    )
    cli.add_arguments(parser)
    logging.basicConfig(level=logging.WARNING)
    return cli.run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
