#!/usr/bin/env bash
# Compatibility check with clients that are not ours: kcat (librdkafka CLI), confluent-kafka
# (librdkafka from Python) and kafka-python (an independent pure-Python protocol stack).
#
# Starts a sluice binary on a loopback port the kernel picks, with a temp data dir, waits for
# its `ready listening=<ip:port>` log line, runs each client check, prints PASS/FAIL per check
# and exits non-zero if any failed. The broker and temp dir are cleaned up on any exit.
#
# Env: SLUICE_BIN (default: the newest of target/{release,debug}/sluice), PYTHON (default:
# .venv/bin/python), KCAT (default: kcat), COMPAT_CORES (default: 2).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/scripts/compat"
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
KCAT=${KCAT:-kcat}
CORES=${COMPAT_CORES:-2}
READY_TIMEOUT_S=30
CLIENT_TIMEOUT_S=120

pick_bin() {
  if [[ -n "${SLUICE_BIN:-}" ]]; then echo "$SLUICE_BIN"; return; fi
  local rel="$ROOT/target/release/sluice" dbg="$ROOT/target/debug/sluice"
  if [[ -x "$rel" && ( ! -x "$dbg" || "$rel" -nt "$dbg" ) ]]; then echo "$rel"; else echo "$dbg"; fi
}
BIN=$(pick_bin)
[[ -x "$BIN" ]] || { echo "compat: no sluice binary at $BIN (build it first)" >&2; exit 2; }
command -v "$KCAT" >/dev/null || { echo "compat: $KCAT not found (make apt-deps)" >&2; exit 2; }
[[ -x "$PYTHON" ]] || { echo "compat: $PYTHON not found (make py-deps)" >&2; exit 2; }

TMP=$(mktemp -d -t sluice-compat.XXXXXX)
PID=""
cleanup() {
  local rc=$?
  if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -f "$TMP/sluice.log" ]]; then
    echo "---- sluice log (last 40 lines) ----" >&2
    tail -n 40 "$TMP/sluice.log" >&2
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT INT TERM

mkdir -p "$TMP/data"
# A short cleaner backoff so the compaction check sees its topic cleaned within seconds.
printf '"log.cleaner.backoff.ms" = 200\n' >"$TMP/sluice.toml"
RUST_LOG=${RUST_LOG:-info} NO_COLOR=1 "$BIN" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$TMP/data" \
  --config "$TMP/sluice.toml" --cores "$CORES" </dev/null >/dev/null 2>"$TMP/sluice.log" &
PID=$!

