#!/usr/bin/env bash
# Test -ELBO after 10 epochs (784-400-20, batch 128, Adam 1e-3, dynamic binarisation) for several
# seeds, vae-cluster and the PyTorch peer alternately: how much of a difference is seed noise.
# The test -ELBO of a seed is deterministic (the same figure on every run and machine so far), so
# files of different runs can be pooled.
#
# Usage: Benchmarks/quality-seeds.sh [seeds...]   (default: 2 3 4)
# Output: one line per peer and seed, "swift seed S X" / "torch seed S X", on stdout and in
#         Benchmarks/results/quality-seeds-<time>.txt (machine.json beside it as
#         quality-seeds-<time>.machine.json).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/quality-seeds-$stamp.txt}
mkdir -p "$(dirname "$out")"
swift build -c release --product vae >&2
Benchmarks/machine-info.sh > "${out%.txt}.machine.json"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for s in "${@:-2 3 4}"; do
  for seed in $s; do
    .build/release/vae train --data Data/mnist --epochs 10 --seed "$seed" --out "$work/swift-$seed" > /dev/null
    python3 -c "import json;d=json.load(open('$work/swift-$seed/summary.json'));print('swift seed $seed', d['test_neg_elbo'])" | tee -a "$out"
    python3 Benchmarks/pytorch_peer.py train-quality --epochs 10 --seed "$seed" --k 10 --nll-limit 10 2>/dev/null \
      | python3 -c "import json,sys;d=json.load(sys.stdin);print('torch seed $seed', d['test_neg_elbo'])" | tee -a "$out"
  done
done
echo "results in $out" >&2
