#!/usr/bin/env bash
# Starts N Troupe node processes on this machine (127.0.0.1), submits one training job to them,
# streams its progress, and stops every process it started on exit or Ctrl-C.
#   scripts/launch-local.sh N [--respawn] [train options]      e.g. scripts/launch-local.sh 4 --layout 1x4 --steps 50
# --respawn: a node process that dies (killed, or removed from the cluster after a long pause) is
# started again on its port, joining through the nodes alive, so the job's layout can grow back; when
# every node has died, the lowest-numbered one starts the cluster again on its port (the submitter's seed
# when it is node 1) and the others join through it, and the cluster carries the job on from its record.
# Every node may host the coordinator (a cluster singleton: it starts on node 1 and moves to the next
# oldest node if that one dies, carrying the job on from its record). Each node runs one worker;
# threads per worker = cores / N. Each node's heap and direct memory are its 1/N share of this machine's
# memory, sized as troupe_node_memory_opts says (TROUPE_JAVA_OPTS may set them instead).
# The nodes share one host media driver (troupe driver), so their workers exchange tensors over
# Aeron IPC; TROUPE_DRIVER=embedded gives every node its own driver (UDP between them) instead.
# TROUPE_BASE_PORT: node I listens on TROUPE_BASE_PORT + I - 1 (default 25520); 0: every node binds a
# free port, which its log reports, and the others join through node 1's (so runs side by side on one
# machine never collide); TROUPE_LOG_DIR: the directory of the driver's and nodes' logs (created if
# missing; default a new one under /tmp).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
n="${1:-}"
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/launch-local.sh N [--respawn] [train options]   (N = number of node processes, >= 1)" >&2
  exit 2
fi
shift
respawn=""
train_args=()
for a in "$@"; do
  if [ "$a" = --respawn ]; then respawn=yes; else train_args+=("$a"); fi
done
set -- "${train_args[@]+"${train_args[@]}"}"
base_port="${TROUPE_BASE_PORT:-25520}"
if ! [[ "$base_port" =~ ^(0|[1-9][0-9]*)$ ]] || [ "$base_port" -gt 65535 ]; then
  echo "troupe: TROUPE_BASE_PORT must be a port number, or 0 for free ports, got '$base_port'" >&2
  exit 2
fi
troupe_ensure_built
threads=$(troupe_node_threads "$n")
logdir="${TROUPE_LOG_DIR:-$(mktemp -d -t troupe-launch-XXXXXX)}"
mkdir -p "$logdir"
driver_pid=""
stop_all() {
  troupe_stop_started
  if [ -n "$driver_pid" ]; then
    kill -TERM "$driver_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$driver_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$driver_pid" 2>/dev/null || true
    wait "$driver_pid" 2>/dev/null || true
  fi
}
submit_pid=""
# on_signal CODE: Ctrl-C (130) or SIGTERM (143). The client, started in the background, ignores SIGINT, so
# it gets TERM, which stops the job and names its last checkpoint; once it has ended (60 s at most), the
# script exits with CODE and the EXIT trap stops the nodes and the driver.
on_signal() {
  trap - INT TERM
  if [ -n "$submit_pid" ] && kill -0 "$submit_pid" 2>/dev/null; then
    kill -TERM "$submit_pid" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$submit_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  exit "$1"
}
trap stop_all EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
node_opts="$(troupe_node_memory_opts "$n")"
if [ "${TROUPE_DRIVER:-host}" = host ]; then
  shm=/dev/shm; [ -d "$shm" ] || shm="${TMPDIR:-/tmp}"
  aeron_dir="$shm/troupe-host-$$"
  # shellcheck disable=SC2086
  java ${TROUPE_JAVA_OPTS:-} $TROUPE_JVM_FLAGS -cp "$(troupe_classpath)" io.troupe.actors.cli.TroupeCli driver --dir "$aeron_dir" \
    > "$logdir/driver.log" 2>&1 &
  driver_pid=$!
  for _ in $(seq 1 300); do
    grep -q "troupe driver: up" "$logdir/driver.log" 2>/dev/null && break
    kill -0 "$driver_pid" 2>/dev/null || { echo "troupe: the media driver did not start:" >&2; cat "$logdir/driver.log" >&2; exit 1; }
    sleep 0.1
  done
  grep -q "troupe driver: up" "$logdir/driver.log" || { echo "troupe: the media driver did not start within 30 s" >&2; exit 1; }
  echo "troupe: host media driver (pid $driver_pid) in $aeron_dir, log $logdir/driver.log"
  node_opts="$node_opts -Dtroupe.transport.aeron-dir=$aeron_dir -Dtroupe.transport.external-driver=true"