ADDR=""
for _ in $(seq 1 $((READY_TIMEOUT_S * 10))); do
  ADDR=$(sed -E 's/\x1b\[[0-9;]*m//g' "$TMP/sluice.log" \
    | grep -oE 'ready listening=[^[:space:]]+' | head -n1 | cut -d= -f2 | tr -d '"') || true
  [[ -n "$ADDR" ]] && break
  kill -0 "$PID" 2>/dev/null || { echo "compat: sluice exited before ready" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$ADDR" ]] || { echo "compat: sluice not ready within ${READY_TIMEOUT_S}s" >&2; exit 1; }
echo "compat: $BIN ready at $ADDR"

FAILED=0
# With RESULTS set, each check also appends `client<TAB>feature<TAB>pass|fail` to that file for
# the README's compatibility table (scripts/compat/table.py).
RESULTS=${RESULTS:-}
KCAT_V=$("$KCAT" -V 2>&1 | sed -nE 's/^Version ([^ ]+) .*librdkafka ([^ ]+).*/kcat \1 (librdkafka \2)/p' | head -n1)
CK_V=$("$PYTHON" -c 'import confluent_kafka as c; print(f"confluent-kafka {c.__version__} (librdkafka {c.libversion()[0]})")' 2>/dev/null || echo confluent-kafka)
KP_V=$("$PYTHON" -c 'import kafka; print(f"kafka-python {kafka.__version__}")' 2>/dev/null || echo kafka-python)
declare -A ROW=(
  [create-topics]="$CK_V"$'\tAdminClient: createTopics'
  [kcat-metadata]="${KCAT_V:-kcat}"$'\tmetadata (-L)'
  [kcat-produce-consume]="${KCAT_V:-kcat}"$'\tproduce and consume (by partition, keyed, snappy, acks=all)'
  [confluent-kafka]="$CK_V"$'\tproducer (keys, headers, timestamps, acks=all), assign consumer'
  [kafka-python]="$KP_V"$'\tproducer (keys, headers, gzip, acks=all), assign/seek consumer'
  [admin-api]="$CK_V"$'\tAdminClient: configs, createPartitions, deleteRecords, deleteTopics'
  [group-consumers]="$KP_V, $CK_V"$'\tconsumer groups: subscribe, commit, resume from commit'
  [transactions]="$CK_V"$'\ttransactions: commit/abort, read_committed, fencing, send_offsets_to_transaction'
  [txn-read-committed]="$KP_V, $CK_V"$'\ttransactions: read_committed / read_uncommitted consumers, no marker handed out'
  [txn-eos-kill]="$CK_V"$'\ttransactions: consume-transform-produce exactly once, processor killed -9 and restarted'
)
[[ -n $RESULTS ]] && { mkdir -p "$(dirname "$RESULTS")"; : >"$RESULTS"; }
record() {
  if [[ -n $RESULTS && -n ${ROW[$1]:-} ]]; then printf '%s\t%s\t\n' "${ROW[$1]}" "$2" >>"$RESULTS"; fi
}
# check NAME CMD...: runs CMD with a deadline, prints PASS/FAIL with its output on failure.
check() {
  local name=$1; shift
  if timeout "$CLIENT_TIMEOUT_S" "$@" >"$TMP/$name.out" 2>&1; then
    echo "PASS $name"
    record "$name" pass
  else
    echo "FAIL $name (exit $?)"
    sed 's/^/    /' "$TMP/$name.out" | tail -n 30
    FAILED=1
    record "$name" fail
  fi
}

KCAT_TOPIC=compat-kcat
kcat_metadata() {
  "$KCAT" -b "$ADDR" -L -m 30 >"$TMP/kcat-L.txt"
  grep -q "topic \"$KCAT_TOPIC\" with 3 partitions" "$TMP/kcat-L.txt" \
    || { echo "topic $KCAT_TOPIC not listed:"; cat "$TMP/kcat-L.txt"; return 1; }
  grep -qE "broker [0-9]+ at 127\.0\.0\.1:${ADDR##*:}" "$TMP/kcat-L.txt" \
    || { echo "broker not listed at $ADDR:"; cat "$TMP/kcat-L.txt"; return 1; }
}

kcat_roundtrip() {
  local n=2000
  # Unkeyed lines, in order, to partition 0; then keyed lines spread by key.
  seq 1 "$n" | sed 's/^/line-/' >"$TMP/sent-p0.txt"
  "$KCAT" -b "$ADDR" -P -t "$KCAT_TOPIC" -p 0 -X acks=all <"$TMP/sent-p0.txt"
  seq 1 "$n" | awk '{print "key" ($1 % 17) ":keyed-" $1}' >"$TMP/sent-keyed.txt"
  "$KCAT" -b "$ADDR" -P -t "$KCAT_TOPIC" -K: -X acks=all -z snappy <"$TMP/sent-keyed.txt"

  "$KCAT" -b "$ADDR" -C -t "$KCAT_TOPIC" -p 0 -o beginning -e -q -f '%s\n' >"$TMP/got-p0-all.txt"
  grep '^line-' "$TMP/got-p0-all.txt" >"$TMP/got-p0.txt" || true
  cmp -s "$TMP/sent-p0.txt" "$TMP/got-p0.txt" \
    || { echo "partition 0 content differs:"; diff "$TMP/sent-p0.txt" "$TMP/got-p0.txt" | head; return 1; }

  "$KCAT" -b "$ADDR" -C -t "$KCAT_TOPIC" -o beginning -e -q -f '%k:%s\n' >"$TMP/got-all.txt"
  { sed 's/^/:/' "$TMP/sent-p0.txt"; cat "$TMP/sent-keyed.txt"; } | sort >"$TMP/sent-all.sorted"
  sort "$TMP/got-all.txt" >"$TMP/got-all.sorted"
  cmp -s "$TMP/sent-all.sorted" "$TMP/got-all.sorted" \
    || { echo "topic content differs:"; diff "$TMP/sent-all.sorted" "$TMP/got-all.sorted" | head; return 1; }
}

# `timeout` runs programs, not shell functions: the kcat checks run in a child bash.
export ADDR TMP KCAT KCAT_TOPIC
export -f kcat_metadata kcat_roundtrip

check create-topics "$PYTHON" "$HERE/create_topics.py" "$ADDR" \
  "$KCAT_TOPIC:3" compat-confluent:4 compat-kafka-python:3 compat-groups:4
check kcat-metadata bash -euo pipefail -c kcat_metadata
check kcat-produce-consume bash -euo pipefail -c kcat_roundtrip
check confluent-kafka "$PYTHON" "$HERE/confluent_roundtrip.py" "$ADDR" compat-confluent 4
check kafka-python "$PYTHON" "$HERE/kafka_python_roundtrip.py" "$ADDR" compat-kafka-python 3
check admin-api "$PYTHON" "$HERE/admin_roundtrip.py" "$ADDR" compat-admin
check group-consumers "$PYTHON" "$HERE/group_consumers.py" "$ADDR" compat-groups 4
check compaction "$PYTHON" "$HERE/compaction.py" "$ADDR" compat-compacted
check transactions "$PYTHON" "$HERE/transactions.py" "$ADDR"
check txn-read-committed "$PYTHON" "$HERE/txn_read_committed.py" "$ADDR"
check txn-eos-kill "$PYTHON" "$HERE/txn_eos_kill.py" "$ADDR"

if ! kill -0 "$PID" 2>/dev/null; then
  echo "FAIL broker-alive (sluice exited during the checks)"; FAILED=1
else
  echo "PASS broker-alive"
fi
if [[ $FAILED -ne 0 ]]; then echo "compat: FAILED"; exit 1; fi
echo "compat: all clients PASS"
