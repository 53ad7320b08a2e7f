#!/usr/bin/env bash
# Same-run comparison of vae-cluster's coordinator with 2 local workers against PyTorch
# DistributedDataParallel (gloo, world size 2) and against one `vae train` process with the same
# global batch: 784-400-20 ReLU VAE, Bernoulli, Adam, 128 samples per worker per step (global
# batch 256), 1 BLAS/torch thread per worker (and for `vae train`). The coordinator runs with each
# data plane of PLANES (default: ring, ring-sockets and star), bound to loopback tcp, its local
# workers joining two ways: "ipc", through the Unix socket the coordinator binds for them (the
# default, what `make train` does), and "tcp", over the loopback tcp bind itself (`--no-local-ipc`).
# ring-sockets is the ring with its chunks over loopback sockets (`--no-shared-memory`) instead of
# shared memory between the two workers. The peers alternate, ROUNDS times; medians are compared.
#
# Usage: Benchmarks/compare-distributed.sh   (ROUNDS=3 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
PLANES=${PLANES:-ring ring-sockets star}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/distributed-$stamp}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
swift build -c release >&2

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  for plane in $PLANES; do
    for transport in tcp ipc; do
      case "$plane" in
        ring-sockets) flags=(--data-plane ring --no-shared-memory) ;;
        *) flags=(--data-plane "$plane") ;;
      esac
      if [ "$transport" = tcp ]; then flags+=(--no-local-ipc); fi
      .build/release/vae-coordinator start --data Data/mnist --epochs 1 --batch 256 --local-workers 2 \
        "${flags[@]}" --bind "tcp://127.0.0.1:*" --out "$work/run" >/dev/null
      cp "$work/run/summary.json" "$out/swift-$plane-$transport-$round.json"
    done
  done
  OPENBLAS_NUM_THREADS=1 .build/release/vae train --data Data/mnist --epochs 1 --batch 256 --threads 1 \
    --no-tensorboard --out "$work/single" >/dev/null
  cp "$work/single/summary.json" "$out/single-$round.json"
  python3 Benchmarks/pytorch_ddp.py throughput --world-size 2 --steps 235 --warmup 30 --batch 128 \
    > "$out/ddp-$round.json" 2>/dev/null
done
for transport in tcp ipc; do
  .build/release/vae-bench transport --transport "$transport" > "$out/transport-$transport.json"
done

python3 - "$out" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
def runs(pattern):
    return [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{pattern}"))]
ddp = statistics.median(r["samples_per_s"] for r in runs("ddp-*.json"))
single = statistics.median(r["samples_per_s"] for r in runs("single-*.json"))
result = {"ddp_samples_per_s": ddp, "ddp_rounds": [r["samples_per_s"] for r in runs("ddp-*.json")],
          "vae_train_samples_per_s": single, "vae_train_rounds": [r["samples_per_s"] for r in runs("single-*.json")]}
for plane in sorted({f.split("/")[-1][len("swift-"):].rsplit("-", 2)[0] for f in glob.glob(f"{out}/swift-*.json")}):
    for t in ("tcp", "ipc"):
        rs = runs(f"swift-{plane}-{t}-*.json")
        s = statistics.median(r["samples_per_s"] for r in rs)
        result[f"{plane}-{t}"] = {
            "samples_per_s": s, "rounds": [r["samples_per_s"] for r in rs], "ratio_to_ddp": s / ddp,
            "ratio_to_vae_train": s / single, "ring_steps": rs[0].get("ring_steps"), "steps": rs[0].get("steps"),
            "step_time_ms": {k: statistics.median(r["step_time"][k] for r in rs) for k in rs[0]["step_time"]},
            "bytes_per_step": rs[0]["bytes_per_step"],
            "transport_only_median_ms": json.load(open(f"{out}/transport-{t}.json"))["median_ms"],
        }
json.dump(result, open(f"{out}/summary.json", "w"), indent=2)
print(json.dumps(result, indent=2))
PY
echo "results in $out" >&2
