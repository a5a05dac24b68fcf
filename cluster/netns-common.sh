# Shared names for netns-up / netns-down / run-multinode. Override PREFIX with FER_NETNS_PREFIX.
PREFIX="${FER_NETNS_PREFIX:-n}"
BRIDGE="fer-br0"
VETH="fer-v"            # root-namespace end of node i's veth pair: fer-v$i
PEER="fer-p"            # node end before it is renamed eth0
SUBNET_PREFIX="10.77.0"
HOSTS_TAG="# fer-netns"
STATE="/run/fer-netns.nodes"

die() { echo "$(basename "$0"): $*" >&2; exit 1; }
need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces)"; }
need_ip() {
    command -v ip >/dev/null && return
    echo "$(basename "$0"): installing iproute2" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q iproute2 >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q iproute2 >/dev/null; } \
        || die "cannot install iproute2"
}

# Link shaping (run-multinode --rate/--delay). Each node's link is shaped in both directions: on the
# node's eth0 (what it sends) and on the bridge-side veth fer-v$i (what it receives).
# check_rate R: "<N>mbit" or "<N>gbit", 1 mbit to 400 gbit.
check_rate() {
    [[ "$1" =~ ^([0-9]+)(mbit|gbit)$ ]] || die "--rate '$1': expected a number and mbit or gbit, e.g. 1gbit, 10gbit, 500mbit"
    local mbit=$(( 10#${BASH_REMATCH[1]} )); [[ ${BASH_REMATCH[2]} == gbit ]] && mbit=$(( mbit * 1000 ))
    (( mbit >= 1 && mbit <= 400000 )) || die "--rate '$1': must be between 1mbit and 400gbit"
}
# check_delay D: "<N>us" or "<N>ms", 1 us to 1000 ms (one-way, added to each link's egress).
check_delay() {
    [[ "$1" =~ ^([0-9]+)(us|ms)$ ]] || die "--delay '$1': expected a number and us or ms, e.g. 50us"
    local us=$(( 10#${BASH_REMATCH[1]} )); [[ ${BASH_REMATCH[2]} == ms ]] && us=$(( us * 1000 ))
    (( us >= 1 && us <= 1000000 )) || die "--delay '$1': must be between 1us and 1000ms"
}
# rate_bytes R: bytes per second of a checked rate.
rate_bytes() {
    [[ "$1" =~ ^([0-9]+)(mbit|gbit)$ ]]
    local m=125000; [[ ${BASH_REMATCH[2]} == gbit ]] && m=125000000
    echo $(( 10#${BASH_REMATCH[1]} * m ))
}
# have_netem: whether this kernel has the netem qdisc (tried on the bridge, which carries no shaping, then removed).
have_netem() {
    tc qdisc add dev "$BRIDGE" root netem delay 1us 2>/dev/null || return 1
    tc qdisc del dev "$BRIDGE" root 2>/dev/null || true
}
# shape_dev [NETNS] DEV RATE DELAY: a token bucket at RATE (burst 1 ms of the rate, at least 32 KiB:
# smaller bursts throttle every few packets, and on a loaded 2-core VM each throttle costs a wake-up
# that made a 1 MiB transfer 10x slower than the rate; queue up to 50 ms), under netem when DELAY is set.
shape_dev() {
    local ns="$1" dev="$2" rate="$3" delay="$4" tcx=(tc)
    [[ -n "$ns" ]] && tcx=(ip netns exec "$ns" tc)
    local burst=$(( $(rate_bytes "${rate:-1gbit}") / 1000 )); (( burst >= 32768 )) || burst=32768
    if [[ -n "$delay" ]]; then
        "${tcx[@]}" qdisc replace dev "$dev" root handle 1: netem delay "$delay" limit 100000
        [[ -z "$rate" ]] || "${tcx[@]}" qdisc add dev "$dev" parent 1:1 handle 10: tbf rate "$rate" burst "$burst" latency 50ms
    else
        "${tcx[@]}" qdisc replace dev "$dev" root tbf rate "$rate" burst "$burst" latency 50ms
    fi
}
# shape_nodes RATE DELAY: shape every node's link in both directions.
shape_nodes() {
    local node i
    for node in $(cat "$STATE"); do
        i="${node#"$PREFIX"}"
        shape_dev "" "$VETH$i" "$1" "$2" || die "tc failed on $VETH$i"
        shape_dev "$node" eth0 "$1" "$2" || die "tc failed on $node:eth0"
    done
}
