#!/usr/bin/env bash
# Test -ELBO after 10 epochs (784-400-20, batch 128, Adam 1e-3, dynamic binarisation) for several
# seeds, vae-cluster and the PyTorch peer alternately: how much of a difference is seed noise.
# Usage: Benchmarks/quality-seeds.sh [seeds...]   (default: 2 3 4)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product vae >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for s in "${@:-2 3 4}"; do
  for seed in $s; do
    .build/release/vae train --data Data/mnist --epochs 10 --seed "$seed" --out "$work/swift-$seed" > /dev/null
    python3 -c "import json;d=json.load(open('$work/swift-$seed/summary.json'));print('vae-cluster seed $seed', round(d['test_neg_elbo'], 3))"
    python3 Benchmarks/pytorch_peer.py train-quality --epochs 10 --seed "$seed" --k 10 --nll-limit 10 2>/dev/null \
      | python3 -c "import json,sys;d=json.load(sys.stdin);print('pytorch seed $seed', round(d['test_neg_elbo'], 3))"
  done
done
