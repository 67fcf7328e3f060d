# tierwise: a slim two-stage image, rebuilt from the lock files. The build stage makes the
# wheel with the locked build backend and installs it, with the runtime lock's exact versions
# and hashes, into a virtualenv: nothing is resolved at build time. The runtime stage copies
# that virtualenv; models and migrations travel inside the wheel.
FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# gcc and libc6-dev build the native tree walker here, ahead of time; only this stage has them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libgomp1 \
 && rm -rf /var/lib/apt/lists/*
COPY requirements/build.lock requirements/runtime.lock ./requirements/
# /opt/build: pip and the build backend. /opt/tierwise: the service (no pip inside it).
RUN python -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes --no-deps -r requirements/build.lock \
 && python -m venv --without-pip /opt/tierwise \
 && /opt/build/bin/pip --python /opt/tierwise/bin/python install \
      --require-hashes --no-deps -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
COPY models ./models
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /src/dist . \
 && /opt/build/bin/pip --python /opt/tierwise/bin/python install --no-deps /src/dist/*.whl
# The tree walker, compiled into the virtualenv (/opt/tierwise/lib/tierwise/walker) with its
# sha256 record; the service verifies it before loading it and needs no compiler.
RUN /opt/tierwise/bin/tierwise walker build

FROM python:3.11-slim AS runtime
# libgomp: LightGBM's OpenMP runtime. No compiler: the tree walker was built in the build
# stage and travels inside the virtualenv.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /srv/tierwise tierwise
COPY --from=build /opt/tierwise /opt/tierwise
# The working directory holds var/ (embedded registry, admin key, compile cache).
WORKDIR /srv/tierwise
RUN mkdir -p var && chown -R tierwise:tierwise var
USER tierwise
# Fails the image build unless the default bundles are served by the verified walker here.
RUN /opt/tierwise/bin/tierwise walker check
ENV PATH=/opt/tierwise/bin:$PATH \
    PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
CMD ["tierwise", "serve", "--host", "0.0.0.0", "--port", "8000"]
