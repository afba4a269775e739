#!/usr/bin/env bash
# train.sh compares the Go trainer's training throughput with PyTorch's on
# the same models, in both layouts of a 2-core node, in one invocation:
#
#   1×2  one process on 2 cores: `trainer train` (GOMAXPROCS=2) against
#        PyTorch in 1 process × 2 threads;
#   2×1  two processes on 1 core each: `trainer launch --nproc 2`
#        (GOMAXPROCS=1) against PyTorch DistributedDataParallel over gloo,
#        2 ranks × 1 thread, over 127.0.0.1.
#
# Models: models/cnn.yaml and models/resnet-small.yaml (bench/torch_cnn.py
# has both in PyTorch), global batch 64, Adam, dropout on, no augmentation.
# Each side runs RUNS times, alternating (Go, PyTorch, Go, PyTorch, ...), so
# both see the same machine. Printed per model and layout: the median
# images/s and the min–max spread of each side, the ratio Go/PyTorch, the
# peak RSS (per process, median over runs) and the 1-minute load averages
# seen before the runs, and the FP32 FLOP rate reached as a fraction of the
# CPU's peak. Throughput is measured alike on both sides: the time of
# every step but the first (compilation, warm-up), over the images those
# steps saw.
#
# Before each run the script waits up to SETTLE seconds (default 120) for
# the 1-minute load average to fall to 0.5 per core, so the previous run's
# load does not count against the next. A ratio is not reported when the
# load average before any run was still above that bound: other work would
# skew the comparison (PyTorch's threads suffer most). The medians are
# printed anyway, marked.
#
#   bench/train.sh [steps] [runs]      (make bench-train; defaults 200, 5)
#
# Knobs: MODELS ("cnn resnet-small"), RESNET_STEPS (40), SETTLE (120),
# LAYOUTS ("1x2 2x1"), PEAK_GFLOPS (default: measured, see below), DATA. A
# model the trainer does not know is skipped with a note. Needs Debian's
# python3-torch and dataset-fashion-mnist, which it installs when missing
# (as root, or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

steps=${1:-200}
runs=${2:-5}
MODELS=${MODELS:-cnn resnet-small}
LAYOUTS=${LAYOUTS:-1x2 2x1}
RESNET_STEPS=${RESNET_STEPS:-40}
BIN=${BIN:-$PWD/bin}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
PYTHON=/usr/bin/python3 # Debian's interpreter: the one python3-torch is for
export GOEXPERIMENT=${GOEXPERIMENT:-simd}
. bench/lib.sh

# Training FLOPs per image: 3× the forward pass (forward, and the two
# products of the backward pass), from internal/arch/README.md's MFLOPs.
declare -A fwd_mflops=([cnn]=8.59 [resnet-small]=74.72)

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

# The FP32 peak is cores × one core's best FMA rate, measured
# (BenchmarkFMAPeak; the best of 5, as noise only lowers it); without the
# SIMD kernels, the clock × 32 FLOP per cycle (two 256-bit FMA pipes).
if [[ -n ${PEAK_GFLOPS:-} ]]; then
	peak_gflops=$PEAK_GFLOPS peak_from="PEAK_GFLOPS"
else
	peak_from="cores × BenchmarkFMAPeak's best of 5 on one core"
	peak_gflops=$(GOMAXPROCS=1 go test ./internal/kernels -run '^$' -bench '^BenchmarkFMAPeak$' -count 5 2>/dev/null |
		awk -v c="$cores" '/GFLOP\/s/ {if ($(NF-1) > m) m = $(NF-1)} END {if (m) printf "%.0f", c * m}')
	if [[ -z $peak_gflops ]]; then
		peak_from="/proc/cpuinfo's MHz × 32 FLOP per cycle, which boosting cores exceed"
		peak_gflops=$(awk -v c="$cores" '/^cpu MHz/ {if ($4 > m) m = $4} END {printf "%.0f", c * m * 32 / 1000}' /proc/cpuinfo)
	fi
fi

