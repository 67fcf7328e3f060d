# tierwise: a slim two-stage image. The package is installed the way the Makefile does it
# (pip install -e into a virtualenv next to the source), so models/ and migrations/ sit
# where the code expects them.
FROM python:3.11-slim AS build
WORKDIR /srv/tierwise
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY app ./app
RUN python -m venv .venv \
 && .venv/bin/pip install --upgrade pip \
 && .venv/bin/pip install -e .

FROM python:3.11-slim AS runtime
# libgomp: LightGBM's OpenMP runtime. gcc: builds the native tree evaluator at first
# start (without it the service falls back to plain LightGBM and logs it once).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /srv/tierwise tierwise
WORKDIR /srv/tierwise
COPY --from=build /srv/tierwise /srv/tierwise
COPY models ./models
COPY migrations ./migrations
RUN mkdir -p var && chown -R tierwise:tierwise var
USER tierwise
ENV PATH=/srv/tierwise/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
CMD ["tierwise", "serve", "--host", "0.0.0.0", "--port", "8000"]
