#!/usr/bin/env bash
# Installs what building vae-cluster needs, if any of it is missing: the Debian packages of the
# C libraries. With --test, also iproute2, Slurm and munge (the lab and its Slurm: Deploy/lab/) and
# the Python packages the tests run: the Prometheus parser (metrics
# tests), numpy and safetensors (safetensors interop), torch's CPU build (docs/CHECKPOINT.md's
# PyTorch snippet), tensorboard (its own reader reads our event files: TensorBoardTests,
# scripts/read-tensorboard.py) and kubernetes-validate (Kubernetes' API schemas, offline:
# KubernetesTests).
# Usage: scripts/install-deps.sh [--test] [--force]
#   --test   also install those Python packages: with pip into python3's environment where python3
#            allows it (pyenv, a virtualenv); where it does not (Debian's own python3 refuses pip
#            installs, PEP 668), into a virtual environment at .build/test-python, which the tests
#            then run (Tests/TestSupport/TestPython.swift)
#   --force  apt-get update and install the library packages even if present
set -euo pipefail
packages=(libopenblas-dev zlib1g-dev libzmq3-dev libpng-dev libcairo2-dev fonts-dejavu-core pkg-config)
# torch's CPU build only: a plain `pip install torch` brings gigabytes of CUDA libraries.
python_packages=("prometheus-client==0.26.0" "numpy" "safetensors==0.8.0" "torch==2.13.0+cpu" "tensorboard==2.21.0" "kubernetes-validate==1.37.0")
python_imports="import prometheus_client, numpy, safetensors.numpy, safetensors.torch, torch, tensorboard, kubernetes_validate"
test=0
force=0
for argument in "$@"; do
  case "$argument" in
    --test) test=1 ;;
    --force) force=1 ;;
    *) echo "usage: $0 [--test] [--force]" >&2; exit 2 ;;
  esac
done

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
updated=0
apt_install() {
  echo "installing: $* (apt)" >&2
  if [ $updated -eq 0 ]; then $sudo apt-get update; updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "$@"
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ $force -eq 1 ]; then missing=("${packages[@]}"); fi
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
test_packages=(iproute2 slurmd slurmctld slurm-client munge)

if [ $test -eq 1 ]; then
  # Slurm and munge for the lab's Slurm tests (Deploy/lab/slurm.sh runs daemons of its own, never
  # the system's): a policy-rc.d keeps their packages from starting system services meanwhile.
  missing=()
  for p in "${test_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ $force -eq 1 ]; then missing=("${test_packages[@]}"); fi
  if [ ${#missing[@]} -gt 0 ]; then
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null && $sudo chmod 755 /usr/sbin/policy-rc.d
      trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt_install "${missing[@]}"
  fi

  venv="$(cd "$(dirname "$0")/.." && pwd)/.build/test-python"
  if ! command -v python3 >/dev/null; then apt_install python3; fi
  python=python3
  if [ -x "$venv/bin/python3" ]; then python="$venv/bin/python3"; fi  # made by an earlier run
  if ! "$python" -c "$python_imports" 2>/dev/null; then
    # pip refuses a python3 marked EXTERNALLY-MANAGED (PEP 668), as Debian's own is.
    managed=$(python3 -c 'import os, sysconfig; print(int(os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))))')
    if [ "$python" = python3 ] && { [ "$managed" = 1 ] || ! python3 -m pip --version >/dev/null 2>&1; }; then
      echo "$(command -v python3) does not take pip installs: making the virtual environment $venv" >&2
      python3 -c "import ensurepip" 2>/dev/null || apt_install python3-venv
      python3 -m venv "$venv"
      python="$venv/bin/python3"
    fi
    echo "installing: ${python_packages[*]} (pip, for $python)" >&2
    "$python" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${python_packages[@]}" || true  # checked below
  fi
  if ! "$python" -c "$python_imports"; then
    echo "$python cannot import what the tests need; install it with: $python -m pip install ${python_packages[*]}" >&2
    exit 1
  fi
fi
