# Sluice: the two set-up commands are `make run` and `make test`. Every install step lives here
# and is idempotent, so CI (a fresh clone, CI=true, no stdin) needs nothing else.
SHELL := /bin/bash
CARGO ?= cargo
VENV ?= .venv
PYTHON ?= python3
export DEBIAN_FRONTEND := noninteractive

.PHONY: run build release test deps apt-deps py-deps java-deps test-java test-kafka-tools compat-table fmt clippy lint bench bench-build bench-smoke bench-storage bench-deps flamegraph clean

run: release
	./target/release/sluice

# A local three-broker KRaft cluster (broker 1 on 127.0.0.1:9092); Ctrl-C stops all three.
.PHONY: run-cluster
run-cluster: release
	scripts/run_cluster.sh target/release/sluice

build:
	$(CARGO) build --workspace --all-targets

release:
	$(CARGO) build --release --bin sluice

# Debian packages the tests and benchmarks use (kcat: the compat script; python3-venv when the
# interpreter cannot make a venv). apt runs only when something is missing; sudo only when not root.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo -n)
apt-deps:
	@missing=""; for p in kcat; do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Python clients for the compatibility script, in a venv. The stamp is written last, so a
# half-made venv (no stamp) is rebuilt from scratch.
PY_PACKAGES := confluent-kafka kafka-python
py-deps: $(VENV)/.stamp
$(VENV)/.stamp:
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check $(PY_PACKAGES)
	echo "$(PY_PACKAGES)" > $@

# Java 17 and Maven (Debian's) when missing; then, from Maven Central, the Java suite's
# dependencies (compat/java: kafka-clients, kafka-streams, JUnit 5) and Kafka's command-line tools
# with theirs, copied into compat/tools/lib (git-ignored). Maven keeps what it downloaded in
# ~/.m2, and the stamp (written last, remade when a pom changes) makes this a no-op afterwards.
MVN ?= mvn
MVN_FLAGS := -B --no-transfer-progress -Dstyle.color=never
JAVA_STAMP := compat/tools/lib/.stamp
java-deps: $(JAVA_STAMP)
$(JAVA_STAMP): compat/java/pom.xml compat/tools/pom.xml
	@missing=""; command -v javac >/dev/null 2>&1 || missing="$$missing openjdk-17-jdk-headless"; \
	command -v $(MVN) >/dev/null 2>&1 || missing="$$missing maven"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	rm -rf compat/tools/lib
	cd compat/tools && $(MVN) $(MVN_FLAGS) -q dependency:copy-dependencies -DoutputDirectory=lib -DincludeScope=runtime
	cd compat/java && $(MVN) $(MVN_FLAGS) -q dependency:go-offline test-compile
	touch $@

deps: apt-deps py-deps java-deps

# The Java client suite (compat/java, JUnit 5 via Surefire) and Kafka's own tools
# (compat/tools/run.sh), each against a debug broker it starts. After `make test`,
# `make compat-table` rewrites the README's compatibility table from all suites' results.
SLUICE_DEBUG = $(abspath $(TARGET_DIR))/debug/sluice
COMPAT_OUT = $(TARGET_DIR)/compat
# Each suite on its own (`make test` runs them all): the debug broker first, then the suite,
# writing the results file `make compat-table` reads.
.PHONY: debug-bin test-compat-py
debug-bin:
	$(CARGO) build --bin sluice

test-java: java-deps debug-bin
	cd compat/java && SLUICE_BIN=$(SLUICE_DEBUG) $(MVN) $(MVN_FLAGS) test

test-kafka-tools: java-deps debug-bin
	SLUICE_BIN=$(SLUICE_DEBUG) RESULTS=$(COMPAT_OUT)/kafka-tools.tsv compat/tools/run.sh
	SLUICE_BIN=$(SLUICE_DEBUG) compat/tools/cluster.sh

test-compat-py: apt-deps py-deps debug-bin
	SLUICE_BIN=$(SLUICE_DEBUG) PYTHON=$(VENV)/bin/python RESULTS=$(COMPAT_OUT)/python-kcat.tsv \
	  scripts/compat/run.sh

