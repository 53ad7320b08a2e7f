#!/usr/bin/env bash
# What the dependencies cost the build: clean builds of fresh clones of this repository at each
# revision in REVS (default: 4e7a925, the last commit before the metrics libraries, and HEAD),
# debug with tests (what CI builds) and then release; and two bare packages that differ only in
# their HTTP server (Hummingbird or FlyingFox, each with swift-metrics and swift-prometheus).
# Run on an otherwise idle machine: builds use both cores.
#
# Usage: Benchmarks/build-cost.sh        (REVS="4e7a925 HEAD" by default; PROBES=0 skips the probes)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
REVS=${REVS:-"4e7a925 HEAD"}
PROBES=${PROBES:-1}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/build-cost-$stamp.txt}
mkdir -p "$(dirname "$out")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

seconds() {  # seconds DIR COMMAND...: wall seconds of COMMAND run in DIR
  local dir=$1; shift
  local start end
  start=$(date +%s.%N)
  (cd "$dir" && "$@" >/dev/null 2>&1)
  end=$(date +%s.%N)
  python3 -c "print(f'{$end - $start:.1f}')"
}

for rev in $REVS; do
  commit=$(git rev-parse --short "$rev")
  dir="$work/clone-$commit"
  git clone -q "$repo" "$dir"
  git -C "$dir" checkout -q "$commit"
  (cd "$dir" && swift package resolve >/dev/null 2>&1)
  debug=$(seconds "$dir" swift build --build-tests)
  release=$(seconds "$dir" swift build -c release)
  echo "$commit debug-with-tests ${debug}s release ${release}s" | tee -a "$out"
done

if [ "$PROBES" = 1 ]; then
  for server in hummingbird flyingfox; do
    dir="$work/probe-$server"
    mkdir -p "$dir/Sources/probe"
    if [ $server = hummingbird ]; then
      dependency='.package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1")'
      product='.product(name: "Hummingbird", package: "hummingbird")'
      echo 'import Hummingbird; import Prometheus; print(Router.self, PrometheusCollectorRegistry.self)' > "$dir/Sources/probe/main.swift"
    else
      dependency='.package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.1")'
      product='.product(name: "FlyingFox", package: "FlyingFox")'
      echo 'import FlyingFox; import Prometheus; print(HTTPServer.self, PrometheusCollectorRegistry.self)' > "$dir/Sources/probe/main.swift"
    fi
    cat > "$dir/Package.swift" <<SWIFT
// swift-tools-version: 6.1
import PackageDescription
let package = Package(name: "probe", platforms: [.macOS(.v14)],
  dependencies: [
    .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    $dependency,
  ],
  targets: [.executableTarget(name: "probe", dependencies: [
    .product(name: "Metrics", package: "swift-metrics"),
    .product(name: "Prometheus", package: "swift-prometheus"),
    $product])])
SWIFT
    (cd "$dir" && swift package resolve >/dev/null 2>&1)
    echo "probe-$server debug $(seconds "$dir" swift build)s" | tee -a "$out"
  done
fi
echo "results in $out" >&2
