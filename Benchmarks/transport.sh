#!/usr/bin/env bash
# Communication alone, without any computation: `vae-bench transport` sends a parameter-sized
# frame (2,611,296 bytes, the 784-400-20 model) to each of 2 peers and gathers a frame of the same
# size from each, 300 times after 30, over loopback tcp and over ipc, alternating, ROUNDS times.
# The median of each run is kept, and the spread of those medians is the point: on these shared
# 2-core machines the figure moves a lot from run to run.
#
# Usage: Benchmarks/transport.sh           (ROUNDS=5 by default)
# Output: Benchmarks/results/transport-<time>/ (raw JSON per run, summary.json)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/transport-$stamp}
mkdir -p "$out"
swift build -c release --product vae-bench >&2
Benchmarks/machine-info.sh > "$out/machine.json"
for round in $(seq 1 "$ROUNDS"); do
  for transport in tcp ipc; do
    .build/release/vae-bench transport --transport "$transport" > "$out/$transport-$round.json"
  done
done
python3 - "$out" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
result = {"rounds": rounds}
for t in ("tcp", "ipc"):
    medians = [json.load(open(f"{out}/{t}-{r}.json"))["median_ms"] for r in range(1, rounds + 1)]
    result[t] = {"median_ms_per_run": medians, "median_of_medians_ms": statistics.median(medians),
                 "min_ms": min(medians), "max_ms": max(medians)}
result["ipc_to_tcp"] = result["ipc"]["median_of_medians_ms"] / result["tcp"]["median_of_medians_ms"]
json.dump(result, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps(result, indent=1))
PY
echo "results in $out" >&2
