#!/usr/bin/env bash
# edge.sh measures the edge agent's footprint: the static aerie-edge binary
# runs each model of MODELS (built-in architectures from models/: the cnn,
# 421,642 parameters, and resnet-small by default; seeded weights, the same
# compute as trained ones) on synthetic frames at batch 1 after installing
# and self-testing it; for each the script reports its peak RSS (VmHWM), the
# mean per-frame classify latency and the latency histogram from /metrics.
#
#   bench/edge.sh                     (make bench-edge)
#   MODELS=cnn bench/edge.sh          the cnn only
#   ARCH=arm64 bench/edge.sh          the arm64 binary under qemu-aarch64-static
#                                     (emulated: the peak RSS includes qemu's
#                                     own memory and latency means nothing;
#                                     "Go-mapped" is the agent's)
#   FRAMES=2000 GOMEMLIMIT=32MiB bench/edge.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ARCH=${ARCH:-$(go env GOARCH)}
FRAMES=${FRAMES:-500}
MODELS=${MODELS:-cnn resnet-small}
BIN=${BIN:-$PWD/bin}
mkdir -p "$BIN"
bin=$BIN/aerie-edge-linux-$ARCH
experiment=${GOEXPERIMENT:-simd}
wrap=""
if [[ $ARCH != "$(go env GOHOSTARCH)" ]]; then
	experiment="" # the SIMD experiment is for amd64
	wrap=qemu-aarch64-static
fi
GOOS=linux GOARCH=$ARCH CGO_ENABLED=0 GOEXPERIMENT=$experiment \
	go build -tags disable_grpc_modules -trimpath -ldflags "-s -w" -o "$bin" ./edge/cmd/aerie-edge
echo "binary: $bin ($(stat -c %s "$bin") bytes, GOEXPERIMENT=$experiment)"
for model in $MODELS; do
	echo "model: $model"
	AERIE_EDGE_BIN=$bin AERIE_EDGE_EXEC=$wrap AERIE_EDGE_FRAMES=$FRAMES AERIE_EDGE_ARCH=$model \
		go test -count=1 -run '^TestFootprint$' -v ./edge/internal/agent | grep -E 'footprint_test|^(ok|FAIL|---)'
done
