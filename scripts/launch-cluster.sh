#!/usr/bin/env bash
# Starts one Troupe node per line of HOSTS_FILE, submits one training job, streams its progress,
# and stops every node it started on exit or Ctrl-C.
#   scripts/launch-cluster.sh HOSTS_FILE [train options]
# HOSTS_FILE: one node per line, "HOST[:PORT] [WORKERS]" (default port 25520, 1 worker); '#' starts a
# comment, anywhere on a line. Every line is checked before any node starts: a bad one starts nothing (exit 2).
# The first line's node is the seed the others join. Every node may host the coordinator (a
# cluster singleton that starts on the first line's node and moves if it dies, reading the job record
# beside the checkpoints: put those on storage every node reaches).
# Loopback hosts (127.x, localhost) run here. Any other host runs over ssh (`ssh -tt HOST`, so the
# node stops when the connection ends) in TROUPE_REMOTE_HOME (default: this checkout's path), where
# Troupe is checked out and built, or unpacked from the distribution (then TROUPE_REMOTE_CMD=bin/troupe
# and TROUPE_REMOTE_CONF=conf/multi-host.conf). Each such node gets the multi-host settings
# (TROUPE_REMOTE_CONF, default cluster-config/multi-host.conf) with TROUPE_HOST set to its host, so
# it binds and advertises that address for the control plane (Artery) and the data plane (Aeron UDP,
# one fixed port per host: open 25520/tcp and 40123/udp between the hosts, docs/deploy.md). Name each
# host by an address the others can reach.
# The job is submitted from here by a client that does not join the cluster; it advertises
# TROUPE_SUBMIT_HOST (default: this machine's source address towards the seed).
# Other ways to reach a host: TROUPE_REMOTE="PREFIX" runs "PREFIX bash -c CMD" with {host} in PREFIX
# replaced (e.g. TROUPE_REMOTE="ip netns exec ns-{host}"). TROUPE_CMD replaces the troupe command
# everywhere (then nothing is built here).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
hosts_file="${1:-}"
if [ -z "$hosts_file" ] || [ ! -f "$hosts_file" ]; then
  echo "usage: scripts/launch-cluster.sh HOSTS_FILE [train options]   (HOSTS_FILE: lines 'HOST[:PORT] [WORKERS]')" >&2
  exit 2
fi
shift
if [ -n "${TROUPE_CMD:-}" ]; then
  local_cmd="$TROUPE_CMD"
  local_node_cmd="$TROUPE_CMD"
  remote_cmd="$TROUPE_CMD"
else
  troupe_ensure_built
  local_cmd="java ${TROUPE_JAVA_OPTS:-} $TROUPE_JVM_FLAGS -cp $(troupe_classpath) io.troupe.actors.cli.TroupeCli"
  # nodes with the Vector API module (the CPU attention's kernel), as scripts/troupe runs `troupe node`
  # the nodes on this machine share its memory (troupe_node_memory_opts); a remote node's scripts/troupe
  # sizes it from its own host's memory
  local_nodes=$(grep -cE '^[[:space:]]*(127\.|localhost)' "$hosts_file" || true)
  local_node_cmd="java $(troupe_node_memory_opts "${local_nodes:-1}") ${TROUPE_JAVA_OPTS:-} $TROUPE_VECTOR_API_FLAGS"
  local_node_cmd="$local_node_cmd $TROUPE_JVM_FLAGS -cp $(troupe_classpath)"
  local_node_cmd="$local_node_cmd io.troupe.actors.cli.TroupeCli"
  remote_cmd="${TROUPE_REMOTE_CMD:-scripts/troupe}"
fi
remote_home="${TROUPE_REMOTE_HOME:-$TROUPE_HOME}"
remote_conf="${TROUPE_REMOTE_CONF:-cluster-config/multi-host.conf}"
logdir="${TROUPE_LOG_DIR:-$(mktemp -d -t troupe-cluster-XXXXXX)}"
mkdir -p "$logdir"
trap troupe_stop_started EXIT INT TERM
is_local() { case "$1" in 127.*|localhost) return 0 ;; *) return 1 ;; esac; }

