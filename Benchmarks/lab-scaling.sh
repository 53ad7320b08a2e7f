#!/usr/bin/env bash
# The scaling curve of today's design, in the multi-host lab (Deploy/lab/lab.sh, docs/LAB.md):
# a coordinator on lab host 0 and one worker on each of hosts 1..N train the MNIST model
# (784-400-20) with 16 samples per worker per step, so that the links, not the 2 shared cores, set
# the step time; N = 1, 2, 4, 8 at 1 Gbit/s per host, and N = 1, 2, 4 at 10 Gbit/s and unshaped.
# Then the step-time model of docs/SCALING.md gets its parameters from measurements made here (one
# process's step time from `vae train`, the links' payload rate and round trip from lab transfers,
# the transport's own speed from the unshaped run with N = 1) and is set beside the measurements,
# and its predictions for up to 64 hosts at 1, 10 and 25 Gbit/s are written.
#
# Usage: sudo Benchmarks/lab-scaling.sh       (about 10 minutes; needs root for the namespaces)
# Environment: ONE_GBIT_WORKERS (default 1,2,4,8), TEN_GBIT_WORKERS (default 1,2,4; empty to
#   skip), UNSHAPED_WORKERS (default 1,2,4; unshaped links show the transport's own speed, and the
#   model needs N = 1 of them), BATCH_PER_WORKER (16), SECONDS_PER_POINT (15), LAB (vaescal), OUT.
# Output: Benchmarks/results/lab-scaling-<time>/: points.jsonl (one line per run), runs/ (each
#   run's output, logs and scrapes), calibration.jsonl, single.jsonl, model.json,
#   lab-vs-model.csv, predictions.csv, plot.csv, scaling.png, summary.txt (the one-line summary).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "lab-scaling: the lab needs root to create network namespaces; run it with sudo" >&2
  exit 1
fi
ONE_GBIT_WORKERS=${ONE_GBIT_WORKERS-1,2,4,8}
TEN_GBIT_WORKERS=${TEN_GBIT_WORKERS-1,2,4}
UNSHAPED_WORKERS=${UNSHAPED_WORKERS-1,2,4}
BATCH_PER_WORKER=${BATCH_PER_WORKER:-16}
SECONDS_PER_POINT=${SECONDS_PER_POINT:-15}
export LAB=${LAB:-vaescal}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/lab-scaling-$stamp}
mkdir -p "$out/single"
swift build -c release >&2
BIN=.build/release
Benchmarks/machine-info.sh > "$out/machine.json"

# One process's step time T1(b), 1 BLAS thread: the compute term of the model.
for config in "400 16 400" "400 128 200" "4000 128 40"; do
  read -r hidden batch steps <<< "$config"
  dir="$out/single/h$hidden-b$batch"
  OPENBLAS_NUM_THREADS=1 "$BIN/vae" train --data Data/mnist --hidden "$hidden" --latent 20 --batch "$batch" \
    --max-steps "$steps" --threads 1 --seed 1 --no-tensorboard --out "$dir" > "$dir.log" 2>&1
  python3 - "$dir/summary.json" "$hidden" "$batch" >> "$out/single.jsonl" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(json.dumps({"hidden": int(sys.argv[2]), "batch": int(sys.argv[3]), "samples_per_s": s["samples_per_s"],
                  "step_s": int(sys.argv[3]) / s["samples_per_s"], "parameter_bytes": 4 * s["parameter_count"]}))
PY
done

hosts=$(( $(tr ',' '\n' <<< "$ONE_GBIT_WORKERS,$TEN_GBIT_WORKERS,$UNSHAPED_WORKERS" | grep -v '^$' | sort -n | tail -1) + 1 ))
trap 'trap - EXIT INT TERM; Deploy/lab/lab.sh down' EXIT
trap 'exit 130' INT TERM
Deploy/lab/lab.sh up "$hosts" --rate 1gbit >&2
# Reshapes every host's link to $1, measures what one TCP flow carries through it ($2 MB, three
# times) and the round trip, then trains with each N of $3 (comma-separated; none: no training).
measure() {
  local rate=$1 megabytes=$2 workers=${3:-}
  for i in $(seq 0 $(( hosts - 1 ))); do Deploy/lab/lab.sh rate "$LAB$i" "$rate"; done
  python3 Benchmarks/lab_scaling.py --calibrate "$out" --rate "$rate" --megabytes "$megabytes" | tee -a "$out/log.txt"
  [ -n "$workers" ] || return 0
  python3 Benchmarks/lab_scaling.py "$out" "$BIN" Data/mnist --rate "$rate" --workers "$workers" \
    --batch-per-worker "$BATCH_PER_WORKER" --seconds "$SECONDS_PER_POINT" | tee -a "$out/log.txt"
}
# Without shaping: what the veth pairs carry through the bridge on these 2 cores (one Python TCP
# flow), and the project's own transport when no link limits it (the model's P, from N = 1).
measure none 2000 "$UNSHAPED_WORKERS"
[ -z "$ONE_GBIT_WORKERS" ] || measure 1gbit 250 "$ONE_GBIT_WORKERS"
[ -z "$TEN_GBIT_WORKERS" ] || measure 10gbit 2000 "$TEN_GBIT_WORKERS"
Deploy/lab/lab.sh down
trap - EXIT INT TERM
# The runs' checkpoints and pictures are not kept (megabytes each); their logs, metrics, events,
# summaries and scrapes are.
find "$out/runs" "$out/single" \( -name '*.safetensors' -o -name '*.png' \) -delete

python3 Benchmarks/scaling_model.py "$out" | tee "$out/summary.txt"
"$BIN/vae" plot series "$out/plot.csv" --dashed-suffix " (model)" --log-y --size 760x500 \
  --title "Today's design in the lab, $BATCH_PER_WORKER samples per worker (dashed: the model)" \
  --x-label "workers (one per lab host; the coordinator on another)" --y-label "steps per second" \
  --out "$out/scaling.png" >&2
echo "results in $out" >&2
