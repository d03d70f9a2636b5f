# Gridline: the team's memory of commands. `make run` and `make test` are the two a newcomer needs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

.PHONY: help setup run run-traced test test-unit test-integration test-e2e test-faults test-faults-full lint fmt contracts contracts-check gateway-conf \
        infra-fetch infra-up lock bench bench-e2e clean

help: ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## create the virtualenv and fetch Kafka jars, PostgreSQL and nginx
	$(PY) -m devtools.infra fetch

run: setup ## run everything locally: Kafka, PostgreSQL, gateway, five services, sample cases (Ctrl-C stops)
	$(PY) -m devtools.run

run-traced: setup ## like run, plus a Jaeger trace viewer on http://127.0.0.1:16686 (built from Go once)
	GRIDLINE_TRACING=jaeger $(PY) -m devtools.run

test: setup ## unit, integration and e2e tests on real Kafka and PostgreSQL (not the fault suite)
	$(PY) -m devtools.infra fetch --for-tests
	$(PY) -m pytest -ra -m "not faults"

test-unit: $(STAMP) ## pure tests only (no servers)
	$(PY) -m pytest -q tests/unit

test-integration: setup ## integration tests (real Kafka and PostgreSQL)
	$(PY) -m pytest -q tests/integration

test-e2e: setup ## the running system through HTTP
	$(PY) -m pytest -q tests/e2e

test-faults: setup ## fault suite, CI size: 2,000 cases under crashes, then 300 on replicas (~13 min, 2 cores)
	$(PY) -m pytest -ra -s tests/faults

test-faults-full: setup ## fault suite, full size: 100,000 cases at 10/s, then 5,000 on replicas (~3.5 h on 2 cores; 2 h 6 min with GRIDLINE_FAULT_SEED_S=3600, 27.8 cases/s)
	GRIDLINE_FAULT_CASES=$${GRIDLINE_FAULT_CASES:-100000} GRIDLINE_FAULT_SEED_S=$${GRIDLINE_FAULT_SEED_S:-10000} \
	GRIDLINE_FAULT_KILLS=$${GRIDLINE_FAULT_KILLS:-5} GRIDLINE_FAULT_DRAIN_S=$${GRIDLINE_FAULT_DRAIN_S:-14400} \
	GRIDLINE_FAULT_SCALE_CASES=$${GRIDLINE_FAULT_SCALE_CASES:-5000} \
	GRIDLINE_FAULT_SCALE_SEED_S=$${GRIDLINE_FAULT_SCALE_SEED_S:-1000} \
	GRIDLINE_FAULT_LOG_LEVEL=$${GRIDLINE_FAULT_LOG_LEVEL:-WARNING} $(PY) -m pytest -ra -s tests/faults

lint: $(STAMP) ## ruff lint + format check, contracts up to date
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m contracts.generate --check

fmt: $(STAMP) ## format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

contracts: $(STAMP) ## regenerate JSON Schemas and the AsyncAPI document from contracts/
	$(PY) -m contracts.generate

gateway-conf: $(STAMP) ## re-render deploy/nginx/compose.conf from the gateway template
	$(PY) -m devtools.gateway

contracts-check: $(STAMP) ## fail if generated contracts are stale
	$(PY) -m contracts.generate --check

infra-fetch: setup ## only fetch Kafka jars / install PostgreSQL and nginx

lock: ## re-resolve pinned dependencies into requirements.lock
	$(PY) -m pip freeze --exclude-editable > requirements.lock

bench: setup ## benchmarks (prints numbers with the machine's core count; includes bench-e2e)
	$(PY) -m bench

bench-e2e: setup ## the whole system under stepped load + a replay + raw limits (bench/results/e2e.*)
	$(PY) -m bench e2e

clean: ## remove local data (Kafka logs, PostgreSQL clusters, test logs)
	rm -rf .local
