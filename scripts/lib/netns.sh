# Separate network stacks on one machine: Linux network namespaces joined by a bridge, each a "host"
# with its own address, so a node can be cut off the network for real (its link set down) while
# its process keeps running. Needs root (or CAP_NET_ADMIN) and the ip tool.
#   troupe_netns_create N      namespaces trc-10.78.0.11 .. trc-10.78.0.(10+N), bridge trcbr0 at 10.78.0.1
#   troupe_netns_host I        the address of host I (1-based): 10.78.0.(10+I)
#   troupe_netns_cut I | troupe_netns_heal I   host I's link on the bridge down / up
#   troupe_netns_destroy       stops what runs in the namespaces and removes them and the bridge
TROUPE_NETNS_HOSTS=0

troupe_netns_available() {
  command -v ip > /dev/null 2>&1 || return 1
  ip netns add trc-probe 2> /dev/null || return 1
  ip netns del trc-probe
}

troupe_netns_host() { echo "10.78.0.$((10 + $1))"; }

troupe_netns_create() {
  local n="$1" i ns
  troupe_netns_destroy
  ip link add trcbr0 type bridge || return 1
  ip addr add 10.78.0.1/24 dev trcbr0 && ip link set trcbr0 up || return 1
  for i in $(seq 1 "$n"); do
    ns="trc-$(troupe_netns_host "$i")"
    ip netns add "$ns" || return 1
    ip link add "trc${i}o" type veth peer name "trc${i}i" || return 1
    ip link set "trc${i}o" master trcbr0 up && ip link set "trc${i}i" netns "$ns" || return 1
    ip -n "$ns" addr add "$(troupe_netns_host "$i")/24" dev "trc${i}i" || return 1
    ip -n "$ns" link set "trc${i}i" up && ip -n "$ns" link set lo up || return 1
    TROUPE_NETNS_HOSTS="$i"
  done
}

troupe_netns_cut() { ip link set "trc${1}o" down; }
troupe_netns_heal() { ip link set "trc${1}o" up; }

troupe_netns_destroy() {
  local ns pid
  for ns in $(ip netns list 2> /dev/null | awk '{print $1}' | grep '^trc-10\.78\.0\.'); do
    for pid in $(ip netns pids "$ns" 2> /dev/null); do kill -KILL "$pid" 2> /dev/null; done
    ip netns del "$ns" 2> /dev/null
  done
  for i in $(seq 1 "$TROUPE_NETNS_HOSTS"); do ip link del "trc${i}o" 2> /dev/null; done
  ip link del trcbr0 2> /dev/null
  TROUPE_NETNS_HOSTS=0
  return 0
}
