#!/usr/bin/env bash
# lab.sh -- baton's network-namespace lab: the one place where real service addresses move.
# Tests, benchmarks and demos all build their topology with this script.
#
#     ns ${P}h1  NET.1  --.
#     ns ${P}h2  NET.2  --+-- bridge br0 in ns ${P}sw   (veth eth0 in the host <-> sw-hK in sw)
#     ...                 |
#     ns ${P}hN  NET.N  --+
#     ns ${P}c   NET.250--'   the client
#
# With -k every host also gets eth1 on a second bridge br1 (the "cluster network", NET2.K/24,
# NET2 default 10.79.0): take-over daemons talk over it, so `cut` can separate a host from the
# other hosts completely while the client still reaches it over br0 (bridge port isolation alone
# cannot cut one host from two others that still talk to each other).
#
# NET defaults to 10.78.0 (a /24 that exists only inside these namespaces); no namespace has a
# default route, so nothing leaves this private L2 segment. Every namespace the lab makes carries a
# marker (the alias "batonlab" on its loopback); the script never touches a namespace without it.
#
# Usage:
#   lab.sh up      -p PREFIX [-n N] [-s NET] [-6] [-k [-S NET2]]
#                                                    build the lab (N hosts, default 3; NET: first
#                                                    three octets of the /24, default 10.78.0 or
#                                                    $BATON_LAB_NET; -6: also ULA fd78::K/64, and
#                                                    with -k fd79::K/64 on eth1;
#                                                    -k: cluster network on eth1, NET2 default
#                                                    10.79.0 or $BATON_LAB_NET2)
#   lab.sh down    -p PREFIX                         kill every process inside the lab's namespaces
#                                                    (by PID, from `ip netns pids`) and delete them;
#                                                    idempotent
#   lab.sh crash   -p PREFIX hK [--port-only]        host crash: all of hK's bridge ports (br0 and,
#                                                    with -k, br1) go down at once, then every
#                                                    process in hK is SIGKILLed
#   lab.sh restore -p PREFIX hK                      bring hK's bridge ports back up (after crash)
#   lab.sh isolate -p PREFIX hK...                   cut these hosts from each other (bridge port
#                                                    isolation); the client still reaches them
#   lab.sh cut     -p PREFIX hK...                   (-k labs) cut these hosts' cluster links: each
#                                                    loses the other hosts, keeps the client
#   lab.sh split   -p PREFIX hA hB                   (-k labs) cut the cluster network between two
#                                                    hosts only (nftables in both namespaces): each
#                                                    still reaches every other host, e.g. a witness
#                                                    (IPv4 cluster addresses only)
#   lab.sh heal    -p PREFIX [hK...]                 undo isolate, cut and split (all hosts when none
#                                                    given)
#   lab.sh exec    -p PREFIX NODE cmd...             run cmd in NODE's namespace (h1.., c, sw)
#   lab.sh ip      -p PREFIX NODE                    print NODE's address (h1.., c, vip)
#   lab.sh cip     -p PREFIX hK                      print hK's cluster-network address (-k labs)
#   lab.sh cip6    -p PREFIX hK                      print hK's IPv6 cluster-network address
#                                                    (fd79::K; -k -6 labs)
#   lab.sh ns      -p PREFIX NODE                    print NODE's namespace name
#   lab.sh pids    -p PREFIX NODE                    print the PIDs running in NODE's namespace
#   lab.sh list    -p PREFIX                         print the lab's namespaces
# PREFIX is mandatory (letters, digits, '-', '_'; at most 12 characters) so that concurrent labs
# never share a namespace. Exit status: 0 ok, 1 failure, 2 usage error.
set -Eeuo pipefail
export LC_ALL=C

MARKER=batonlab
CLIENT_HOST=250           # client address NET.250
VIP_HOST=100              # suggested service address NET.100

