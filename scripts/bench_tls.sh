#!/usr/bin/env bash
# `make bench-tls`: produce/consume throughput and produce latency over PLAINTEXT, SSL and
# SASL_SSL (SCRAM-SHA-512) against one release broker with the three listeners, in the same run
# (scripts/bench_tls.py, confluent-kafka). Certificates from examples/gen_certs.rs. kTLS is not
# part of it: this kernel has no CONFIG_TLS (docs/decisions/0011-tls-rustls.md,
# scripts/ktls_probe.py).
#
# usage: scripts/bench_tls.sh [messages] [size] [cores]   (defaults 200000 1024 2)
# SLUICE_BIN=path: a broker binary already built (else target/release/sluice is built).
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${1:-200000}
SIZE=${2:-1024}
CORES=${3:-2}
PY=${PY:-.venv/bin/python}
WORK=$(mktemp -d /tmp/sluice-bench-tls.XXXXXX)
BROKER_PID=
cleanup() {
    if [ -n "$BROKER_PID" ]; then kill "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${SLUICE_BIN:-}" ]; then
    cargo build --release --bin sluice >/dev/null
fi
BIN=${SLUICE_BIN:-target/release/sluice}
cargo build --example gen_certs >/dev/null
target/debug/examples/gen_certs "$WORK/pki" >/dev/null
cat >"$WORK/sluice.toml" <<TOML
listeners = "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0"
"ssl.keystore.location" = "$WORK/pki/broker.pem"
"ssl.truststore.location" = "$WORK/pki/ca.pem"
"sasl.enabled.mechanisms" = "SCRAM-SHA-512"
TOML
NO_COLOR=1 "$BIN" --config "$WORK/sluice.toml" --cores "$CORES" --data-dir "$WORK/data" \
    --admin-listen 127.0.0.1:0 2>"$WORK/broker.log" &
BROKER_PID=$!
addr() {
    sed -n "s/.*listener name=$1 .*listening=\([0-9.:]*\).*/\1/p" "$WORK/broker.log" | tail -1
}
for _ in $(seq 1 300); do
    if grep -q " ready " "$WORK/broker.log" 2>/dev/null; then break; fi
    sleep 0.1
done
PLAIN=$(addr PLAINTEXT); SSL=$(addr SSL); SASL=$(addr SASL_SSL)
if [ -z "$PLAIN" ] || [ -z "$SSL" ] || [ -z "$SASL" ]; then
    echo "broker did not start:" >&2; cat "$WORK/broker.log" >&2; exit 1
fi
echo "# $BIN --cores $CORES, $MESSAGES x $SIZE B, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" scripts/bench_tls.py "$WORK/pki" "$PLAIN" "$SSL" "$SASL" "$MESSAGES" "$SIZE"
