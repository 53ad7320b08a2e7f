#!/usr/bin/env bash
# Before/after speed of the numeric core between a base commit and the working tree (issue 14:
# the latent layer as named kernels). Two vae-bench binaries alternate ROUNDS times on:
#   step  the training step (gradient + Adam), 784-400-20 ReLU, Bernoulli, batch 128, 1 thread,
#         synthetic binary inputs of density 0.13 (the sparse first layer) and 0.5 (dense)
#   iwae  IWAE evaluation speed, k = 5000, IMAGES images, chunk 500, 1 thread
# and the medians are compared (after / before). Each run's last_loss and mean_nll are kept: a
# change that does not touch the arithmetic gives the same figures.
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

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  # Alternate which binary goes first, so that neither always runs on a warmer machine.
  if [ $((round % 2)) -eq 1 ]; then order="before after"; else order="after before"; fi
  for which in $order; do
    "$work/$which" step --steps "$STEPS" --density 0.13 > "$out/$which-step-sparse-$round.json"
    "$work/$which" step --steps "$STEPS" --density 0.5 > "$out/$which-step-dense-$round.json"
    "$work/$which" iwae --k 5000 --images "$IMAGES" > "$out/$which-iwae-$round.json"
  done
done

python3 - "$out" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
def runs(which, kind):
    return [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{which}-{kind}-*.json"))]
result = {}
for kind, key, check in [("step-sparse", "samples_per_s", "last_loss"), ("step-dense", "samples_per_s", "last_loss"),
                         ("iwae", "images_per_s", "mean_nll")]:
    before, after = runs("before", kind), runs("after", kind)
    b = [r[key] for r in before]
    a = [r[key] for r in after]
    result[kind] = {
        f"before_{key}": statistics.median(b), f"after_{key}": statistics.median(a),
        "ratio_after_to_before": statistics.median(a) / statistics.median(b),
        "before_rounds": b, "after_rounds": a,
        f"before_{check}": sorted({r[check] for r in before}), f"after_{check}": sorted({r[check] for r in after}),
    }
json.dump(result, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps(result, indent=1))
PY
echo "results in $out" >&2
