#!/usr/bin/env bash
# Regenerates Sources/TensorBoard/Generated/tensorboard_event.pb.swift from
# Sources/TensorBoard/Proto/tensorboard_event.proto.
#
# Run it after editing the .proto, or after moving the swift-protobuf dependency to a version
# whose generated code differs, and commit the generated file: builds and CI use the committed
# file and never run this script (the first run builds the plugin: 2.5 minutes on 2 cores).
#
# What it does: clones swift-protobuf at the version Package.swift depends on into the scratch
# directory .build-protoc/ (ignored by git; kept between runs, so a second run takes seconds),
# builds its protoc-gen-swift plugin there in release mode, and runs protoc (Debian's
# protobuf-compiler: apt-get install protobuf-compiler) with that plugin. The generated types are
# internal to the TensorBoard module (Visibility=Internal, with `internal import SwiftProtobuf`):
# the module's API is its own Swift types.
#
# Usage: scripts/generate-protos.sh
# Environment: SWIFT_PROTOBUF_URL (default https://github.com/apple/swift-protobuf),
#              SWIFT_PROTOBUF_VERSION (default 1.39.0, the version Package.swift resolves).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
url="${SWIFT_PROTOBUF_URL:-https://github.com/apple/swift-protobuf}"
version="${SWIFT_PROTOBUF_VERSION:-1.39.0}"
scratch="$root/.build-protoc"
checkout="$scratch/swift-protobuf"
proto_dir="$root/Sources/TensorBoard/Proto"
out_dir="$root/Sources/TensorBoard/Generated"

if ! command -v protoc >/dev/null; then
  echo "protoc not found: install it (apt-get install protobuf-compiler) and run $0 again" >&2
  exit 1
fi

# A checkout of another version (SWIFT_PROTOBUF_VERSION changed) is replaced.
if [ -d "$checkout/.git" ] && [ "$(git -C "$checkout" describe --tags --exact-match 2>/dev/null)" != "$version" ]; then
  rm -rf "$checkout"
fi
if [ ! -d "$checkout/.git" ]; then
  mkdir -p "$scratch"
  rm -rf "$checkout.partial"
  git -c advice.detachedHead=false clone --quiet --depth 1 --branch "$version" "$url" "$checkout.partial"
  mv "$checkout.partial" "$checkout"
fi

echo "building protoc-gen-swift $version (minutes the first time, seconds after)" >&2
swift build -c release --product protoc-gen-swift --package-path "$checkout" >&2
plugin="$(swift build -c release --product protoc-gen-swift --package-path "$checkout" --show-bin-path)/protoc-gen-swift"

mkdir -p "$out_dir"
protoc \
  --plugin=protoc-gen-swift="$plugin" \
  --proto_path="$proto_dir" \
  --swift_opt=Visibility=Internal \
  --swift_opt=UseAccessLevelOnImports=true \
  --swift_out="$out_dir" \
  "$proto_dir/tensorboard_event.proto"
echo "wrote $out_dir/tensorboard_event.pb.swift ($(protoc --version), protoc-gen-swift $version)" >&2
