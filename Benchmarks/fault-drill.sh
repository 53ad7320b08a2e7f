#!/usr/bin/env bash
# The fault drill of docs/RELIABILITY.md, on the full MNIST with release builds: a coordinator and
# 3 workers; a worker is killed with SIGKILL mid-epoch, a new worker joins, a worker is stopped
# with SIGSTOP for 4 s (longer than the 1.5 s step deadline and the 2 s heartbeat timeout) and
# continued, and the coordinator is killed with SIGKILL and restarted with --resume. Then it
# prints the timeline (from events.jsonl and this script's own log), the recovery times, the
# per-epoch coverage and the final test -ELBO against an undisturbed run, and a verdict: PASS when
# every epoch used each of the 60,000 samples exactly once, the run took as many steps as the
# undisturbed one, and its final test -ELBO is within 1 nat of the undisturbed run's (the target
# of docs/RELIABILITY.md); otherwise FAIL and status 1.
#
# Two places:
#   - on this host (the default): every process here, over ipc; the undisturbed run with
#     --local-workers 3.
#   - --lab (root): across the hosts of the lab (Deploy/lab/lab.sh, docs/LAB.md): 5 hosts with
#     links of LAB_RATE (1gbit) each way; the coordinator on host 0, bound to host 0's lab address
#     over tcp with --insecure (as Benchmarks/lab-scaling.sh does), workers w1, w2, w3 on hosts 1,
#     2, 3 and the newcomer w4 on host 4, each started through `lab.sh exec`, connecting to host 0
#     by name; the restarted coordinator on host 0 again. The undisturbed run has the same
#     placement (its workers c1-c3 on hosts 1-3). `lab.sh exec` runs nsenter, which does not fork
#     (no PID namespace), so each process started through it keeps the pid the script gets; the
#     script checks that the pid is the program's itself (/proc/PID/exe) before it counts on it,
#     so that the signals reach vae-worker and vae-coordinator, not a wrapper. The lab is brought
#     down on exit, error, Ctrl-C and SIGTERM. When the coordinator offers --data-plane, the drill
#     uses its default; when vae-worker offers --advertise, each worker advertises its host's lab
#     address (with --insecure, no CURVE in the drill).
#
# Usage: Benchmarks/fault-drill.sh           (OUT=dir to keep the runs; EPOCHS=3 by default)
#        sudo Benchmarks/fault-drill.sh --lab (also LAB=vaedrill, LAB_RATE=1gbit)
# Waits are bounded: WAIT_LIMIT (1800 s) for each checkpoint the drill waits for and for each run.
# Stored: its standard output, with a first line naming the commit, as
#   Benchmarks/results/fault-drill-<time>.txt or fault-drill-lab-<time>.txt (the script writes it;
#   machine-info.sh's JSON beside it as fault-drill[-lab]-<time>.machine.json).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=local
case "${1:-}" in
  --lab) mode=lab ;;
  "") ;;
  *) echo "usage: $0 [--lab]" >&2; exit 2 ;;
esac
if [ "$mode" = lab ] && [ "$(id -u)" != 0 ]; then
  echo "fault-drill: the lab needs root to create network namespaces; run it with sudo" >&2
  exit 1
fi
if [ -z "${FAULT_DRILL_STORE:-}" ]; then
  # Run again with the standard output through tee into the stored copy. (Not `exec > >(tee)`:
  # the cleanup's `wait` would then wait for tee, which waits for this script's output to end.)
  stored=Benchmarks/results/fault-drill$([ "$mode" = lab ] && echo -lab)-$(date -u +%Y%m%dT%H%M%SZ)
  mkdir -p Benchmarks/results
  dirty=$(git diff --quiet HEAD 2>/dev/null || echo " (with uncommitted changes)")
  echo "# Benchmarks/fault-drill.sh${1:+ $1} at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$dirty, $(date -u)" > "$stored.txt"
  Benchmarks/machine-info.sh > "$stored.machine.json"
  set +e
  FAULT_DRILL_STORE=1 "$0" "$@" | tee -a "$stored.txt"
  status=${PIPESTATUS[0]}
  echo "stored in $stored.txt" >&2
  exit "$status"
