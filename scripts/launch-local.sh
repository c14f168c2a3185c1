#!/usr/bin/env bash
# Starts N Troupe node processes on this machine (127.0.0.1), submits one training job to them,
# streams its progress, and stops every process it started on exit or Ctrl-C.
#   scripts/launch-local.sh N [train options]      e.g. scripts/launch-local.sh 4 --layout 1x4 --steps 50
# Node 1 also hosts the coordinator. Each node runs one worker; threads per worker = cores / N.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
n="${1:-}"
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/launch-local.sh N [train options]   (N = number of node processes, >= 1)" >&2
  exit 2
fi
shift
troupe_ensure_built
base_port="${TROUPE_BASE_PORT:-25520}"
threads=$(( $(nproc) / n )); [ "$threads" -ge 1 ] || threads=1
logdir="${TROUPE_LOG_DIR:-$(mktemp -d -t troupe-launch-XXXXXX)}"
trap troupe_stop_started EXIT INT TERM
seed="127.0.0.1:$base_port"
for i in $(seq 1 "$n"); do
  port=$(( base_port + i - 1 ))
  roles=worker; [ "$i" -eq 1 ] && roles=worker,coordinator
  seeds="$seed"; [ "$i" -eq 1 ] && seeds=""
  args=(node --port "$port" --role "$roles" --workers 1 --threads "$threads")
  [ -n "$seeds" ] && args+=(--seed "$seeds")
  # shellcheck disable=SC2086
  java ${TROUPE_JAVA_OPTS:-} $TROUPE_JVM_FLAGS -cp "$(troupe_classpath)" io.troupe.actors.cli.TroupeCli "${args[@]}" \
    > "$logdir/node-$i.log" 2>&1 &
  TROUPE_STARTED_PIDS+=($!)
  echo "troupe: node $i (pid ${TROUPE_STARTED_PIDS[-1]}) on 127.0.0.1:$port, log $logdir/node-$i.log"
done
set +e
# shellcheck disable=SC2086
java ${TROUPE_JAVA_OPTS:-} $TROUPE_JVM_FLAGS -cp "$(troupe_classpath)" io.troupe.actors.cli.TroupeCli submit --cluster "$seed" "$@"
rc=$?
exit $rc
