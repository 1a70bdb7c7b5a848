# Atelier back end. `make help` lists the targets by section.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOGS := .data/logs

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
# Load tests (k6/README.md): PROFILE=smoke|load|stress|spike|soak, SCRIPT=page-load|products|qa|reviews|all,
# INFLUX=1 (the local `make influx`) or an InfluxDB URL; results in .data/loadtest/<run>/.
PROFILE ?= smoke
SCRIPT ?= page-load
INFLUX ?=

.DEFAULT_GOAL := help
.PHONY: help install infra-tools up down clean test test-fast chaos lint data load bench-load \
	release bench bench-fleet bench-tail bench-metrics soak loadtest report influx prometheus

##@ Start here

help: ## list the targets, by section
	@awk 'BEGIN {FS = ":.*## "} /^##@ / {printf "\n%s\n", substr($$0, 5)} /^[a-z-]+:.*## / {printf "  make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

up: packages-up $(STAMP) ## PostgreSQL, sample data, INSTANCES instances per service (default: from the cores) behind nginx [BALANCERS=1 CACHE=1 WRITE_RATE_LIMIT=10] (idempotent)
	@$(PY) tools/stack.py up --scale $(SCALE) $(if $(INSTANCES),--instances $(INSTANCES)) --balancers $(BALANCERS) --cache $(CACHE) --write-rate-limit $(WRITE_RATE_LIMIT) $(if $(READ_RATE_LIMIT),--read-rate-limit $(READ_RATE_LIMIT)) $(if $(CONNECTION_LIMIT),--connection-limit $(CONNECTION_LIMIT))

down: ## stop everything `make up` started
	@if [ -x $(PY) ]; then $(PY) tools/stack.py down; fi

clean: ## stop everything and delete .data/ (databases, generated data, logs) and, as root, the server's folder
	@if [ -x $(PY) ]; then $(PY) tools/stack.py clean; fi
	rm -rf .data

##@ Install (each target installs what it needs; these do it alone)

install: packages-all ## as root: the system packages (nginx + modules, wrk, InfluxDB, Chromium, Prometheus), quietly

# The system packages a target needs (tools/install.py: steps nginx, wrk, influxdb, chromium,
# prometheus; groups up, bench, test, all), before anything else it does.
packages-%:
	@$(PYTHON) tools/install.py $*

