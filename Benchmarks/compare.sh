#!/usr/bin/env bash
# Same-run comparison of vae-cluster against the PyTorch peer on this machine, 1 thread each:
# training throughput (784-400-20 ReLU, Bernoulli, batch 128, Adam), IWAE evaluation speed
# (k = 5000), peak resident memory of a training epoch, and sgemm speed. The two peers run
# alternately, ROUNDS times, and the medians are compared; only ratios within one run count on
# these shared machines.
#
# Usage: Benchmarks/compare.sh            (ROUNDS=3 STEPS=600 EVAL_IMAGES=40 by default)
# Needs: swift, python3 with torch (pip install -r Benchmarks/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-600}
EVAL_IMAGES=${EVAL_IMAGES:-40}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/$stamp}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

swift build -c release --product vae >&2
swift build -c release --product vae-bench >&2
vae=.build/release/vae
bench=.build/release/vae-bench
peer="python3 Benchmarks/pytorch_peer.py"

# A trained checkpoint for the evaluation speed (the speed does not depend on the weights).
$vae train --data Data/mnist --epochs 1 --max-steps 200 --out "$work/model" >/dev/null

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  $vae train --data Data/mnist --epochs 1 --max-steps "$STEPS" --batch 128 --threads 1 --out "$work/train" >/dev/null
  cp "$work/train/summary.json" "$out/swift-train-$round.json"
  $peer train-throughput --steps "$STEPS" --warmup 30 --batch 128 --threads 1 > "$out/torch-train-$round.json" 2>/dev/null
  $vae eval "$work/model/checkpoint.safetensors" --k 5000 --limit "$EVAL_IMAGES" --threads 1 --json > "$out/swift-eval-$round.json"
  $peer eval-speed --k 5000 --images "$EVAL_IMAGES" --threads 1 > "$out/torch-eval-$round.json" 2>/dev/null
  $bench sgemm --threads 1 > "$out/swift-sgemm-$round.json"
done
# Peak resident memory of one full training epoch, as the kernel counts it (KiB).
/usr/bin/time -f "%M" -o "$out/swift-rss-kib.txt" $vae train --data Data/mnist --epochs 1 --out "$work/rss" >/dev/null
/usr/bin/time -f "%M" -o "$out/torch-rss-kib.txt" $peer train-quality --epochs 1 --nll-limit 10 --k 10 >/dev/null 2>&1
$peer sgemm --threads 1 > "$out/torch-sgemm.json" 2>/dev/null

python3 - "$out" <<'PY'
import glob, json, statistics, sys, platform, os
out = sys.argv[1]
def med(pattern, key):
    return statistics.median(json.load(open(f))[key] for f in sorted(glob.glob(f"{out}/{pattern}")))
s_train, t_train = med("swift-train-*.json", "samples_per_s"), med("torch-train-*.json", "samples_per_s")
s_eval, t_eval = med("swift-eval-*.json", "images_per_s"), med("torch-eval-*.json", "images_per_s")
s_gemm = med("swift-sgemm-*.json", "mean_gflops")
t_gemm = statistics.mean(r["gflops"] for r in json.load(open(f"{out}/torch-sgemm.json"))["results"])
s_rss = int(open(f"{out}/swift-rss-kib.txt").read().split()[-1]) / 1024
t_rss = int(open(f"{out}/torch-rss-kib.txt").read().split()[-1]) / 1024
flops = 3.28e6  # per sample per training step, 784-400-20
result = {
    "train_samples_per_s": {"swift": s_train, "pytorch": t_train, "ratio": s_train / t_train},
    "iwae_images_per_s": {"swift": s_eval, "pytorch": t_eval, "ratio": s_eval / t_eval},
    "peak_rss_mb": {"swift": s_rss, "pytorch": t_rss},
    "sgemm_gflops": {"swift_openblas": s_gemm, "pytorch_mkl": t_gemm},
    "swift_fraction_of_sgemm_limit": s_train * flops / (s_gemm * 1e9),
    "rounds": len(glob.glob(f"{out}/swift-train-*.json")),
    "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
    "cpu": platform.processor() or platform.machine(),
}
json.dump(result, open(f"{out}/summary.json", "w"), indent=2)
print(json.dumps(result, indent=2))
PY
echo "results in $out" >&2