# median and spread read numbers, one a line.
median() { sort -g | awk '{v[NR] = $1} END {if (!NR) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
spread() { sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%s–%s", lo, hi}'; }
field() { grep -o "$1=[0-9.]*" | cut -d= -f2; }
json() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }
maxof() { sort -g | tail -1; }
mean() { awk '{s += $1} END {if (NR) printf "%.2f", s / NR; else print "nan"}'; }

# Each runner prints "images_per_second peak_rss_mb" (RSS: the largest
# process's); go_run adds its CPU utilization (CPU time over wall time ×
# GOMAXPROCS, the mean over ranks) over the throughput's window: the steps
# after the first, which compiles the graphs; and rank 0's mean step split
# over the same steps: gradients, all-reduce and update, in ms.
go_run() { # model layout steps
	local flags=(--arch="$1" --batch-size=64 --max-steps="$3" --rotation=0 --crop-padding=0 --dropout=true --data="$GO_DATA" --dataset-sha256="$FMNIST_DIGEST")
	local out
	if [[ $2 == 1x2 ]]; then
		out=$(GOMAXPROCS=2 "$BIN/trainer" train "${flags[@]}" 2>/dev/null)
		echo "$(field images_per_second <<<"$out") $(field peak_rss_mb <<<"$out") $(field cpu_utilization <<<"$out") $(split <<<"$out")"
	else
		out=$(GOMAXPROCS=1 "$BIN/trainer" launch --nproc 2 -- "${flags[@]}" 2>/dev/null)
		echo "$(grep '^\[rank 0\]' <<<"$out" | field images_per_second) $(field peak_rss_mb <<<"$out" | maxof) $(grep '^\[rank' <<<"$out" | field cpu_utilization | mean) $(grep '^\[rank 0\]' <<<"$out" | split)"
	fi
}

# split is a benchmark line's step split: "gradients_ms allreduce_ms update_ms".
split() {
	local line
	line=$(cat)
	echo "$(field gradients_ms <<<"$line") $(field allreduce_ms <<<"$line") $(field update_ms <<<"$line")"
}

torch_run() { # model layout steps
	local args=(bench/torch_cnn.py --data="$DATA" --model="$1" --steps="$3" --batch-size=64)
	local out
	if [[ $2 == 1x2 ]]; then
		out=$("$PYTHON" "${args[@]}" --threads=2)
	else
		local port=$((29500 + RANDOM % 2000)) pids=() r
		out=$(
			for r in 0 1; do
				RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$PYTHON" "${args[@]}" --threads=1 &
				pids+=($!)
			done
			wait "${pids[@]}"
		)
	fi
	echo "$(grep '"rank": 0' <<<"$out" | json images_per_second) $(json peak_rss_mb <<<"$out" | maxof)"
}

known=$("$BIN/trainer" train --help 2>&1 | sed -n 's/.*built-in name: \([^(]*\).*/\1/p' | tr -d ',' || true)

echo "bench-train: batch 64, $runs alternating runs per side; $cores cores; load bound $max_load (0.5 per core);"
echo "  CPU FP32 peak ${peak_gflops} GFLOP/s ($peak_from)"
for model in $MODELS; do
	if [[ -n $known && " $known " != *" $model "* ]]; then
		echo
		echo "== $model: skipped: this trainer knows only: $known"
		continue
	fi
	n=$steps
	if [[ $model == resnet-small ]]; then n=$RESNET_STEPS; fi
	for layout in $LAYOUTS; do
		echo
		case $layout in
		1x2) echo "== $model, 1 process × 2 cores: Go (GOMAXPROCS=2) vs PyTorch (1 process × 2 threads), $n steps" ;;
		2x1) echo "== $model, 2 processes × 1 core: Go (launch --nproc 2, GOMAXPROCS=1) vs PyTorch DDP gloo (2 ranks × 1 thread, 127.0.0.1), $n steps" ;;
		*)
			echo "bench-train: unknown layout $layout (want 1x2 or 2x1)" >&2
			exit 2
			;;
		esac
		gos=() torches=() grss=() trss=() gcpu=() ggrad=() gred=() gupd=() loads=() busy=""
		for ((i = 1; i <= runs; i++)); do
			for side in go torch; do
				load=$(settle)
				loads+=("$load")
				if awk -v l="$load" -v m="$max_load" 'BEGIN {exit !(l > m)}'; then
					busy="${busy:-load average $load before run $i ($side)}"
				fi
				read -r ips rss cpu grad red upd < <(${side}_run "$model" "$layout" "$n")
				if [[ -z $ips ]]; then
					echo "bench-train: $side run $i of $model ($layout) printed no throughput" >&2
					exit 1
				fi
				if [[ $side == go ]]; then
					gos+=("$ips") grss+=("$rss") gcpu+=("$cpu") ggrad+=("$grad") gred+=("$red") gupd+=("$upd")
				else
					torches+=("$ips") trss+=("$rss")
				fi
			done
			printf '  run %d: go %8.1f img/s (%4s MB)   pytorch %8.1f img/s (%4s MB)   load before: %s %s\n' \
				"$i" "${gos[-1]}" "${grss[-1]}" "${torches[-1]}" "${trss[-1]}" "${loads[-2]}" "${loads[-1]}"
		done
		gm=$(printf '%s\n' "${gos[@]}" | median)
		tm=$(printf '%s\n' "${torches[@]}" | median)
		printf '  go      median %8.1f img/s (min–max %s), peak RSS %s MB per process, CPU utilization %s (min–max %s)\n' "$gm" "$(printf '%s\n' "${gos[@]}" | spread)" "$(printf '%s\n' "${grss[@]}" | median)" "$(printf '%s\n' "${gcpu[@]}" | median)" "$(printf '%s\n' "${gcpu[@]}" | spread)"
		printf '  go      step (rank 0, medians): gradients %s ms, all-reduce %s ms (min–max %s), update %s ms\n' "$(printf '%s\n' "${ggrad[@]}" | median)" "$(printf '%s\n' "${gred[@]}" | median)" "$(printf '%s\n' "${gred[@]}" | spread)" "$(printf '%s\n' "${gupd[@]}" | median)"
		printf '  pytorch median %8.1f img/s (min–max %s), peak RSS %s MB per process\n' "$tm" "$(printf '%s\n' "${torches[@]}" | spread)" "$(printf '%s\n' "${trss[@]}" | median)"
		printf '  load average before runs: %s–%s\n' "$(printf '%s\n' "${loads[@]}" | sort -g | head -1)" "$(printf '%s\n' "${loads[@]}" | maxof)"
		awk -v g="$gm" -v t="$tm" -v f="${fwd_mflops[$model]}" -v p="$peak_gflops" 'BEGIN {
			printf "  FP32 rate: go %.1f GFLOP/s = %.1f%% of peak, pytorch %.1f GFLOP/s = %.1f%% (%.1f MFLOP per trained image)\n",
				g * 3 * f / 1000, 100 * g * 3 * f / 1000 / p, t * 3 * f / 1000, 100 * t * 3 * f / 1000 / p, 3 * f }'
		if [[ -n $busy ]]; then
			echo "  ratio go/pytorch: not reported: $busy exceeds $max_load (0.5 per core): other work skews the comparison; rerun on an idle machine"
		else
			printf '  ratio go/pytorch: %.2f\n' "$(awk -v g="$gm" -v t="$tm" 'BEGIN {print g / t}')"
		fi
	done
done
