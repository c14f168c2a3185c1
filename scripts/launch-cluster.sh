#!/usr/bin/env bash
# Starts one Troupe node per line of HOSTS_FILE, submits one training job, streams its progress,
# and stops every node it started on exit or Ctrl-C.
#   scripts/launch-cluster.sh HOSTS_FILE [train options]
# HOSTS_FILE: one node per line, "HOST[:PORT] [WORKERS]" (default port 25520, 1 worker); '#' starts a
# comment. Every node may host the coordinator (a cluster singleton that starts on the first line's
# node and moves if it dies, reading the job record beside the checkpoints: put those on storage every
# node reaches). Loopback hosts (127.x, localhost) run
# here; any other host runs over ssh (`ssh -tt HOST`, so the node stops when the connection ends) in
# TROUPE_REMOTE_HOME (default: this checkout's path), where Troupe must be checked out and built.
# Nodes bind and advertise the host named in the file, so name each host by an address the others
# can reach.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
hosts_file="${1:-}"
if [ -z "$hosts_file" ] || [ ! -f "$hosts_file" ]; then
  echo "usage: scripts/launch-cluster.sh HOSTS_FILE [train options]   (HOSTS_FILE: lines 'HOST[:PORT] [WORKERS]')" >&2
  exit 2
fi
shift
troupe_ensure_built
remote_home="${TROUPE_REMOTE_HOME:-$TROUPE_HOME}"
logdir="${TROUPE_LOG_DIR:-$(mktemp -d -t troupe-cluster-XXXXXX)}"
trap troupe_stop_started EXIT INT TERM
is_local() { case "$1" in 127.*|localhost) return 0 ;; *) return 1 ;; esac; }

seed=""
i=0
while read -r entry workers _rest; do
  entry="${entry%%#*}"
  [ -n "$entry" ] || continue
  host="${entry%%:*}"
  port=25520
  [[ "$entry" == *:* ]] && port="${entry##*:}"
  if ! [[ "$port" =~ ^[0-9]+$ ]]; then echo "launch-cluster: bad port in '$entry'" >&2; exit 2; fi
  workers="${workers:-1}"
  if ! [[ "$workers" =~ ^[1-9][0-9]*$ ]]; then echo "launch-cluster: bad worker count '$workers' for $entry" >&2; exit 2; fi
  i=$((i + 1))
  args=(node --hostname "$host" --port "$port" --workers "$workers" --role worker,coordinator)
  if [ -z "$seed" ]; then
    seed="$host:$port"
  else
    args+=(--seed "$seed")
  fi
  if is_local "$host"; then
    # shellcheck disable=SC2086
    java ${TROUPE_JAVA_OPTS:-} $TROUPE_JVM_FLAGS -cp "$(troupe_classpath)" io.troupe.actors.cli.TroupeCli "${args[@]}" \
      > "$logdir/node-$i.log" 2>&1 &
  else
    ssh -tt -o BatchMode=yes "$host" "cd '$remote_home' && exec scripts/troupe ${args[*]}" > "$logdir/node-$i.log" 2>&1 &
  fi
  TROUPE_STARTED_PIDS+=($!)
  echo "troupe: node $i ($host:$port, $workers worker(s), pid ${TROUPE_STARTED_PIDS[-1]}), log $logdir/node-$i.log"
done < "$hosts_file"
if [ -z "$seed" ]; then echo "launch-cluster: no hosts in $hosts_file" >&2; exit 2; fi
set +e
# shellcheck disable=SC2086
java ${TROUPE_JAVA_OPTS:-} $TROUPE_JVM_FLAGS -cp "$(troupe_classpath)" io.troupe.actors.cli.TroupeCli submit --cluster "$seed" "$@"
exit $?
