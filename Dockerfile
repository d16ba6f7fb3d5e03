# syntax=docker/dockerfile:1
# The oec-operator image: `make image` (docker build -t $(IMG) .). Needs BuildKit (Docker >= 23).
#
# builder: builds the project's wheel and a wheel of every dependency (all of them ship binary
# wheels, so no compiler is needed). final: installs those wheels offline, drops the packaging
# tools, runs as UID 65532 (nothing is written outside /tmp).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN python -m pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="oec-operator" \
      org.opencontainers.image.description="Kubernetes operator for OEC.sh Odoo environments" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheels are bind-mounted, not copied: no layer keeps them. The passwd entry is for kopf,
# which names itself after the user (getpass) unless POD_ID is set (the Deployment sets it).
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links=/wheels /wheels/oec_operator-*.whl \
    && python -m pip uninstall --yes setuptools wheel pip \
    && groupadd --gid 65532 oec \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin oec
USER 65532:65532
WORKDIR /tmp
# 8080: kopf liveness (--liveness=http://0.0.0.0:8080/healthz); 8081: Prometheus /metrics.
EXPOSE 8080 8081
ENTRYPOINT ["oec-operator"]
