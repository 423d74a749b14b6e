# privwatch service image: `docker build -t privwatch:0.1.0 .` (deploy/docker-compose.yml builds it too).
# Two stages: compile the hot modules with mypyc (dev/native/build.py; gcc is needed here
# only) and build a wheel of the project, then install the wheel (with its dependencies' binary wheels)
# and the compiled modules into a clean slim image that runs as an unprivileged user. Both stages must
# use the same interpreter: the compiled modules are used only if their manifest matches it and the
# installed sources (detectors/native.py), and the image build fails if they are not.
# The base image is pinned by digest (the python:3.11-slim digest published in public build files; this
# machine cannot pull to check it is the newest): refresh it with
# `docker buildx imagetools inspect python:3.11-slim` and change both FROM lines together.
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY detectors ./detectors
COPY dev/native ./dev/native
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock \
    && pip install --no-cache-dir --no-deps . \
    && python dev/native/build.py \
    && python -c "import detectors.native as n; assert n.status == 'compiled', n.status"
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PRIVWATCH_METRICS_HOST=0.0.0.0 \
    PRIVWATCH_METRICS_PORT=9464
RUN groupadd --system --gid 10001 privwatch \
    && useradd --system --uid 10001 --gid privwatch --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin privwatch
COPY --from=build /wheels /wheels
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock \
    && pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels /tmp/requirements.lock
# detectors/native.py looks for the build beside the installed package: <site-packages>/.cache/mypyc/lib
COPY --from=build /src/.cache/mypyc/lib /usr/local/lib/python3.11/site-packages/.cache/mypyc/lib
RUN python -c "import detectors.native as n; assert n.status == 'compiled', n.status"
WORKDIR /tmp
USER 10001:10001
EXPOSE 9464
# /healthz answers 200 while the poll loop is alive (stream/ops/http.py); the port follows the setting.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PRIVWATCH_METRICS_PORT', '9464') + '/healthz', timeout=4)"]
ENTRYPOINT ["privwatch"]
CMD ["run"]
