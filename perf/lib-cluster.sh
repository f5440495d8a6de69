# A three-node KRaft cluster (every node broker and controller) on loopback, for the perf
# scripts that measure replication (perf/bench-replication.sh, perf/flamegraph-replication.sh).
# Sourced, not run.
#
#   source perf/lib-cluster.sh
#   cluster_start SLUICE_BIN CORES [EXTRA_TOML] [READY_TIMEOUT_S]
#
# cluster_start picks free loopback ports, writes node$i/sluice.toml under CLUSTER_WORK (a temp
# dir), starts the three brokers (logs in node$i/broker.log) and returns once every node is
# ready and unfenced (the controller can place three replicas), or exits 1 with the log of
# the node that was not. It sets CLUSTER_BOOTSTRAP (all three client listeners) and
# CLUSTER_PIDS (the brokers, node 1 first; callers append their own background jobs so that
# cluster_cleanup stops them too). cluster_cleanup is the EXIT trap: it stops every pid in
# CLUSTER_PIDS and removes CLUSTER_WORK (kept with KEEP_WORK=1).

CLUSTER_WORK=$(mktemp -d -t sluice-cluster.XXXXXX)
CLUSTER_PIDS=()
CLUSTER_BOOTSTRAP=""

cluster_cleanup() {
  local pid
  for pid in "${CLUSTER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${CLUSTER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ ${KEEP_WORK:-0} == 1 ]] || rm -rf "$CLUSTER_WORK"
}
trap cluster_cleanup EXIT

cluster_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits (polling the logs, bounded by the deadline) until every node logged `pattern` at
# least once; exits 1 with `what` and that node's log otherwise.
cluster_wait_logged() {
  local pattern=$1 what=$2 deadline=$3 i
  for i in 1 2 3; do
    until grep -q "$pattern" "$CLUSTER_WORK/node$i/broker.log"; do
      if ((SECONDS >= deadline)); then
        echo "lib-cluster: node $i $what; its log:" >&2
        cat "$CLUSTER_WORK/node$i/broker.log" >&2
        exit 1
      fi
      sleep 0.1
    done
  done
}

cluster_start() {
  local sluice_bin=$1 cores=$2 extra_toml=${3:-} ready_timeout_s=${4:-60}
  local ctrl=() client=() i dir voters
  for i in 1 2 3; do ctrl+=("$(cluster_free_port)"); client+=("$(cluster_free_port)"); done
  voters="1@127.0.0.1:${ctrl[0]},2@127.0.0.1:${ctrl[1]},3@127.0.0.1:${ctrl[2]}"
  for i in 1 2 3; do
    dir="$CLUSTER_WORK/node$i"
    mkdir -p "$dir/data"
    cat >"$dir/sluice.toml" <<EOF
"node.id" = $i
"process.roles" = "broker,controller"
"controller.quorum.voters" = "$voters"
"controller.listener.names" = "CONTROLLER"
"pin.threads" = false
listeners = "PLAINTEXT://127.0.0.1:${client[$((i - 1))]}"
$extra_toml
EOF
    "$sluice_bin" --config "$dir/sluice.toml" --data-dir "$dir/data" --cores "$cores" \
      --admin-listen 127.0.0.1:0 >"$dir/broker.log" 2>&1 &
    CLUSTER_PIDS+=($!)
  done
  local deadline=$((SECONDS + ready_timeout_s))
  cluster_wait_logged 'ready listening=' "not ready" "$deadline"
  # Every node registered and unfenced (the active controller logs one line per broker, and a
  # later controller again): the controller can place three replicas.
  until [[ $(grep -h -c 'broker unfenced' "$CLUSTER_WORK"/node*/broker.log | paste -sd+ | bc) -ge 3 ]]; do
    if ((SECONDS >= deadline)); then
      echo "lib-cluster: brokers not all unfenced" >&2
      exit 1
    fi
    sleep 0.1
  done
  CLUSTER_BOOTSTRAP="127.0.0.1:${client[0]},127.0.0.1:${client[1]},127.0.0.1:${client[2]}"
}