usage() { sed -n '2,/^set -Eeuo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "lab.sh: $*" >&2; exit 1; }

[[ $# -ge 1 ]] || usage 2
CMD=$1; shift
[[ $CMD == -h || $CMD == --help || $CMD == help ]] && usage 0

PFX=""; N=3; NET=${BATON_LAB_NET:-10.78.0}; NET2=${BATON_LAB_NET2:-10.79.0}; V6=0; PORT_ONLY=0; CLUSTER=0
ARGS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    -p) PFX=${2:-}; shift 2 ;;
    -n) N=${2:-}; shift 2 ;;
    -s) NET=${2:-}; shift 2 ;;
    -6) V6=1; shift ;;
    -k) CLUSTER=1; shift ;;
    -S) NET2=${2:-}; shift 2 ;;
    --port-only) PORT_ONLY=1; shift ;;
    --) shift; ARGS+=("$@"); break ;;
    *) ARGS+=("$@"); break ;;   # the first non-option starts the positional arguments
  esac
done

[[ $PFX =~ ^[A-Za-z0-9_-]{1,12}$ ]] || { echo "lab.sh: -p PREFIX is required ([A-Za-z0-9_-]{1,12})" >&2; exit 2; }
[[ $N =~ ^[1-9][0-9]?$ ]] || { echo "lab.sh: bad -n $N (1..99)" >&2; exit 2; }
[[ $NET =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || { echo "lab.sh: bad -s $NET (want A.B.C)" >&2; exit 2; }
[[ $NET2 =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ && $NET2 != "$NET" ]] || { echo "lab.sh: bad -S $NET2 (want A.B.C, not NET)" >&2; exit 2; }
[[ $EUID -eq 0 ]] || die "must run as root"

NS_SW=${PFX}sw; NS_C=${PFX}c

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"; }
ns_ours() { ns_exists "$1" && ip -n "$1" -d link show lo 2>/dev/null | grep -qx "    alias $MARKER"; }
# Every namespace of this lab that exists and carries the marker.
lab_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E -x -- "${PFX}(sw|c|h[0-9]+)" | while read -r ns; do
    if ns_ours "$ns"; then echo "$ns"; fi
  done
}
# node_ns NODE -> namespace name, only for a namespace of this lab.
node_ns() {
  local node=$1 ns
  case $node in
    sw|c) ns=${PFX}$node ;;
    h[1-9]|h[1-9][0-9]) ns=${PFX}$node ;;
    *) echo "lab.sh: unknown node '$node' (h1.., c, sw)" >&2; exit 2 ;;
  esac
  ns_ours "$ns" || die "namespace $ns is not part of lab '$PFX' (run lab.sh up first)"
  echo "$ns"
}
host_num() { [[ $1 =~ ^h([1-9][0-9]?)$ ]] || { echo "lab.sh: '$1' is not a host (h1..)" >&2; exit 2; }; echo "${BASH_REMATCH[1]}"; }

# kill_ns SIG NS: signal every process inside NS, by PID, verifying the PID still lives in NS.
kill_ns() {
  local sig=$1 ns=$2 p
  for p in $(ip netns pids "$ns" 2>/dev/null); do
    [[ $(ip netns identify "$p" 2>/dev/null) == "$ns" ]] && kill "-$sig" "$p" 2>/dev/null || true
  done
}
ns_empty() { [[ -z $(ip netns pids "$1" 2>/dev/null) ]]; }
wait_empty() {  # wait_empty NS TENTHS
  local i
  for (( i = 0; i < $2; i++ )); do ns_empty "$1" && return 0; sleep 0.1; done
  ns_empty "$1"
}

lab_down() {
  local ns nss
  nss=$(lab_namespaces)
  [[ -n $nss ]] || return 0
  for ns in $nss; do kill_ns TERM "$ns"; done
  for ns in $nss; do wait_empty "$ns" 20 || true; done
  for ns in $nss; do kill_ns KILL "$ns"; done
  for ns in $nss; do wait_empty "$ns" 30 || echo "lab.sh: warning: processes left in $ns" >&2; done
  for ns in $nss; do ip netns del "$ns" 2>/dev/null || echo "lab.sh: warning: could not delete $ns" >&2; done
}

MADE=()
mkns() {  # mkns NS: create a namespace with the marker, loopback up, IPv6 as requested
  ip netns add "$1"
  MADE+=("$1")
  ip -n "$1" link set lo alias "$MARKER"
  ip -n "$1" link set lo up
  if (( V6 )); then
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  else
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  fi
}