fi
EPOCHS=${EPOCHS:-3}
WAIT_LIMIT=${WAIT_LIMIT:-1800}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
swift build -c release >&2
bin=.build/release
# Whether `$bin/PROGRAM SUBCOMMAND --help` lists OPTION (the drill also runs older builds). grep -c
# reads the whole help: with grep -q and pipefail the writer's SIGPIPE would count as "no option".
has_option() { [ "$("$bin/$1" "$2" --help 2>&1 | grep -c -- "$3")" != 0 ]; }
common=(--data Data/mnist --epochs "$EPOCHS" --batch 128 --seed 7 --checkpoint-every 50)
faults=(--heartbeat-timeout 2 --step-deadline 1.5 --max-strikes 3)
pids=()
coordinator=""
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$mode" = lab ]; then Deploy/lab/lab.sh down >&2 || true; fi
}
trap 'trap - EXIT INT TERM; cleanup' EXIT
trap 'exit 130' INT TERM
die() { echo "fault-drill: $*" >&2; exit 1; }
now() { date +%s.%N; }
log() { echo "{\"time\": $(now), \"action\": \"$1\"}" >> "$out/drill.jsonl"; echo "$1" >&2; }
step_of() {  # the step of the newest checkpoint in $1, or -1
  python3 - "$1" <<'PY'
import json, struct, sys
try:
    b = open(sys.argv[1] + "/checkpoint.safetensors", "rb").read(1 << 20)
    n = struct.unpack("<Q", b[:8])[0]
    print(json.loads(b[8:8 + n])["__metadata__"]["step"])
except Exception:
    print(-1)
PY
}
# Waits until the checkpoint in $2 is of step $1 or later; gives up when the coordinator has ended
# or after WAIT_LIMIT seconds.
wait_step() {
  local deadline=$(( SECONDS + WAIT_LIMIT ))
  while [ "$(step_of "$2")" -lt "$1" ]; do
    kill -0 "$coordinator" 2>/dev/null || die "the coordinator ended before its step-$1 checkpoint (see $out/coordinator-*.log)"
    [ "$SECONDS" -lt "$deadline" ] || die "no checkpoint of step $1 within $WAIT_LIMIT s (see $out/coordinator-*.log)"
    sleep 0.05
  done
}
# Waits for process $1 (what: $2) to end, at most WAIT_LIMIT seconds (then SIGKILL); returns its
# status.
wait_bounded() {
  local deadline=$(( SECONDS + WAIT_LIMIT ))
  while kill -0 "$1" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "fault-drill: $2 still running after $WAIT_LIMIT s; killing it" >&2
      kill -KILL "$1" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  wait "$1"
}
# Checks that pid $1 is program $2 itself (not a shell or nsenter on the way to it), so that a
# signal sent to $1 reaches $2: through `lab.sh exec`, bash execs nsenter, which execs the program.
check_pid() {
  local i
  for i in $(seq 1 100); do
    case "$(readlink "/proc/$1/exe" 2>/dev/null)" in */"$2") return 0 ;; esac
    sleep 0.05
  done
  die "process $1 is $(readlink "/proc/$1/exe" 2>/dev/null || echo 'gone'), not $2: a signal sent to it would not reach $2"
}

if [ "$mode" = lab ]; then
  export LAB=${LAB:-vaedrill}
  LAB_RATE=${LAB_RATE:-1gbit}
  subnet=${LAB_SUBNET:-10.213.0}
  Deploy/lab/lab.sh up 5 --rate "$LAB_RATE" >&2
  host_address() { echo "$subnet.$(( $1 + 1 ))"; }
  # The command prefix that runs a program on lab host $1 (set in the array `on`).
  on_host() { on=(Deploy/lab/lab.sh exec "$LAB$1"); }
  # The coordinator's bind address (port $1) and the endpoint the workers connect to.
  bind_at() { echo "tcp://$(host_address 0):$1"; }
  endpoint_at() { echo "tcp://${LAB}0:$1"; }
  coordinator_security=(--insecure)
  worker_options() {  # the options for a worker on host $1
    if has_option vae-worker join --advertise; then echo --advertise "$(host_address "$1")" --insecure; fi
  }
else
  on_host() { on=(); }
  bind_at() { echo "ipc://$out/$2.sock"; }
  endpoint_at() { echo "ipc://$out/$2.sock"; }
  coordinator_security=()
  worker_options() { :; }
