#!/usr/bin/env bash
# Rows travel at most once (issue 15): the coordinator's bytes on the wire per step in epoch 1,
# when every worker is sent the rows of its samples, against epoch 2, when each worker holds the
# rows of the samples it saw in epoch 1 (vae-worker's row cache, --row-cache-mb, 1024 MiB by
# default: MNIST's 60,000 rows take 47 MB) and WORK carries ids and only the rows it lacks.
#
# One run: MNIST (Data/mnist, 784-d uint8 rows), 2 local workers over tcp loopback, global batch
# 256 (parts of 128), 2 epochs, the model's defaults:
#   vae-coordinator start --data Data/mnist --local-workers 2 --epochs 2 --batch 256 \
#     --bind 'tcp://127.0.0.1:*' --out DIR
# The figures are the epoch lines of the run's metrics.jsonl: bytes_per_step (PARAMS and WORK
# sent, GRAD received, as the coordinator counts them on its socket) and row_bytes_per_step (the
# sample rows inside WORK). Byte counts are exact, not timings: one run is enough.
#
# Usage: Benchmarks/row-cache.sh        (builds in release first)
# Output: Benchmarks/results/row-cache-<UTC stamp>/ with the run's metrics.jsonl, summary.json,
#         events.jsonl, the coordinator's output, machine.json, commit.txt and results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/row-cache-$stamp}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
swift build -c release --product vae-coordinator >&2
swift build -c release --product vae-worker >&2
echo "$(git rev-parse HEAD)$(git diff --quiet HEAD -- Sources || echo ' + uncommitted changes')" > "$out/commit.txt"
Benchmarks/machine-info.sh > "$out/machine.json" 2>/dev/null || true

command=(.build/release/vae-coordinator start --data Data/mnist --local-workers 2 --epochs 2 --batch 256
         --bind 'tcp://127.0.0.1:*' --out "$work/run")
echo "${command[*]}" > "$out/command.txt"
"${command[@]}" > "$out/coordinator.out" 2> "$out/coordinator.err"
cp "$work/run/metrics.jsonl" "$work/run/summary.json" "$work/run/events.jsonl" "$out/"

python3 - "$out" <<'EOF'
import json, sys
out = sys.argv[1]
epochs = [json.loads(l) for l in open(f"{out}/metrics.jsonl") if '"record":"epoch"' in l.replace(" ", "")]
summary = json.load(open(f"{out}/summary.json"))
result = {
    "epochs": [{"epoch": e["epoch"], "steps_to": e["step"], "bytes_per_step": e["bytes_per_step"],
                "row_bytes_per_step": e["row_bytes_per_step"]} for e in epochs],
    "run_bytes_per_step": summary["bytes_per_step"],
    "run_row_bytes_per_step": summary["row_bytes_per_step"],
    "parameters": summary["parameter_count"],
    "test_neg_elbo": summary.get("test_neg_elbo"),
}
first, second = epochs[0], epochs[1]
result["row_bytes_epoch2_over_epoch1"] = second["row_bytes_per_step"] / first["row_bytes_per_step"]
result["bytes_saved_per_step"] = first["bytes_per_step"] - second["bytes_per_step"]
json.dump(result, open(f"{out}/results.json", "w"), indent=2)
print(json.dumps(result, indent=2))
EOF
echo "stored in $out" >&2