$(STAMP): requirements/dev.txt requirements/prod.in common/pyproject.toml services/*/pyproject.toml etl/pyproject.toml bench/pyproject.toml k6/pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { echo "[atelier] $(PYTHON) cannot create a venv: install its venv module (Debian: apt-get install python3-venv), or set PYTHON=..." >&2; exit 1; }
	@echo "[atelier] installing the pinned Python packages into $(VENV) (first run: about a minute)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -r requirements/dev.txt
	@$(PY) -m pip install --quiet --no-build-isolation --no-deps -e common -e etl -e bench -e k6 -e services/products -e services/qa -e services/reviews
	@touch $(STAMP)

# The Terraform checks' tools (checkov, shellcheck) in a virtualenv of their own: checkov's many
# dependencies must not meet the services' pinned ones.
INFRA_VENV := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.installed
$(INFRA_STAMP): infra/terraform/requirements-tools.txt
	@echo "[atelier] installing the Terraform checks' tools into $(INFRA_VENV) (first run: a few minutes; log $(LOGS)/infra-tools.log)"
	@mkdir -p $(LOGS)
	@test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)
	@$(INFRA_VENV)/bin/python -m pip install --quiet --upgrade pip >$(LOGS)/infra-tools.log 2>&1 || { echo "[atelier] error: pip failed, see $(LOGS)/infra-tools.log" >&2; exit 1; }
	@$(INFRA_VENV)/bin/python -m pip install --quiet -r infra/terraform/requirements-tools.txt >>$(LOGS)/infra-tools.log 2>&1 || { echo "[atelier] error: pip failed, see $(LOGS)/infra-tools.log" >&2; exit 1; }
	@touch $(INFRA_STAMP)

infra-tools: $(INFRA_STAMP) ## the Terraform checks' tools (checkov, shellcheck, moto) in .venv-infra

release: $(STAMP) ## the artefact an instance installs offline (infra/terraform/README.md): VERSION=v1.2.0
	$(PY) infra/terraform/release.py --version $(or $(VERSION),$(error set VERSION, e.g. make release VERSION=v1.2.0))

##@ Test

# The whole suite also checks the Terraform files (their tools come with it) and the lint.
test: packages-test $(STAMP) $(if $(TESTS),,$(INFRA_STAMP) lint) ## the whole suite against real PostgreSQL, nginx, k6 (8-20 min on 2 cores) [TESTS="path -k name"]
	$(PY) -m pytest $(TESTS)

FAST_TESTS := common/tests services/products/tests services/qa/tests services/reviews/tests tests/test_openapi.py tests/test_routes.py
test-fast: $(STAMP) ## the edit loop: plumbing, each service's tests, the contract and the route list (~1-2 min)
	$(PY) -m pytest -q $(FAST_TESTS)

chaos: packages-up $(STAMP) ## fault tests only (database down, frozen, slow, read-only, full disk, shutdown; also in make test)
	$(PY) -m pytest tests/chaos -q

lint: $(STAMP) ## ruff on the Python, terraform fmt on the HCL (also in make test)
	$(VENV)/bin/ruff check .
	@mkdir -p $(LOGS)
	@if command -v terraform >/dev/null; then \
	  terraform fmt -check -recursive infra/terraform 2>$(LOGS)/terraform-fmt.log && echo "terraform fmt: infra/terraform is formatted" \
	  || { echo "[atelier] error: terraform fmt: these files need \`terraform fmt\` (details in $(LOGS)/terraform-fmt.log)" >&2; exit 1; }; \
	else echo "[atelier] terraform is not installed: HCL formatting not checked (no package registry carries it)"; fi

##@ Data

data: $(STAMP) ## generate the 13 CSV files: SCALE=0.01 DIRTY=1 SEED=1 DATA=dir
	$(PY) -m atelier_etl.generate --scale $(SCALE) --seed $(SEED) --out $(DATA) $(if $(DIRTY),--dirty)

load: $(STAMP) ## load CSV files into the databases (every balancer's cache follows): DATA=dir [SERVICE=products|qa|reviews]
	$(PY) -m atelier_etl.load --data $(DATA) $(if $(SERVICE),--service $(SERVICE))

##@ Benchmarks (they print tables; dated results go to docs/results/)

bench-load: $(STAMP) ## time `make load` per file and step against the 3-minute target: DATA=dir [REJECTS=dir]
	$(PY) -m atelier_etl.load --data $(DATA) --bench $(if $(REJECTS),--rejects $(REJECTS))

bench: packages-bench $(STAMP) ## one service on the loaded data (pgbench per query, wrk per endpoint): SERVICE=products|qa|reviews
	$(PY) -m atelier_bench.service $(SERVICE)

# bench-fleet: STEADY seconds of Zipf traffic before the measured runs, REPEATS runs per figure,
# BALANCERS (1 and 2 unless given), INSTANCES (the machine's default unless given), LOAD (what
# else ran on the machine, printed with the figures).
STEADY ?= 180
REPEATS ?= 3
LOAD ?=
comma := ,
FLEET_BALANCERS = $(if $(filter command line environment,$(origin BALANCERS)),$(BALANCERS),1$(comma)2)

bench-fleet: packages-bench $(STAMP) ## the page-load mix through the balancers, steady state, BALANCERS 1 and 2 [STEADY=180 REPEATS=3] (bench/README.md)
	flock /tmp/atelier-bench.lock $(PY) -m atelier_bench.fleet --steady $(STEADY) --repeats $(REPEATS) --balancers $(FLEET_BALANCERS) $(if $(INSTANCES),--instances $(INSTANCES)) $(if $(LOAD),--load "$(LOAD)")

bench-tail: packages-bench $(STAMP) ## each read endpoint's tail through the running balancers (make up CACHE=0 first)
	flock /tmp/atelier-bench.lock $(PY) -m atelier_bench.tail

bench-metrics: packages-bench $(STAMP) ## what /metrics costs: one worker with and without, wrk (SERVICE=products)
	$(PY) -m atelier_bench.metrics $(or $(SERVICE),products)

soak: $(STAMP) ## 10 min of page loads + writes through the running stack: RSS, errors, p99 per minute (not in CI)
	$(PY) -m atelier_bench.soak

##@ Load tests and monitoring (k6/README.md, docs/metrics.md)

loadtest: $(STAMP) ## k6 against the running system: PROFILE=smoke SCRIPT=page-load [INFLUX=1|url]
	$(PY) -m atelier_k6.loadtest run --profile $(PROFILE) --script $(SCRIPT) $(if $(INFLUX),--influx $(INFLUX))

report: $(STAMP) ## (re)write the HTML report of the latest load test [RUN=.data/loadtest/<run>]
	$(PY) -m atelier_k6.loadtest report $(RUN)

influx: packages-influxdb $(STAMP) ## start a local InfluxDB for k6 results (data in .data/influx; INFLUX_PORT=8086)
	$(PY) -m atelier_k6.influx start

prometheus: packages-prometheus $(STAMP) ## start Prometheus (PROMETHEUS_PORT=9090) scraping every instance `make up` started
	$(PY) tools/prometheus.py