lab_up() {
  local ns k names=("$NS_SW" "$NS_C")
  for (( k = 1; k <= N; k++ )); do names+=("${PFX}h$k"); done
  for ns in "${names[@]}"; do
    if ns_exists "$ns"; then
      if ns_ours "$ns"; then die "lab '$PFX' is already up ($ns exists); run lab.sh down -p $PFX first"; fi
      die "namespace $ns exists and was not made by lab.sh -- refusing to touch it; pick another -p"
    fi
  done
  # On any failure, remove what was made so far (nothing runs in it yet).
  trap 'for ns in "${MADE[@]}"; do ip netns del "$ns" 2>/dev/null || true; done' ERR
  mkns "$NS_SW"
  # A plain learning bridge: no STP, no forward delay, no address.
  ip -n "$NS_SW" link add br0 type bridge stp_state 0 forward_delay 0
  ip -n "$NS_SW" link set br0 up
  attach() {  # attach NODE NS HOSTPART
    ip -n "$NS_SW" link add "sw-$1" type veth peer name eth0 netns "$2"
    ip -n "$NS_SW" link set "sw-$1" master br0 up
    ip -n "$2" addr add "$NET.$3/24" dev eth0
    if (( V6 )); then ip -n "$2" addr add "fd78::$3/64" dev eth0 nodad; fi
    ip -n "$2" link set eth0 up
  }
  mkns "$NS_C"; attach c "$NS_C" "$CLIENT_HOST"
  for (( k = 1; k <= N; k++ )); do mkns "${PFX}h$k"; attach "h$k" "${PFX}h$k" "$k"; done
  local want=$(( N + 1 )) i
  if (( CLUSTER )); then
    ip -n "$NS_SW" link add br1 type bridge stp_state 0 forward_delay 0
    ip -n "$NS_SW" link set br1 up
    for (( k = 1; k <= N; k++ )); do
      ip -n "$NS_SW" link add "cl-h$k" type veth peer name eth1 netns "${PFX}h$k"
      ip -n "$NS_SW" link set "cl-h$k" master br1 up
      ip -n "${PFX}h$k" addr add "$NET2.$k/24" dev eth1
      if (( V6 )); then ip -n "${PFX}h$k" addr add "fd79::$k/64" dev eth1 nodad; fi
      ip -n "${PFX}h$k" link set eth1 up
    done
    want=$(( want + N ))
  fi
  for (( i = 0; i < 50; i++ )); do
    [[ $(bridge -n "$NS_SW" link show | grep -c 'state forwarding') -ge $want ]] && break
    sleep 0.1
  done
  [[ $(bridge -n "$NS_SW" link show | grep -c 'state forwarding') -ge $want ]] || die "bridge ports not forwarding"
  trap - ERR
  echo "lab '$PFX' up: hosts ${PFX}h1..${PFX}h$N ($NET.1..$NET.$N), client ${PFX}c ($NET.$CLIENT_HOST), switch ${PFX}sw; suggested service address $NET.$VIP_HOST/24$( (( CLUSTER )) && echo "; cluster network $NET2.1..$NET2.$N on eth1")"
}

