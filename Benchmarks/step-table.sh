#!/usr/bin/env bash
# Where a single-process training step's time goes, and where the sparse first layer pays off:
# `vae-bench step` (784-400-20, batch 128, Adam, 1 thread, synthetic binary inputs, 300 timed
# steps after 30), ROUNDS times; in each round also the gradient at input densities 13%, 20% and
# 30% with the sparse first layer off (--sparse-fraction 0) and always on (1), alternating, so
# that each sparse/dense ratio comes from one round. Then a `perf record` profile of the default
# step (if perf is allowed), and the density of dynamically binarised MNIST (the mean pixel of
# the training images / 255, the probability that a binarised pixel is 1).
#
# Usage: Benchmarks/step-table.sh            (ROUNDS=5 by default)
# Output: Benchmarks/results/step-table-<time>/ (raw JSON per run, perf-report.txt, summary.json)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DENSITIES=${DENSITIES:-"0.13 0.2 0.3"}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/step-table-$stamp}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
swift build -c release --product vae-bench >&2
bench=.build/release/vae-bench
Benchmarks/machine-info.sh > "$out/machine.json"

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  $bench step > "$out/step-$round.json"
  for density in $DENSITIES; do
    for sparse in 0 1; do
      $bench step --density "$density" --sparse-fraction "$sparse" > "$out/density-$density-sparse-$sparse-$round.json"
    done
  done
done

if command -v perf >/dev/null && perf record -q -o "$work/perf.data" -- $bench step --steps 1500 >/dev/null 2>"$work/perf.err"; then
  perf report -i "$work/perf.data" --stdio --no-children --sort dso,symbol --percent-limit 0.5 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | sed 's/ *$//' > "$out/perf-report.txt"
else
  echo "perf record not available: $(cat "$work/perf.err" 2>/dev/null)" > "$out/perf-report.txt"
fi

python3 - "$out" "$ROUNDS" "$DENSITIES" <<'PY'
import glob, gzip, json, statistics, sys
out, rounds, densities = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}
steps = [json.load(open(f"{out}/step-{r}.json")) for r in range(1, rounds + 1)]
totals = [s["gradient_ms"] + s["optimizer_ms"] for s in steps]
parameters = 652824  # 784-400-20
adam_bytes = 7 * 4 * parameters  # reads parameters, gradient, two moments; writes parameters, two moments
result = {
    "rounds": rounds,
    "gradient_ms": spread([s["gradient_ms"] for s in steps]),
    "optimizer_ms": spread([s["optimizer_ms"] for s in steps]),
    "total_ms": spread(totals),
    "samples_per_s": spread([s["samples_per_s"] for s in steps]),
    "optimizer_share": spread([s["optimizer_ms"] / t for s, t in zip(steps, totals)]),
    "adam_bytes_per_step": adam_bytes,
    "adam_gb_per_s": spread([adam_bytes / (s["optimizer_ms"] * 1e-3) / 1e9 for s in steps]),
    "density": {},
}
for d in densities:
    dense = [json.load(open(f"{out}/density-{d}-sparse-0-{r}.json"))["gradient_ms"] for r in range(1, rounds + 1)]
    sparse = [json.load(open(f"{out}/density-{d}-sparse-1-{r}.json"))["gradient_ms"] for r in range(1, rounds + 1)]
    result["density"][d] = {"dense_gradient_ms": spread(dense), "sparse_gradient_ms": spread(sparse),
                            "sparse_to_dense": spread([s / x for s, x in zip(sparse, dense)])}
with gzip.open("Data/mnist/train-images-idx3-ubyte.gz", "rb") as f:
    pixels = f.read()[16:]
result["mnist_binarised_density"] = sum(pixels) / 255 / len(pixels)
json.dump(result, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps(result, indent=1))
PY
echo "results in $out" >&2
