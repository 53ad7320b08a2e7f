#!/usr/bin/env bash
# Imputation on a real mixed-type table: the RAND Health Insurance Experiment data (20,190 rows,
# 10 columns; public domain, shipped inside the PyPI package statsmodels as
# statsmodels/datasets/randhie/randhie.csv). The table has no missing cells of its own, so the
# test is cells held out on purpose:
#   1. `pip download statsmodels --no-deps` and the CSV taken out of the wheel (not committed);
#   2. FRACTION (default 0.1) of the observed cells emptied, chosen with a fixed SEED
#      (Benchmarks/randhie_holdout.py mask): masked.csv, heldout.csv;
#   3. `vae train --likelihood mixed` on masked.csv (the held-out cells are missing to it too;
#      --test-fraction 0.1 of the rows for the held-out -ELBO);
#   4. `vae eval` of the model on the first 2000 rows of masked.csv (every row: a single file has
#      no splits), with its figures per observed cell and by column type;
#      `vae reconstruct` of masked.csv: every empty cell filled (filled.csv);
#   5. the fills of the held-out cells scored beside mean/mode imputation computed from the same
#      masked table (randhie_holdout.py score): RMSE for Gaussian columns (in their units and
#      standardised), error rate for Bernoulli and categorical columns; imputation.json.
# Each command's standard output is stored as NAME.txt with NAME.command.txt; the run's
# summary.json and metrics.jsonl beside them. Needs python3 with numpy, pip and unzip.
#
# Usage: Benchmarks/randhie.sh    (EPOCHS=40 HIDDEN=64,64 LATENT=4 FRACTION=0.1 SEED=1 by default;
#                                  COLUMN_TYPES=name=type,... is passed to --column-types)
# Output: Benchmarks/results/randhie-<time>/
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs}
EPOCHS=${EPOCHS:-40}
HIDDEN=${HIDDEN:-64,64}
LATENT=${LATENT:-4}
FRACTION=${FRACTION:-0.1}
SEED=${SEED:-1}
COLUMN_TYPES=${COLUMN_TYPES:-}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/randhie-$stamp}
work="$RUNS/randhie"
mkdir -p "$out" "$work"
swift build -c release --product vae >&2
Benchmarks/machine-info.sh > "$out/machine.json"

if [ ! -f "$work/randhie.csv" ]; then
  tmp=$(mktemp -d)
  pip download statsmodels --no-deps --only-binary=:all: -d "$tmp" -q >&2
  unzip -q -o -j "$tmp"/statsmodels-*.whl 'statsmodels/datasets/randhie/randhie.csv' -d "$work"
  ls "$tmp" > "$out/statsmodels-wheel.txt"
  rm -rf "$tmp"
fi
sha256sum "$work/randhie.csv" | tee "$out/randhie.sha256" >&2

run() {  # run NAME COMMAND...: COMMAND's stdout into NAME.txt (and on the terminal)
  local name=$1; shift
  echo "$name: $*" >&2
  echo "$*" > "$out/$name.command.txt"
  "$@" | tee "$out/$name.txt"
}

run mask python3 Benchmarks/randhie_holdout.py mask "$work/randhie.csv" "$FRACTION" "$SEED" "$out"
types=()
if [ -n "$COLUMN_TYPES" ]; then types=(--column-types "$COLUMN_TYPES"); fi
rm -rf "$work/run"
run train .build/release/vae train --data "$out/masked.csv" --likelihood mixed "${types[@]}" --test-fraction 0.1 \
  --hidden "$HIDDEN" --latent "$LATENT" --epochs "$EPOCHS" --batch 128 --lr 1e-3 --seed 1 --threads 1 \
  --no-tensorboard --out "$work/run"
cp "$work/run/summary.json" "$out/train.summary.json"
cp "$work/run/metrics.jsonl" "$out/train.metrics.jsonl"
run eval .build/release/vae eval "$work/run/checkpoint.safetensors" --data "$out/masked.csv" --k 100 --limit 2000 --seed 123 --quiet
run reconstruct .build/release/vae reconstruct "$work/run/checkpoint.safetensors" --data "$out/masked.csv" \
  --out "$work/filled.csv"
run score python3 Benchmarks/randhie_holdout.py score "$out" "$work/run/checkpoint.safetensors" "$work/filled.csv"
# masked.csv (the public-domain table with gaps the model was trained on) and heldout.csv, kept compressed.
gzip -f "$out/masked.csv" "$out/heldout.csv"
echo "output in $out" >&2