# Every line is read and checked before any node starts, so a bad line starts nothing.
hosts=()
ports=()
worker_counts=()
while IFS= read -r line || [ -n "$line" ]; do
  line="${line%%#*}"
  line="${line%$'\r'}"
  read -r entry workers rest <<< "$line" || true
  [ -n "${entry:-}" ] || continue
  host="${entry%%:*}"
  port=25520
  [[ "$entry" == *:* ]] && port="${entry#*:}"
  if ! [[ "$port" =~ ^[1-9][0-9]*$ ]] || [ "${#port}" -gt 5 ] || [ "$port" -gt 65535 ]; then
    echo "launch-cluster: bad port in '$entry' (expected 1-65535)" >&2; exit 2
  fi
  if ! [[ "$host" =~ ^[A-Za-z0-9._-]+$ ]]; then echo "launch-cluster: bad host in '$entry'" >&2; exit 2; fi
  workers="${workers:-1}"
  if ! [[ "$workers" =~ ^[1-9][0-9]*$ ]]; then echo "launch-cluster: bad worker count '$workers' for $entry" >&2; exit 2; fi
  if [ -n "$rest" ]; then
    echo "launch-cluster: unexpected '$rest' after the worker count for $entry (lines: HOST[:PORT] [WORKERS])" >&2
    exit 2
  fi
  hosts+=("$host")
  ports+=("$port")
  worker_counts+=("$workers")
done < "$hosts_file"
if [ "${#hosts[@]}" -eq 0 ]; then echo "launch-cluster: no hosts in $hosts_file" >&2; exit 2; fi

seed="${hosts[0]}:${ports[0]}"
seed_host="${hosts[0]}"
for idx in "${!hosts[@]}"; do
  i=$((idx + 1))
  host="${hosts[$idx]}"
  port="${ports[$idx]}"
  workers="${worker_counts[$idx]}"
  args="node --hostname $host --port $port --workers $workers --role worker,coordinator"
  env="TROUPE_HOST=$host"
  if [ "$idx" -gt 0 ]; then
    args="$args --seed $seed"
    env="$env TROUPE_SEED=$seed"
  fi
  if is_local "$host"; then
    # shellcheck disable=SC2086
    $local_node_cmd $args > "$logdir/node-$i.log" 2>&1 &
  else
    line="cd '$remote_home' && $env exec $remote_cmd $args --config '$remote_conf'"
    if [ -n "${TROUPE_REMOTE:-}" ]; then
      # shellcheck disable=SC2086
      ${TROUPE_REMOTE//\{host\}/$host} bash -c "$line" > "$logdir/node-$i.log" 2>&1 &
    else
      ssh -tt -o BatchMode=yes "$host" "$line" > "$logdir/node-$i.log" 2>&1 &
    fi
  fi
  TROUPE_STARTED_PIDS+=($!)
  echo "troupe: node $i ($host:$port, $workers worker(s), pid ${TROUPE_STARTED_PIDS[-1]}), log $logdir/node-$i.log"
done

submit_host="${TROUPE_SUBMIT_HOST:-}"
if [ -z "$submit_host" ]; then
  if is_local "$seed_host"; then
    submit_host=127.0.0.1
  else
    seed_ip="$(getent hosts "$seed_host" | awk '{print $1; exit}')" || true
    submit_host="$(ip route get "${seed_ip:-$seed_host}" 2>/dev/null | sed -n 's/.* src \([^ ]*\).*/\1/p' | head -1)" || true
    if [ -z "$submit_host" ]; then
      echo "launch-cluster: cannot tell this machine's address towards $seed_host; set TROUPE_SUBMIT_HOST" >&2
      exit 2
    fi
  fi
fi
set +e
# In the background, so that a TERM or Ctrl-C reaches the trap (which stops the client and the nodes) at once.
# Stopped (Ctrl-C), the job is resumed by this script, not by 'troupe submit': the nodes end with it.
# shellcheck disable=SC2086
TROUPE_RESUME_COMMAND="$0 $hosts_file" $local_cmd submit --cluster "$seed" --hostname "$submit_host" "$@" &
submit_pid=$!
TROUPE_STARTED_PIDS+=("$submit_pid")
wait "$submit_pid"
exit $?
