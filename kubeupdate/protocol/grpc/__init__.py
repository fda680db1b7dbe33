"""The gRPC adapter: protobuf in and out, statuses, interceptors, the server.

- :mod:`~kubeupdate.protocol.grpc.servicer`: the RPCs, translated to domain calls;
- :mod:`~kubeupdate.protocol.grpc.statuses`: domain errors → gRPC statuses (the table);
- :mod:`~kubeupdate.protocol.grpc.interceptors`: the interceptor base class, and the
  interceptor that applies the table to every call;
- :mod:`~kubeupdate.protocol.grpc.server`: the ``grpc.aio`` server with health and reflection.

The domain (:mod:`kubeupdate.operations` and below) does not import grpc.
"""
