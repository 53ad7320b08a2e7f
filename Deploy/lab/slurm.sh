#!/usr/bin/env bash
# A real Slurm cluster across the hosts of a lab made by Deploy/lab/lab.sh: a munged of the lab's
# own, one slurmctld on host 0, one slurmd on every host. Everything it makes lives under
# /run/$LAB/ (munge key and socket, slurm.conf, spool, state, logs, pids), so labs never share
# anything with each other or with the system's /etc/slurm, /etc/munge or munged. docs/LAB.md,
# "Slurm in the lab", explains the configuration.
#
#   LAB=NAME Deploy/lab/slurm.sh start   after `lab.sh up` (which calls it for --slurm); waits until
#                                        every node is idle
#   LAB=NAME Deploy/lab/slurm.sh stop    kills the daemons (and any job step left); idempotent
#
# Clients run on a lab host, with the lab's slurm.conf:
#   LAB=NAME SLURM_CONF=/run/NAME/slurm/slurm.conf Deploy/lab/lab.sh exec NAME0 sinfo
set -euo pipefail
LAB=${LAB:-vaelab}
STATE=/run/$LAB
DIR=$STATE/slurm
MUNGE=$STATE/munge
CONF=$DIR/slurm.conf
# Seconds `start` waits for every node to be idle.
START_TIMEOUT=${SLURM_START_TIMEOUT:-90}

die() { echo "slurm: $*" >&2; exit 1; }

# The lab's hosts, in order (host 0 first).
hosts() { [ -f "$STATE/hosts" ] && cat "$STATE/hosts" || true; }

# Runs a command on lab host $1 (its network and hostname namespaces).
on() { local h=$1; shift; nsenter --net="/run/netns/$h" --uts="$STATE/uts/$h" "$@"; }

# The address lab.sh gave host $1 (from the /etc/hosts lines it added).
address_of() { awk -v h="$1" '$2 == h && /Deploy\/lab\/lab.sh/ {print $1; exit}' /etc/hosts; }

# Starts a daemon in the background on lab host $2 and records its pid ("NAME PID" in
# $DIR/pids; nsenter execs the daemon, so the pid is the daemon's).
launch() {
  local name=$1 h=$2; shift 2
  nsenter --net="/run/netns/$h" --uts="$STATE/uts/$h" "$@" </dev/null >>"$DIR/log/$name.stdout" 2>&1 &
  echo "$name $!" >> "$DIR/pids"
}

