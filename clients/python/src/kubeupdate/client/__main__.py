"""``python -m kubeupdate.client``: the same as ``kubeupdate-client``."""

import sys

from kubeupdate.client.cli import run

sys.exit(run())
