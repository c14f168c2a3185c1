# Separate network stacks on one machine: Linux network namespaces joined by a bridge, each a "host"
# with its own address, so a node can be cut off the network for real (its link set down) while
# its process keeps running. Needs root (or CAP_NET_ADMIN) and the ip tool.
# Every name carries its owner's process id (TROUPE_NETNS_OWNER, default this shell's $$), so runs side
# by side on one machine never collide, and a run killed midway leaves nothing that a later run trips
# over: creating sweeps away every namespace and link whose owner process is gone.
#   troupe_netns_create N      namespaces tru-OWNER-10.A.B.11 .. tru-OWNER-10.A.B.(10+N), bridge truOWNERb
#                              at 10.A.B.1, veths truOWNERvIa (on the bridge) / truOWNERvIb (in host I);
#                              10.A.B.0/24 is a /24 of 10.0.0.0/8 that no address or route here overlaps
#   troupe_netns_host I        the address of host I (1-based): 10.A.B.(10+I)
#   troupe_netns_name I        the namespace of host I; troupe_netns_remote: "ip netns exec tru-OWNER-{host}"
#   troupe_netns_cut I | troupe_netns_heal I   host I's link on the bridge down / up
#   troupe_netns_destroy       stops what runs in this owner's namespaces and removes them and its links
#   troupe_netns_sweep         the same for every owner whose process is gone
TROUPE_NETNS_OWNER="${TROUPE_NETNS_OWNER:-$$}"
TROUPE_NETNS_HOSTS=0
TROUPE_NETNS_NET=""

troupe_netns_available() {
  command -v ip > /dev/null 2>&1 || return 1
  ip netns add "tru-$TROUPE_NETNS_OWNER-probe" 2> /dev/null || return 1
  ip netns del "tru-$TROUPE_NETNS_OWNER-probe"
}

troupe_netns_host() { echo "$TROUPE_NETNS_NET.$((10 + $1))"; }
troupe_netns_name() { echo "tru-$TROUPE_NETNS_OWNER-$(troupe_netns_host "$1")"; }
troupe_netns_remote() { echo "ip netns exec tru-$TROUPE_NETNS_OWNER-{host}"; }
troupe_netns_bridge() { echo "tru${TROUPE_NETNS_OWNER}b"; }
# Interface names are at most 15 characters: "tru" + a pid (7 digits at most) + "v" + I + "a" fits for I < 1000.
troupe_netns_link() { echo "tru${TROUPE_NETNS_OWNER}v$1a"; }

# troupe_netns_remove_owned OWNER_REGEX: stops the processes in the namespaces of the owners that match,
# then removes those namespaces (which takes the veth ends inside, and their peers) and the links left
troupe_netns_remove_owned() {
  local re="$1" name pid
  for name in $(ip netns list 2> /dev/null | awk '{print $1}'); do
    [[ "$name" =~ ^tru-([0-9]+)- ]] && [[ "${BASH_REMATCH[1]}" =~ ^($re)$ ]] || continue
    for pid in $(ip netns pids "$name" 2> /dev/null); do kill -KILL "$pid" 2> /dev/null; done
    ip netns del "$name" 2> /dev/null
  done
  for name in $(ip -o link show 2> /dev/null | awk -F': ' '{print $2}' | sed 's/@.*//'); do
    [[ "$name" =~ ^tru([0-9]+)(b|v[0-9]+[ab])$ ]] && [[ "${BASH_REMATCH[1]}" =~ ^($re)$ ]] || continue
    ip link del "$name" 2> /dev/null
  done
  return 0
}

troupe_netns_destroy() {
  troupe_netns_remove_owned "$TROUPE_NETNS_OWNER"
  TROUPE_NETNS_HOSTS=0
  return 0
}

# Owners whose process is gone (this owner's own names count as a killed earlier run's: its pid reused).
troupe_netns_sweep() {
  local owners="" pid
  for pid in $( { ip netns list 2> /dev/null | awk '{print $1}' | sed -n 's/^tru-\([0-9][0-9]*\)-.*/\1/p'
                  ip -o link show 2> /dev/null | awk -F': ' '{print $2}' | sed -n 's/^tru\([0-9][0-9]*\)[bv].*/\1/p'
                } | sort -u); do
    if [ "$pid" = "$TROUPE_NETNS_OWNER" ] || [ ! -d "/proc/$pid" ]; then owners="${owners:+$owners|}$pid"; fi
  done
  [ -z "$owners" ] || troupe_netns_remove_owned "$owners"
}

troupe_netns_ip_int() { local IFS=.; set -- $1; echo $(( ($1 << 24) | ($2 << 16) | ($3 << 8) | $4 )); }

# troupe_netns_subnet_free NET [DEV]: 0 when no IPv4 address or route here (but DEV's) overlaps NET.0/24
troupe_netns_subnet_free() {
  local c p a len m
  c=$(troupe_netns_ip_int "$1.0")
  for p in $( { ip -o -4 addr show; ip -4 route show table all; } 2> /dev/null | { if [ -n "${2:-}" ]; then grep -vw -- "$2"; else cat; fi; } \
      | grep -oE '([0-9]{1,3}\.){3}[0-9]{1,3}(/[0-9]{1,2})?'); do
    a=$(troupe_netns_ip_int "${p%/*}"); len=32
    [[ "$p" == */* ]] && len="${p#*/}"
    m=$(( len < 24 ? len : 24 ))
    [ "$m" -gt 0 ] || continue
    (( (a >> (32 - m)) == (c >> (32 - m)) )) && return 1
  done
  return 0
}

troupe_netns_create() {
  local n="$1" i k idx net ns outside inside br
  br="$(troupe_netns_bridge)"
  troupe_netns_sweep
  TROUPE_NETNS_NET=""
  # first the /24 the owner's pid names, then random ones; checked again once the bridge holds it,
  # since a run beside this one may have taken it in between
  for k in $(seq 0 63); do
    idx=$(( k == 0 ? TROUPE_NETNS_OWNER % 65536 : ((RANDOM << 1) ^ RANDOM) % 65536 ))
    net="10.$((idx >> 8)).$((idx & 255))"
    troupe_netns_subnet_free "$net" || continue
    ip link add "$br" type bridge || { troupe_netns_destroy; return 1; }
    if ip addr add "$net.1/24" dev "$br" && troupe_netns_subnet_free "$net" "$br"; then
      TROUPE_NETNS_NET="$net"
      break
    fi
    ip link del "$br" 2> /dev/null
  done
  if [ -z "$TROUPE_NETNS_NET" ]; then
    echo "netns: no free /24 in 10.0.0.0/8 for the bridge" >&2
    troupe_netns_destroy
    return 1
  fi
  ip link set "$br" up || { troupe_netns_destroy; return 1; }
  for i in $(seq 1 "$n"); do
    ns="$(troupe_netns_name "$i")"
    outside="$(troupe_netns_link "$i")"
    inside="${outside%a}b"
    if ! { ip netns add "$ns" && ip link add "$outside" type veth peer name "$inside" \
        && ip link set "$outside" master "$br" up && ip link set "$inside" netns "$ns" \
        && ip -n "$ns" addr add "$(troupe_netns_host "$i")/24" dev "$inside" \
        && ip -n "$ns" link set "$inside" up && ip -n "$ns" link set lo up; }; then
      troupe_netns_destroy
      return 1
    fi
    TROUPE_NETNS_HOSTS="$i"
  done
}

troupe_netns_cut() { ip link set "$(troupe_netns_link "$1")" down; }
troupe_netns_heal() { ip link set "$(troupe_netns_link "$1")" up; }
