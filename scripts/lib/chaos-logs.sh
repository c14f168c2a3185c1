# What scripts/chaos reads from a job's launch log (launch-local.sh or launch-cluster.sh, with the
# submitter's lines): which node process hosts a rank. Source it (after netns.sh for rank_host).
#   node_pid LOG N           node N's pid
#   node_pid_now LOG N       node N's pid now: its latest start's (launch-local.sh --respawn starts it again)
#   node_hosts_rank LOG N    0 when node N hosts a rank of the latest epoch (the last 'troupe: job ID started,
#                            epoch E, ...' assignment line)
#   node_of_port LOG PORT    the node listening on PORT (a node on a free port names it once it is up)
#   rank_node LOG            the node (not node 1, which hosts the coordinator) that hosts the highest rank
#   rank_host LOG            the last byte of the namespace host (not host 1) of the highest rank
# rank_node and rank_host read the first 'troupe: job ID started, epoch E, ...' assignment; when it
# names no such node they print nothing and return 1 (never a guess: a guess can be the spare, and a
# fault on a node that hosts nothing tests nothing).

# the first assignment line of LOG: 'troupe: job <id> started, epoch N, W workers: rank 0 -> pekko://...'
chaos_assignment() { grep -m1 -E '^troupe: job [0-9a-f]+ started, epoch [0-9]+,' "$1"; }

node_pid() { sed -n "s/^troupe: node $2 (pid \([0-9]*\)).*/\1/p" "$1" | head -1; }

node_pid_now() { sed -n "s/^troupe: node $2 (pid \([0-9]*\)).*/\1/p" "$1" | tail -1; }

node_hosts_rank() {
  local p
  for p in $(grep -E '^troupe: job [0-9a-f]+ started, epoch [0-9]+,' "$1" | tail -1 | grep -o '@[^#]*#' \
    | sed 's/.*:\([0-9]*\)#/\1/'); do
    [ "$(node_of_port "$1" "$p")" = "$2" ] && return 0
  done
  return 1
}

node_of_port() {
  sed -n -e "s/^troupe: node \([0-9]*\) (pid [0-9]*) on [^:]*:$2,.*/\1/p" -e "s/^troupe: node \([0-9]*\) is up on [^:]*:$2\$/\1/p" "$1" \
    | head -1
}

rank_node() {
  local ports p n
  ports=$(chaos_assignment "$1" | grep -o '@[^#]*#' | sed 's/.*:\([0-9]*\)#/\1/')
  for p in $(echo "$ports" | tac); do
    n=$(node_of_port "$1" "$p")
    [ -n "$n" ] && [ "$n" != 1 ] && { echo "$n"; return 0; }
  done
  return 1
}

rank_host() {
  local hosts h
  hosts=$(chaos_assignment "$1" | grep -o '@[^:#]*:' | tr -d '@:')
  for h in $(echo "$hosts" | tac); do
    [ "$h" != "$(troupe_netns_host 1)" ] && { echo "${h##*.}"; return 0; }
  done
  return 1
}