fi
node_pids=()
node_ports=()  # node I's port: base_port + I - 1, or with base port 0 the one it bound (read from its log)
log_lines=()   # lines in node I's log before its latest start (a respawn appends to the same log)
# start_node I SEEDS [NOTE]: node I on its port, joining through SEEDS ("" = it starts the cluster)
start_node() {
  local i="$1" seeds="$2" note="${3:-}" port="${node_ports[$1]:-}"
  [ -n "$port" ] || { port=0; [ "$base_port" -eq 0 ] || port=$(( base_port + $1 - 1 )); }
  log_lines[$i]=0
  if [ -f "$logdir/node-$i.log" ]; then log_lines[$i]=$(wc -l < "$logdir/node-$i.log"); fi
  local args=(node --port "$port" --role worker,coordinator --workers 1 --threads "$threads")
  [ -n "$seeds" ] && args+=(--seed "$seeds")
  # shellcheck disable=SC2086
  # the Vector API module: the CPU attention's kernel (as `troupe node` runs)
  java ${TROUPE_JAVA_OPTS:-} $node_opts $TROUPE_VECTOR_API_FLAGS $TROUPE_JVM_FLAGS -cp "$(troupe_classpath)" \
    io.troupe.actors.cli.TroupeCli "${args[@]}" >> "$logdir/node-$i.log" 2>&1 &
  TROUPE_STARTED_PIDS+=($!)
  node_pids[$i]=$!
  local where="127.0.0.1:$port"
  if [ "$port" -eq 0 ]; then where="a free port of 127.0.0.1"; else node_ports[$i]=$port; fi
  echo "troupe: node $i (pid $!) on $where, log $logdir/node-$i.log$note"
}
# await_port I: waits for node I to say it is up and records the port it bound (60 s at most)
await_port() {
  local i="$1" port="" deadline=$(( SECONDS + 60 ))
  while [ "$SECONDS" -lt "$deadline" ]; do
    port=$(tail -n +"$(( log_lines[$i] + 1 ))" "$logdir/node-$i.log" 2>/dev/null \
      | sed -n 's/^troupe node: up at [^,]*:\([0-9][0-9]*\),.*/\1/p' | head -n 1) || true
    [ -n "$port" ] && break
    kill -0 "${node_pids[$i]}" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$port" ]; then
    echo "troupe: node $i did not come up; its log $logdir/node-$i.log ends:" >&2
    tail -n 20 "$logdir/node-$i.log" >&2
    exit 1
  fi
  node_ports[$i]=$port
  echo "troupe: node $i is up on 127.0.0.1:$port"
}
start_node 1 ""
[ "$base_port" -ne 0 ] || await_port 1
seed="127.0.0.1:${node_ports[1]}"
for i in $(seq 2 "$n"); do
  start_node "$i" "$seed"
done
if [ "$base_port" -eq 0 ]; then
  for i in $(seq 2 "$n"); do await_port "$i"; done
fi
set +e
# shellcheck disable=SC2086
# Stopped (Ctrl-C), the job is resumed by this script, not by 'troupe submit': the nodes end with it.
TROUPE_RESUME_COMMAND="$0 $n" java ${TROUPE_JAVA_OPTS:-} $TROUPE_JVM_FLAGS \
  -cp "$(troupe_classpath)" io.troupe.actors.cli.TroupeCli submit --cluster "$seed" "$@" &
submit_pid=$!
TROUPE_STARTED_PIDS+=("$submit_pid")
while kill -0 "$submit_pid" 2>/dev/null; do
  if [ -n "$respawn" ]; then
    for i in $(seq 1 "$n"); do
      kill -0 "${node_pids[$i]}" 2>/dev/null && continue
      alive=""
      for j in $(seq 1 "$n"); do
        [ "$j" != "$i" ] && kill -0 "${node_pids[$j]}" 2>/dev/null && alive="${alive:+$alive,}127.0.0.1:${node_ports[$j]}"
      done
      if [ -n "$alive" ]; then
        start_node "$i" "$alive" " (respawned)"
      else
        start_node "$i" "" " (respawned: no node was alive, so it starts the cluster again)"
      fi
    done
  fi
  sleep 1
done
wait "$submit_pid"
rc=$?
exit $rc
