# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test models bench lint clean venv openapi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## Start the service on 127.0.0.1:8000 with an embedded SQLite registry seeded from models/.
run: $(STAMP)
	$(BIN)/tierwise serve $(ARGS)

## Run the whole suite (PostgreSQL tests run when CI=true, skip loudly otherwise if it is down).
test: $(STAMP)
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

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

## Regenerate openapi.yaml from the app (a test checks they are identical).
openapi: $(STAMP)
	$(BIN)/tierwise openapi --out openapi.yaml
