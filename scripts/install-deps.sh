#!/usr/bin/env bash
# Installs what building vae-cluster needs, if any of it is missing: the Debian packages of the
# C libraries. With --test, also the Python Prometheus parser the metrics tests scrape with.
# Usage: scripts/install-deps.sh [--test] [--force]
#   --test   also make `python3 -c "import prometheus_client"` work (pip where python3 allows it,
#            as in a virtualenv or pyenv; Debian's python3-prometheus-client where it does not)
#   --force  apt-get update and install the library packages even if present
set -euo pipefail
packages=(libopenblas-dev zlib1g-dev libzmq3-dev libpng-dev pkg-config)
prometheus_client="prometheus-client==0.26.0"
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

if [ $test -eq 1 ]; then
  if ! command -v python3 >/dev/null; then apt_install python3 python3-prometheus-client; fi
  if ! python3 -c "import prometheus_client" 2>/dev/null; then
    # Debian's own python3 refuses pip installs (PEP 668): take its package instead.
    echo "installing: $prometheus_client (pip)" >&2
    python3 -m pip install --quiet --disable-pip-version-check "$prometheus_client" 2>/dev/null \
      || apt_install python3-prometheus-client
  fi
  if ! python3 -c "import prometheus_client" 2>/dev/null; then
    echo "$(command -v python3) cannot import prometheus_client; install it for that python3 (pip install $prometheus_client)" >&2
    exit 1
  fi
fi