fi
if has_option vae-coordinator start --data-plane; then
  data_plane="the coordinator's default, $("$bin/vae-coordinator" start --help 2>&1 | grep -A8 -- '--data-plane <' | tr '\n' ' ' | grep -o 'default: [a-z]*' | head -1 | sed 's/default: //' || true) (no --data-plane given)"
else
  data_plane="star (this coordinator has no --data-plane)"
fi
# Starts worker $1 on host $2 (stdout to $out/$1.out, stderr to workers.log); its pid is in $!.
worker() {
  on_host "$2"
  # shellcheck disable=SC2046  # worker_options prints words
  "${on[@]}" "$bin/vae-worker" join --coordinator "$endpoint" --name "$1" --rejoin-after 1.5 $(worker_options "$2") \
    > "$out/$1.out" 2>>"$out/workers.log" &
  local pid=$!
  pids+=("$pid")
  check_pid "$pid" vae-worker
}
# Starts a coordinator on host 0 (log to $1, more options after it); its pid is in $coordinator.
start_coordinator() {
  local log_file=$1
  shift
  on_host 0
  "${on[@]}" "$bin/vae-coordinator" start "${common[@]}" "${coordinator_security[@]}" "$@" > "$log_file" 2>&1 &
  coordinator=$!
  pids+=("$coordinator")
  check_pid "$coordinator" vae-coordinator
}

# Undisturbed reference.
if [ "$mode" = lab ]; then
  endpoint=$(endpoint_at 5555 calm)
  start_coordinator "$out/calm.log" --workers 3 --bind "$(bind_at 5555 calm)" --out "$out/calm"
  calm_workers=()
  for i in 1 2 3; do worker "c$i" "$i"; calm_workers+=("$!"); done
  wait_bounded "$coordinator" "the undisturbed coordinator" || die "the undisturbed run failed (see $out/calm.log)"
  for p in "${calm_workers[@]}"; do wait_bounded "$p" "an undisturbed run's worker" || true; done
else
  $bin/vae-coordinator start "${common[@]}" --local-workers 3 --bind "ipc://$out/calm.sock" --out "$out/calm" >/dev/null
fi

# The drill.
rm -f "$out/drill.jsonl"
endpoint=$(endpoint_at 5556 drill)
start_coordinator "$out/coordinator-1.log" "${faults[@]}" --workers 3 --coverage-log --bind "$(bind_at 5556 drill)" --out "$out/drill"
worker w1 1; w1=$!; worker w2 2; w2=$!; worker w3 3
log "started coordinator and w1, w2, w3"
wait_step 300 "$out/drill"
kill -KILL "$w1"; log "SIGKILL w1"
worker w4 4; log "started w4"
wait_step 700 "$out/drill"
kill -STOP "$w2"; log "SIGSTOP w2"
sleep 4
kill -CONT "$w2"; log "SIGCONT w2"
wait_step 1100 "$out/drill"
kill -KILL "$coordinator"; log "SIGKILL coordinator"
wait "$coordinator" 2>/dev/null || true
start_coordinator "$out/coordinator-2.log" "${faults[@]}" --workers 2 --coverage-log --bind "$(bind_at 5556 drill)" --resume "$out/drill"
log "restarted coordinator with --resume"
wait_bounded "$coordinator" "the resumed coordinator" || die "the resumed coordinator failed (see $out/coordinator-2.log)"
log "coordinator exited"

if [ "$mode" = lab ]; then
  echo "lab '$LAB': 5 hosts, links $LAB_RATE each way; coordinator on ${LAB}0 (bound to $(bind_at 5556 drill), --insecure); w1, w2, w3 on ${LAB}1-3, w4 on ${LAB}4; the undisturbed run on the same hosts"
else
  echo "one host: coordinator and workers over ipc; the undisturbed run with --local-workers 3"
fi
if has_option vae-worker join --advertise; then
  ring_workers="each worker advertises a ring endpoint"
else
  ring_workers="this vae-worker advertises no ring endpoint (it has no --advertise), so the star carries every step"
fi
echo "data plane: $data_plane; $ring_workers"
# What the ring did (events.jsonl, summary.json's ring_steps where the coordinator writes it).
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
for run in ("calm", "drill"):
    events = [json.loads(l) for l in open(f"{out}/{run}/events.jsonl")] if os.path.exists(f"{out}/{run}/events.jsonl") else []
    count = lambda name: sum(e["event"] == name for e in events)
    summary = json.load(open(f"{out}/{run}/summary.json"))
    ring_steps = summary.get("ring_steps")
    steps = ("" if ring_steps is None else f"{ring_steps} of {summary['steps']} steps by the ring, ")
    print(f"{'undisturbed' if run == 'calm' else 'drill'} run: {steps}{count('group_formed')} ring group(s) formed, "
          f"{count('ring_disabled')} time(s) the ring was turned off for a membership")
