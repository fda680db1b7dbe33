"""``python -m gateway``: run the REST gateway (see ``gateway.server.main``)."""

from gateway.server import main

raise SystemExit(main())