log_tails() {
  local f
  for f in "$MUNGE/munged.log" "$DIR"/log/*.log "$DIR"/log/*.stdout; do
    [ -s "$f" ] || continue
    echo "--- $f (last lines)" >&2
    tail -n 15 "$f" >&2
  done
}

write_conf() {
  local first=$1 n=0 h
  {
    cat <<EOF
# Made by Deploy/lab/slurm.sh for lab '$LAB'; removed by \`lab.sh down\`.
ClusterName=$LAB
SlurmctldHost=$first($(address_of "$first"))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE/munge.socket
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$DIR/state
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdSpoolDir=$DIR/spool/%n
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmdLogFile=$DIR/log/slurmd-%n.log
# Every node runs on the same two shared cores: no cgroups, no affinity, no accounting.
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SlurmdParameters=config_overrides
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=300
EOF
    for h in $(hosts); do
      echo "NodeName=$h NodeAddr=$(address_of "$h") CPUs=1 State=UNKNOWN"
      n=$(( n + 1 ))
    done
    echo "PartitionName=lab Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
  } > "$CONF"
}

# How many of the nodes Slurm reports idle.
idle_nodes() { SLURM_CONF=$CONF on "$1" sinfo --noheader --Node --format='%N %T' 2>/dev/null | awk '$2 == "idle"' | wc -l; }

cmd_start() {
  [ "$(id -u)" = 0 ] || die "needs root (it runs daemons in the lab's namespaces)"
  local tool
  for tool in slurmd slurmctld sbatch srun scontrol sinfo munged mungekey; do
    command -v "$tool" >/dev/null || die "'$tool' is missing: apt-get install slurmd slurmctld slurm-client munge"
  done
  local all
  all=$(hosts)
  [ -n "$all" ] || die "no lab '$LAB' is up (bring it up first: LAB=$LAB Deploy/lab/lab.sh up N --slurm)"
  [ ! -s "$DIR/pids" ] || die "Slurm is already running in lab '$LAB' (LAB=$LAB $0 stop first)"
  local first n
  first=$(head -1 <<< "$all")
  n=$(wc -l <<< "$all")
  local began=$SECONDS
  # /run/$LAB must not be writable by others (munged checks the directories above its files).
  chmod 0755 "$STATE"
  mkdir -p "$DIR/log" "$DIR/state" "$MUNGE"
  local h
  for h in $all; do mkdir -p "$DIR/spool/$h"; done
  chmod 0755 "$MUNGE"   # the socket's directory must be searchable by every user
  rm -f "$DIR/pids"
  # A key of this lab's own, readable by root only.
  mungekey --create --force --keyfile="$MUNGE/munge.key" >/dev/null
  chmod 0400 "$MUNGE/munge.key"
  write_conf "$first"

  # munged in host 0's namespaces, so that `lab.sh down` kills it even if `stop` never ran; its
  # socket is a file, which every host reaches.
  launch munged "$first" munged --foreground --socket="$MUNGE/munge.socket" --key-file="$MUNGE/munge.key" \
    --pid-file="$MUNGE/munged.pid" --log-file="$MUNGE/munged.log" --seed-file="$MUNGE/munged.seed"
  local i
  for i in $(seq 1 100); do [ -S "$MUNGE/munge.socket" ] && break; sleep 0.1; done
  if [ ! -S "$MUNGE/munge.socket" ]; then log_tails; die "munged did not make its socket $MUNGE/munge.socket within 10 s"; fi

  # nsenter, not `ip netns exec`: that remounts /sys and hides the cgroup hierarchy, and slurmd
  # then aborts.
  launch slurmctld "$first" slurmctld -D -f "$CONF"
  for h in $all; do
    launch "slurmd-$h" "$h" slurmd -D -N "$h" -f "$CONF"
  done

  local deadline=$(( SECONDS + START_TIMEOUT )) idle=0
  while [ "$SECONDS" -lt "$deadline" ]; do
    idle=$(idle_nodes "$first")
    [ "$idle" -lt "$n" ] || break
    # A daemon that died will not come back: no point waiting for it.
    local name pid dead=""
    while read -r name pid; do kill -0 "$pid" 2>/dev/null || dead+=" $name"; done < "$DIR/pids"
    if [ -n "$dead" ]; then log_tails; die "Slurm daemon(s) exited during start-up:$dead (logs in $DIR/log)"; fi
    sleep 0.5
  done
  if [ "$idle" -lt "$n" ]; then
    SLURM_CONF=$CONF on "$first" sinfo --Node >&2 || true
    log_tails
    die "only $idle of $n node(s) idle after ${START_TIMEOUT} s (logs in $DIR/log)"
  fi
  echo "slurm: $n node(s) idle in lab '$LAB' after $(( SECONDS - began )) s; SLURM_CONF=$CONF"
}

# The pids of the processes below $1 (children, grandchildren, ...), deepest last.
descendants() {
  local pid=$1 child depth=${2:-0}
  [ "$depth" -lt 16 ] || return 0
  for child in $(pgrep -P "$pid" 2>/dev/null || true); do
    echo "$child"
    descendants "$child" $(( depth + 1 ))
  done
}

cmd_stop() {
  [ -d "$DIR" ] || return 0
  local pids=""
  if [ -f "$DIR/pids" ]; then pids=$(awk '{print $2}' "$DIR/pids"); fi
  # Job steps left running: every slurmstepd in the lab's namespaces, with its tasks.
  local h p steps=""
  for h in $(hosts); do
    [ -e "/run/netns/$h" ] || continue
    for p in $(ip netns pids "$h" 2>/dev/null || true); do
      [ "$(cat "/proc/$p/comm" 2>/dev/null)" = slurmstepd ] && steps+=" $p $(descendants "$p" | tr '\n' ' ')"
    done
  done
  # The daemons first get SIGTERM (slurmctld saves its state), then SIGKILL after 5 s.
  local alive
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $steps; do kill -KILL "$p" 2>/dev/null || true; done
  local i
  for i in $(seq 1 50); do
    alive=""
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive+=" $p"; done
    [ -n "$alive" ] || break
    sleep 0.1
  done
  for p in $alive; do kill -KILL "$p" 2>/dev/null || true; done
  rm -f "$DIR/pids"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  *) sed -n '8,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
