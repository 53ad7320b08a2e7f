#!/usr/bin/env bash
# Runs a coordinator and N workers as separate processes on this machine, connected over an ipc
# socket, and stops every one of them on exit, on error or on Ctrl-C (no orphan is left).
#
# Usage: Deploy/local-cluster.sh N [training options of vae-coordinator start]
#   e.g. Deploy/local-cluster.sh 2 --data Data/mnist --epochs 10 --batch 256 --out runs/local
# Environment: BIN (default .build/release), built with `swift build -c release` if missing;
# WORKER_THREADS (default 1), each worker's compute threads (`vae-worker join --threads`: its part's
# samples are split over them, one BLAS thread each), e.g. WORKER_THREADS=2 with N = 1 for one
# worker using two cores.
set -euo pipefail
if [ $# -lt 1 ] || ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 N [training options]   (N = number of workers, at least 1)" >&2
  exit 2
fi
workers=$1
shift
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release}
WORKER_THREADS=${WORKER_THREADS:-1}
if [ ! -x "$BIN/vae-coordinator" ] || [ ! -x "$BIN/vae-worker" ]; then
  swift build -c release >&2
fi

dir=$(mktemp -d)
pids=()
# Whether any of the processes is still running.
alive() {
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && return 0; done
  return 1
}
# Waits up to $1 tenths of a second for every process to exit.
await() {
  for _ in $(seq 1 "$1"); do alive || return 0; sleep 0.1; done
  ! alive
}
# Stops every process: a Ctrl-C (INT) reached the whole process group already, so they are first
# given time to stop by themselves (the coordinator checkpoints; a second signal would make it
# exit at once without); otherwise, or if they do not stop, they get one SIGTERM, then SIGKILL.
cleanup() {
  trap - EXIT INT TERM
  if [ "${1:-}" != INT ] || ! await 100; then
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    await 100 || true
  fi
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
# 128 + the signal, as the coordinator itself exits when stopped.
trap 'cleanup INT; exit 130' INT
trap 'cleanup TERM; exit 143' TERM

endpoint="ipc://$dir/coordinator.sock"
"$BIN/vae-coordinator" start --bind "$endpoint" --workers "$workers" "$@" &
coordinator=$!
pids+=("$coordinator")
for i in $(seq 1 "$workers"); do
  OPENBLAS_NUM_THREADS=1 "$BIN/vae-worker" join --coordinator "$endpoint" --threads "$WORKER_THREADS" \
    --name "worker-$i" --quiet &
  pids+=("$!")
done

status=0
wait "$coordinator" || status=$?
for pid in "${pids[@]:1}"; do wait "$pid" || status=${status:-$?}; done
exit "$status"
