#!/usr/bin/env bash
# Rows travel at most once (issue 15): the coordinator's bytes on the wire per step in epoch 1,
# when the workers are sent the rows (each its part's in WORK and, since protocol version 4, the
# step's other rows in ROWS, since its row cache can hold the training set: vae-worker's
# --row-cache-mb, 1024 MiB by default, MNIST's 60,000 rows take 47 MB), against epoch 2, when every
# worker holds every row and WORK carries ids only.
#
# Two runs, one per data plane: MNIST (Data/mnist, 784-d uint8 rows), 2 local workers over tcp
# loopback, global batch 256 (parts of 128), 2 epochs, the model's defaults, without shared memory
# (workers on the coordinator's host would map its rows and be sent none: these stand for workers
# on other hosts):
#   vae-coordinator start --data Data/mnist --local-workers 2 --epochs 2 --batch 256 \
#     --data-plane PLANE --no-shared-memory --bind 'tcp://127.0.0.1:*' --out DIR   (PLANE: ring, star)
# The figures are the epoch lines of each run's metrics.jsonl: bytes_per_step (what the
# coordinator sends and receives on its socket: PARAMS, WORK, ROWS, GROUP, STATE and NORMS out;
# GRAD, DONE and SHARD in) and row_bytes_per_step (the sample rows inside WORK and ROWS). Byte
# counts are exact, not timings: one run per plane is enough.
#
# Usage: Benchmarks/row-cache.sh        (builds in release first)
# Output: Benchmarks/results/row-cache-<UTC stamp>/ with, per plane, PLANE/ holding the run's
#         metrics.jsonl, summary.json, events.jsonl, the coordinator's output and command.txt; and
#         machine.json, commit.txt and results.json (both planes' figures).
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

for plane in ring star; do
    mkdir -p "$out/$plane"
    command=(.build/release/vae-coordinator start --data Data/mnist --local-workers 2 --epochs 2 --batch 256
             --data-plane "$plane" --no-shared-memory --bind 'tcp://127.0.0.1:*' --out "$work/$plane")
    echo "${command[*]}" > "$out/$plane/command.txt"
    "${command[@]}" > "$out/$plane/coordinator.out" 2> "$out/$plane/coordinator.err"
    cp "$work/$plane/metrics.jsonl" "$work/$plane/summary.json" "$work/$plane/events.jsonl" "$out/$plane/"
done

python3 - "$out" <<'PYTHON'
import json, sys
out = sys.argv[1]
result = {}
for plane in ["ring", "star"]:
    epochs = [json.loads(l) for l in open(f"{out}/{plane}/metrics.jsonl") if '"record":"epoch"' in l.replace(" ", "")]
    summary = json.load(open(f"{out}/{plane}/summary.json"))
    first, second = epochs[0], epochs[1]
    result[plane] = {
        "epochs": [{"epoch": e["epoch"], "steps_to": e["step"], "bytes_per_step": e["bytes_per_step"],
                    "row_bytes_per_step": e["row_bytes_per_step"]} for e in epochs],
        "run_bytes_per_step": summary["bytes_per_step"],
        "run_row_bytes_per_step": summary["row_bytes_per_step"],
        "ring_steps": summary.get("ring_steps"),
        "parameters": summary["parameter_count"],
        "parameter_bytes": 4 * summary["parameter_count"],
        "test_neg_elbo": summary.get("test_neg_elbo"),
        "row_bytes_epoch2_over_epoch1": second["row_bytes_per_step"] / first["row_bytes_per_step"],
        "bytes_saved_per_step": first["bytes_per_step"] - second["bytes_per_step"],
    }
json.dump(result, open(f"{out}/results.json", "w"), indent=2)
print(json.dumps(result, indent=2))
PYTHON
echo "stored in $out" >&2
