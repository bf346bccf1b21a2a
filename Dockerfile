# 1688 Monitor container image.
#
# Two stages on the same base: "build" makes a virtualenv in /opt/monitor
# holding the monitor's wheel and its dependencies; "runtime" copies that
# virtualenv onto a clean base and runs it as an unprivileged user.
#
#   docker build -t 1688-monitor .
#   docker run -d -v "$PWD/watchlist.toml:/config/watchlist.toml:ro" \
#       -v monitor-data:/data -e TMAPI_TOKEN 1688-monitor
#
# BASE_IMAGE is any image with python3 (>= 3.11) and its venv module at the
# same path in both stages. PIP_CERT (build stage only, never in the final
# image) names a CA bundle for pip when the package index sits behind a
# private CA; mount the bundle into the build, do not copy it.
# See docs/container.md.

ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build

ARG PIP_CERT
WORKDIR /src

# Dependencies first, in their own layer, so that a change of the code alone
# does not download them again. They are read from pyproject.toml itself.
COPY pyproject.toml ./
RUN python3 -m venv /opt/monitor \
    && python3 -c 'import tomllib; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; print("\n".join(deps))' > /tmp/requirements.txt \
    && /opt/monitor/bin/pip install --no-cache-dir --requirement /tmp/requirements.txt

# The monitor itself: built into a wheel (migrations included as
# monitor/_migrations) and installed without touching the dependencies.
COPY README.md ./
COPY migrations ./migrations
COPY monitor ./monitor
RUN /opt/monitor/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/wheels . \
    && /opt/monitor/bin/pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
    && /opt/monitor/bin/pip uninstall --yes pip \
    && /opt/monitor/bin/monitor --version


FROM ${BASE_IMAGE} AS runtime

LABEL org.opencontainers.image.title="1688 Monitor" \
      org.opencontainers.image.description="Watch 1688.com wholesale offers through TMAPI and get told when prices, stock or quantity breaks change." \
      org.opencontainers.image.licenses="MIT"

# MONITOR_HOME holds the default SQLite database (when MONITOR_DATABASE_URL
# or MONITOR_DATABASE_URL_FILE does not name another database); the
# watchlist is mounted at /config/watchlist.toml. Secrets come from the
# environment or, better, from files: TMAPI_TOKEN_FILE,
# MONITOR_DATABASE_URL_FILE.
ENV PATH=/opt/monitor/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MONITOR_HOME=/data \
    MONITOR_WATCHLIST=/config/watchlist.toml \
    MONITOR_LOG_LEVEL=INFO

RUN groupadd --system --gid 10001 monitor \
    && useradd --system --uid 10001 --gid monitor --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin monitor \
    && mkdir -p /data /config \
    && chown monitor:monitor /data \
    && chmod 0700 /data

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]

# What this checks: that the monitor starts and can open its database and
# read the schema revision (exit 1 when the database is unreachable). It
# does not check that polling makes progress.
HEALTHCHECK --interval=60s --timeout=20s --start-period=30s --retries=3 \
    CMD ["monitor", "--log-level", "ERROR", "db", "current"]

# SIGTERM stops cleanly: no new polls, polls in flight get --grace seconds
# (default 20) to finish. Give the container more than that to stop
# (docker stop --time 30, compose stop_grace_period: 30s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["monitor"]
CMD ["run"]

# Last, so that a change of the code rebuilds this one layer and nothing
# after it. Owned by root: the monitor user can run the code, not change it.
COPY --from=build /opt/monitor /opt/monitor
