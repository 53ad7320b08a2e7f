#!/usr/bin/env bash
# How much communication could overlap the backward pass (issue 15: "reduce the last layer's
# gradient while the backward pass computes the earlier ones"). `vae-bench overlap-window` times a
# worker's gradient (one BLAS thread, synthetic binary input of density 0.13) and records when the
# backward pass completes each dense layer's parameter gradient (VAEEngine.layerGradientCompleted).
# A data plane that reduces each layer's gradient as soon as it is complete (DDP's buckets) can
# hide at most the time from the first completed layer (the decoder's output layer) to the end
# of the gradient: `largest_window_ms`. Models: the project's MNIST default (784-400-20) with 128
# samples per worker (the loopback and lab runs) and 32, and Burda et al.'s two-hidden-layer
# encoder/decoder (784-200-200-50) with their batch of 20.
#
# Usage: Benchmarks/overlap-window.sh      (STEPS=300)
# Output: Benchmarks/results/overlap-window-<UTC stamp>/ with one JSON per model and batch,
#         machine.json, commit.txt and summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-300}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/overlap-window-$stamp}
mkdir -p "$out"

swift build -c release --product vae-bench >&2
echo "commit: $(git rev-parse HEAD)$(git diff --quiet HEAD -- Sources Benchmarks/vae-bench || echo ' + uncommitted changes')" > "$out/commit.txt"
Benchmarks/machine-info.sh > "$out/machine.json" 2>/dev/null || true
run() {  # name hidden latent batch
  OPENBLAS_NUM_THREADS=1 .build/release/vae-bench overlap-window --hidden "$2" --latent "$3" --batch "$4" \
    --steps "$STEPS" > "$out/$1-batch$4.json"
}
run mnist 400 20 128
run mnist 400 20 32
run burda 200,200 50 20
python3 - "$out" <<'PY' | tee "$out/summary.txt"
import glob, json, sys
for f in sorted(glob.glob(f"{sys.argv[1]}/*-batch*.json")):
    r = json.load(open(f))
    first = r["layers"][0]
    print(f"{f.split('/')[-1]}: gradient {r['gradient_ms']:.3f} ms; {first['name']} ({first['fraction_complete']:.0%} of the "
          f"parameters) complete at {first['completed_at_ms']:.3f} ms, {r['largest_window_ms']:.3f} ms before the end "
          f"({r['largest_window_fraction_of_gradient']:.1%} of the gradient)")
PY
echo "results in $out" >&2
