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
INSTANCES ?=
BALANCERS ?= 1
CACHE ?= 1
WRITE_RATE_LIMIT ?= 10
TESTS ?=

.DEFAULT_GOAL := help
.PHONY: help infra-tools up down test data load bench-load bench clean loadtest report influx chaos soak bench-metrics prometheus bench-fleet bench-tail

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): requirements.txt common/pyproject.toml services/*/pyproject.toml etl/pyproject.toml bench/pyproject.toml k6/pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { echo "[atelier] $(PYTHON) cannot create a venv: install its venv module (Debian: apt-get install python3-venv), or set PYTHON=..." >&2; exit 1; }
	@echo "[atelier] installing the pinned Python packages into $(VENV) (first run: about a minute)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -r requirements.txt
	@$(PY) -m pip install --quiet --no-build-isolation --no-deps -e common -e etl -e bench -e k6 -e services/products -e services/qa -e services/reviews
	@touch $(STAMP)

# The Terraform checks' tools (checkov, shellcheck) in a virtualenv of their own: checkov's many
# dependencies must not meet the services' pinned ones.
INFRA_VENV := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.installed
$(INFRA_STAMP): infra/terraform/requirements-tools.txt
	@test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(INFRA_VENV)/bin/python -m pip install --quiet -r infra/terraform/requirements-tools.txt
	@touch $(INFRA_STAMP)

infra-tools: $(INFRA_STAMP) ## the Terraform checks' tools (checkov, shellcheck) in .venv-infra

up: $(STAMP) ## PostgreSQL, sample data, INSTANCES instances per service (default: from the cores) behind nginx [BALANCERS=1 CACHE=1 WRITE_RATE_LIMIT=10] (idempotent)
	@$(PY) tools/stack.py up --scale $(SCALE) $(if $(INSTANCES),--instances $(INSTANCES)) --balancers $(BALANCERS) --cache $(CACHE) --write-rate-limit $(WRITE_RATE_LIMIT)

down: ## stop everything `make up` started
	@if [ -x $(PY) ]; then $(PY) tools/stack.py down; fi

# The Terraform checks' tools come with the whole suite; `make infra-tools` installs them alone.
test: $(STAMP) $(if $(TESTS),,$(INFRA_STAMP)) ## run the whole test suite against a real PostgreSQL [TESTS="path -k name"]
	$(PY) -m pytest $(TESTS)

chaos: $(STAMP) ## fault tests only (database down, slow, read-only, shutdown; also in make test)
	$(PY) -m pytest tests/chaos -q

soak: $(STAMP) ## 10 min of page loads + writes through the running stack: RSS, errors, p99 per minute (not in CI)
	$(PY) -m atelier_bench.soak

data: $(STAMP) ## generate the 13 CSV files: SCALE=0.01 DIRTY=1 SEED=1 DATA=dir
	$(PY) -m atelier_etl.generate --scale $(SCALE) --seed $(SEED) --out $(DATA) $(if $(DIRTY),--dirty)

load: $(STAMP) ## load CSV files into the databases (every balancer's cache follows): DATA=dir [SERVICE=products|qa|reviews]
	$(PY) -m atelier_etl.load --data $(DATA) $(if $(SERVICE),--service $(SERVICE))

bench-load: $(STAMP) ## time `make load` per file and step against the 3-minute target: DATA=dir [REJECTS=dir]
	$(PY) -m atelier_etl.load --data $(DATA) --bench $(if $(REJECTS),--rejects $(REJECTS))

bench: $(STAMP) ## benchmark one service on the loaded data (pgbench + wrk): SERVICE=products|qa|reviews
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) -m atelier_bench.service $(SERVICE)

# Load tests (k6/README.md): PROFILE=smoke|load|stress|spike|soak, SCRIPT=page-load|products|qa|reviews|all,
# INFLUX=1 (the local `make influx`) or an InfluxDB URL; results in .data/loadtest/<run>/.
PROFILE ?= smoke
SCRIPT ?= page-load
INFLUX ?=

loadtest: $(STAMP) ## k6 against the running system: PROFILE=smoke SCRIPT=page-load [INFLUX=1|url]
	$(PY) -m atelier_k6.loadtest run --profile $(PROFILE) --script $(SCRIPT) $(if $(INFLUX),--influx $(INFLUX))

report: $(STAMP) ## (re)write the HTML report of the latest load test [RUN=.data/loadtest/<run>]
	$(PY) -m atelier_k6.loadtest report $(RUN)

influx: $(STAMP) ## start a local InfluxDB for k6 results (data in .data/influx; INFLUX_PORT=8086)
	@command -v influxd >/dev/null || (apt-get update -qq && apt-get install -y -qq influxdb)
	$(PY) -m atelier_k6.influx start

bench-metrics: $(STAMP) ## what /metrics costs: one worker with and without, wrk (SERVICE=products)
	$(PY) -m atelier_bench.metrics $(or $(SERVICE),products)

prometheus: $(STAMP) ## start Prometheus (PROMETHEUS_PORT=9090) scraping every instance `make up` started
	$(PY) tools/prometheus.py

# bench-fleet: STEADY seconds of Zipf traffic before the measured runs, REPEATS runs per figure,
# BALANCERS (1 and 2 unless given), INSTANCES (the machine's default unless given), LOAD (what
# else ran on the machine, printed with the figures).
STEADY ?= 180
REPEATS ?= 3
LOAD ?=
comma := ,
FLEET_BALANCERS = $(if $(filter command line environment,$(origin BALANCERS)),$(BALANCERS),1$(comma)2)

bench-fleet: $(STAMP) ## the page-load mix through the balancers, steady state, BALANCERS 1 and 2 [STEADY=180 REPEATS=3] (docs/bench/README.md)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	flock /tmp/atelier-bench.lock $(PY) -m atelier_bench.fleet --steady $(STEADY) --repeats $(REPEATS) --balancers $(FLEET_BALANCERS) $(if $(INSTANCES),--instances $(INSTANCES)) $(if $(LOAD),--load "$(LOAD)")

bench-tail: $(STAMP) ## each read endpoint's tail through the running balancers (make up CACHE=0 first)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	flock /tmp/atelier-bench.lock $(PY) -m atelier_bench.tail

clean: ## stop everything and delete .data/ (databases, generated data, logs) and, as root, the server's folder
	@if [ -x $(PY) ]; then $(PY) tools/stack.py clean; fi
	rm -rf .data
