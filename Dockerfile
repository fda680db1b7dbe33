# syntax=docker/dockerfile:1
# One image for both halves of kubeupdate:
#   docker run IMAGE service [FLAGS]   the gRPC service (default; holds the cluster credentials)
#   docker run IMAGE gateway [FLAGS]   the REST gateway (--upstream host:port of the service)
# FLAGS are `kubeupdate serve` flags and override the defaults in deploy/image/entrypoint.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install both distributions into a virtual environment ------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/kubeupdate
WORKDIR /src
# The pinned versions of requirements/dev.txt constrain what is installed.
COPY requirements/dev.txt requirements/dev.txt
COPY clients/python clients/python
COPY pyproject.toml README.md ./
COPY kubeupdate kubeupdate
COPY gateway gateway
RUN /opt/kubeupdate/bin/pip install --constraint requirements/dev.txt ./clients/python . \
    && /opt/kubeupdate/bin/pip uninstall --yes pip \
    && find /opt/kubeupdate -name '__pycache__' -type d -prune -exec rm -rf {} +

# --- runtime: the environment, a non-root user, nothing to build with --------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="kubeupdate" \
      org.opencontainers.image.description="Change one container image in one Kubernetes Deployment, safely." \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid 10001 kubeupdate \
    && useradd --system --uid 10001 --gid kubeupdate --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin kubeupdate
COPY --from=build /opt/kubeupdate /opt/kubeupdate
COPY --chmod=0755 deploy/image/entrypoint /usr/local/bin/kubeupdate-entrypoint
COPY --chmod=0644 deploy/image/healthcheck.py /opt/kubeupdate/healthcheck.py
ENV PATH=/opt/kubeupdate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
WORKDIR /tmp
EXPOSE 50051 8080 9090
# Healthy when this container's server is ready: the gateway's /readyz, or the
# service's gRPC health (whichever role it runs).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "/opt/kubeupdate/healthcheck.py"]
ENTRYPOINT ["kubeupdate-entrypoint"]
CMD ["service"]
