# privwatch — `make help` lists the targets. Every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CACHE := .cache
KAFKA_PORT ?= 9092
export KAFKA_PORT

.DEFAULT_GOAL := help
.PHONY: help install native sysdeps kafka-fetch kafka-up kafka-down run demo test test-unit lint audit lock bench evaluate clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# Dependencies come from requirements-dev.lock (every version pinned, every file's hash checked; `make
# lock` regenerates it and requirements.lock, the image's, from pyproject.toml), then privwatch itself.
$(BIN)/.installed: pyproject.toml requirements-dev.lock
	@echo "install: Python packages into $(VENV) (about 40 s the first time)" >&2
	@$(PYTHON) -m venv $(VENV)
	@mkdir -p $(CACHE)
	@# pip's and setuptools' notices go to a log, shown only if the install fails
	@{ $(BIN)/pip install -q --disable-pip-version-check --require-hashes -r requirements-dev.lock \
	   && $(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .; } \
	   >$(CACHE)/pip.log 2>&1 || { cat $(CACHE)/pip.log; exit 1; }
	@touch $@

lock: $(BIN)/.installed ## Regenerate the lock files (hashes) from pyproject.toml
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links -o requirements.lock pyproject.toml
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links --extra dev -o requirements-dev.lock pyproject.toml

audit: $(BIN)/.installed ## Known vulnerabilities in the locked dependencies (AUDIT_OFFLINE=skip: pass when the database is unreachable)
	@$(BIN)/python dev/audit.py

# The hot modules compiled by mypyc (detectors/native.py's COMPILED, in both packages). make runs the
# build after any change to either package: the build compares the compiled sources' hashes and only
# recompiles when one of them changed (otherwise it says so in a second), so no list of the compiled
# modules is kept here. The import-time hash check refuses a build that no longer matches its sources
# whatever make thinks. A failed build warns and leaves pure Python (tests then refuse to run:
# conftest.py). PRIVWATCH_PURE=1 skips it.
NATIVE := $(CACHE)/mypyc/lib/manifest.json
$(NATIVE): $(BIN)/.installed $(wildcard detectors/*.py stream/*.py stream/*/*.py) dev/native/build.py dev/native/train.py dev/native/mypy.ini | sysdeps
	@$(BIN)/python dev/native/build.py --allow-failure

native: $(NATIVE) ## Compile the hot modules (detectors, decoding) with mypyc (PRIVWATCH_PURE=1: run pure Python instead)

sysdeps: ## Install Java 17, Maven, Prometheus and Alertmanager (Debian packages) when missing
	@PYTHON=$(PYTHON) bash dev/sysdeps.sh

kafka-fetch: sysdeps ## Fetch Apache Kafka jars from Maven Central into .cache/kafka
	@bash dev/kafka/fetch.sh

install: $(BIN)/.installed sysdeps kafka-fetch $(NATIVE) ## Create .venv and install everything (Python deps, Kafka jars, Debian packages, compiled detectors)

kafka-up: install ## Start (or reuse) a local single-node Kafka; prints its bootstrap address
	@$(BIN)/python dev/kafka/broker.py up --port $(KAFKA_PORT)

kafka-down: ## Stop the local Kafka started by kafka-up
	@$(BIN)/python dev/kafka/broker.py down --port $(KAFKA_PORT) || true

run: kafka-up ## Run the privwatch service against the local Kafka
	$(BIN)/privwatch run --bootstrap-servers 127.0.0.1:$(KAFKA_PORT)

demo: kafka-up ## Stream a simulated organisation through privwatch and show alerts as they arrive (Ctrl-C stops)
	@trap '' INT TERM; $(BIN)/privwatch demo --bootstrap-servers 127.0.0.1:$(KAFKA_PORT); status=$$?; \
	  if [ -z "$(KEEP_KAFKA)" ]; then $(BIN)/python dev/kafka/broker.py down --port $(KAFKA_PORT); fi; exit $$status

lint: $(BIN)/.installed ## ruff and mypy
	$(BIN)/ruff check stream detectors tests dev
	$(BIN)/mypy

# make test audits too, but where no vulnerability database answers (machines that reach package
# registries only) it says so loudly and goes on: the tests are what it is for. `make audit` alone, or
# AUDIT_OFFLINE=fail, makes an unreachable database an error.
test: install lint ## Lint, audit, then unit and integration tests (starts its own Kafka, Prometheus, Alertmanager)
	@AUDIT_OFFLINE=$${AUDIT_OFFLINE:-skip} $(BIN)/python dev/audit.py
	$(BIN)/python -m pytest -q

test-unit: $(BIN)/.installed $(NATIVE) ## Unit tests only (no network)
	$(BIN)/python -m pytest -q -m "not integration"

bench: kafka-up ## Throughput, latency and memory benchmark against the local Kafka
	$(BIN)/privwatch bench --bootstrap-servers 127.0.0.1:$(KAFKA_PORT)

evaluate: $(BIN)/.installed $(NATIVE) ## Simulate a labelled organisation and evaluate privwatch against the baselines
	$(BIN)/privwatch simulate --seed 1 --principals 500 --days 21 --output out/sim-1
	$(BIN)/privwatch evaluate out/sim-1

clean: kafka-down ## Remove the venv, caches and outputs
	rm -rf $(VENV) $(CACHE) out .pytest_cache .mypy_cache .ruff_cache *.egg-info
