#!/usr/bin/env bash
# What one option of `vae-coordinator start` buys on one host: the coordinator with 2 local
# workers x 128 samples (784-400-20, MNIST, bound to loopback tcp, EPOCHS epochs, default 1) with its
# defaults ("default") and with FLAGS (NAME), alternating ROUNDS times (which goes first alternates
# too).
# For each run: samples/s from its summary.json, and the CPU time of the coordinator and its local
# workers (user + system, /usr/bin/time: the workers are its children and are waited for), per
# training step. CPU time counts the same fixed work without sampling, so it is the steadier
# figure on a shared machine; medians are compared.
#
# With BASELINE=DIR, "default" is instead the vae-coordinator (and the vae-worker beside it) in DIR,
# say a copy of .build/release made before a change, and NAME this checkout's build with FLAG...
# (none needed): what a change of the code buys.
#
# Usage: Benchmarks/flag-ab.sh NAME FLAG...     (ROUNDS=5, EPOCHS=1 by default)
#   e.g. Benchmarks/flag-ab.sh sockets --no-shared-memory
#        BASELINE=/tmp/before Benchmarks/flag-ab.sh after
# Output: Benchmarks/results/ab-NAME-<time>/: <variant>-<round>.json (summary), .time.json, summary.json
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || { [ $# -lt 2 ] && [ -z "${BASELINE:-}" ]; }; then echo "usage: $0 NAME FLAG...  (or BASELINE=DIR $0 NAME [FLAG...])" >&2; exit 2; fi
name=$1; shift
baseline=${BASELINE:-.build/release}
ROUNDS=${ROUNDS:-5}
EPOCHS=${EPOCHS:-1}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/ab-$name-$stamp}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
swift build -c release >&2
[ -x "$baseline/vae-coordinator" ] && [ -x "$baseline/vae-worker" ] || { echo "no vae-coordinator and vae-worker in $baseline" >&2; exit 2; }
Benchmarks/machine-info.sh > "$out/machine.json"
echo "default: $baseline/vae-coordinator (no flag); $name: .build/release/vae-coordinator $*; $EPOCHS epoch(s) per run" > "$out/variants.txt"

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  if [ $((round % 2)) -eq 1 ]; then order="default $name"; else order="$name default"; fi
  for variant in $order; do
    flags=()
    binary=$baseline/vae-coordinator
    if [ "$variant" = "$name" ]; then flags=("$@"); binary=.build/release/vae-coordinator; fi
    /usr/bin/time -f '{"user_s": %U, "sys_s": %S, "wall_s": %e}' -o "$out/$variant-$round.time.json" \
      "$binary" start --data Data/mnist --epochs "$EPOCHS" --batch 256 --local-workers 2 \
      "${flags[@]}" --bind "tcp://127.0.0.1:*" --no-tensorboard --out "$work/run" > /dev/null
    cp "$work/run/summary.json" "$out/$variant-$round.json"
  done
done

python3 - "$out" "$name" <<'PY'
import glob, json, statistics, sys
out, name = sys.argv[1], sys.argv[2]
result = {}
for variant in ("default", name):
    runs = sorted(f for f in glob.glob(f"{out}/{variant}-[0-9]*.json") if not f.endswith(".time.json"))
    summaries = [json.load(open(f)) for f in runs]
    times = [json.load(open(f[:-5] + ".time.json")) for f in runs]
    cpu_ms = [1000 * (t["user_s"] + t["sys_s"]) / s["steps"] for s, t in zip(summaries, times)]
    rates = [s["samples_per_s"] for s in summaries]
    result[variant] = {"samples_per_s": statistics.median(rates), "samples_per_s_rounds": rates,
                       "cpu_ms_per_step": statistics.median(cpu_ms), "cpu_ms_per_step_rounds": cpu_ms,
                       "steps": summaries[0]["steps"]}
result[f"cpu_ratio_default_to_{name}"] = result["default"]["cpu_ms_per_step"] / result[name]["cpu_ms_per_step"]
result[f"speed_ratio_default_to_{name}"] = result["default"]["samples_per_s"] / result[name]["samples_per_s"]
json.dump(result, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps(result, indent=1))
PY
echo "results in $out" >&2
