#!/usr/bin/env bash
# Security compatibility check: TLS, mTLS, SASL (PLAIN, SCRAM) with confluent-kafka,
# kafka-python and kcat against real brokers.
#
# Generates a test PKI with rcgen (target/*/examples/gen_certs), starts broker A with four
# listeners (PLAINTEXT, SSL with ssl.client.auth=requested, SASL_SSL, SASL_PLAINTEXT) and broker
# B with one SSL listener and ssl.client.auth=required, broker C with an authorizer (PLAINTEXT,
# SASL_PLAINTEXT), runs scripts/compat/security_clients.py, the kcat checks and
# scripts/compat/security_acls.py (against C), scripts/compat/security_quotas.py (client quotas,
# against A's PLAINTEXT listener, ~25 s), and fails if any check fails or a broker died. Everything is cleaned up.
#
# Env: SLUICE_BIN, GEN_CERTS (default: gen_certs next to the sluice binary's examples/),
# PYTHON, KCAT.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/scripts/compat"
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
KCAT=${KCAT:-kcat}
BIN=${SLUICE_BIN:-$ROOT/target/debug/sluice}
GEN_CERTS=${GEN_CERTS:-$(dirname "$BIN")/examples/gen_certs}
READY_TIMEOUT_S=30
CLIENT_TIMEOUT_S=240

[[ -x "$BIN" ]] || { echo "security: no sluice binary at $BIN" >&2; exit 2; }
[[ -x "$GEN_CERTS" ]] || { echo "security: no $GEN_CERTS (cargo build --example gen_certs)" >&2; exit 2; }