PY
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
actions = [json.loads(l) for l in open(f"{out}/drill.jsonl")]
events = [json.loads(l) for l in open(f"{out}/drill/events.jsonl")]
t0 = actions[0]["time"]
timeline = sorted([(a["time"], "drill", a["action"]) for a in actions] +
                  [(e["time"], "coordinator", f'{e["event"]} at step {e["step"]}' +
                    "".join(f', {k}={v}' for k, v in sorted(e.items()) if k not in ("time", "event", "step")))
                   for e in events])
print("timeline (seconds from start):")
for t, who, what in timeline:
    print(f"  {t - t0:8.3f}  {who:11s}  {what}")
def first(pred, after):
    return next(t for t, who, what in timeline if t >= after and pred(who, what))
def act(name):
    return next(a["time"] for a in actions if a["action"] == name)
kill1 = act("SIGKILL w1")
lost1 = first(lambda w, x: x.startswith("worker_lost") and "w1" in x, kill1)
rec1 = first(lambda w, x: x.startswith("step_recovered"), kill1)
stop2 = act("SIGSTOP w2")
# The star re-issues the stalled part; the ring abandons the step and a new group computes it.
reissue2 = first(lambda w, x: x.startswith("part_reissued") or x.startswith("step_abandoned"), stop2)
rec2 = first(lambda w, x: x.startswith("step_recovered"), reissue2)
killc = act("SIGKILL coordinator")
restart = act("restarted coordinator with --resume")
joined = [t for t, w, x in timeline if t > restart and x.startswith("worker_joined")]
print(f"worker SIGKILL: declared dead after {lost1 - kill1:.2f} s, its step completed {rec1 - kill1:.2f} s after the kill")
print(f"worker SIGSTOP: part re-issued (star) or step started again (ring) after {reissue2 - stop2:.2f} s, the step completed {rec2 - stop2:.2f} s after the stop")
print(f"coordinator SIGKILL: restarted {restart - killc:.2f} s later; workers rejoined {joined[0] - restart:.2f} and {joined[1] - restart:.2f} s after the restart")
# Coverage: per step, the entries of the latest coordinator that ran it.
cov = [json.loads(l) for l in open(f"{out}/drill/coverage.jsonl")]
latest = {}
for c in cov:
    latest[c["step"]] = max(latest.get(c["step"], -1), c["start"])
counted = [c for c in cov if c["start"] == latest[c["step"]]]
redone = sorted({c["step"] for c in cov if c["start"] != latest[c["step"]]})
epochs = sorted({c["epoch"] for c in counted})
exact = []
for e in epochs:
    pos = sorted(p for c in counted if c["epoch"] == e for p in range(c["from"], c["to"]))
    exact.append(pos == list(range(60000)))
    print(f"epoch {e + 1}: {len(pos)} positions, {len(set(pos))} distinct, every sample exactly once: {exact[-1]}")
print(f"steps computed before the coordinator's death and redone after the resume: {len(redone)} ({redone[0]}..{redone[-1]})" if redone else "no step redone")
s = json.load(open(f"{out}/drill/summary.json"))
calm = json.load(open(f"{out}/calm/summary.json"))
difference = s['test_neg_elbo'] - calm['test_neg_elbo']
print(f"final test -ELBO: drill {s['test_neg_elbo']:.3f}, undisturbed {calm['test_neg_elbo']:.3f}, difference {difference:+.3f} nats")
print(f"steps: drill {s['steps']}, undisturbed {calm['steps']}")
passed = bool(exact) and all(exact) and s["steps"] == calm["steps"] and abs(difference) <= 1
print(("PASS" if passed else "FAIL") + f": every epoch's coverage exact: {bool(exact) and all(exact)}; steps equal: {s['steps'] == calm['steps']};"
      f" test -ELBO within 1 nat of the undisturbed run: {abs(difference) <= 1}")
sys.exit(0 if passed else 1)
PY
echo "runs in $out" >&2
