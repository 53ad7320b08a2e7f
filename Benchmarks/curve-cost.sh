#!/usr/bin/env bash
# What CURVE encryption costs distributed training: a coordinator and 2 workers started by hand
# (`vae-worker join`) over loopback tcp, 784-400-20 VAE on MNIST, 128 samples per worker per
# step (global batch 256), 1 epoch, 1 BLAS thread each; without keys, and with CURVE keys
# (`--curve-secret-key/--authorized-keys` on the coordinator, `--curve-secret-key/--coordinator-key`
# on the workers). The two alternate, ROUNDS times; each round's CURVE/plain ratio is kept.
#
# Usage: Benchmarks/curve-cost.sh          (ROUNDS=3 by default)
# Output: Benchmarks/results/curve-cost-<time>/ (summary.json of every run, summary.json)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/curve-cost-$stamp}
mkdir -p "$out"
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
swift build -c release >&2
Benchmarks/machine-info.sh > "$out/machine.json"
vae=.build/release/vae
$vae keygen coordinator --dir "$work/keys" >/dev/null
$vae keygen w1 --dir "$work/keys/workers" >/dev/null
$vae keygen w2 --dir "$work/keys/workers" >/dev/null
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

run() {  # run plain|curve ROUND
  local mode=$1 round=$2 port coordinator_keys=() worker_keys=()
  port=$(free_port)
  if [ "$mode" = curve ]; then
    coordinator_keys=(--curve-secret-key "$work/keys/coordinator.key" --authorized-keys "$work/keys/workers/")
  fi
  rm -rf "$work/run"
  .build/release/vae-coordinator start --bind "tcp://127.0.0.1:$port" --workers 2 --data Data/mnist \
    --epochs 1 --batch 256 --hidden 400 --latent 20 --seed 1 --quiet "${coordinator_keys[@]}" --out "$work/run" &
  local coordinator=$!
  pids=("$coordinator")
  for w in w1 w2; do
    if [ "$mode" = curve ]; then
      worker_keys=(--curve-secret-key "$work/keys/workers/$w.key" --coordinator-key "$work/keys/coordinator.pub")
    fi
    .build/release/vae-worker join --coordinator "tcp://127.0.0.1:$port" --name "$w" --threads 1 --quiet "${worker_keys[@]}" &
    pids+=("$!")
  done
  wait "$coordinator"
  for p in "${pids[@]:1}"; do wait "$p"; done
  pids=()
  cp "$work/run/summary.json" "$out/$mode-$round.json"
}

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  run plain "$round"
  run curve "$round"
done

python3 - "$out" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}
runs = {m: [json.load(open(f"{out}/{m}-{r}.json")) for r in range(1, rounds + 1)] for m in ("plain", "curve")}
result = {"rounds": rounds,
          "plain_samples_per_s": spread([r["samples_per_s"] for r in runs["plain"]]),
          "curve_samples_per_s": spread([r["samples_per_s"] for r in runs["curve"]]),
          "curve_to_plain": spread([c["samples_per_s"] / p["samples_per_s"] for c, p in zip(runs["curve"], runs["plain"])]),
          "plain_rounds": [r["samples_per_s"] for r in runs["plain"]],
          "curve_rounds": [r["samples_per_s"] for r in runs["curve"]],
          "bytes_per_step": runs["plain"][0]["bytes_per_step"],
          "test_neg_elbo": sorted({r["test_neg_elbo"] for m in runs for r in runs[m]}),
          "step_time_ms": {m: {k: statistics.median(r["step_time"][k] for r in runs[m]) for k in runs[m][0]["step_time"]}
                           for m in runs}}
json.dump(result, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps(result, indent=1))
PY
echo "results in $out" >&2
