#!/usr/bin/env bash
# A multi-host lab on one Linux machine: N hosts as network namespaces, each with its own
# hostname (a UTS namespace) and address, joined through veth pairs to a bridge that lives in a
# namespace of its own, every link shaped in both directions by a tbf qdisc. Optionally a real
# Slurm cluster across them (--slurm: one munged, one slurmctld, one slurmd per host; see
# Deploy/lab/slurm.sh). docs/LAB.md explains it and what it can carry.
#
#   Deploy/lab/lab.sh up N [--rate 1gbit|none] [--burst BYTES] [--latency 50ms] [--slurm]
#   Deploy/lab/lab.sh down
#   Deploy/lab/lab.sh status
#   Deploy/lab/lab.sh exec HOST COMMAND...     run COMMAND on HOST (its network and hostname)
#   Deploy/lab/lab.sh rate HOST RATE           reshape HOST's link (both directions; none: unshaped)
#   Deploy/lab/lab.sh counters [HOST...]       bytes each host's interface sent and received
#   Deploy/lab/lab.sh measure FROM TO [MB]     one TCP transfer FROM -> TO; prints Mbit/s
#   Deploy/lab/lab.sh check                    what this machine allows (root, netns, tbf, netem, fq)
#   Deploy/lab/lab.sh run N [options] -- COMMAND...
#                                              up, run COMMAND in the root namespace, then down
#                                              (also on error and Ctrl-C); COMMAND's status is kept
#
# Hosts are named ${LAB}0 ... ${LAB}N-1 (LAB, default "vaelab") with addresses 10.213.0.1 ...
# (LAB_SUBNET, default 10.213.0; at most 250 hosts); the bridge namespace is ${LAB}-br. The hosts
# see each other and nothing else: no route leaves the lab, and no address outside it is used.
# The names are added to /etc/hosts between marker lines (so that Slurm jobs and ZeroMQ resolve
# them) and removed by `down`. State lives in /run/${LAB}/. A second `up` after a crash first
# removes whatever the earlier one left.
set -euo pipefail
LAB=${LAB:-vaelab}
SUBNET=${LAB_SUBNET:-10.213.0}
STATE=/run/$LAB
HERE=$(cd "$(dirname "$0")" && pwd)
MARK="# $LAB lab (Deploy/lab/lab.sh)"

