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

.PHONY: run test models bench lint clean venv tools lock wheel openapi

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

## Run the whole suite (PostgreSQL tests run when CI=true, skip loudly otherwise if it is down).
test: $(STAMP) $(TOOLS_STAMP)
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

## Regenerate openapi.yaml from the app (a test checks they are identical).
openapi: $(STAMP)
	$(BIN)/tierwise openapi --out openapi.yaml
