#!/usr/bin/env bash
# bench/dist.sh (make bench-dist): the distributed trainer's figures, each
# printed beside its bound from issue 4.
#
#   1. scaling: 2 ranks × 1 core against 1 rank × 1 core on the same global
#      batch (cnn, batch 64): throughput ratio, bound >= 1.8; and each
#      worker's CPU utilization (CPU seconds / wall seconds / 1 core), bound
#      >= 90%;
#   2. ring all-reduce bus bandwidth (busbw = algbw·2(n−1)/n, as nccl-tests)
#      of the cnn gradient, 421,642 float32 = 1.69 MB:
#      a. over loopback;
#      b. between network namespaces, each joined to a bridge by a veth whose
#         both ends htb limits to 1 Gbit/s; bound >= 90% of the link rate.
#         Each is printed beside a plain TCP stream over the same shaped
#         link. Needs root and iproute2; the namespaces (aerie<pid>*) and the
#         addresses 10.203.0.0/24 exist only inside them and are removed on
#         exit.
#
# Every figure is a median: of RUNS runs for scaling, of ITERS timed
# all-reduces for bandwidth. Knobs: RUNS (3), ITERS (50), STEPS (60),
# WORLDS ("2 3"), RATE_MBIT (1000), SKIP_SCALING=1, SKIP_NETNS=1,
# ARFLAGS (extra bench-allreduce flags, e.g. --chunk-bytes=65536).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
ITERS=${ITERS:-50}
STEPS=${STEPS:-60}
WORLDS=${WORLDS:-2 3}
RATE_MBIT=${RATE_MBIT:-1000}
read -ra arflags <<<"${ARFLAGS:-}"

work=$(mktemp -d)
bin=$work/trainer
echo "building the trainer..."
go build -o "$bin" ./trainer/cmd/trainer

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else print a[int((NR+1)/2)]}'; }
field() { grep -o "$1=[0-9.]*" | head -1 | cut -d= -f2; }
verdict() { awk -v v="$1" -v b="$2" 'BEGIN {print (v >= b) ? "ok" : "BELOW BOUND"}'; }

echo
echo "== scaling: cnn, global batch 64, $STEPS steps, median of $RUNS runs"
if [[ ${SKIP_SCALING:-} == 1 ]]; then
	echo "skipped (SKIP_SCALING=1)"
else
	one=() two=() cpu=()
	for _ in $(seq "$RUNS"); do
		one+=("$(GOMAXPROCS=1 "$bin" train --arch=cnn --batch-size=64 --max-steps="$STEPS" 2>/dev/null | field images_per_second)")
		out=$(GOMAXPROCS=1 "$bin" launch --nproc 2 -- --arch=cnn --batch-size=64 --max-steps="$STEPS" 2>/dev/null)
		two+=("$(grep '^\[rank 0\]' <<<"$out" | field images_per_second)")
		for r in 0 1; do cpu+=("$(grep "^\[rank $r\]" <<<"$out" | field cpu_utilization)"); done
	done
	m1=$(printf '%s\n' "${one[@]}" | median)
	m2=$(printf '%s\n' "${two[@]}" | median)
	mc=$(printf '%s\n' "${cpu[@]}" | median)
	ratio=$(awk -v a="$m2" -v b="$m1" 'BEGIN {printf "%.2f", a / b}')
	pct=$(awk -v c="$mc" 'BEGIN {printf "%.0f", 100 * c}')
	printf '1 rank  x 1 core : %8s img/s   (runs: %s)\n' "$m1" "${one[*]}"
	printf '2 ranks x 1 core : %8s img/s   (runs: %s)\n' "$m2" "${two[*]}"
	printf 'ratio            : %8s        bound >= 1.80  %s\n' "$ratio" "$(verdict "$ratio" 1.8)"
	printf 'CPU per worker   : %7s%%        bound >= 90%%   %s   (per rank and run: %s)\n' "$pct" "$(verdict "$pct" 90)" "${cpu[*]}"
fi

