#!/usr/bin/env bash
# cluster3.sh BIN DIR BASEPORT: starts a three-node KRaft cluster (every node broker and
# controller) as scripts/run_cluster.sh does, on ports BASEPORT+{0,1,2} (clients) and
# BASEPORT+{10,11,12} (controllers), admin on BASEPORT+{20,21,22}; prints the pids.
set -euo pipefail
BIN=$1; ROOT=$2; BASE=$3
VOTERS="1@127.0.0.1:$((BASE+10)),2@127.0.0.1:$((BASE+11)),3@127.0.0.1:$((BASE+12))"
for i in 1 2 3; do
  dir="$ROOT/broker-$i"; mkdir -p "$dir/data"
  cat > "$dir/sluice.toml" <<TOML
listen = "127.0.0.1:$((BASE+i-1))"
"admin.listen" = "127.0.0.1:$((BASE+19+i))"
data_dir = "$dir/data"
"node.id" = $i
"process.roles" = "broker,controller"
"controller.quorum.voters" = "$VOTERS"
"controller.listener.names" = "CONTROLLER"
"pin.threads" = false
TOML
  setsid "$BIN" --config "$dir/sluice.toml" > "$dir/sluice.log" 2>&1 &
  echo $!
done
