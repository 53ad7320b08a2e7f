#!/usr/bin/env bash
# A checkpoint of `vae train --epochs 1` (469 steps, seed 1) loaded into PyTorch with the snippet
# of docs/CHECKPOINT.md, run as printed there: its test -ELBO on MNIST's 10,000 test images, computed
# by the PyTorch peer's own evaluation (Benchmarks/pytorch_peer.py: test set binarised once with its
# fixed generator, one eps draw per image), against `vae train`'s evaluation of the same checkpoint
# (its own binarisation and noise draws, so the two differ by sampling noise only).
#
# Usage: Benchmarks/checkpoint-in-pytorch.sh
# Output: Benchmarks/results/checkpoint-in-pytorch-<time>.json
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/checkpoint-in-pytorch-$stamp.json}
mkdir -p "$(dirname "$out")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
swift build -c release --product vae >&2
.build/release/vae train --data Data/mnist --epochs 1 --seed 1 --out "$work/run" >/dev/null
python3 - "$work/run" "$out" <<'PY'
import json, re, sys
sys.path.insert(0, "Benchmarks")
import pytorch_peer
run, out = sys.argv[1], sys.argv[2]
snippet = re.search(r"```python\n(.*?)```", open("docs/CHECKPOINT.md").read(), re.S).group(1)
snippet = snippet.replace('"runs/mnist/checkpoint.safetensors"', repr(f"{run}/checkpoint.safetensors"))
scope = {}
exec(snippet, scope)
model = scope["model"].eval()

class Adapter:  # the peer's evaluation calls encode and decode
    def encode(self, x):
        h = model.encoder.hidden(x)
        return model.encoder.mu(h), model.encoder.logvar(h)
    def decode(self, z):
        return model.decoder.out(model.decoder.hidden(z))

import torch
with torch.inference_mode():
    neg_elbo, rate, distortion = pytorch_peer.test_elbo(Adapter(), pytorch_peer.binarised_test_set(pytorch_peer.DEFAULT_DATA), 1.0)
summary = json.load(open(f"{run}/summary.json"))
result = {"steps": summary["steps"], "pytorch_test_neg_elbo": neg_elbo, "pytorch_test_rate": rate,
          "pytorch_test_distortion": distortion, "vae_train_test_neg_elbo": summary["test_neg_elbo"],
          "difference": neg_elbo - summary["test_neg_elbo"]}
json.dump(result, open(out, "w"), indent=1)
print(json.dumps(result, indent=1))
PY
echo "results in $out" >&2
