#!/usr/bin/env bash
# What filling the next ring step's batch ahead buys on one host (`WorkInputs`): Benchmarks/flag-ab.sh
# with the local workers filling it while they wait for the all-gather's last chunks (the default)
# and filling it when the step starts (`--no-fill-ahead`, "at-start"), alternating ROUNDS times,
# EPOCHS epochs each: samples/s and the CPU time of the coordinator and its workers per step.
#
# Usage: Benchmarks/fill-ahead-ab.sh      (ROUNDS=8, EPOCHS=2 by default)
# Output: Benchmarks/results/fill-ahead-<time>/ (flag-ab.sh's files: default-*, at-start-*)
set -euo pipefail
cd "$(dirname "$0")/.."
export ROUNDS=${ROUNDS:-8} EPOCHS=${EPOCHS:-2}
OUT=${OUT:-Benchmarks/results/fill-ahead-$(date -u +%Y%m%dT%H%M%SZ)} exec Benchmarks/flag-ab.sh at-start --no-fill-ahead