case $CMD in
  up) lab_up ;;
  down) lab_down ;;
  crash)
    [[ ${#ARGS[@]} -eq 1 ]] || usage 2
    host_num "${ARGS[0]}" >/dev/null
    ns=$(node_ns "${ARGS[0]}")
    # A power loss silences every link of the host at the same instant: one netlink batch for the
    # service port and (with -k) the cluster port, before anything is killed.
    batch="link set sw-${ARGS[0]} down"
    if ip -n "$NS_SW" link show "cl-${ARGS[0]}" >/dev/null 2>&1; then
      batch+=$'\n'"link set cl-${ARGS[0]} down"
    fi
    ip -n "$NS_SW" -batch - <<< "$batch"
    if (( ! PORT_ONLY )); then kill_ns KILL "$ns"; wait_empty "$ns" 30 || echo "lab.sh: warning: processes left in $ns" >&2; fi
    ;;
  restore)
    [[ ${#ARGS[@]} -eq 1 ]] || usage 2
    host_num "${ARGS[0]}" >/dev/null; node_ns "${ARGS[0]}" >/dev/null
    ip -n "$NS_SW" link set "sw-${ARGS[0]}" up
    if ip -n "$NS_SW" link show "cl-${ARGS[0]}" >/dev/null 2>&1; then ip -n "$NS_SW" link set "cl-${ARGS[0]}" up; fi
    ;;
  split)
    [[ ${#ARGS[@]} -eq 2 && ${ARGS[0]} != "${ARGS[1]}" ]] || usage 2
    a=${ARGS[0]} b=${ARGS[1]}
    for h in "$a" "$b"; do host_num "$h" >/dev/null; node_ns "$h" >/dev/null; done
    ip -n "$NS_SW" link show "cl-$a" >/dev/null 2>&1 || die "lab '$PFX' has no cluster network (up -k)"
    # In each of the two namespaces: drop cluster traffic to and from the other one. One table per
    # namespace (batonlab_split) holding the peers cut off from it; `heal` deletes it.
    for pair in "$a $b" "$b $a"; do
      read -r here there <<< "$pair"
      peer="$NET2.$(host_num "$there")"
      ip netns exec "$(node_ns "$here")" nft -f - <<EOF
table inet batonlab_split {
  set peers { type ipv4_addr; }
  chain in { type filter hook input priority -200; policy accept; ip saddr @peers drop; }
  chain out { type filter hook output priority -200; policy accept; ip daddr @peers drop; }
}
add element inet batonlab_split peers { $peer }
EOF
    done
    ;;
  isolate|heal|cut)
    hosts=("${ARGS[@]}")
    node_ns sw >/dev/null
    if [[ $CMD == heal && ${#hosts[@]} -eq 0 ]]; then
      mapfile -t hosts < <(ip -n "$NS_SW" -o link show | grep -o 'sw-h[0-9]*' | sort -u | sed 's/^sw-//')
    fi
    [[ ${#hosts[@]} -ge 1 ]] || usage 2
    for h in "${hosts[@]}"; do host_num "$h" >/dev/null; node_ns "$h" >/dev/null; done
    has_cluster() { ip -n "$NS_SW" link show "cl-$1" >/dev/null 2>&1; }
    for h in "${hosts[@]}"; do
      case $CMD in
        isolate) bridge -n "$NS_SW" link set dev "sw-$h" isolated on ;;
        cut) has_cluster "$h" || die "lab '$PFX' has no cluster network (up -k)"
             ip -n "$NS_SW" link set "cl-$h" down ;;
        heal) bridge -n "$NS_SW" link set dev "sw-$h" isolated off
              if has_cluster "$h"; then ip -n "$NS_SW" link set "cl-$h" up; fi
              ip netns exec "$(node_ns "$h")" nft delete table inet batonlab_split 2>/dev/null || true ;;
      esac
    done
    ;;
  cip)
    [[ ${#ARGS[@]} -eq 1 ]] || usage 2
    echo "$NET2.$(host_num "${ARGS[0]}")"
    ;;
  cip6)
    [[ ${#ARGS[@]} -eq 1 ]] || usage 2
    echo "fd79::$(host_num "${ARGS[0]}")"
    ;;
  exec)
    [[ ${#ARGS[@]} -ge 2 ]] || usage 2
    ns=$(node_ns "${ARGS[0]}")
    exec ip netns exec "$ns" "${ARGS[@]:1}"
    ;;
  ip)
    [[ ${#ARGS[@]} -eq 1 ]] || usage 2
    case ${ARGS[0]} in
      c) echo "$NET.$CLIENT_HOST" ;;
      vip) echo "$NET.$VIP_HOST" ;;
      *) echo "$NET.$(host_num "${ARGS[0]}")" ;;
    esac
    ;;
  ns) [[ ${#ARGS[@]} -eq 1 ]] || usage 2; node_ns "${ARGS[0]}" ;;
  pids) [[ ${#ARGS[@]} -eq 1 ]] || usage 2; ip netns pids "$(node_ns "${ARGS[0]}")" ;;
  list) lab_namespaces ;;
  *) echo "lab.sh: unknown command '$CMD'" >&2; usage 2 ;;
esac