echo
echo "== all-reduce of 421642 float32 over loopback, median of $ITERS"
for n in $WORLDS; do
	line=$("$bin" launch --nproc "$n" -- bench-allreduce --iters="$ITERS" "${arflags[@]}" 2>/dev/null | grep allreduce)
	printf 'world=%s  median %7s ms  algbw %7s MB/s  busbw %7s MB/s = %s Gbit/s\n' "$n" \
		"$(field median_ms <<<"$line")" "$(field algbw_MBps <<<"$line")" "$(field busbw_MBps <<<"$line")" "$(field busbw_Gbps <<<"$line")"
done

echo
echo "== all-reduce between network namespaces over veths limited to $RATE_MBIT Mbit/s, median of $ITERS"
if [[ ${SKIP_NETNS:-} == 1 ]]; then
	echo "skipped (SKIP_NETNS=1)"
	exit 0
fi
if [[ $(id -u) != 0 ]] || ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
	echo "skipped: needs root, ip and tc (Debian iproute2)"
	exit 0
fi
pfx=aerie$$
nss=()
cleanup() {
	for ns in "${nss[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

# limit shapes the egress of dev in ns to the link rate. htb's default burst
# is computed so small at 1 Gbit/s that its timer cannot keep up: a plain
# TCP stream then gets about 85% of the rate, where a real gigabit Ethernet
# link carries about 94%. A 15 kB burst (ten frames) fixes that without
# letting short transfers run ahead of the rate; the plain TCP stream printed
# beside each result shows what the shaped link carries.
limit() {
	ip netns exec "$1" tc qdisc add dev "$2" root handle 1: htb default 10
	ip netns exec "$1" tc class add dev "$2" parent 1: classid 1:10 htb rate "${RATE_MBIT}mbit" ceil "${RATE_MBIT}mbit" \
		burst 15k cburst 15k quantum 60000
}

for n in $WORLDS; do
	br=${pfx}br$n
	ip netns add "$br"
	nss+=("$br")
	ip -n "$br" link add br0 type bridge
	ip -n "$br" link set br0 up
	for ((k = 0; k < n; k++)); do
		ns=${pfx}r$n$k
		ip netns add "$ns"
		nss+=("$ns")
		ip link add "${pfx}v$k" netns "$ns" type veth peer name "p$k" netns "$br"
		ip -n "$ns" link set "${pfx}v$k" name eth0
		ip -n "$ns" addr add "10.203.$n.$((k + 1))/24" dev eth0
		ip -n "$ns" link set lo up
		ip -n "$ns" link set eth0 up
		ip -n "$br" link set "p$k" master br0 up
		limit "$ns" eth0
		limit "$br" "p$k"
	done
	pids=()
	for ((k = 0; k < n; k++)); do
		ip netns exec "${pfx}r$n$k" env MASTER_ADDR="10.203.$n.1" MASTER_PORT=29500 WORLD_SIZE="$n" RANK="$k" \
			AERIE_RENDEZVOUS_TOKEN=bench "$bin" bench-allreduce --iters="$ITERS" --stream-mb=100 "${arflags[@]}" >"$work/ns$n.$k" 2>&1 &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	line=$(grep allreduce "$work/ns$n.0")
	gbps=$(field busbw_Gbps <<<"$line")
	pct=$(awk -v g="$gbps" -v r="$RATE_MBIT" 'BEGIN {printf "%.1f", 100 * g * 1000 / r}')
	printf 'world=%s  median %7s ms  algbw %7s MB/s  busbw %7s MB/s = %s Gbit/s = %s%% of link   bound >= 90%%  %s\n' "$n" \
		"$(field median_ms <<<"$line")" "$(field algbw_MBps <<<"$line")" "$(field busbw_MBps <<<"$line")" "$gbps" "$pct" "$(verdict "$pct" 90)"
	stream=$(grep tcp_stream "$work/ns$n.0" | field Gbps)
	printf '         plain TCP stream rank 1 -> 0 on the same link: %s Gbit/s; all-reduce busbw / stream = %s\n' "$stream" \
		"$(awk -v g="$gbps" -v s="$stream" 'BEGIN {printf "%.2f", g / s}')"
done
