# syntax=docker/dockerfile:1
# The stagegate image: one image for every role (API, worker, CLI); the command picks the role:
#   docker run stagegate:0.1.0 serve --host 0.0.0.0 --port 8080
#   docker run stagegate:0.1.0 worker --node node-a --root /nvme --capacity 50G
# No HEALTHCHECK here for that reason: the API's probe (/healthz) means nothing for a worker, so
# compose and Kubernetes declare their own per role.

# --- build: install into a virtualenv, so the runtime stage copies one directory and no pip cache.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/stagegate
WORKDIR /src
# Only what the wheel is built from (the packages listed in pyproject.toml, the shipped policy and
# migrations inside them, and README.md, which pyproject names as the readme); tests/unit/deploy
# checks this list against pyproject.toml.
COPY pyproject.toml README.md ./
COPY stagegate ./stagegate
COPY transfer ./transfer
COPY checkpoints ./checkpoints
COPY policies ./policies
COPY ledger ./ledger
COPY workers ./workers
COPY api ./api
COPY client ./client
# The postgres extra brings psycopg (binary wheel, libpq bundled): the services use PostgreSQL.
RUN /opt/stagegate/bin/pip install '.[postgres]'

# --- runtime
FROM python:3.11-slim
# A numeric, non-root user: Kubernetes' runAsNonRoot can only verify a numeric UID. It owns
# STAGEGATE_HOME and /nvme: a fresh named volume mounted at /nvme copies that ownership, so a worker
# in the compose rehearsal writes its root without running as root.
RUN groupadd --system --gid 10001 stagegate \
 && useradd --system --uid 10001 --gid stagegate --home-dir /var/lib/stagegate --shell /usr/sbin/nologin stagegate \
 && install -d -o stagegate -g stagegate -m 0750 /var/lib/stagegate \
 && install -d -o stagegate -g stagegate -m 0755 /nvme
COPY --from=build /opt/stagegate /opt/stagegate
ENV PATH=/opt/stagegate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STAGEGATE_HOME=/var/lib/stagegate
WORKDIR /var/lib/stagegate
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["stagegate"]
CMD ["--help"]
