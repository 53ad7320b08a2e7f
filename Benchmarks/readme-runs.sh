#!/usr/bin/env bash
# The runs whose output README.md and docs/PERFORMANCE.md quote, run as written there, one after
# the other, with their output stored:
#   train-single  `vae train ... --nll-k 5000 --nll-limit 1000 --out runs/quality` (README's
#                 `vae train` example; `make train-single` runs the same with --out runs/mnist)
#   eval          `vae eval` of that checkpoint (README's `vae eval` example)
#   train         `make train`'s command (coordinator + 2 local workers over loopback tcp) with
#                 `--metrics-port 0` added; a scraper GETs /metrics every second and keeps the
#                 first scrape at or past the middle of training (README's metrics example)
#   autoencoder   `vae train --autoencoder` with the same options (README, "Against a plain autoencoder")
#   latent2       `vae train --epochs 5 --latent 2 --seed 1` (README, `vae plot manifold`)
#   pictures      `vae sample|reconstruct|interpolate|plot` of those checkpoints, copied into docs/images/,
#                 and a screenshot of TensorBoard showing the runs (scripts/tensorboard-screenshot.sh)
#   pytorch       `pytorch_peer.py train-quality --epochs 10` (its seed 0; k = 5000 on 1000 test images)
# Each command's standard output is stored as NAME.txt, with NAME.times.txt giving the seconds since
# the command started at which each line appeared (the NLL estimate's time is the gap between the
# last epoch line and the `done:` line), and its summary.json and metrics.jsonl where it writes them.
# Replaces $RUNS/quality, $RUNS/mnist, $RUNS/autoencoder and $RUNS/latent2 (RUNS=runs by default).
#
# Usage: Benchmarks/readme-runs.sh          (PYTORCH=0 skips the PyTorch run)
# Output: Benchmarks/results/readme-runs-<time>/
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs}
PYTORCH=${PYTORCH:-1}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/readme-runs-$stamp}
mkdir -p "$out" "$RUNS"
work=$(mktemp -d)
scraper=""
trap '[ -n "$scraper" ] && kill "$scraper" 2>/dev/null; rm -rf "$work"' EXIT
swift build -c release >&2
Benchmarks/machine-info.sh > "$out/machine.json"

# timed NAME COMMAND...: runs COMMAND, its stdout to NAME.txt and each line's arrival time to NAME.times.txt.
timed() {
  local name=$1; shift
  echo "$name: $*" >&2
  echo "$*" > "$out/$name.command.txt"
  "$@" | python3 -u -c '
import sys, time
start = time.monotonic()
with open(sys.argv[1], "w") as raw, open(sys.argv[2], "w") as times:
    for line in sys.stdin:
        raw.write(line); raw.flush()
        times.write(f"{time.monotonic() - start:8.2f}  {line}"); times.flush()
    times.write(f"{time.monotonic() - start:8.2f}  (end of output)\n")' "$out/$name.txt" "$out/$name.times.txt"
}
keep() {  # keep NAME DIR: copy DIR's summary.json and metrics.jsonl
  cp "$2/summary.json" "$out/$1.summary.json"
  cp "$2/metrics.jsonl" "$out/$1.metrics.jsonl"
}

rm -rf "$RUNS/quality" "$RUNS/mnist" "$RUNS/autoencoder" "$RUNS/latent2"
timed train-single .build/release/vae train --data Data/mnist --epochs 10 --batch 128 --hidden 400 --latent 20 \
  --activation relu --likelihood bernoulli --optimizer adam --lr 1e-3 --seed 1 --threads 1 \
  --nll-k 5000 --nll-limit 1000 --out "$RUNS/quality"
keep train-single "$RUNS/quality"

timed eval .build/release/vae eval "$RUNS/quality/checkpoint.safetensors" --data Data/mnist --split test --k 5000 --limit 1000 --seed 123