die() { echo "lab: $*" >&2; exit 1; }
usage() { sed -n '8,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# Ends with a letter, so that no lab's host names (${LAB}0, ...) begin with another lab's name.
[[ "$LAB" =~ ^[a-z]([a-z0-9]{0,6}[a-z])?$ ]] || die "LAB must be 1-8 lowercase letters or digits, beginning and ending with a letter (got '$LAB')"
[[ "$SUBNET" =~ ^10\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "LAB_SUBNET must look like 10.X.Y (a private /24 used only inside the lab), not '$SUBNET'"

host_ns() { echo "$LAB$1"; }
bridge_ns() { echo "$LAB-br"; }
address() { echo "$SUBNET.$(( $1 + 1 ))"; }

# The lab's hosts, from its state (in order), one per line.
hosts() { [ -f "$STATE/hosts" ] && cat "$STATE/hosts" || true; }

# Whether this process may create namespaces and shape links; prints why not.
can_make_namespaces() {
  if [ "$(id -u)" != 0 ]; then
    echo "the lab needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces; run it with sudo"
    return 1
  fi
  for tool in ip tc nsenter unshare; do
    command -v "$tool" >/dev/null || { echo "'$tool' is missing: apt-get install iproute2 util-linux"; return 1; }
  done
  local probe="$LAB-probe$$"
  if ! ip netns add "$probe" 2>/dev/null; then
    echo "'ip netns add' failed: this kernel or container does not allow network namespaces (CONFIG_NET_NS, CAP_SYS_ADMIN)"
    return 1
  fi
  local ok=0 why=""
  if ! ip -n "$probe" link add eth0 type veth peer name eth1 2>/dev/null; then
    why="this kernel has no veth pairs (CONFIG_VETH)"; ok=1
  elif ! ip -n "$probe" link add br0 type bridge 2>/dev/null; then
    why="this kernel has no bridges (CONFIG_BRIDGE)"; ok=1
  else
    ip -n "$probe" link set eth0 up 2>/dev/null
    if ! tc -n "$probe" qdisc add dev eth0 root tbf rate 1gbit burst 128k latency 50ms 2>/dev/null; then
      why="this kernel has no tbf qdisc (CONFIG_NET_SCH_TBF): links cannot be shaped"; ok=1
    fi
  fi
  ip netns del "$probe" 2>/dev/null || true
  [ "$ok" = 0 ] || echo "$why"
  return "$ok"
}

# Whether the kernel has a qdisc of this kind (probed in a throwaway namespace).
has_qdisc() {
  local probe="$LAB-q$$" ok=1
  ip netns add "$probe" 2>/dev/null || return 1
  ip -n "$probe" link add eth0 type veth peer name eth1 2>/dev/null && ip -n "$probe" link set eth0 up 2>/dev/null \
    && tc -n "$probe" qdisc add dev eth0 root "$@" 2>/dev/null && ok=0
  ip netns del "$probe" 2>/dev/null || true
  return "$ok"
}

cmd_check() {
  local why
  if why=$(can_make_namespaces); then echo "namespaces, veth, bridge, tbf: yes"; else echo "no: $why"; return 1; fi
  if has_qdisc netem delay 1ms; then echo "netem (delay, loss): yes"; else echo "netem (delay, loss): no (this kernel lacks CONFIG_NET_SCH_NETEM; the lab shapes rate only)"; fi
  if has_qdisc fq; then echo "fq: yes"; else echo "fq: no (CONFIG_NET_SCH_FQ)"; fi
  if has_qdisc fq_codel; then echo "fq_codel: yes"; else echo "fq_codel: no (CONFIG_NET_SCH_FQ_CODEL)"; fi
}

# tbf needs a burst of at least one timer tick's worth of bytes at the rate (and at least one MTU).
burst_for() {
  local rate=$1 bits
  [ "$rate" != none ] || { echo 0; return; }
  [[ "$rate" =~ ^[0-9]{1,9}[kmg]bit$ ]] || die "--rate must be a whole number with kbit, mbit or gbit (e.g. 1gbit, 200mbit), or none (unshaped), not '$rate'"
  case "$rate" in
    *gbit) bits=$(( ${rate%gbit} * 1000000000 )) ;;
    *mbit) bits=$(( ${rate%mbit} * 1000000 )) ;;
    *kbit) bits=$(( ${rate%kbit} * 1000 )) ;;
    *) die "--rate must be a whole number with kbit, mbit or gbit (e.g. 1gbit, 200mbit), or none (unshaped), not '$rate'" ;;
  esac
  [ "$bits" -gt 0 ] || die "--rate must be positive"
  # 2 ms at the rate, at least 64 KiB. Smaller buckets cost throughput (a 64 KB GSO packet must
  # fit, with room: one-off, 2026-11-29, at 1 Gbit/s 32-64 KB gave 0.78 Gbit/s, 125 KB 0.94, 500 KB 0.95); larger ones
  # let more of each burst of traffic pass at veth speed after an idle moment.
  local burst=$(( bits / 8 / 500 ))
  [ "$burst" -ge 65536 ] || burst=65536
  echo "$burst"
}

# "links R each way (...)" or "links unshaped", for messages.
link_text() {
  if [ "$1" = none ]; then echo "links unshaped"; else echo "links $1 each way (tbf burst $2 bytes, latency $3)"; fi
}

# Shapes both directions of host $1's link: its eth0 (host -> bridge) and the bridge's port
# (bridge -> host).
shape() {
  local i=$1 rate=$2 burst=$3 latency=$4
  if [ "$rate" = none ]; then
    tc -n "$(host_ns "$i")" qdisc del dev eth0 root 2>/dev/null || true
    tc -n "$(bridge_ns)" qdisc del dev "p$i" root 2>/dev/null || true
    return
  fi
  tc -n "$(host_ns "$i")" qdisc replace dev eth0 root tbf rate "$rate" burst "$burst" latency "$latency"
  tc -n "$(bridge_ns)" qdisc replace dev "p$i" root tbf rate "$rate" burst "$burst" latency "$latency"
}

# /etc/hosts is shared by every lab: each read-modify-write of it holds this lock, so that labs
# coming up and going down at the same time keep each other's lines.
HOSTS_LOCK=/run/lab-etc-hosts.lock

add_hosts_entries() {
  ( flock 9; printf '%s' "$1" >> /etc/hosts ) 9>>"$HOSTS_LOCK"
}

remove_hosts_entries() {
  [ -w /etc/hosts ] || return 0
  (
    flock 9
    if grep -qF "$MARK" /etc/hosts; then
      local kept
      kept=$(grep -vF "$MARK" /etc/hosts)
      printf '%s\n' "$kept" > /etc/hosts
    fi
  ) 9>>"$HOSTS_LOCK"
}

