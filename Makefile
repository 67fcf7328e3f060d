# Two commands do everything on a fresh machine: `make run` and `make test`.
# Dependencies come from the lock files in requirements/ (exact versions and hashes);
# `make lock` re-resolves them after a change in pyproject.toml or requirements/*.in.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Tools that cannot share .venv (openapi-python-client caps typer below ours; uv for `make lock`).
TOOLS       ?= .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed
LOCK_FLAGS  := --python-version 3.11 --universal --generate-hashes

.PHONY: run test models bench lint clean venv tools lock wheel openapi browser screenshots

# The project itself goes in without resolving anything again: its dependencies, the build
# backend and pip are all in the dev lock.
$(STAMP): requirements/dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(TOOLS_STAMP): requirements/tools.lock
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --require-hashes --no-deps -r requirements/tools.lock
	touch $(TOOLS_STAMP)

venv: $(STAMP)

tools: $(TOOLS_STAMP)

## Start the service on 127.0.0.1:8000 with an embedded SQLite registry seeded from models/.
run: $(STAMP)
	$(BIN)/tierwise serve $(ARGS)

# Debian's Chromium, driven by Playwright in the browser tests (tests/ui); Playwright's own
# browser downloads are never used.
CHROMIUM ?= /usr/bin/chromium

## Debian's Chromium for the browser tests: installed when CI=true (as root); elsewhere a
## warning, and the browser tests skip loudly (they fail when CI=true and it is missing).
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	    if [ "$$CI" = "true" ]; then \
	        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	    else \
	        echo "!!! $(CHROMIUM) is missing: the browser tests (tests/ui) will SKIP." \
	             "Install it with: apt-get install -y chromium (CI=true does)"; \
	    fi; \
	fi

## Run the whole suite (PostgreSQL and browser tests run when CI=true, skip loudly otherwise
## if the server or Chromium is missing).
test: $(STAMP) $(TOOLS_STAMP) browser
	$(BIN)/ruff check app tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Regenerate the default bundles in models/ (synthetic book + training, fixed seeds).
models: $(STAMP)
	$(BIN)/python -m app.training.default_models --out models

## Benchmarks: prints a table and writes bench/results/latest.json.
bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check app tests bench
	$(BIN)/mypy

## The wheel in dist/: code, the walker's C source, migrations and default bundles.
wheel: $(STAMP)
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir dist .

## Re-resolve the locks (keeps current pins where they still fit; ARGS=--upgrade for newest).
## dev first: runtime and build are resolved inside it, so the three agree.
lock: $(TOOLS_STAMP)
	$(TOOLS)/bin/uv pip compile $(LOCK_FLAGS) $(ARGS) pyproject.toml --extra dev \
	    requirements/build.in -o requirements/dev.lock
	$(TOOLS)/bin/uv pip compile $(LOCK_FLAGS) $(ARGS) pyproject.toml \
	    -c requirements/dev.lock -o requirements/runtime.lock
	$(TOOLS)/bin/uv pip compile $(LOCK_FLAGS) $(ARGS) requirements/build.in \
	    -c requirements/dev.lock -o requirements/build.lock
	$(TOOLS)/bin/uv pip compile $(LOCK_FLAGS) $(ARGS) requirements/tools.in \
	    -o requirements/tools.lock

clean:
	rm -rf $(VENV) $(TOOLS) dist build .pytest_cache .ruff_cache .mypy_cache

## Retake docs/ui-card.png and docs/ui-registry.png (the browser tests, writing to docs/).
screenshots: $(STAMP) browser
	TIERWISE_UI_SCREENSHOTS=docs $(BIN)/python -m pytest -q tests/ui/test_pages.py::test_screenshots \
	    tests/ui/test_registry_console.py::test_approve_and_promote_in_the_console

## Regenerate openapi.yaml from the app (a test checks they are identical).
openapi: $(STAMP)
	$(BIN)/tierwise openapi --out openapi.yaml