# make train's command (Makefile: train), with a metrics endpoint on a free port.
(
  url=""
  while [ -z "$url" ]; do
    sleep 0.2
    url=$(python3 -c 'import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") == "metrics_serving": print(e["url"]); break' "$RUNS/mnist/events.jsonl" 2>/dev/null || true)
  done
  while curl -sf "$url" -o "$work/scrape"; do
    step=$(awk '$1 == "vae_step" {print int($2)}' "$work/scrape")
    if [ "${step:-0}" -ge 2345 ]; then cp "$work/scrape" "$out/train-metrics-scrape.txt"; break; fi
    sleep 1
  done
) &
scraper=$!
timed train .build/release/vae-coordinator start --local-workers 2 --bind 'tcp://127.0.0.1:*' --data Data/mnist \
  --epochs 10 --batch 128 --hidden 400 --latent 20 --lr 1e-3 --seed 1 --nll-k 5000 --nll-limit 1000 --out "$RUNS/mnist" \
  --metrics-port 0
wait "$scraper" || true
scraper=""
keep train "$RUNS/mnist"
cp "$RUNS/mnist/events.jsonl" "$out/train.events.jsonl"

timed autoencoder .build/release/vae train --autoencoder --data Data/mnist --epochs 10 --batch 128 --hidden 400 --latent 20 \
  --lr 1e-3 --seed 1 --out "$RUNS/autoencoder"
keep autoencoder "$RUNS/autoencoder"
timed latent2 .build/release/vae train --data Data/mnist --epochs 5 --latent 2 --seed 1 --out "$RUNS/latent2"
keep latent2 "$RUNS/latent2"

img="$work/images"
mkdir -p "$img"
{
  .build/release/vae sample "$RUNS/quality/checkpoint.safetensors" --n 64 --scale 2 \
    --caption "64 samples from the prior (decoder means)" --out "$img/samples.png"
  .build/release/vae reconstruct "$RUNS/quality/checkpoint.safetensors" --n 16 --scale 2 \
    --caption "Test digits (rows 1, 3) and their reconstructions (rows 2, 4)" --out "$img/reconstructions.png"
  .build/release/vae interpolate "$RUNS/quality/checkpoint.safetensors" --pairs 6 --steps 10 --scale 2 \
    --caption "Each row: a test digit, 10 decodings along the line between the two posterior means, the other digit" \
    --out "$img/interpolations.png"
  .build/release/vae sample "$RUNS/autoencoder/checkpoint.safetensors" --n 64 --scale 2 \
    --caption "A plain autoencoder's decoder at z ~ N(0, I)" --out "$img/autoencoder-samples.png"
  .build/release/vae interpolate "$RUNS/autoencoder/checkpoint.safetensors" --pairs 6 --steps 10 --scale 2 \
    --caption "A plain autoencoder: decodings along lines between codes" --out "$img/autoencoder-interpolations.png"
  .build/release/vae plot curves "$RUNS/quality" --out "$img/curves.png"
  .build/release/vae plot latents "$RUNS/quality/checkpoint.safetensors" --out "$img/latents.png"
  .build/release/vae plot manifold "$RUNS/latent2/checkpoint.safetensors" --grid 16 --out "$img/manifold.png"
  .build/release/vae plot timing "$RUNS/mnist" --out "$img/timing.png"
} | sed "s|$img/|docs/images/|" > "$out/pictures.txt"
cp "$img"/*.png docs/images/
# TensorBoard showing the runs under $RUNS (Python's tensorboard and Debian's chromium).
if scripts/tensorboard-screenshot.sh "$RUNS" "$img/tensorboard.png" >&2; then
  cp "$img/tensorboard.png" docs/images/tensorboard.png
  echo "wrote docs/images/tensorboard.png" >> "$out/pictures.txt"
fi

if [ "$PYTORCH" = 1 ]; then
  echo "pytorch: train-quality --epochs 10" >&2
  python3 Benchmarks/pytorch_peer.py train-quality --epochs 10 > "$out/pytorch-train-quality.json" 2>/dev/null
fi
echo "results in $out" >&2
