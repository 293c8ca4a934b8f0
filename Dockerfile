# syntax=docker/dockerfile:1
# The flyautoscaler command as a container image: `flyautoscaler serve` by default,
# configured with FAS_* variables (tokens as secrets, never baked in), /metrics and
# /healthz on port 9090.
#
#   docker build -t flyautoscaler .
#   docker build --build-arg EXTRAS=redis,temporal -t flyautoscaler .
#
# EXTRAS names the optional extras to install (comma-separated: redis, temporal,
# plot, all); the default, none, runs the Prometheus collector only. On Fly, set it
# in fly.toml's [build.args]. tests/test_dockerfile.py checks this file without a
# Docker daemon: what it copies, its install steps in a fresh virtualenv, the
# command it starts and its health check.

ARG PYTHON_VERSION=3.12

# Build stage: the package's wheel and a wheel of each runtime dependency.
FROM python:${PYTHON_VERSION}-slim AS builder
ARG EXTRAS=""
WORKDIR /src
COPY pyproject.toml README.md ./
COPY flyautoscaler/ flyautoscaler/
RUN python -m pip wheel --no-cache-dir --disable-pip-version-check \
        --wheel-dir /wheels ".${EXTRAS:+[$EXTRAS]}"

# Final stage: those wheels installed into a virtualenv, nothing else from the build.
FROM python:${PYTHON_VERSION}-slim
ARG EXTRAS=""
# The base image's pip installs into a virtualenv that has none of its own; the
# wheels are mounted from the build stage, so they are in no layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/venv \
 && python -m pip --python /opt/venv/bin/python install --no-cache-dir \
        --disable-pip-version-check --root-user-action=ignore \
        --no-index --find-links /wheels "flyautoscaler${EXTRAS:+[$EXTRAS]}"
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 flyautoscaler \
 && useradd --system --uid 10001 --gid flyautoscaler --create-home \
        --home-dir /home/flyautoscaler --shell /usr/sbin/nologin flyautoscaler
USER 10001:10001
WORKDIR /home/flyautoscaler

EXPOSE 9090
# /healthz on the port of FAS_METRICS_ADDRESS (":9090" unless set); any answer but
# 200 (503: an app's passes keep failing) or no answer is unhealthy. Slim images
# have no curl, so Python's standard library asks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('FAS_METRICS_ADDRESS', ':9090').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]

ENTRYPOINT ["flyautoscaler"]
CMD ["serve"]
