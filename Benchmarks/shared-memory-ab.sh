#!/usr/bin/env bash
# What shared memory between ring neighbours buys on one host: the coordinator with 2 local
# workers x 128 samples (784-400-20, MNIST, loopback tcp, 1 epoch) with the ring's chunks through
# shared memory (the default) and over loopback sockets (`--no-shared-memory`), alternating ROUNDS
# times (which goes first alternates too). For each run: samples/s from its summary.json, and the
# CPU time of the coordinator and its local workers (user + system, /usr/bin/time: the workers are
# its children and are waited for), per training step. CPU time counts the same fixed work without
# sampling, so it is the steadier figure on a shared machine; medians are compared.
#
# Usage: Benchmarks/shared-memory-ab.sh      (ROUNDS=5 by default)
# Output: Benchmarks/results/shared-memory-<time>/: <plane>-<round>.json (summary), .time.json, summary.json
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/shared-memory-$stamp}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
swift build -c release >&2
Benchmarks/machine-info.sh > "$out/machine.json"

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  if [ $((round % 2)) -eq 1 ]; then order="shared sockets"; else order="sockets shared"; fi
  for plane in $order; do
    flags=()
    [ "$plane" = sockets ] && flags=(--no-shared-memory)
    /usr/bin/time -f '{"user_s": %U, "sys_s": %S, "wall_s": %e}' -o "$out/$plane-$round.time.json" \
      .build/release/vae-coordinator start --data Data/mnist --epochs 1 --batch 256 --local-workers 2 \
      "${flags[@]}" --bind "tcp://127.0.0.1:*" --no-tensorboard --out "$work/run" > /dev/null
    cp "$work/run/summary.json" "$out/$plane-$round.json"
  done
done

python3 - "$out" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
result = {}
for plane in ("shared", "sockets"):
    runs = sorted(glob.glob(f"{out}/{plane}-[0-9]*.json"))
    runs = [f for f in runs if not f.endswith(".time.json")]
    summaries = [json.load(open(f)) for f in runs]
    times = [json.load(open(f[:-5] + ".time.json")) for f in runs]
    cpu_ms = [1000 * (t["user_s"] + t["sys_s"]) / s["steps"] for s, t in zip(summaries, times)]
    rates = [s["samples_per_s"] for s in summaries]
    result[plane] = {"samples_per_s": statistics.median(rates), "samples_per_s_rounds": rates,
                     "cpu_ms_per_step": statistics.median(cpu_ms), "cpu_ms_per_step_rounds": cpu_ms,
                     "steps": summaries[0]["steps"]}
result["cpu_ratio_shared_to_sockets"] = result["shared"]["cpu_ms_per_step"] / result["sockets"]["cpu_ms_per_step"]
result["speed_ratio_shared_to_sockets"] = result["shared"]["samples_per_s"] / result["sockets"]["samples_per_s"]
json.dump(result, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps(result, indent=1))
PY
echo "results in $out" >&2
