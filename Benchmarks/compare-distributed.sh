#!/usr/bin/env bash
# Same-run comparison of vae-cluster's coordinator with 2 local workers against PyTorch
# DistributedDataParallel (gloo, world size 2) and against one `vae train` process with the same
# global batch: 784-400-20 ReLU VAE, Bernoulli, Adam, 128 samples per worker per step (global
# batch 256), 1 BLAS/torch thread per worker (and for `vae train`). The coordinator runs with each
# data plane of PLANES (default: ring, ring-sockets and star), bound to loopback tcp, its local
# workers joining two ways: "ipc", through the Unix socket the coordinator binds for them (the
# default, what `make train` does), and "tcp", over the loopback tcp bind itself (`--no-local-ipc`).
# ring-sockets is the ring with its chunks over loopback sockets (`--no-shared-memory`) instead of
# shared memory between the two workers; ring-sync1 (not in the default PLANES) the ring whose
# coordinator follows every step (`--sync-every 1`) instead of catching up every 16. The peers alternate, ROUNDS times (the two transports in
# turn going first); medians are compared.
#
# A fourth peer bounds what two workers could reach on this machine: two `vae train --batch 128`
# processes at once, sharing nothing (no gradient exchange, no coordinator); their samples/s add up.
#
# Every vae-cluster run trains EPOCHS epochs (default 3) without TensorBoard files, and two figures
# are kept for each: the whole run's samples/s (training time only, as `summary.json` reports it)
# and the samples/s after the first epoch (epochs 2 to EPOCHS, from the epoch records of
# metrics.jsonl): in the first epoch the coordinator also ships every training row to each worker's
# row cache (docs/PROTOCOL.md, "Spare rows"), after it only ids. DDP's figure is always of steps
# after a warm-up, its data in each rank's memory.
#
# Usage: Benchmarks/compare-distributed.sh   (ROUNDS=3, EPOCHS=3 by default)
#        SUMMARY_ONLY=Benchmarks/results/distributed-... Benchmarks/compare-distributed.sh
#          (writes that directory's summary.json and table.md again from its runs, running nothing:
#          for figures added to the summary after the runs)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
EPOCHS=${EPOCHS:-3}
PLANES=${PLANES:-ring ring-sockets star}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${SUMMARY_ONLY:-${OUT:-Benchmarks/results/distributed-$stamp}}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "${SUMMARY_ONLY:-}" ]; then
  ROUNDS=0  # summarise the runs already in $out again, run nothing
else
  swift build -c release >&2
fi

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  # Which transport goes first alternates between rounds: a fixed order favoured one of them.
  if [ $((round % 2)) -eq 1 ]; then transports="tcp ipc"; else transports="ipc tcp"; fi
  for plane in $PLANES; do
    for transport in $transports; do
      case "$plane" in
        ring-sockets) flags=(--data-plane ring --no-shared-memory) ;;
        ring-sync1) flags=(--data-plane ring --sync-every 1) ;;
        *) flags=(--data-plane "$plane") ;;
      esac
      if [ "$transport" = tcp ]; then flags+=(--no-local-ipc); fi
      .build/release/vae-coordinator start --data Data/mnist --epochs "$EPOCHS" --batch 256 --local-workers 2 \
        "${flags[@]}" --bind "tcp://127.0.0.1:*" --no-tensorboard --out "$work/run" >/dev/null
      cp "$work/run/summary.json" "$out/swift-$plane-$transport-$round.json"
      cp "$work/run/metrics.jsonl" "$out/swift-$plane-$transport-$round.metrics.jsonl"
    done
  done
  OPENBLAS_NUM_THREADS=1 .build/release/vae train --data Data/mnist --epochs "$EPOCHS" --batch 256 --threads 1 \
    --no-tensorboard --out "$work/single" >/dev/null
  cp "$work/single/summary.json" "$out/single-$round.json"
  cp "$work/single/metrics.jsonl" "$out/single-$round.metrics.jsonl"
  for half in a b; do
    OPENBLAS_NUM_THREADS=1 .build/release/vae train --data Data/mnist --epochs "$EPOCHS" --batch 128 --threads 1 \
      --no-tensorboard --out "$work/pair-$half" >/dev/null &
  done
  wait
  for half in a b; do
    cp "$work/pair-$half/summary.json" "$out/pair-$round-$half.json"
    cp "$work/pair-$half/metrics.jsonl" "$out/pair-$round-$half.metrics.jsonl"
  done
  python3 Benchmarks/pytorch_ddp.py throughput --world-size 2 --steps 235 --warmup 30 --batch 128 \
    > "$out/ddp-$round.json" 2>/dev/null
done
for transport in tcp ipc; do
  [ -n "${SUMMARY_ONLY:-}" ] && break
  .build/release/vae-bench transport --transport "$transport" > "$out/transport-$transport.json"
done

python3 - "$out" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
def load(path):
    return json.load(open(path))
def later_epochs(metrics_path):
    """Samples/s over epochs 2 and after (training time only), from a run's epoch records."""
    epochs = [json.loads(line) for line in open(metrics_path)]
    epochs = [e for e in epochs if e.get("record") == "epoch" and e["epoch"] >= 2]
    if not epochs:
        return None
    return sum(e["samples_per_s"] * e["epoch_seconds"] for e in epochs) / sum(e["epoch_seconds"] for e in epochs)
