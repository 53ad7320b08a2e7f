#!/usr/bin/env bash
# A worker's part with 1 and with 2 compute threads (issue 15's target: `vae-worker join --threads 2`
# computes its part at least 1.7 times as fast as with 1, with the same gradient to float order).
# `vae-bench worker-threads` times ParallelGradient, the code a worker runs for each part, on a
# 784-400-20 ReLU model with a Bernoulli likelihood, 128 samples of synthetic binary input of
# density 0.13 (binarised MNIST's), one BLAS thread per compute thread; the two thread counts
# alternate over ROUNDS rounds in the same process and the median of the rounds' ratios is
# reported, with the largest difference between the two gradients relative to their largest
# component, whether two runs with 2 threads gave the same bits, and what waking the threads costs
# (this pool against DispatchQueue.concurrentPerform). Needs a machine with 2 idle cores: on a
# shared one, run it again if the load average in the output is high.
#
# Usage: Benchmarks/worker-threads.sh      ROUNDS=9 PARTS=40 THREADS=2
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-9}
PARTS=${PARTS:-40}
THREADS=${THREADS:-2}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/worker-threads-$stamp}
mkdir -p "$out"

swift build -c release --product vae-bench >&2
echo "commit: $(git rev-parse HEAD)$(git diff --quiet HEAD -- Sources Benchmarks/vae-bench || echo ' + uncommitted changes')" > "$out/commit.txt"
Benchmarks/machine-info.sh > "$out/machine.json" 2>/dev/null || true
# OpenBLAS starts no threads of its own: each compute thread is one BLAS thread, as in a worker.
OPENBLAS_NUM_THREADS=1 /usr/bin/time -f '{"user_s": %U, "sys_s": %S, "wall_s": %e}' -o "$out/worker-threads.time.json" \
  .build/release/vae-bench worker-threads --threads "$THREADS" --rounds "$ROUNDS" --parts "$PARTS" > "$out/worker-threads.json"
python3 - "$out" <<'PY'
import json, sys
r = json.load(open(f"{sys.argv[1]}/worker-threads.json"))
print(f"{r['threads']} threads against 1: median ratio {r['median_ratio']:.3f} (target {r['target_ratio']}), "
      f"{r['median_one_thread_ms']:.2f} ms -> {r['median_threads_ms']:.2f} ms per part; "
      f"max relative gradient difference {r['max_relative_gradient_difference']:.2e}; "
      f"deterministic {r['deterministic']}; load {r['load_average_1m']:.2f}")
PY
echo "results in $out" >&2
