#!/usr/bin/env bash
# Regenerates the committed Swift code in Sources/MoltProtos from the .proto files beside it.
# Run by hand after changing a .proto (`make protos`); the build never runs it. Needs Debian's protoc
# (installed when missing) and the two generator plugins, built by SwiftPM from the package's own
# dependencies into .build-protoc.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v protoc >/dev/null; then
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq protobuf-compiler
fi
scratch=.build-protoc
swift build --scratch-path "$scratch" --product protoc-gen-swift
swift build --scratch-path "$scratch" --product protoc-gen-grpc-swift-2
bin="$(swift build --scratch-path "$scratch" --show-bin-path)"  # absolute

root=Sources/MoltProtos/protos
out=Sources/MoltProtos/Generated
rm -rf "$out" && mkdir -p "$out"
files=$(cd "$root" && find . -name '*.proto' | sed 's|^\./||' | sort)
# Public types (the services and the tests use them from other modules); file names keep their path
# so two protos with the same base name cannot collide.
(cd "$root" && protoc -I . -I /usr/include \
    --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
    --plugin=protoc-gen-grpc-swift="$bin/protoc-gen-grpc-swift-2" \
    --swift_out="$OLDPWD/$out" --swift_opt=Visibility=Public,FileNaming=PathToUnderscores \
    --grpc-swift_out="$OLDPWD/$out" --grpc-swift_opt=Visibility=Public,FileNaming=PathToUnderscores,Client=true,Server=true \
    $files)
ls -1 "$out"
