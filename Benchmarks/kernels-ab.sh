#!/usr/bin/env bash
# Before/after speed of the numeric core between a base commit and the working tree (issue 14:
# the latent layer as named kernels). Two vae-bench binaries alternate ROUNDS times on:
#   step  the training step (gradient + Adam), 784-400-20 ReLU, Bernoulli, batch 128, 1 thread,
#         synthetic binary inputs of density 0.13 (the sparse first layer) and 0.5 (dense)
#   iwae  IWAE evaluation speed, k = 5000, IMAGES images, chunk 500, 1 thread
# and the medians are compared (after / before), the step's Adam update alone too (optimizer_ms).
# Each run's CPU time (user + system, from
# /usr/bin/time) is kept beside its own wall-clock figures: on a shared machine whose load comes and
# goes, the CPU time of the same fixed work is the steadier measure. Each run's last_loss and
# mean_nll are kept too: a change that does not touch the arithmetic gives the same figures.
#
# Usage: Benchmarks/kernels-ab.sh [BASE_REV]     (BASE_REV: main by default)
#        BEFORE_BIN=path/to/vae-bench skips building BASE_REV; ROUNDS=7 STEPS=600 IMAGES=20
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_REV=${1:-main}
ROUNDS=${ROUNDS:-7}
STEPS=${STEPS:-600}
IMAGES=${IMAGES:-20}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/kernels-$stamp}
mkdir -p "$out"
work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" 2>/dev/null || true; rm -rf "$work"' EXIT

swift build -c release --product vae-bench >&2
cp .build/release/vae-bench "$work/after"
if [ -n "${BEFORE_BIN:-}" ]; then
  cp "$BEFORE_BIN" "$work/before"
  echo "before: $BEFORE_BIN (given)" > "$out/before.txt"
else
  git worktree add --detach "$work/base" "$BASE_REV" >&2
  swift build -c release --product vae-bench --package-path "$work/base" >&2
  cp "$work/base/.build/release/vae-bench" "$work/before"
  echo "before: $(git rev-parse "$BASE_REV") ($BASE_REV)" > "$out/before.txt"
fi
echo "after: $(git rev-parse HEAD)$(git diff --quiet HEAD -- Sources || echo ' + uncommitted changes')" > "$out/after.txt"
Benchmarks/machine-info.sh > "$out/machine.json" 2>/dev/null || true

# run NAME COMMAND...: the command's JSON into NAME.json, its CPU and wall time into NAME.time.json.
run() {
  local name=$1
  shift
  /usr/bin/time -f '{"user_s": %U, "sys_s": %S, "wall_s": %e}' -o "$out/$name.time.json" "$@" > "$out/$name.json"
}

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  # Alternate which binary goes first, so that neither always runs on a warmer machine.
  if [ $((round % 2)) -eq 1 ]; then order="before after"; else order="after before"; fi
  for which in $order; do
    run "$which-step-sparse-$round" "$work/$which" step --steps "$STEPS" --density 0.13
    run "$which-step-dense-$round" "$work/$which" step --steps "$STEPS" --density 0.5
    run "$which-iwae-$round" "$work/$which" iwae --k 5000 --images "$IMAGES"
  done
done

python3 - "$out" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
def runs(which, kind):
    files = sorted(glob.glob(f"{out}/{which}-{kind}-*[0-9].json"))
    return [json.load(open(f)) for f in files], [json.load(open(f[:-5] + ".time.json")) for f in files]
result = {}
for kind, key, check in [("step-sparse", "samples_per_s", "last_loss"), ("step-dense", "samples_per_s", "last_loss"),
                         ("iwae", "images_per_s", "mean_nll")]:
    (before, before_time), (after, after_time) = runs("before", kind), runs("after", kind)
    b = [r[key] for r in before]
    a = [r[key] for r in after]
    b_cpu = [t["user_s"] + t["sys_s"] for t in before_time]
    a_cpu = [t["user_s"] + t["sys_s"] for t in after_time]
    result[kind] = {
        f"before_{key}": statistics.median(b), f"after_{key}": statistics.median(a),
        "ratio_after_to_before": statistics.median(a) / statistics.median(b),
        "before_rounds": b, "after_rounds": a,
        "before_cpu_s": statistics.median(b_cpu), "after_cpu_s": statistics.median(a_cpu),
        # The same work in less CPU time is more throughput: before / after.
        "cpu_throughput_ratio_after_to_before": statistics.median(b_cpu) / statistics.median(a_cpu),
        "before_cpu_rounds": b_cpu, "after_cpu_rounds": a_cpu,
        f"before_{check}": sorted({r[check] for r in before}), f"after_{check}": sorted({r[check] for r in after}),
    }
    if "optimizer_ms" in before[0] and "optimizer_ms" in after[0]:
        # The step's Adam update alone (over the whole parameter vector).
        result[kind]["before_optimizer_ms"] = statistics.median(r["optimizer_ms"] for r in before)
        result[kind]["after_optimizer_ms"] = statistics.median(r["optimizer_ms"] for r in after)
json.dump(result, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps(result, indent=1))
PY
echo "results in $out" >&2
