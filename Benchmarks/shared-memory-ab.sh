#!/usr/bin/env bash
# What shared memory between ring neighbours buys on one host: Benchmarks/flag-ab.sh with the
# ring's chunks through shared memory (the default) and over loopback sockets
# (`--no-shared-memory`), alternating ROUNDS times: samples/s and the CPU time of the coordinator
# and its workers per step. (Results stored before 2026-11-30T07:00Z came from an earlier version
# of this script, whose local workers joined the coordinator over loopback tcp, and whose output
# names the variants "shared" and "sockets".)
#
# Usage: Benchmarks/shared-memory-ab.sh      (ROUNDS=5 by default)
# Output: Benchmarks/results/shared-memory-<time>/ (flag-ab.sh's files: default-*, sockets-*)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-Benchmarks/results/shared-memory-$(date -u +%Y%m%dT%H%M%SZ)} exec Benchmarks/flag-ab.sh sockets --no-shared-memory
