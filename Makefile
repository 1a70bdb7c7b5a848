# Atelier back end. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

SCALE ?= 0.01
SEED ?= 1
DATA ?= .data/csv/sample
DIRTY ?=
SERVICE ?=
INSTANCES ?= 2
CACHE ?= 1
WRITE_RATE_LIMIT ?= 10

.DEFAULT_GOAL := help
.PHONY: help up down test data load bench bench-fleet bench-tail clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt common/pyproject.toml services/*/pyproject.toml etl/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e common -e etl -e services/products -e services/qa -e services/reviews
	@touch $(STAMP)

up: $(STAMP) ## PostgreSQL, sample data, INSTANCES=2 instances per service behind nginx [CACHE=1 WRITE_RATE_LIMIT=10] (idempotent)
	$(PY) tools/stack.py up --scale $(SCALE) --instances $(INSTANCES) --cache $(CACHE) --write-rate-limit $(WRITE_RATE_LIMIT)

down: ## stop everything `make up` started
	@if [ -x $(PY) ]; then $(PY) tools/stack.py down; fi

test: $(STAMP) ## run the whole test suite against a real PostgreSQL
	$(PY) -m pytest

data: $(STAMP) ## generate the 13 CSV files: SCALE=0.01 DIRTY=1 SEED=1 DATA=dir
	$(PY) -m atelier_etl.generate --scale $(SCALE) --seed $(SEED) --out $(DATA) $(if $(DIRTY),--dirty)

load: $(STAMP) ## load CSV files into the databases, then flush the balancers' caches: DATA=dir [SERVICE=products|qa|reviews]
	$(PY) -m atelier_etl.load --data $(DATA) $(if $(SERVICE),--service $(SERVICE))
	$(PY) tools/stack.py flush

bench: $(STAMP) ## benchmark one service on the loaded data (pgbench + wrk): SERVICE=products|qa|reviews
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) tools/bench.py $(SERVICE)

bench-fleet: $(STAMP) ## the page-load mix through the balancers, INSTANCES 1, 2, 4 (docs/bench/README.md)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	flock /tmp/atelier-bench.lock $(PY) tools/bench_fleet.py

bench-tail: $(STAMP) ## each read endpoint's tail through the running balancers (make up CACHE=0 first)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	flock /tmp/atelier-bench.lock $(PY) tools/bench_tail.py

clean: down ## stop everything and delete .data/ (databases, generated data, logs)
	rm -rf .data
