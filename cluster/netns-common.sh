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