cmd_down() {
  [ "$(id -u)" = 0 ] || die "the lab needs root to remove its namespaces; run it with sudo"
  if [ -x "$HERE/slurm.sh" ] && [ -d "$STATE/slurm" ]; then LAB=$LAB "$HERE/slurm.sh" stop || true; fi
  # Every process still inside a lab namespace (left by a crashed run) is killed first.
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$LAB([0-9]+|-br)$" || true); do
    local pids
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  if [ -d "$STATE/uts" ]; then
    for f in "$STATE"/uts/*; do [ -e "$f" ] || continue; umount "$f" 2>/dev/null || true; done
  fi
  rm -rf "$STATE"
  remove_hosts_entries
}

cmd_up() {
  local n="" rate=1gbit burst="" latency=50ms slurm=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --rate) [ $# -ge 2 ] || die "--rate needs a value (e.g. 1gbit)"; rate=$2; shift 2 ;;
      --rate=*) rate=${1#--rate=}; shift ;;
      --burst) [ $# -ge 2 ] || die "--burst needs a value (bytes)"; burst=$2; shift 2 ;;
      --latency) [ $# -ge 2 ] || die "--latency needs a value (e.g. 50ms)"; latency=$2; shift 2 ;;
      --slurm) slurm=1; shift ;;
      -h|--help) usage ;;
      -*) die "unknown option '$1' (see: $0 --help)" ;;
      *) [ -z "$n" ] || die "one host count, not '$n' and '$1'"; n=$1; shift ;;
    esac
  done
  [[ "$n" =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 250 ] || die "usage: $0 up N [--rate R] [--slurm]   (N hosts, 1 to 250)"
  local default_burst
  default_burst=$(burst_for "$rate")  # also checks the rate
  [ -n "$burst" ] || burst=$default_burst
  [[ "$burst" =~ ^[0-9]{1,10}$ ]] || die "--burst must be a number of bytes, not '$burst'"
  [[ "$latency" =~ ^[0-9]{1,6}(us|ms|s)$ ]] || die "--latency must be a time such as 50ms, not '$latency'"
  local why
  why=$(can_make_namespaces) || die "$why"
  if [ "$slurm" = 1 ]; then
    local tool
    for tool in slurmd slurmctld sbatch srun munged mungekey; do
      command -v "$tool" >/dev/null || die "--slurm needs '$tool': apt-get install slurmd slurmctld slurm-client munge"
    done
  fi
  if [ -d "$STATE" ] || ip netns list | grep -qE "^$LAB([0-9]+|-br)( |$)"; then
    echo "lab: removing what an earlier lab '$LAB' left" >&2
    cmd_down
  fi
  # From here on, a failure or Ctrl-C removes what was made.
  trap 'status=$?; trap - EXIT INT TERM; echo "lab: up failed; removing what was made" >&2; cmd_down; exit $(( status ? status : 1 ))' EXIT
  trap 'exit 130' INT TERM
  mkdir -p "$STATE/uts"
  echo "$rate $burst $latency" > "$STATE/link"
  ip netns add "$(bridge_ns)"
  ip -n "$(bridge_ns)" link add br0 type bridge
  ip -n "$(bridge_ns)" link set br0 up
  ip -n "$(bridge_ns)" link set lo up
  local entries=""
  for i in $(seq 0 $(( n - 1 ))); do
    local h
    h=$(host_ns "$i")
    ip netns add "$h"
    ip link add eth0 netns "$h" type veth peer name "p$i" netns "$(bridge_ns)"
    ip -n "$(bridge_ns)" link set "p$i" master br0 up
    ip -n "$h" addr add "$(address "$i")/24" dev eth0
    ip -n "$h" link set eth0 up
    ip -n "$h" link set lo up
    shape "$i" "$rate" "$burst" "$latency"
    touch "$STATE/uts/$h"
    unshare --uts="$STATE/uts/$h" hostname "$h"
    echo "$h" >> "$STATE/hosts"
    entries+="$(address "$i") $h $MARK"$'\n'
  done
  add_hosts_entries "$entries"
  if [ "$slurm" = 1 ]; then LAB=$LAB "$HERE/slurm.sh" start; fi
  trap - EXIT INT TERM
  echo "lab '$LAB': $n host(s) $(hosts | tr '\n' ' ')at $SUBNET.1-$(( n )), $(link_text "$rate" "$burst" "$latency")$([ "$slurm" = 1 ] && echo ', Slurm up')"
}

# Runs a command on a host: in its network and UTS namespaces (not `ip netns exec`, which
# remounts /sys and hides the cgroup hierarchy that slurmd needs).
cmd_exec() {
  local h=${1:?usage: $0 exec HOST COMMAND...}
  shift
  [ $# -gt 0 ] || die "usage: $0 exec HOST COMMAND..."
  [ -e "/run/netns/$h" ] && [ -e "$STATE/uts/$h" ] || die "no lab host '$h' (hosts: $(hosts | tr '\n' ' '))"
  exec nsenter --net="/run/netns/$h" --uts="$STATE/uts/$h" "$@"
}

cmd_rate() {
  local h=${1:?usage: $0 rate HOST RATE} rate=${2:?usage: $0 rate HOST RATE}
  local i=${h#"$LAB"}
  [[ "$i" =~ ^[0-9]+$ ]] && [ -e "/run/netns/$h" ] || die "no lab host '$h'"
  local latency
  latency=$(awk '{print $3}' "$STATE/link")
  local burst
  burst=$(burst_for "$rate")
  shape "$i" "$rate" "$burst" "$latency"
  echo "$rate $burst $latency" > "$STATE/link"
}

# "HOST TX_BYTES RX_BYTES" for each host's eth0.
cmd_counters() {
  local list
  if [ $# -gt 0 ]; then list="$*"; else list=$(hosts); fi
  for h in $list; do
    [ -e "/run/netns/$h" ] || die "no lab host '$h'"
    ip -n "$h" -s -j link show dev eth0 | python3 -c 'import json, sys
s = json.load(sys.stdin)[0]["stats64"]
print(sys.argv[1], s["tx"]["bytes"], s["rx"]["bytes"])' "$h"
  done
}

# One TCP transfer of MB megabytes from FROM to TO; prints "BYTES SECONDS MBIT_PER_S".
cmd_measure() {
  local from=${1:?usage: $0 measure FROM TO [MB]} to=${2:?usage: $0 measure FROM TO [MB]} mb=${3:-50}
  local port=5201 addr
  addr=$(awk -v h="$to" '$2 == h && index($0, "'"$MARK"'") {print $1}' /etc/hosts | head -1)
  [ -n "$addr" ] || die "no lab host '$to'"
  local ready
  ready=$(mktemp)
  nsenter --net="/run/netns/$to" python3 - "$addr" "$port" "$ready" <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(60)
open(sys.argv[3], "w").write("ready")
c, _ = s.accept(); c.settimeout(120)
while c.recv(1 << 20): pass
PY
  local server=$!
  for _ in $(seq 1 600); do [ -s "$ready" ] || ! kill -0 "$server" 2>/dev/null && break; sleep 0.05; done
  [ -s "$ready" ] || { kill "$server" 2>/dev/null; rm -f "$ready"; die "the receiver on $to did not start listening within 30 s"; }
  rm -f "$ready"
  nsenter --net="/run/netns/$from" python3 - "$addr" "$port" "$mb" <<'PY'
import socket, sys, time
n = int(float(sys.argv[3]) * 1e6); block = b"\0" * (1 << 20)
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
start = time.monotonic(); sent = 0
while sent < n:
    sent += c.send(block[: min(len(block), n - sent)])
c.shutdown(socket.SHUT_WR); c.recv(1)  # returns when the receiver has read everything and closed
seconds = time.monotonic() - start
print(f"{sent} {seconds:.4f} {sent * 8 / seconds / 1e6:.1f}")
PY
  wait "$server"
}

cmd_status() {
  if [ ! -f "$STATE/hosts" ]; then echo "lab '$LAB': down"; return 0; fi
  echo "lab '$LAB': $(hosts | wc -l) host(s), $(link_text $(cat "$STATE/link"))"
  for h in $(hosts); do
    echo "  $h $(ip -n "$h" -4 -br addr show dev eth0 | awk '{print $3}') $(tc -n "$h" qdisc show dev eth0 | head -1)"
  done
  [ ! -d "$STATE/slurm" ] || echo "  slurm: $STATE/slurm (SLURM_CONF=$STATE/slurm/slurm.conf)"
}

cmd_run() {
  local up_args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do up_args+=("$1"); shift; done
  [ "${1:-}" = -- ] && [ $# -ge 2 ] || die "usage: $0 run N [options] -- COMMAND..."
  shift
  cmd_up "${up_args[@]}"
  trap 'trap - EXIT INT TERM; cmd_down' EXIT
  trap 'exit 130' INT TERM
  local status=0
  LAB=$LAB LAB_STATE=$STATE "$@" || status=$?
  exit "$status"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down ;;
  status) cmd_status ;;
  exec) shift; cmd_exec "$@" ;;
  rate) shift; cmd_rate "$@" ;;
  counters) shift; cmd_counters "$@" ;;
  measure) shift; cmd_measure "$@" ;;
  check) cmd_check ;;
  run) shift; cmd_run "$@" ;;
  -h|--help|help) usage ;;
  *) usage ;;
esac