def figures(summaries, metrics_paths):
    whole = [s["samples_per_s"] for s in summaries]
    later = [later_epochs(p) for p in metrics_paths]
    return whole, (None if None in later else later)
def median(xs):
    return None if xs is None else statistics.median(xs)
def by_epoch(metrics_paths):
    """Each epoch's samples/s, communication ms per step and row bytes per step, medians over rounds."""
    runs = [[e for e in map(json.loads, open(p)) if e.get("record") == "epoch"] for p in metrics_paths]
    return [{"epoch": k + 1,
             "samples_per_s": statistics.median(r[k]["samples_per_s"] for r in runs),
             "communication_ms": statistics.median(r[k]["step_time"]["communication_ms"] for r in runs),
             "row_bytes_per_step": statistics.median(r[k].get("row_bytes_per_step", 0) for r in runs)}
            for k in range(min(len(r) for r in runs))]

ddp_rounds = [load(f)["samples_per_s"] for f in sorted(glob.glob(f"{out}/ddp-*.json"))]
ddp = statistics.median(ddp_rounds)
single_files = sorted(glob.glob(f"{out}/single-*[0-9].json"))
single_whole, single_later = figures([load(f) for f in single_files], [f[:-5] + ".metrics.jsonl" for f in single_files])
pair_whole, pair_later = [], []
for round_file in sorted(glob.glob(f"{out}/pair-*-a.json")):
    halves = [round_file, round_file[:-6] + "b.json"]
    w, l = figures([load(f) for f in halves], [f[:-5] + ".metrics.jsonl" for f in halves])
    pair_whole.append(sum(w))
    pair_later.append(None if l is None else sum(l))
if None in pair_later:
    pair_later = None
single, single_l = median(single_whole), median(single_later)
result = {
    "epochs": load(single_files[0])["epochs"],
    "ddp_samples_per_s": ddp, "ddp_rounds": ddp_rounds,
    "vae_train_samples_per_s": single, "vae_train_rounds": single_whole,
    "vae_train_after_first_epoch_samples_per_s": single_l, "vae_train_after_first_epoch_rounds": single_later,
    "two_processes_samples_per_s": median(pair_whole), "two_processes_rounds": pair_whole,
    "two_processes_after_first_epoch_samples_per_s": median(pair_later), "two_processes_after_first_epoch_rounds": pair_later,
}
for plane in sorted({f.split("/")[-1][len("swift-"):].rsplit("-", 2)[0] for f in glob.glob(f"{out}/swift-*[0-9].json")}):
    for t in ("tcp", "ipc"):
        files = sorted(glob.glob(f"{out}/swift-{plane}-{t}-*[0-9].json"))
        rs = [load(f) for f in files]
        whole, later = figures(rs, [f[:-5] + ".metrics.jsonl" for f in files])
        s, sl = median(whole), median(later)
        result[f"{plane}-{t}"] = {
            "samples_per_s": s, "rounds": whole, "ratio_to_ddp": s / ddp, "ratio_to_vae_train": s / single,
            "ratio_to_two_processes": s / median(pair_whole),
            "after_first_epoch_samples_per_s": sl, "after_first_epoch_rounds": later,
            "after_first_epoch_ratio_to_ddp": None if sl is None else sl / ddp,
            "after_first_epoch_ratio_to_vae_train": None if sl is None or single_l is None else sl / single_l,
            "ring_steps": rs[0].get("ring_steps"), "steps": rs[0].get("steps"),
            "step_time_ms": {k: statistics.median(r["step_time"][k] for r in rs) for k in rs[0].get("step_time", {})},
            "bytes_per_step": rs[0]["bytes_per_step"],
            "transport_only_median_ms": load(f"{out}/transport-{t}.json")["median_ms"],
            # Per epoch, medians over the rounds: the first epoch is where rows travel (or, on
            # the coordinator's host, are mapped from its shared memory instead).
            "by_epoch": by_epoch([f[:-5] + ".metrics.jsonl" for f in files]),
        }
json.dump(result, open(f"{out}/summary.json", "w"), indent=2)

def fmt(x, spec=",.0f"):
    return "n/a" if x is None else format(x, spec)
lines = [f"| | samples/s, whole run ({result['epochs']} epochs) | after the first epoch |",
         "| --- | --- | --- |"]
for key, entry in result.items():
    if isinstance(entry, dict):
        lines.append(f"| {key} | {fmt(entry['samples_per_s'])} ({entry['ratio_to_vae_train']:.2f} x vae train, "
                     f"{entry['ratio_to_ddp']:.2f} x DDP) | {fmt(entry['after_first_epoch_samples_per_s'])} "
                     f"({fmt(entry['after_first_epoch_ratio_to_vae_train'], '.2f')} x vae train, "
                     f"{fmt(entry['after_first_epoch_ratio_to_ddp'], '.2f')} x DDP) |")
lines.append(f"| one `vae train`, batch 256 | {fmt(single)} | {fmt(single_l)} |")
lines.append(f"| two `vae train`, batch 128, at once (added) | {fmt(result['two_processes_samples_per_s'])} "
             f"({result['two_processes_samples_per_s'] / single:.2f} x vae train) | "
             f"{fmt(result['two_processes_after_first_epoch_samples_per_s'])} |")
lines.append(f"| PyTorch DDP, gloo, 2 ranks (after warm-up) | {fmt(ddp)} | {fmt(ddp)} |")
open(f"{out}/table.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "results in $out" >&2
