"""The protocols kubeupdate is served over; gRPC is the one (the REST gateway calls it)."""
