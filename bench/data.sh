#!/usr/bin/env bash
# bench/data.sh (make bench-data): the dataset path's figures from issue 12,
# each an A B A B comparison inside one invocation, RUNS runs each (default
# 5), printed as every run, then median and spread (min–max):
#
#   a. format: the prototype's cnn on Fashion-MNIST, batch 64, MAX_STEPS
#      steps (default 300), through the ingested format (this tree's
#      trainer) against the old IDX path (the trainer built at OLD_COMMIT,
#      default 5de6f84, the last commit that read IDX files, from a
#      `git worktree` in $WORK). Figures: images/s of the steps (the
#      trainer's own rate, compilation excluded) and the process's wall
#      seconds (data loading, compilation and the steps). The old binary
#      also has that commit's model and kernels, so the ratio is of the
#      whole trainer, not of the data path alone.
#   b. memory: a replica's peak RSS (GNU time's maximum resident set)
#      training the small network one epoch (batch 256, with validation and
#      test) on Fashion-MNIST and on a generated dataset 10× its size (its
#      IDX files repeated 10 times, then ingested); target: within 10%.
#   c. ingest: `aerie dataset ingest` of Debian's 70,000 images into an
#      empty file:// store: seconds, and MB/s of shard bytes written.
#
#   bench/data.sh [a] [b] [c]        (default: all three)
#
# Parts a and c first wait up to SETTLE seconds (default 120) for the load
# average to fall to 0.5 per core (bench/lib.sh), and part a prints the
# load before every run.
#
# Knobs: RUNS, MAX_STEPS, OLD_COMMIT, WORK (scratch, default
# /tmp/aerie-bench-data; 2.5 GB for b), GOMAXPROCS, SETTLE. Needs Debian's
# dataset-fashion-mnist and GNU time (installed when missing, as root or
# with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
MAX_STEPS=${MAX_STEPS:-300}
OLD_COMMIT=${OLD_COMMIT:-5de6f84}
WORK=${WORK:-/tmp/aerie-bench-data}
FMNIST=/usr/share/datasets/fashion-mnist
FMNIST_DIGEST=$(sed -n 's/^FMNIST_DIGEST := //p' Makefile)
export GOEXPERIMENT=${GOEXPERIMENT:-simd} GOFLAGS=${GOFLAGS:--tags=disable_grpc_modules}
parts=("$@")
((${#parts[@]})) || parts=(a b c)

need=()
[[ -d $FMNIST ]] || need+=(dataset-fashion-mnist)
[[ -x /usr/bin/time ]] || need+=(time)
if ((${#need[@]})); then
	sudo=""
	((EUID == 0)) || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$WORK/bin"
BIN=$WORK/bin
go build -o "$BIN/trainer" ./trainer/cmd/trainer
go build -o "$BIN/aerie" ./tools/aerie/cmd/aerie
STORE=$WORK/store
"$BIN/aerie" dataset ingest --to "file://$STORE" --sha256 "$FMNIST_DIGEST" >/dev/null 2>&1
DATA="file://$STORE/datasets/fashion-mnist/$FMNIST_DIGEST/"

# stats prints "median M (min–max L–H)" of numbers, one a line.
stats() {
	sort -g | awk '{v[NR] = $1} END {
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "median %.4g (min–max %.4g–%.4g, n=%d)", m, v[1], v[NR], NR }'
}
now() { date +%s.%N; }
load() { cut -d' ' -f1 /proc/loadavg; }
. bench/lib.sh

bench_format() {
	local old=$WORK/old
	if [[ ! -x $BIN/trainer-old ]]; then
		git worktree remove --force "$old" 2>/dev/null || true
		git worktree add --detach "$old" "$OLD_COMMIT" >/dev/null
		(cd "$old" && go build -o "$BIN/trainer-old" ./trainer/cmd/trainer)
		git worktree remove --force "$old"
	fi
	local flags=(--arch=cnn --batch-size=64 --max-steps="$MAX_STEPS" --rotation=0 --crop-padding=0 --dropout=true)
	local new_ips=() old_ips=() new_wall=() old_wall=()
	echo "a. format: cnn, batch 64, $MAX_STEPS steps, $RUNS runs each, A B A B; load $(settle) on $cores cores after up to ${SETTLE}s settling"
	for ((i = 1; i <= RUNS; i++)); do
		for which in new old; do
			local t0 out t1 before
			before=$(load)
			t0=$(now)
			if [[ $which == new ]]; then
				out=$("$BIN/trainer" train "${flags[@]}" --data="$DATA" --dataset-sha256="$FMNIST_DIGEST" 2>/dev/null)
			else
				out=$("$BIN/trainer-old" train "${flags[@]}" --data="$FMNIST" 2>/dev/null)
			fi
			t1=$(now)
			local ips wall
			ips=$(sed -n 's/.*images_per_second=\([0-9.]*\).*/\1/p' <<<"$out")
			wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
			echo "   run $i $which: $ips images/s, $wall s wall (load before: $before)"
			if [[ $which == new ]]; then new_ips+=("$ips") new_wall+=("$wall"); else old_ips+=("$ips") old_wall+=("$wall"); fi
		done
	done
	local n o
	n=$(printf '%s\n' "${new_ips[@]}" | stats) o=$(printf '%s\n' "${old_ips[@]}" | stats)
	echo "   images/s  new format: $n"
	echo "   images/s  old IDX:    $o"
	echo "   wall s    new format: $(printf '%s\n' "${new_wall[@]}" | stats)"
	echo "   wall s    old IDX:    $(printf '%s\n' "${old_wall[@]}" | stats)"
	echo "   ratio of medians, images/s new/old: $(awk -v a="${n#median }" -v b="${o#median }" 'BEGIN {printf "%.3f", a / b}') (target >= 1)"
}

# big writes a dataset 10× Fashion-MNIST's size, ingested, and prints its
# directory.
big() {
	local src=$WORK/fmnist10x-idx
	if [[ ! -f $src/done ]]; then
		mkdir -p "$src"
		python3 - "$FMNIST" "$src" <<'EOF'
import gzip, struct, sys
src, dst = sys.argv[1], sys.argv[2]
for base in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]:
    b = gzip.open(f"{src}/{base}.gz").read()
    hdr = 16 if "images" in base else 8
    n = struct.unpack(">I", b[4:8])[0]
    with open(f"{dst}/{base}", "wb") as f:
        f.write(b[:4] + struct.pack(">I", 10 * n) + b[8:hdr])
        for _ in range(10):
            f.write(b[hdr:])
EOF
		touch "$src/done"
	fi
	"$BIN/aerie" dataset ingest --from "$src" --name fashion-mnist-10x --classes 'T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot' \
		--work-dir "$WORK" --to "file://$STORE" 2>/dev/null | sed -n 's/^ *sha256: //p'
}

bench_memory() {
	local big_digest
	big_digest=$(big)
	local bigdata="file://$STORE/datasets/fashion-mnist-10x/$big_digest/"
	local small=() large=()
	echo "b. memory: small network, 1 epoch, batch 256, one replica; Fashion-MNIST vs 10× ($big_digest); $RUNS runs each, A B A B; load $(load)"
	for ((i = 1; i <= RUNS; i++)); do
		for which in fmnist 10x; do
			local d=$DATA dg=$FMNIST_DIGEST
			[[ $which == 10x ]] && d=$bigdata dg=$big_digest
			local out=$WORK/out-$which
			rm -rf "$out"
			local kb
			/usr/bin/time -f '%M' -o "$WORK/rss" "$BIN/trainer" train --arch=small --epochs=1 --batch-size=256 --name=rss \
				--data="$d" --dataset-sha256="$dg" --output="file://$out" >/dev/null 2>&1
			kb=$(tail -1 "$WORK/rss")
			echo "   run $i $which: peak RSS $((kb / 1024)) MiB"
			if [[ $which == fmnist ]]; then small+=("$((kb / 1024))"); else large+=("$((kb / 1024))"); fi
		done
	done
	local s l
	s=$(printf '%s\n' "${small[@]}" | stats) l=$(printf '%s\n' "${large[@]}" | stats)
	echo "   peak RSS MiB  Fashion-MNIST: $s"
	echo "   peak RSS MiB  10×:           $l"
	echo "   ratio of medians 10×/1×: $(awk -v a="${l#median }" -v b="${s#median }" 'BEGIN {printf "%.3f", a / b}') (target <= 1.10)"
}

bench_ingest() {
	local secs=() rates=()
	echo "c. ingest: Debian's Fashion-MNIST (70,000 images) into an empty file:// store, $RUNS runs; load $(settle) after up to ${SETTLE}s settling"
	for ((i = 1; i <= RUNS; i++)); do
		local to=$WORK/ingest-$i
		rm -rf "$to"
		local t0 t1
		t0=$(now)
		"$BIN/aerie" dataset ingest --to "file://$to" --work-dir "$WORK" >/dev/null 2>&1
		t1=$(now)
		local bytes s
		bytes=$(du -sb --apparent-size "$to" | cut -f1)
		s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
		secs+=("$s")
		rates+=("$(awk -v n="$bytes" -v s="$s" 'BEGIN {printf "%.1f", n / s / 1e6}')")
		echo "   run $i: $s s, ${rates[-1]} MB/s ($bytes bytes written)"
		rm -rf "$to"
	done
	echo "   seconds: $(printf '%s\n' "${secs[@]}" | stats)"
	echo "   MB/s:    $(printf '%s\n' "${rates[@]}" | stats)"
}

for p in "${parts[@]}"; do
	case $p in
	a) bench_format ;;
	b) bench_memory ;;
	c) bench_ingest ;;
	*) echo "bench/data.sh: unknown part $p (a, b or c)" >&2; exit 2 ;;
	esac
done
