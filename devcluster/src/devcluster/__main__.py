"""``python -m devcluster``: the same as the ``devcluster`` command."""

from devcluster.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
