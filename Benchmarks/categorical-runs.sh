#!/usr/bin/env bash
# The categorical-likelihood runs README.md quotes ("Categorical data"), run as written there, with
# their output stored:
#   train-L     `vae train --likelihood categorical --quantize-levels L` on MNIST (grey levels
#               quantised to L categories per pixel), with the test NLL (IWAE) in nats and bits/dim
#   eval-L      `vae eval` of that checkpoint on the first 1000 test images
#   pictures    `vae sample` and `vae reconstruct` of each checkpoint (category means drawn as grey),
#               copied into docs/images/
# for each L in LEVELS (default "4"; "4 16" also runs 16 levels, 12,544 one-hot columns). Each
# command's standard output is stored as NAME.txt, its
# command line as NAME.command.txt, and the run's summary.json and metrics.jsonl beside them.
# Replaces $RUNS/categorical-L (RUNS=runs by default).
#
# Usage: Benchmarks/categorical-runs.sh     (EPOCHS=2 LEVELS=4 NLL_K=100 by default)
# Output: Benchmarks/results/categorical-<time>/
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs}
EPOCHS=${EPOCHS:-2}
LEVELS=${LEVELS:-4}
NLL_K=${NLL_K:-100}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/categorical-$stamp}
mkdir -p "$out" "$RUNS" docs/images
swift build -c release >&2
Benchmarks/machine-info.sh > "$out/machine.json"

run() {  # run NAME COMMAND...: COMMAND's stdout into NAME.txt (and on the terminal)
  local name=$1; shift
  echo "$name: $*" >&2
  echo "$*" > "$out/$name.command.txt"
  "$@" | tee "$out/$name.txt"
}

for L in $LEVELS; do
  dir="$RUNS/categorical-$L"
  rm -rf "$dir"
  run "train-$L" .build/release/vae train --data Data/mnist --likelihood categorical --quantize-levels "$L" \
    --epochs "$EPOCHS" --batch 128 --hidden 400 --latent 20 --lr 1e-3 --seed 1 --threads 1 \
    --nll-k "$NLL_K" --nll-limit 1000 --no-tensorboard --out "$dir"
  cp "$dir/summary.json" "$out/train-$L.summary.json"
  cp "$dir/metrics.jsonl" "$out/train-$L.metrics.jsonl"
  run "eval-$L" .build/release/vae eval "$dir/checkpoint.safetensors" --data Data/mnist --split test \
    --k "$NLL_K" --limit 1000 --seed 123 --quiet
  run "pictures-$L" .build/release/vae sample "$dir/checkpoint.safetensors" --n 64 --columns 8 --scale 2 \
    --caption "64 samples from the prior, MNIST at $L grey levels (expected grey of each pixel's categories)" \
    --out "docs/images/categorical-$L-samples.png"
  .build/release/vae reconstruct "$dir/checkpoint.safetensors" --data Data/mnist --n 16 --scale 2 \
    --caption "Test digits quantised to $L levels (rows 1, 3) and their reconstructions (rows 2, 4)" \
    --out "docs/images/categorical-$L-reconstructions.png" | tee -a "$out/pictures-$L.txt"
done
echo "output in $out" >&2
