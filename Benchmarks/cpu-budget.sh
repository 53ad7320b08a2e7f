#!/usr/bin/env bash
# Where the CPU goes on this machine: one `vae train --batch 256 --threads 1` process against
# `vae-coordinator start --local-workers 2 --batch 256` (2 workers x 128 samples, over loopback tcp)
# with each data plane of PLANES (default: ring; ring-sockets is the ring with its chunks over loopback
# sockets, `--no-shared-memory`), each for EPOCHS (default 2) epochs of MNIST under
# `perf record -a` (cpu-clock samples on every CPU). The samples are sorted by what ran: BLAS, the
# workers' own code, the coordinator's own code, ZeroMQ's I/O threads (the kernel's socket copies
# for the most part), the kernel for the programs' other threads, libc (memcpy, memset, malloc),
# other libraries; in CPU milliseconds per training step and as shares of the run's busy CPU time.
# Each run's startup, test evaluations and pictures are included, the same work in all runs. Idle
# time is left out: on a virtual machine a halted CPU takes few cpu-clock samples, so perf's idle
# share is not the machine's (it is kept in summary.json as `idle_ms_per_step_sampled`).
#
# Usage: Benchmarks/cpu-budget.sh     (root, or perf_event_paranoid low enough for perf record -a)
# Output: Benchmarks/results/cpu-budget-<time>/: perf-<run>.txt (perf report by thread and
#   object), summary.json, summary.md, machine.json.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-2}
PLANES=${PLANES:-ring}
command -v perf > /dev/null || { echo "cpu-budget: needs perf (apt install linux-perf)" >&2; exit 1; }
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/cpu-budget-$stamp}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
swift build -c release >&2
Benchmarks/machine-info.sh > "$out/machine.json"

record() {  # name, then the command
  local name=$1
  shift
  perf record -a -q -o "$work/$name.data" -- "$@" > "$work/$name.log" 2>&1
  perf report -i "$work/$name.data" --sort comm,dso --stdio -F overhead,period,comm,dso 2>/dev/null > "$out/perf-$name.txt"
  cp "$work/run-$name/summary.json" "$out/summary-$name.json"
}
record single env OPENBLAS_NUM_THREADS=1 .build/release/vae train --data Data/mnist --epochs "$EPOCHS" --batch 256 \
  --threads 1 --no-tensorboard --out "$work/run-single"
for plane in $PLANES; do
  case "$plane" in
    ring-sockets) flags=(--data-plane ring --no-shared-memory) ;;
    *) flags=(--data-plane "$plane") ;;
  esac
  record "$plane" .build/release/vae-coordinator start --data Data/mnist --epochs "$EPOCHS" --batch 256 \
    --local-workers 2 "${flags[@]}" --bind "tcp://127.0.0.1:*" --no-tensorboard --out "$work/run-$plane"
done

python3 - "$out" single $PLANES <<'PY'
import json, re, sys
out, runs = sys.argv[1], sys.argv[2:]
def category(comm, dso):
    if comm == "swapper":
        return "idle"
    if comm.startswith("ZMQbg"):
        return "ZeroMQ I/O threads"
    if "openblas" in dso:
        return "BLAS"
    if dso == "vae-worker":
        return "workers' own code"
    if dso == "vae-coordinator":
        return "coordinator's own code"
    if dso == "vae":
        return "vae train's own code"
    if dso == "[kernel.kallsyms]":
        return "kernel, other threads"
    if dso.startswith("libc.so"):
        return "libc"
    return "other libraries"
order = ["BLAS", "vae train's own code", "workers' own code", "coordinator's own code", "ZeroMQ I/O threads",
         "kernel, other threads", "libc", "other libraries", "idle"]
result = {}
for run in runs:
    ns = {}
    for line in open(f"{out}/perf-{run}.txt"):
        m = re.match(r"\s*([\d.]+)%\s+(\d+)\s+(.+?)\s{2,}(\S+)\s*$", line)
        if not m:
            continue
        c = category(m.group(3).strip(), m.group(4))
        ns[c] = ns.get(c, 0) + int(m.group(2))
    summary = json.load(open(f"{out}/summary-{run}.json"))
    steps = summary.get("steps") or summary.get("step")
    total = sum(ns.values())
    busy = total - ns.get("idle", 0)
    result[run] = {
        "steps": steps, "samples_per_s": summary.get("samples_per_s"),
        "cpu_ms_per_step": {c: ns.get(c, 0) / 1e6 / steps for c in order if c in ns and c != "idle"},
        "busy_cpu_ms_per_step": busy / 1e6 / steps,
        "share_of_busy_time": {c: ns.get(c, 0) / busy for c in order if c in ns and c != "idle"},
        "idle_ms_per_step_sampled": ns.get("idle", 0) / 1e6 / steps,
        "wall_ms_per_step": 1000 * summary["batch"] / summary["samples_per_s"],
    }
json.dump(result, open(f"{out}/summary.json", "w"), indent=1)
cats = [c for c in order if any(c in r["cpu_ms_per_step"] for r in result.values())]  # idle left out
lines = ["# CPU per training step, by what ran (perf record -a)", "",
         "CPU milliseconds per step of 256 samples (share of the run's busy CPU time); startup, test evaluations and pictures included.", "",
         "| | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
for c in cats:
    cells = []
    for run in runs:
        r = result[run]
        cells.append(f"{r['cpu_ms_per_step'].get(c, 0):.2f} ({100 * r['share_of_busy_time'].get(c, 0):.1f}%)")
    lines.append(f"| {c} | " + " | ".join(cells) + " |")
lines.append("| busy (all but idle) | " + " | ".join(f"{result[r]['busy_cpu_ms_per_step']:.2f}" for r in runs) + " |")
lines.append("| wall ms per step | " + " | ".join(f"{result[r]['wall_ms_per_step']:.2f}" for r in runs) + " |")
lines.append("| samples/s | " + " | ".join(f"{result[r]['samples_per_s']:.0f}" for r in runs) + " |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "results in $out" >&2
