# Two commands on a fresh machine with python3 and pip: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# SEMANTIC=0 skips the local embedding model (torch, ≈1.5 GB): directories then search by text.
SEMANTIC ?= 1
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: install run test lint typecheck unit format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
ifeq ($(SEMANTIC),1)
	$(PIP) "torch==2.13.0"  # the CPU build; a bare 'torch' would pull a multi-GB CUDA build
	$(PIP) -e ".[dev,semantic,otel]"
else
	$(PIP) -e ".[dev,otel]"
endif
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install Switchboard, its dev tools and the semantic and otel extras

run: $(STAMP)  ## migrate the embedded SQLite database and serve on http://127.0.0.1:8000
	$(BIN)/switchboard serve

test: lint typecheck unit  ## the whole suite: lint, format check, types, tests

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports  # the import contract in pyproject.toml ([tool.importlinter])

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)  ## chat overhead vs the fake provider, SQLite (and PostgreSQL if BENCH_PG is set)
	$(BIN)/python benchmarks/bench_chat.py $(if $(BENCH_PG),--postgres $(BENCH_PG))

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
