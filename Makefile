# AgentFlow: `make run` (set up + main job), `make test` (set up + lint + types + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The packages that exist so far (store/, studio/, notebooks/ arrive with their issues).
SOURCES := $(wildcard engine store studio notebooks) tests bench
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: install run example test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The main job: the studio on the embedded DuckDB store (~/.agentflow/agentflow.duckdb),
# with the example workflows loaded into a fresh store. Ctrl-C stops it.
run: $(STAMP)
	$(BIN)/agentflow studio --no-browser

# A workflow from the command line, without the studio.
example: $(STAMP)
	$(BIN)/agentflow run examples/triage.json --input ticket="The checkout page times out when I pay by card"

lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

# Benchmarks run in their own environment so that LangGraph never becomes a project dependency.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -e . -r bench/requirements.txt
	touch $(BENCH_VENV)/.installed

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/engine_bench.py
	$(BENCH_VENV)/bin/python bench/store_bench.py
	$(BENCH_VENV)/bin/python bench/llm_bench.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .mypy_cache .ruff_cache
