#!/usr/bin/env bash
# The star and ring data planes side by side in the multi-host lab (Deploy/lab/lab.sh, docs/LAB.md,
# docs/SCALING.md): a coordinator on lab host 0 and one worker on each of hosts 1..N train the MNIST
# model (784-400-20, 128 samples per worker per step) at 1 Gbit/s per host, with
# `vae-coordinator start --data-plane star` and `--data-plane ring`, alternating the planes' order
# from one N to the next. Per run: samples/s and the step-time breakdown (summary.json), the bytes
# each host's link carried per step (eth0's counters inside each namespace) against the target
# 1.1 x 2 x M per direction (+ the rows), and the communication time per step against the
# all-reduce ideal 2 (N - 1) / N M / R (R: one TCP flow's payload rate, measured first). Then the
# ring's speed-up over the star at each N, a table and a picture beside the model's curves
# (Benchmarks/data_plane_model.py's stored design.csv).
# A coordinator without --data-plane (before the ring lands) runs the star only, without the flag,
# and summary.txt says so. Workers get --insecure when they have it (a ring worker binds its ring
# endpoint on its lab address; the lab is a closed network) and advertise their default address,
# the lab address they reach the coordinator from; summary.json's ring_steps says how many steps
# went around the ring.
#
# Usage: sudo Benchmarks/lab-data-plane.sh     (about 5 minutes with the defaults; root: namespaces)
# Environment: WORKERS (default 2,4,8), BATCH_PER_WORKER (128), SECONDS_PER_POINT (20: the rough
#   length of each run), PLANES (star,ring: the order at the first N; ring-sync is the ring with
#   --no-work-ahead, to measure what sending the next step's work ahead buys; ring-pieces the ring
#   with --ring-pieces auto, to measure what cutting chunks into pieces buys; ring-curve the ring
#   with CURVE keys on every process instead of --insecure, to measure what encryption costs across
#   hosts), LAB (vaedp), OUT, DESIGN
#   (the model's design.csv; default the stored data-plane-design-20261129T115131Z).
# Output: Benchmarks/results/lab-data-plane-<time>/: points.jsonl (one line per run), runs/ (each
#   run's summary, metrics, events and logs), calibration.jsonl, plot.csv, summary.md (the table),
#   summary.txt (the one-line summary), data-plane.png, log.txt, machine.json, and failures.jsonl
#   when a run failed or was skipped (the others are still reported; the exit status is then 1).
#   Measuring stops starting runs after 780 s (lab_data_plane.py --budget), each run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "lab-data-plane: the lab needs root to create network namespaces; run it with sudo" >&2
  exit 1
fi
WORKERS=${WORKERS:-2,4,8}
BATCH_PER_WORKER=${BATCH_PER_WORKER:-128}
SECONDS_PER_POINT=${SECONDS_PER_POINT:-20}
PLANES=${PLANES:-star,ring}
DESIGN=${DESIGN:-Benchmarks/results/data-plane-design-20261129T115131Z/design.csv}
export LAB=${LAB:-vaedp}
[[ "$WORKERS" =~ ^[1-9][0-9]?(,[1-9][0-9]?)*$ ]] || { echo "lab-data-plane: WORKERS must be comma-separated counts (1-99), not '$WORKERS'" >&2; exit 2; }
[[ "$PLANES" =~ ^(star|ring|ring-sync|ring-pieces|ring-curve)(,(star|ring|ring-sync|ring-pieces|ring-curve)){0,4}$ ]] || { echo "lab-data-plane: PLANES must be up to five of star, ring, ring-sync, ring-pieces and ring-curve, comma-separated (for example star,ring), not '$PLANES'" >&2; exit 2; }
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/lab-data-plane-$stamp}
mkdir -p "$out/runs"
# The build and the measurements run as jobs of their own (process groups, so that a signal to
# this script stops them too, at once); whatever happens, the job is ended and the lab, once up,
# goes down (which kills every process left in its namespaces: coordinators, workers, transfers).
job=""
lab_up=0
run_job() {
  set -m
  "$@" &
  job=$!
  set +m
  local status=0
  wait "$job" || status=$?
  job=""
  return "$status"
}
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$job" ]; then kill -TERM -- "-$job" 2>/dev/null || true; fi
  if [ "$lab_up" = 1 ]; then Deploy/lab/lab.sh down || true; lab_up=0; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
build() { swift build -c release >&2; }
run_job build
BIN=.build/release
Benchmarks/machine-info.sh > "$out/machine.json"

note=""
plane_args=()
# grep -c reads the whole help: with grep -q and pipefail the writer's SIGPIPE would count as "no flag".
if [ "$("$BIN/vae-coordinator" start --help 2>&1 | grep -c -- --data-plane)" = 0 ]; then
  note="this vae-coordinator has no --data-plane flag (the ring is not built in yet): only the star ran, without the flag"
  PLANES=star
  plane_args=(--no-plane-flag)
  echo "lab-data-plane: $note" >&2
fi

hosts=$(( $(tr ',' '\n' <<< "$WORKERS" | sort -n | tail -1) + 1 ))
measure() {
  # One TCP flow's payload rate through a 1 Gbit/s link (three 250 MB transfers) and the round
  # trip: R of the ideal communication time (without it, the nominal 125e6 B/s).
  python3 Benchmarks/lab_scaling.py --calibrate "$out" --rate 1gbit --megabytes 250 2>&1 | tee -a "$out/log.txt" \
    || echo "lab-data-plane: the link's calibration failed; the ideal uses the nominal 125e6 B/s" >&2
  # A run that fails leaves the others' points (failures.jsonl); the status says so.
  python3 Benchmarks/lab_data_plane.py run "$out" "$BIN" Data/mnist --workers "$WORKERS" --planes "$PLANES" \
    --batch-per-worker "$BATCH_PER_WORKER" --seconds "$SECONDS_PER_POINT" ${plane_args[@]+"${plane_args[@]}"} \
    2>&1 | tee -a "$out/log.txt"
}
lab_up=1
Deploy/lab/lab.sh up "$hosts" --rate 1gbit >&2
status=0
run_job measure || status=$?
cleanup
[ -s "$out/points.jsonl" ] || { echo "lab-data-plane: no run finished; see $out/log.txt and $out/runs/" >&2; exit 1; }

# The runs' checkpoints and pictures are not kept (megabytes each); their logs, metrics, events
# and summaries are.
find "$out/runs" \( -name '*.safetensors' -o -name '*.png' \) -delete
python3 Benchmarks/lab_data_plane.py report "$out" --design "$DESIGN" --note "$note"
title="Star and ring in the lab, 1 Gbit/s links, $BATCH_PER_WORKER samples per worker"
grep -q '(model)' "$out/plot.csv" && title="$title (dashed: model)"
"$BIN/vae" plot series "$out/plot.csv" --dashed-suffix " (model)" --y-from-zero --size 860x520 \
  --title "$title" \
  --x-label "workers (one per lab host; the coordinator on another)" --y-label "samples per second" \
  --out "$out/data-plane.png" >&2
echo "results in $out" >&2
exit "$status"
