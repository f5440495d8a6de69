# Sluice: the two set-up commands are `make run` and `make test`. Every install step lives here
# and is idempotent, so CI (a fresh clone, CI=true, no stdin) needs nothing else.
SHELL := /bin/bash
CARGO ?= cargo
VENV ?= .venv
PYTHON ?= python3
export DEBIAN_FRONTEND := noninteractive

.PHONY: run build release test deps apt-deps py-deps fmt clippy lint bench bench-storage clean

run: release
	./target/release/sluice

build:
	$(CARGO) build --workspace --all-targets

release:
	$(CARGO) build --release --bin sluice

# Debian packages the tests and benchmarks use (kcat: the compat script; fio/iperf3: bench).
apt-deps:
	@missing=""; for p in kcat; do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Python clients for the compatibility script, in a venv.
py-deps: $(VENV)/.stamp
$(VENV)/.stamp:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q confluent-kafka kafka-python
	touch $@

deps: apt-deps py-deps

test: deps
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf $(VENV) data
