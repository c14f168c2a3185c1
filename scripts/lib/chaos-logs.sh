# What scripts/chaos reads from a job's launch log (launch-local.sh or launch-cluster.sh, with the
# submitter's lines): which node process hosts a rank. Source it (after netns.sh for rank_host).
#   node_pid LOG N           node N's pid
#   node_of_port LOG PORT    the node listening on PORT (a node on a free port names it once it is up)
#   rank_node LOG            the node (not node 1, which hosts the coordinator) that hosts the highest rank
#   rank_host LOG            the last byte of the namespace host (not host 1) of the highest rank
# rank_node and rank_host read the first 'troupe: job ID started, epoch E, ...' assignment; when it
# names no such node they print nothing and return 1 (never a guess: a guess can be the spare, and a
# fault on a node that hosts nothing tests nothing).

# the first assignment line of LOG: 'troupe: job <id> started, epoch N, W workers: rank 0 -> pekko://...'
chaos_assignment() { grep -m1 -E '^troupe: job [0-9a-f]+ started, epoch [0-9]+,' "$1"; }

node_pid() { sed -n "s/^troupe: node $2 (pid \([0-9]*\)).*/\1/p" "$1" | head -1; }

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
