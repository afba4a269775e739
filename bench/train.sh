#!/usr/bin/env bash
# train.sh compares training throughput of the Go trainer with PyTorch on
# the same model: the prototype's Fashion-MNIST CNN (421,642 parameters),
# batch 64, Adam, dropout on, no augmentation, a fixed number of steps. Each
# repetition runs both, back to back, so they see the same machine; the
# script prints every run, the medians in images per second, and the ratio
# Go/PyTorch (the goal is >= 1.0).
#
#   bench/train.sh [steps] [repetitions]     (make bench-train)
#
# Both measure the same way: the time of every step but the first (graph
# compilation, warm-up), over the images those steps saw. Go uses
# GOMAXPROCS cores (default all); PyTorch uses torch.set_num_threads(THREADS)
# (default: the same number). Needs Debian's python3-torch, which it
# installs when missing (as root, or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

steps=${1:-200}
reps=${2:-3}
BIN=${BIN:-$PWD/bin}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
PYTHON=/usr/bin/python3 # Debian's interpreter: the one python3-torch is for
export GOEXPERIMENT=${GOEXPERIMENT:-simd}
cores=${GOMAXPROCS:-$(nproc)}
THREADS=${THREADS:-$cores}

apt_install() {
	local sudo=""
	if ((EUID != 0)); then sudo="sudo"; fi
	echo "bench-train: installing Debian packages: $*" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if ! "$PYTHON" -c 'import torch' 2>/dev/null; then apt_install python3-torch; fi
if [[ ! -d $DATA ]]; then apt_install dataset-fashion-mnist; fi

mkdir -p "$BIN"
go build -o "$BIN/trainer" ./trainer/cmd/trainer
# The Go trainer reads the dataset as ingest writes it (make fmnist).
make -s fmnist BIN="$BIN" >/dev/null
FMNIST_DIGEST=b0357547c5cfd67f4249e525e277519f0fd76294d93e0a14afb0208adf693b02
GO_DATA="file://${DATA_STORE:-$PWD/out/store}/datasets/fashion-mnist/$FMNIST_DIGEST/"

# median reads numbers, one a line.
median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

go_run() {
	GOMAXPROCS=$cores "$BIN/trainer" train --arch=cnn --batch-size=64 --max-steps="$steps" \
		--rotation=0 --crop-padding=0 --dropout=true --data="$GO_DATA" --dataset-sha256="$FMNIST_DIGEST" 2>/dev/null |
		sed -n 's/.*images_per_second=\([0-9.]*\) cpu_utilization=\([0-9.]*\).*/\1 \2/p'
}

torch_run() {
	"$PYTHON" bench/torch_cnn.py --data="$DATA" --steps="$steps" --batch-size=64 --threads="$THREADS" |
		sed -n 's/.*"images_per_second": \([0-9.]*\).*/\1/p'
}

read -r load_before _ </proc/loadavg
echo "bench-train: cnn, batch 64, $steps steps, $reps repetitions; Go GOMAXPROCS=$cores, PyTorch $THREADS threads; load average $load_before on $(nproc) cores"
gos=() cpus=() torches=()
for ((i = 1; i <= reps; i++)); do
	read -r g cpu < <(go_run)
	t=$(torch_run)
	if [[ -z $g || -z $t ]]; then
		echo "bench-train: a run printed no throughput (go: '$g', pytorch: '$t')" >&2
		exit 1
	fi
	printf '  run %d: go %8.1f img/s (CPU %.0f%% of %d cores)   pytorch %8.1f img/s\n' "$i" "$g" "$(awk -v c="$cpu" 'BEGIN {print 100 * c}')" "$cores" "$t"
	gos+=("$g") cpus+=("$cpu") torches+=("$t")
done
read -r load_after _ </proc/loadavg

go_median=$(printf '%s\n' "${gos[@]}" | median)
torch_median=$(printf '%s\n' "${torches[@]}" | median)
cpu_median=$(printf '%s\n' "${cpus[@]}" | median)
printf 'median: go %.1f img/s, pytorch %.1f img/s, go/pytorch %.2f (bound >= 1.0); go CPU utilization %.0f%% of GOMAXPROCS cores (bound >= 90%%)\n' \
	"$go_median" "$torch_median" "$(awk -v g="$go_median" -v t="$torch_median" 'BEGIN {print g / t}')" \
	"$(awk -v c="$cpu_median" 'BEGIN {print 100 * c}')"
if awk -v l="$load_after" -v c="$(nproc)" 'BEGIN {exit !(l > c)}'; then
	echo "bench-train: warning: load average $load_after exceeds the $(nproc) cores: other work skews these numbers (PyTorch's threads suffer most)" >&2
fi