compat-table:
	$(PYTHON) scripts/compat/table.py --surefire compat/java/target/surefire-reports \
	  --tsv $(COMPAT_OUT)/kafka-tools.tsv --tsv $(COMPAT_OUT)/python-kcat.tsv \
	  --gotest $(COMPAT_OUT)/go-test.txt \
	  --out $(COMPAT_OUT)/compat-table.md --readme README.md

# Every suite runs even when an earlier one fails (so one failure hides no other); the target
# fails if any did. The compat script runs the debug broker this target just built.
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
GO ?= go
test: deps
	$(CARGO) build --workspace --all-targets
	@rc=0; \
	$(CARGO) test --workspace --no-fail-fast || rc=1; \
	CARGO=$(CARGO) TARGET_DIR=$(TARGET_DIR) scripts/test_vendored.sh || rc=1; \
	SLUICE_BIN=$(TARGET_DIR)/debug/sluice PYTHON=$(VENV)/bin/python RESULTS=$(COMPAT_OUT)/python-kcat.tsv \
	  scripts/compat/run.sh || rc=1; \
	(cd compat/java && SLUICE_BIN=$(SLUICE_DEBUG) $(MVN) $(MVN_FLAGS) test) || rc=1; \
	SLUICE_BIN=$(SLUICE_DEBUG) RESULTS=$(COMPAT_OUT)/kafka-tools.tsv compat/tools/run.sh || rc=1; \
	SLUICE_BIN=$(SLUICE_DEBUG) compat/tools/cluster.sh || rc=1; \
	mkdir -p $(COMPAT_OUT) && (cd compat/go && $(GO) mod download && set -o pipefail && \
	  SLUICE_BIN=$(SLUICE_DEBUG) $(GO) test -count=1 -v ./... 2>&1 | tee $(abspath $(COMPAT_OUT))/go-test.txt) || rc=1; \
	SLUICE_BIN=$(TARGET_DIR)/debug/sluice PYTHON=$(VENV)/bin/python scripts/compat/security.sh || rc=1; \
	exit $$rc

# franz-go and sarama (compat/go) against the debug broker (`make test` runs the same). `go mod
# download` fetches the modules pinned in go.sum into the module cache, a no-op when cached.
.PHONY: go-deps test-go
go-deps:
	cd compat/go && $(GO) mod download
test-go: go-deps debug-bin
	mkdir -p $(COMPAT_OUT) && cd compat/go && set -o pipefail && SLUICE_BIN=$(SLUICE_DEBUG) \
	  $(GO) test -count=1 -v ./... 2>&1 | tee $(abspath $(COMPAT_OUT))/go-test.txt

# Load generator (bench/README.md). `bench-smoke` is a 2 s end-to-end run against a fresh broker.
bench-build:
	$(CARGO) build --release -p sluice-bench

bench-smoke: release bench-build
	bench/run-sluice.sh target/release/sluice target/release/sluice-bench -w bench/workloads/smoke.toml --out bench-out/smoke --quiet --fail-on-loss

# Storage benchmark: log append/read throughput next to dd on the same disk (perf/README.md).
bench-storage:
	perf/bench-storage.sh

# Tools for `make bench` and `make flamegraph` (perf/README.md): perf, iperf3, fio and taskset
# from Debian, inferno (flamegraph SVGs) from crates.io. Each is installed only when missing.
BENCH_APT := linux-perf:perf iperf3:iperf3 fio:fio util-linux:taskset
.PHONY: bench-apt
bench-deps: bench-apt
	@command -v inferno-flamegraph >/dev/null 2>&1 || $(CARGO) install --locked inferno
