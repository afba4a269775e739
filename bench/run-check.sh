#!/usr/bin/env bash
# run-check.sh times `aerie run check` against a plain `kustomize build` of the
# same generated tree of runs (default 1,000), several times each, and
# prints both medians and their ratio. Goal: aerie run check, which also parses
# and validates every declaration, re-renders it and compares, is no slower
# than kustomize build alone.
#
#   bench/run-check.sh [runs] [repeats]     (make bench)
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-1000}
repeats=${2:-3}
BIN=${BIN:-$PWD/bin}
KUSTOMIZE_VERSION=${KUSTOMIZE_VERSION:-v5.8.2} # builds with kustomize/api v0.21.2, as go.mod

mkdir -p "$BIN"
go build -o "$BIN/aerie" ./tools/aerie/cmd/aerie
if [[ "$("$BIN/kustomize" version 2>/dev/null)" != "$KUSTOMIZE_VERSION" ]]; then
	GOBIN=$BIN go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
jobs=$tmp/apps/jobs
mkdir -p "$jobs/runs"
# What the runs resolve against: the committed dataset manifests and, two
# levels above the jobs directory, the architectures.
cp -r apps/jobs/datasets "$jobs/"
cp -r models "$tmp/"

# Vary the runs the way real ones differ: model, workers, batch, epochs.
for ((i = 0; i < runs; i++)); do
	count=$((i % 8 + 1))
	arch=cnn
	if ((i % 3 == 0)); then arch=small; fi
	sed -e "s/^  name: fmnist-cnn$/  name: run-$i/" \
		-e "s/^    architecture: cnn$/    architecture: $arch/" \
		-e "s/^    epochs: 10$/    epochs: $((i % 50 + 1))/" \
		-e "s/^    batchSize: 128$/    batchSize: $((32 * count))/" \
		-e "s/^    count: 4$/    count: $count/" \
		apps/jobs/runs/fmnist-cnn.yaml >"$jobs/runs/run-$i.yaml"
done
"$BIN/aerie" run render --jobs "$jobs" --revision 0123456789abcdef0123456789abcdef01234567 2>/dev/null
"$BIN/aerie" run check --jobs "$jobs" # fail early, not in the timing loop

# seconds runs a command and prints its wall time in seconds.
seconds() {
	local start=$EPOCHREALTIME
	"$@" >/dev/null
	awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}'
}
median() { sort -g | awk '{a[NR] = $1} END {m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f", m}'; }

check_times=() build_times=()
for ((r = 0; r < repeats; r++)); do
	check_times+=("$(seconds "$BIN/aerie" run check --jobs "$jobs")")
	build_times+=("$(seconds "$BIN/kustomize" build "$jobs")")
done
check=$(printf '%s\n' "${check_times[@]}" | median)
build=$(printf '%s\n' "${build_times[@]}" | median)
echo "runs: $runs, repeats: $repeats, GOMAXPROCS: $(nproc)"
echo "aerie run check: median ${check}s  (${check_times[*]})"
echo "kustomize build: median ${build}s  (${build_times[*]})"
awk -v c="$check" -v b="$build" 'BEGIN {printf "ratio check/build: %.2f\n", c / b}'