TMP=$(mktemp -d -t sluice-security.XXXXXX)
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ $rc -ne 0 ]]; then
    for log in "$TMP"/*.log; do
      [[ -f "$log" ]] || continue
      echo "---- $log (last 30 lines) ----" >&2; tail -n 30 "$log" >&2
    done
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT INT TERM

"$GEN_CERTS" "$TMP/pki" >/dev/null
PKI="$TMP/pki"

# start NAME TOML: starts a broker, waits for ready.
start() {
  local name=$1 toml=$2
  mkdir -p "$TMP/$name/data"
  printf '%s\n' "$toml" >"$TMP/$name/sluice.toml"
  : >"$TMP/$name.log"   # exists before the background broker's redirect (no grep error)
  RUST_LOG=info NO_COLOR=1 "$BIN" --config "$TMP/$name/sluice.toml" --admin-listen 127.0.0.1:0 \
    --data-dir "$TMP/$name/data" --cores 2 </dev/null >/dev/null 2>"$TMP/$name.log" &
  PIDS+=($!)
  for _ in $(seq 1 $((READY_TIMEOUT_S * 10))); do
    grep -q 'ready listening=' "$TMP/$name.log" && return 0
    sleep 0.1
  done
  echo "security: broker $name not ready" >&2; exit 1
}
# addr NAME LISTENER: the bound address of a listener, from the broker's log.
addr() {
  grep -oE "listener name=$2 security.protocol=[A-Z_]+ listening=[0-9.:]+" "$TMP/$1.log" \
    | head -n1 | sed 's/.*listening=//'
}

start a "listeners = \"PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0\"
\"ssl.keystore.location\" = \"$PKI/broker.pem\"
\"ssl.truststore.location\" = \"$PKI/ca.pem\"
\"ssl.client.auth\" = \"requested\"
\"listener.name.sasl_plaintext.sasl.enabled.mechanisms\" = \"PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER\""
start b "listeners = \"SSL://127.0.0.1:0\"
\"ssl.keystore.location\" = \"$PKI/broker.pem\"
\"ssl.truststore.location\" = \"$PKI/ca.pem\"
\"ssl.client.auth\" = \"required\""
start c "listeners = \"PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0\"
\"authorizer.class.name\" = \"org.apache.kafka.metadata.authorizer.StandardAuthorizer\"
\"super.users\" = \"User:ANONYMOUS\""
PLAIN=$(addr a PLAINTEXT); SSL=$(addr a SSL); SASL_SSL=$(addr a SASL_SSL)
SASL_PLAIN=$(addr a SASL_PLAINTEXT); MTLS=$(addr b SSL)
echo "security: A plaintext=$PLAIN ssl=$SSL sasl_ssl=$SASL_SSL sasl_plaintext=$SASL_PLAIN; B mtls=$MTLS"

FAILED=0
check() {
  local name=$1; shift
  if timeout "$CLIENT_TIMEOUT_S" "$@" >"$TMP/$name.out" 2>&1; then
    echo "PASS $name"
  else
    echo "FAIL $name (exit $?)"
    sed 's/^/    /' "$TMP/$name.out" | grep -v 'Authentication failed\|no certificates' | tail -n 30
    FAILED=1
  fi
}

kcat_tls() {
  local topic=sec-kcat n=500
  local ssl=(-X security.protocol=SSL -X ssl.ca.location="$PKI/ca.pem")
  local mtls=(-X security.protocol=SSL -X ssl.ca.location="$PKI/ca.pem"
    -X ssl.certificate.location="$PKI/client.crt" -X ssl.key.location="$PKI/client.key")
  local scram=(-X security.protocol=SASL_SSL -X ssl.ca.location="$PKI/ca.pem"
    -X sasl.mechanism=SCRAM-SHA-512 -X sasl.username=bob -X sasl.password=bob-secret)
  seq 1 "$n" | sed 's/^/tls-/' >"$TMP/kcat-sent.txt"
  "$KCAT" -b "$SSL" "${ssl[@]}" -P -t "$topic" -p 0 -X acks=all <"$TMP/kcat-sent.txt"
  "$KCAT" -b "$SASL_SSL" "${scram[@]}" -C -t "$topic" -p 0 -o beginning -e -q -f '%s\n' >"$TMP/kcat-got1.txt"
  cmp -s "$TMP/kcat-sent.txt" "$TMP/kcat-got1.txt" || { echo "SASL_SSL consume differs"; return 1; }
  "$KCAT" -b "$MTLS" "${mtls[@]}" -L >"$TMP/kcat-L.txt"
  grep -qE "broker [0-9]+ at 127\.0\.0\.1:${MTLS##*:}" "$TMP/kcat-L.txt" \
    || { echo "mTLS metadata does not advertise $MTLS"; cat "$TMP/kcat-L.txt"; return 1; }
  "$KCAT" -b "$SSL" "${ssl[@]}" -L >"$TMP/kcat-L2.txt"
  grep -qE "broker [0-9]+ at 127\.0\.0\.1:${SSL##*:}" "$TMP/kcat-L2.txt" \
    || { echo "SSL metadata does not advertise $SSL"; cat "$TMP/kcat-L2.txt"; return 1; }
  # Without a client certificate broker B (ssl.client.auth=required) refuses.
  if "$KCAT" -b "$MTLS" "${ssl[@]}" -L -m 5 >/dev/null 2>&1; then
    echo "broker B served a client without a certificate"; return 1
  fi
}
export KCAT TMP PKI SSL SASL_SSL MTLS
export -f kcat_tls

check security-clients "$PYTHON" "$HERE/security_clients.py" "$PKI" "$PLAIN" "$SSL" "$SASL_SSL" "$SASL_PLAIN" "$MTLS"
check security-kcat bash -euo pipefail -c kcat_tls
check security-acls "$PYTHON" "$HERE/security_acls.py" "$(addr c PLAINTEXT)" "$(addr c SASL_PLAINTEXT)"
check security-quotas "$PYTHON" "$HERE/security_quotas.py" "$PLAIN"

for i in "${!PIDS[@]}"; do
  if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then echo "FAIL broker-alive ($i)"; FAILED=1; fi
done
grep -q 'sluice::audit: authorization denied' "$TMP/c.log" \
  && echo "PASS audit-log (authorization denials logged)" \
  || { echo "FAIL audit-log: no authorization denial logged"; FAILED=1; }
grep -q 'sluice::audit: authentication failed' "$TMP/a.log" \
  && echo "PASS audit-log (authentication failures logged)" \
  || { echo "FAIL audit-log: no authentication failure logged"; FAILED=1; }
[[ $FAILED -eq 0 ]] || { echo "security: FAILED"; exit 1; }
echo "security: all PASS"