bench-apt:
	@missing=""; for pc in $(BENCH_APT); do \
	  command -v $${pc#*:} >/dev/null 2>&1 || missing="$$missing $${pc%%:*}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Broker benchmarks: standard workloads, machine limits, scaling, zero-copy; writes BENCHMARKS.md.
# Knobs: DURATION_S (max-rate runs), FIXED_DURATION_S, SCALE_DURATION_S (see perf/bench.sh).
bench: bench-deps
	perf/bench.sh

# Apache Kafka (from Maven Central, perf/kafka/) and Sluice side by side: the same workloads and
# clients, alternating runs, one table of ratios into BENCHMARKS.md and one set of plots
# (matplotlib, installed once into the venv; its stamp is written last) (perf/README.md).
.PHONY: bench-kafka
BENCH_PY_STAMP := $(VENV)/.stamp-bench-kafka
$(BENCH_PY_STAMP): $(VENV)/.stamp
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check matplotlib
	touch $@
# Knobs: DURATION_S, ROUNDS, ACKS_LIST, PERF_TEST_RECORDS, ... (perf/bench-kafka.sh); iperf3 and
# fio (the run's own loopback and fdatasync limits) come from Debian (bench-apt).
bench-kafka: bench-apt $(BENCH_PY_STAMP)
	PLOT_PYTHON=$(VENV)/bin/python perf/bench-kafka.sh

# Replication cost (issue 11): acks=all on RF=1 and RF=3 topics of one three-broker loopback
# cluster, same run; fixed-rate latency then max-rate throughput (DURATION_S, WARMUP_S, RATE).
.PHONY: bench-replication
bench-replication: release bench-build
	perf/bench-replication.sh target/release/sluice target/release/sluice-bench

# Heap allocations per Produce request on the broker (examples/produce_allocs.rs).
.PHONY: bench-allocs
bench-allocs:
	$(CARGO) build --release --example produce_allocs
	$(TARGET_DIR)/release/examples/produce_allocs

# This tree's broker against REF's (default HEAD~1) in one run, legs alternating, new/old
# ratios (perf/bench-compare.sh; knobs REF, OLD_BIN, ACKS, CONSUMERS, ROUNDS, DURATION_S).
.PHONY: bench-compare
bench-compare:
	perf/bench-compare.sh

# Core scaling, N = 1, 2, 4, 8, 14 shards with the native generator on the other CPUs
# (perf/scaling.sh; meant for a machine with >= 16 CPUs, see BENCHMARKS.md for the cost model).
.PHONY: bench-scaling
bench-scaling: release bench-build
	perf/scaling.sh

# CPU flamegraph of the broker under load, into perf/out/ (WORKLOAD=..., DURATION_S=...).
flamegraph: bench-deps
	perf/flamegraph.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	python3 scripts/imports.py --check --allow scripts/imports-allow.txt src

clean:
	$(CARGO) clean
	rm -rf $(VENV) data compat/tools/lib compat/java/target

# Fuzzing (fuzz/, cargo-fuzz + libFuzzer, nightly; docs/decisions/0014-fuzzing-and-lints.md):
# each target runs FUZZ_SECONDS on its committed corpus (fuzz/corpus/<target>/). New inputs go
# to fuzz/target/corpus-new/<target>/ (not committed; add the interesting ones by hand), a
# crash to fuzz/artifacts/<target>/. `cargo test --test fuzz_corpus` replays the corpus on
# stable. Debug assertions (and so integer overflow checks) are on: an overflow on hostile
# input is a finding. cargo-fuzz is installed only when missing.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := request_decode batch_validation recovery_scan producer_snapshot txn_index
.PHONY: fuzz fuzz-deps
fuzz-deps:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
fuzz: fuzz-deps
	cd fuzz && $(CARGO) +nightly fuzz build --debug-assertions
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/target/corpus-new/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  (cd fuzz && $(CARGO) +nightly fuzz run --debug-assertions $$t target/corpus-new/$$t corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -print_final_stats=1); \
	done

# Metadata scale benchmark (issue 10; BENCHMARKS.md "Cluster metadata scale"): five brokers on
# loopback, 100,000 partitions. Minutes; scratch data in /var/tmp/sluice-cluster-scale-bench, removed at the end.
.PHONY: bench-cluster-scale
bench-cluster-scale: release
	python3 scripts/bench/cluster_scale.py --bin target/release/sluice

# TLS and SASL_SSL (SCRAM-SHA-512) against PLAINTEXT: produce/consume throughput and produce
# latency in one run against one release broker (BENCHMARKS.md "TLS and SASL_SSL vs PLAINTEXT").
# BENCH_TLS_ARGS: messages, size, cores (default 200000 1024 2).
.PHONY: bench-tls
bench-tls: py-deps
	PY=$(VENV)/bin/python scripts/bench_tls.sh $(BENCH_TLS_ARGS)
