#!/usr/bin/env bash
# The fault drill of docs/RELIABILITY.md, on the full MNIST with release builds: a coordinator and
# 3 workers over ipc; a worker is killed with SIGKILL mid-epoch, a new worker joins, a worker is
# stopped with SIGSTOP for 4 s (longer than the 1.5 s step deadline and the 2 s heartbeat timeout)
# and continued, and the coordinator is killed with SIGKILL and restarted with --resume. Then it
# prints the timeline (from events.jsonl and this script's own log), the recovery times, the
# per-epoch coverage and the final test -ELBO against an undisturbed run.
#
# Usage: Benchmarks/fault-drill.sh   (OUT=dir to keep the runs; EPOCHS=3 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-3}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
swift build -c release >&2
bin=.build/release
common=(--data Data/mnist --epochs "$EPOCHS" --batch 128 --seed 7 --checkpoint-every 50)
faults=(--heartbeat-timeout 2 --step-deadline 1.5 --max-strikes 3)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
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
wait_step() { while [ "$(step_of "$2")" -lt "$1" ]; do sleep 0.05; done; }

# Undisturbed reference.
$bin/vae-coordinator start "${common[@]}" --local-workers 3 --bind "ipc://$out/calm.sock" --out "$out/calm" >/dev/null

# The drill.
rm -f "$out/drill.jsonl"
endpoint="ipc://$out/drill.sock"
worker() { $bin/vae-worker join --coordinator "$endpoint" --name "$1" --rejoin-after 1.5 2>>"$out/workers.log" & pids+=("$!"); }
$bin/vae-coordinator start "${common[@]}" "${faults[@]}" --workers 3 --coverage-log --bind "$endpoint" --out "$out/drill" \
  > "$out/coordinator-1.log" 2>&1 &
coordinator=$!
pids+=("$coordinator")
worker w1; w1=$!; worker w2; w2=$!; worker w3
log "started coordinator and w1, w2, w3"
wait_step 300 "$out/drill"
kill -KILL "$w1"; log "SIGKILL w1"
worker w4; log "started w4"
wait_step 700 "$out/drill"
kill -STOP "$w2"; log "SIGSTOP w2"
sleep 4
kill -CONT "$w2"; log "SIGCONT w2"
wait_step 1100 "$out/drill"
kill -KILL "$coordinator"; log "SIGKILL coordinator"
wait "$coordinator" 2>/dev/null || true
$bin/vae-coordinator start "${common[@]}" "${faults[@]}" --workers 2 --coverage-log --bind "$endpoint" --resume "$out/drill" \
  > "$out/coordinator-2.log" 2>&1 &
coordinator=$!
pids+=("$coordinator")
log "restarted coordinator with --resume"
wait "$coordinator"
log "coordinator exited"

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
rec1 = first(lambda w, x: x.startswith("step_recovered"), lost1)
stop2 = act("SIGSTOP w2")
reissue2 = first(lambda w, x: x.startswith("part_reissued"), stop2)
rec2 = first(lambda w, x: x.startswith("step_recovered"), reissue2)
killc = act("SIGKILL coordinator")
restart = act("restarted coordinator with --resume")
joined = [t for t, w, x in timeline if t > restart and x.startswith("worker_joined")]
print(f"worker SIGKILL: declared dead after {lost1 - kill1:.2f} s, its step completed {rec1 - kill1:.2f} s after the kill")
print(f"worker SIGSTOP: part re-issued after {reissue2 - stop2:.2f} s, the step completed {rec2 - stop2:.2f} s after the stop")
print(f"coordinator SIGKILL: restarted {restart - killc:.2f} s later; workers rejoined {joined[0] - restart:.2f} and {joined[1] - restart:.2f} s after the restart")
# Coverage: per step, the entries of the latest coordinator that ran it.
cov = [json.loads(l) for l in open(f"{out}/drill/coverage.jsonl")]
latest = {}
for c in cov:
    latest[c["step"]] = max(latest.get(c["step"], -1), c["start"])
counted = [c for c in cov if c["start"] == latest[c["step"]]]
redone = sorted({c["step"] for c in cov if c["start"] != latest[c["step"]]})
epochs = sorted({c["epoch"] for c in counted})
for e in epochs:
    pos = sorted(p for c in counted if c["epoch"] == e for p in range(c["from"], c["to"]))
    print(f"epoch {e + 1}: {len(pos)} positions, {len(set(pos))} distinct, every sample exactly once: {pos == list(range(60000))}")
print(f"steps computed before the coordinator's death and redone after the resume: {len(redone)} ({redone[0]}..{redone[-1]})" if redone else "no step redone")
s = json.load(open(f"{out}/drill/summary.json"))
calm = json.load(open(f"{out}/calm/summary.json"))
print(f"final test -ELBO: drill {s['test_neg_elbo']:.3f}, undisturbed {calm['test_neg_elbo']:.3f}, difference {s['test_neg_elbo'] - calm['test_neg_elbo']:+.3f} nats")
print(f"steps: drill {s['steps']}, undisturbed {calm['steps']}")
PY
echo "runs in $out" >&2