# What scripts/chaos makes of a finished run:
#   chaos_finished LOG RC     0 when the job finished: its launch exited 0 (RC) and LOG has the submitter's
#                             'troupe: job finished after' line (a failed job, a stopped one or a launch that
#                             died after printing it never counts)
#   chaos_fault_seen LOG      0 when LOG has a 'troupe: fault in epoch' or 'troupe: planned restart in epoch' line
#                             (a recovery began)
#   chaos_lost_steps LOG      the committed steps the recoveries took back, summed over every recovery: per
#                             recovery (a run of fault lines ended by a 'recovered:' line, or by the end of the
#                             log for a job that never recovered) the last step reported before its first fault
#                             less the step it restored. A restore past the last reported step takes none back.
#   chaos_disk_lost_steps LOG the steps the recoveries took back from disk, summed: per recovery, the newest 'last
#                             disk checkpoint step N' of its fault lines less the step its 'recovered:' line
#                             restored (a restore of that checkpoint or a newer step takes none back): what a
#                             recovery that cannot restore from memory (every node lost) must not lose
#   chaos_diff_verdict RC OUT 'BITWISE MAX_REL' from 'troupe checkpoint diff' that exited RC with its output in
#                             file OUT: its last line's values only when it exited 0 and that line is the
#                             summary; anything else (a crash, no output, exit 4) is 'false nan'
#   chaos_corruption_evidence LOG NODE_LOG...
#                             whether a corrupted frame was injected and refused (udp-corrupt-nth): prints the
#                             node logs' 'troupe: media driver corrupted received UDP data frame N (udp-corrupt-nth
#                             K): ...' lines (a driver flipped a payload byte) and LOG's 'troupe: fault in epoch E:'
#                             lines whose reason is a chunk that 'arrived corrupt (BAD_CHUNK_CRC)' or '(BAD_MAC)'
#                             (a receiver refused it by its check, counted it in its dropped-frame counter of that
#                             reason, and failed the step); returns 0 when there are both, 1 when no driver
#                             corrupted a frame, 2 when one did but no fault names a chunk refused for it

chaos_finished() { [ "$2" = 0 ] && grep -qE '^troupe: job finished after [0-9]+ steps' "$1"; }

chaos_fault_seen() { grep -qE '^troupe: (fault|planned restart) in epoch [0-9]+:' "$1"; }

chaos_lost_steps() {
  awk '
    function restored(line, pat,   s) {
      if (!match(line, pat)) return -1
      s = substr(line, RSTART, RLENGTH); gsub(/[^0-9]/, "", s); return s + 0
    }
    function settle(r) { if (r >= 0) { if (at > r) lost += at - r; last = r }; pending = 0 }
    /^step +[0-9]+\// { split($2, s, "/"); last = s[1] + 0; next }
    /^troupe: (fault|planned restart) in epoch [0-9]+:/ {
      if (!pending) { at = last; pending = 1 }
      want = restored($0, "last disk checkpoint step [0-9]+"); next
    }
    /^troupe: recovered:/ {
      r = restored($0, "[(]restored step [0-9]+[)]")
      settle(r >= 0 ? r : want); next
    }
    END { if (pending) settle(want); print lost + 0 }' "$1"
}

chaos_disk_lost_steps() {
  awk '
    function num(line, pat,   s) {
      if (!match(line, pat)) return -1
      s = substr(line, RSTART, RLENGTH); gsub(/[^0-9]/, "", s); return s + 0
    }
    /^troupe: (fault|planned restart) in epoch [0-9]+:/ {
      d = num($0, "last disk checkpoint step [0-9]+"); if (!pending || d > disk) disk = d; pending = 1; next
    }
    /^troupe: recovered:/ {
      r = num($0, "[(]restored step [0-9]+[)]")
      if (pending && r >= 0 && disk > r) lost += disk - r
      pending = 0; next
    }
    END { print lost + 0 }' "$1"
}

chaos_diff_verdict() {
  local line
  line=$(tail -n 1 "$2" 2>/dev/null)
  if [ "$1" = 0 ] && [[ "$line" =~ ^bitwise=(true|false)\ max_abs=[^\ ]+\ max_rel=([^\ ]+)$ ]]; then
    echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
  else
    echo "false nan"
  fi
}

chaos_corruption_evidence() {
  local log="$1" injected="" refused
  shift
  [ $# -gt 0 ] && injected=$(grep -hE 'troupe: media driver corrupted received UDP data frame [0-9]+ \(udp-corrupt-nth [0-9]+\)' \
    "$@" 2>/dev/null)
  refused=$(grep -E '^troupe: fault in epoch [0-9]+: .*arrived corrupt \((BAD_CHUNK_CRC|BAD_MAC)\)' "$log" 2>/dev/null)
  [ -n "$injected" ] && echo "$injected"
  [ -n "$refused" ] && echo "$refused"
  [ -n "$injected" ] || return 1
  [ -n "$refused" ] || return 2
}
