# syntax=docker/dockerfile:1
#
# One image for every Switchboard service: `switchboard run SERVICE` (ingest, router, sla,
# outbound, and hub when it lands). Build:  docker build -t switchboard .
# Run one service:                          docker run --rm switchboard run router
#
# Two stages: the builder has compilers (for any dependency without a wheel on the target
# platform) and installs the project into a virtualenv; the runtime stage copies only that
# virtualenv and the sample configuration onto a clean slim image and runs as a non-root user.

# Pinned by digest (the multi-platform index of python:3.11-slim as Docker's official-images
# repo-info published it on 2026-08-05: Python 3.11.15 on Debian trixie), so every build starts
# from the same bytes. Move it on purpose, for base-image security fixes:
#   docker buildx imagetools inspect python:3.11-slim   (the "Digest:" line)
ARG PYTHON_IMAGE=python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# Build stage only, thrown away: the distribution's current compilers are what we want.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from the lock alone (`make lock`), so a code change does not reinstall
# them; every file pip fetches must match a hash in the lock. The dev and embedded extras are
# not in it: the image talks to a real Kafka and Redis.
COPY requirements.lock ./
RUN python -m pip install --require-hashes --requirement requirements.lock

# Then the project itself, with no dependency resolution of its own (a regular, non-editable
# install: the source tree is not needed later).
COPY pyproject.toml README.md ./
COPY libs/ libs/
COPY services/ services/
COPY tooling/ tooling/
RUN python -m pip install --no-deps . \
    && python -m compileall -q /opt/venv/lib \
    && switchboard --help > /dev/null


FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="switchboard" \
      org.opencontainers.image.description="Omnichannel message router for customer service" \
      org.opencontainers.image.licenses="Apache-2.0"

# The Python files are compiled in the builder, so nothing is written at run time and the root
# filesystem can be mounted read-only (Kubernetes: readOnlyRootFilesystem, an emptyDir on /tmp).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SWITCHBOARD_CONFIG=/app/config/store.yaml \
    SWITCHBOARD_HTTP_HOST=0.0.0.0 \
    SWITCHBOARD_HTTP_PORT=8080 \
    SWITCHBOARD_SMTP_PORT=2525

RUN groupadd --system --gid 10001 switchboard \
    && useradd --system --uid 10001 --gid switchboard --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin switchboard

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# The sample store configuration is the default; mount your own over /app/config (compose) or
# point SWITCHBOARD_CONFIG at a mounted ConfigMap (Kubernetes).
COPY config/ /app/config/

USER 10001:10001
EXPOSE 8080 2525
# Readiness is /readyz on SWITCHBOARD_HTTP_PORT; compose and Kubernetes declare their own checks.
ENTRYPOINT ["switchboard"]
CMD ["run", "ingest"]
