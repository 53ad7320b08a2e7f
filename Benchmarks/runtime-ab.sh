#!/usr/bin/env bash
# Before/after speed of the training loops between a base commit and the working tree (issue 14:
# the coordinator's runtime split into parts, Trainer and coordinator sharing RunProgress). Two
# builds alternate ROUNDS times on MNIST (Data/mnist, 60,000 images), 784-400-20 ReLU, Bernoulli,
# Adam, one epoch each:
#   coordinator  vae-coordinator start --local-workers 2 over tcp loopback, global batch 256
#   trainer      vae train --threads 1, batch 128
# Compared: the medians of summary.json's samples_per_s (after / before) and of each run's CPU time
# (user + system of the whole process tree, from /usr/bin/time): on a shared machine the CPU time
# of the same fixed work is the steadier measure. Each run's final test -ELBO is kept too: the
# change does not touch the arithmetic, so both builds must train to the same figures.
#
# Usage: Benchmarks/runtime-ab.sh [BASE_REV]     (BASE_REV: main by default)
#        ROUNDS=5 (default)
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_REV=${1:-main}
ROUNDS=${ROUNDS:-5}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/runtime-ab-$stamp}
mkdir -p "$out"
work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" 2>/dev/null || true; rm -rf "$work"' EXIT
swift build -c release >&2
mkdir -p "$work/after"
cp .build/release/vae .build/release/vae-coordinator .build/release/vae-worker "$work/after/"
git worktree add --detach "$work/base" "$BASE_REV" >&2
swift build -c release --package-path "$work/base" >&2
mkdir -p "$work/before"
cp "$work/base/.build/release/vae" "$work/base/.build/release/vae-coordinator" "$work/base/.build/release/vae-worker" "$work/before/"
echo "before: $(git rev-parse "$BASE_REV") ($BASE_REV)" > "$out/before.txt"
echo "after: $(git rev-parse HEAD)$(git diff --quiet HEAD -- Sources || echo ' + uncommitted changes')" > "$out/after.txt"
Benchmarks/machine-info.sh > "$out/machine.json" 2>/dev/null || true

# run NAME DIR COMMAND...: the run's summary.json into NAME.json, its CPU and wall time into NAME.time.json.
run() {
  local name=$1 dir=$2
  shift 2
  rm -rf "$dir"
  /usr/bin/time -f '{"user_s": %U, "sys_s": %S, "wall_s": %e}' -o "$out/$name.time.json" "$@" >/dev/null 2>"$out/$name.log"
  cp "$dir/summary.json" "$out/$name.json"
}

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  # Alternate which build goes first, so that neither always runs on a warmer machine.
  if [ $((round % 2)) -eq 1 ]; then order="before after"; else order="after before"; fi
  for which in $order; do
    # The coordinator starts its local workers from its own directory: each build runs its own.
    run "$which-coordinator-$round" "$work/run" "$work/$which/vae-coordinator" start --data Data/mnist --epochs 1 \
      --batch 256 --local-workers 2 --bind 'tcp://127.0.0.1:*' --seed 1 --out "$work/run"
    run "$which-trainer-$round" "$work/run" "$work/$which/vae" train --data Data/mnist --epochs 1 --batch 128 \
      --threads 1 --seed 1 --out "$work/run"
  done
done

python3 - "$out" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
def runs(which, kind):
    files = sorted(glob.glob(f"{out}/{which}-{kind}-*[0-9].json"))
    return [json.load(open(f)) for f in files], [json.load(open(f[:-5] + ".time.json")) for f in files]
result = {}
for kind in ("coordinator", "trainer"):
    (before, before_time), (after, after_time) = runs("before", kind), runs("after", kind)
    b = [r["samples_per_s"] for r in before]
    a = [r["samples_per_s"] for r in after]
    b_cpu = [t["user_s"] + t["sys_s"] for t in before_time]
    a_cpu = [t["user_s"] + t["sys_s"] for t in after_time]
    result[kind] = {
        "before_samples_per_s": statistics.median(b), "after_samples_per_s": statistics.median(a),
        "ratio_after_to_before": statistics.median(a) / statistics.median(b),
        "before_rounds": b, "after_rounds": a,
        "before_cpu_s": statistics.median(b_cpu), "after_cpu_s": statistics.median(a_cpu),
        # The same work in less CPU time is more throughput: before / after.
        "cpu_throughput_ratio_after_to_before": statistics.median(b_cpu) / statistics.median(a_cpu),
        "before_cpu_rounds": b_cpu, "after_cpu_rounds": a_cpu,
        "before_test_neg_elbo": sorted({r.get("test_neg_elbo") for r in before}),
        "after_test_neg_elbo": sorted({r.get("test_neg_elbo") for r in after}),
    }
json.dump(result, open(f"{out}/summary.json", "w"), indent=2)
print(json.dumps(result, indent=2))
PY
