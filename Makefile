# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test hostile lint system-deps bench clean reset help

help:
	@echo "make run    - start the hub on the embedded broker (broker, processors, simulator, metrics)"
	@echo "make test   - install into .venv (and Debian's postgresql/prometheus when missing), lint, run the tests"
	@echo "make hostile - the long hostile-input run: 10,000 generated cases per format and per input topic"
	@echo "make bench  - every benchmark, one table each (results: BENCHMARKS.md); BENCH_ARGS=--quick for a smoke run"
	@echo "make reset  - delete the embedded broker's data dir (.hub-data)"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# Debian packages the tests run for real (PostgreSQL for SQL connectors, Prometheus scraping the hub,
# amtool checking the Alertmanager config, unshare for the TLS broker front of tests/integration/test_clients.py).
system-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v prometheus >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v amtool >/dev/null 2>&1 || missing="$$missing prometheus-alertmanager"; \
	command -v unshare >/dev/null 2>&1 || missing="$$missing util-linux"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

run: $(STAMP)
	$(BIN)/hub up

lint: $(STAMP)
	$(BIN)/ruff check hub connectors tests benchmarks deploy

test: $(STAMP) system-deps lint
	$(BIN)/hub schemas check
	@# A temp root of its own: pytest prunes older numbered temp dirs under a shared root, which took a
	@# concurrent session's PostgreSQL data dir away mid-run.
	tmp=$$(mktemp -d -t hub-pytest-XXXXXX) && PYTEST_DEBUG_TEMPROOT=$$tmp $(BIN)/python -m pytest -q -p no:cacheprovider; \
	  rc=$$?; rm -rf $$tmp; exit $$rc

# The long run of tests/hostile (counts go to RELIABILITY.md); `make test` runs the same tests CI-sized.
hostile: $(STAMP) system-deps
	HOSTILE_CASES=10000 nice -n 10 $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/hostile 2>&1 \
	  | tee .hostile.log | grep -E "HOSTILE|passed|failed"

# The benchmarks also need the `bench` extra (Quix Streams as the peer, py-spy and pyinstrument for profiles).
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	nice -n 5 $(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

reset:
	rm -rf .hub-data

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
