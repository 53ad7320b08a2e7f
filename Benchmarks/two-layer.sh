#!/usr/bin/env bash
# A two-stochastic-layer VAE against the one-layer VAE on MNIST, the same recipe and epochs: the
# runs README.md quotes ("Two stochastic layers"), with their output stored.
#
#   one-layer   Burda et al.'s one-layer model: 784-200-200-50 tanh, mirrored decoder
#   two-layer   Burda et al.'s two-layer model: x -> 200-200 -> z1 (100) -> 100-100 -> z2 (50),
#               generative z2 -> 100-100 -> z1 -> 200-200 -> x (--latent 100,50 --hidden 200,200
#               --hidden2 100,100)
#   both        dynamically binarised MNIST, Bernoulli, Adam (eps 1e-4) at 1e-3, batch 100,
#               --init-output-bias data-mean, seed 1, one thread; test NLL by IWAE with NLL_K
#               importance samples over the first NLL_LIMIT test images
#   eval        `vae eval` of the two-layer checkpoint (k = EVAL_K, 1000 test images): -ELBO,
#               NLL, active units per layer
#   pictures    `vae sample` (ancestral: z2 ~ N(0, I), z1 = mean of p(z1|z2)) and
#               `vae reconstruct` of the two-layer checkpoint, into docs/images/two-layer-*.png
#
# Each command's standard output is stored as NAME.txt, its command line as NAME.command.txt, the
# runs' summary.json and metrics.jsonl beside them, and results.md compares the two.
# Replaces $RUNS/two-layer-one and $RUNS/two-layer-two (RUNS=runs by default).
#
# Usage: Benchmarks/two-layer.sh     (EPOCHS=2 NLL_K=5000 NLL_LIMIT=1000 EVAL_K=100 by default)
# Output: Benchmarks/results/two-layer-<time>/
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs}
EPOCHS=${EPOCHS:-2}
NLL_K=${NLL_K:-5000}
NLL_LIMIT=${NLL_LIMIT:-1000}
EVAL_K=${EVAL_K:-100}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/two-layer-$stamp}
mkdir -p "$out" "$RUNS" docs/images
swift build -c release --product vae >&2
Benchmarks/machine-info.sh > "$out/machine.json"
git rev-parse --short HEAD > "$out/commit.txt"

run() {  # run NAME COMMAND...: COMMAND's stdout into NAME.txt (and on the terminal)
  local name=$1; shift
  echo "$name: $*" >&2
  echo "$*" > "$out/$name.command.txt"
  "$@" | tee "$out/$name.txt"
}

common=(--data Data/mnist --activation tanh --likelihood bernoulli --preprocess dynamic-binarise
        --batch 100 --optimizer adam --adam-eps 1e-4 --lr 1e-3 --epochs "$EPOCHS" --init-output-bias data-mean
        --nll-k "$NLL_K" --nll-limit "$NLL_LIMIT" --seed 1 --threads 1 --no-tensorboard)
declare -A architecture=(
  [one]="--hidden 200,200 --latent 50"
  [two]="--hidden 200,200 --latent 100,50 --hidden2 100,100"
)
for model in one two; do
  dir="$RUNS/two-layer-$model"
  rm -rf "$dir"
  # shellcheck disable=SC2086
  run "train-$model-layer" .build/release/vae train "${common[@]}" ${architecture[$model]} --out "$dir"
  cp "$dir/summary.json" "$out/train-$model-layer.summary.json"
  cp "$dir/metrics.jsonl" "$out/train-$model-layer.metrics.jsonl"
done
dir="$RUNS/two-layer-two"
run eval-two-layer .build/release/vae eval "$dir/checkpoint.safetensors" --data Data/mnist --split test \
  --k "$EVAL_K" --limit 1000 --seed 123 --quiet
run pictures .build/release/vae sample "$dir/checkpoint.safetensors" --n 64 --columns 8 --scale 2 \
  --caption "64 ancestral samples of the two-layer VAE: z2 ~ N(0, I), z1 = mean of p(z1|z2), pixel means" \
  --out docs/images/two-layer-samples.png
.build/release/vae reconstruct "$dir/checkpoint.safetensors" --data Data/mnist --n 16 --scale 2 \
  --caption "Test digits (rows 1, 3) and the two-layer VAE's reconstructions through z1's posterior mean (rows 2, 4)" \
  --out docs/images/two-layer-reconstructions.png | tee -a "$out/pictures.txt"

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = []
for model in ("one", "two"):
    s = json.load(open(os.path.join(out, f"train-{model}-layer.summary.json")))
    epochs = [json.loads(l) for l in open(os.path.join(out, f"train-{model}-layer.metrics.jsonl"))]
    last = [e for e in epochs if e.get("record", "epoch") == "epoch"][-1]
    rows.append((model, s, last))
with open(os.path.join(out, "results.md"), "w") as f:
    f.write("| model | parameters | epochs | train -ELBO | test -ELBO | test NLL (IWAE k, images) | active units | train s |\n")
    f.write("|---|---|---|---|---|---|---|---|\n")
    for model, s, last in rows:
        au = str(s.get("active_units"))
        if s.get("active_units2") is not None:
            au = f"{au} of 100 (z1), {s['active_units2']} of 50 (z2)"
        else:
            au += " of 50"
        f.write(f"| {model}-layer | {s['parameter_count']:,} | {s['epochs']} | {last['train_neg_elbo']:.2f} | "
                f"{s['test_neg_elbo']:.2f} | {s['nll']:.2f} ({s['nll_k']}, {s['nll_samples']}) | {au} | {s['train_seconds']:.0f} |\n")
print(open(os.path.join(out, "results.md")).read())
PY
echo "output in $out" >&2
