#!/usr/bin/env bash
# memory.sh measures how much of its memory request a replica of each
# committed Fashion-MNIST run uses (the prototype's pods used 34%): it runs
# one replica of the run with what its rendered PyTorchJob
# (apps/jobs/<run>/pytorchjob.yaml) gives the container (GOMAXPROCS,
# GOMEMLIMIT, GOGC, and its share of the batch, spec.model.batchSize /
# spec.workers.count) for STEPS steps, and prints its peak RSS over the
# requested memory, median of RUNS runs with the min–max spread.
#
#   bench/memory.sh [steps] [runs]     (make bench-memory; defaults 300, 3)
#
# A run whose dataset is not Fashion-MNIST is skipped with a note. Needs
# Debian's python3-yaml to read the rendered YAML.
set -euo pipefail
cd "$(dirname "$0")/.."

steps=${1:-300}
runs=${2:-3}
BIN=${BIN:-$PWD/bin}
FMNIST_DIGEST=b0357547c5cfd67f4249e525e277519f0fd76294d93e0a14afb0208adf693b02
data="file://${DATA_STORE:-$PWD/out/store}/datasets/fashion-mnist/$FMNIST_DIGEST/"
export GOEXPERIMENT=${GOEXPERIMENT:-simd}

mkdir -p "$BIN"
go build -o "$BIN/trainer" ./trainer/cmd/trainer
make -s fmnist BIN="$BIN" >/dev/null

# replica prints, for the rendered run in dir, the container's env values
# and memory request in bytes and the run's per-replica batch, or nothing
# when the run trains on another dataset.
replica() {
	/usr/bin/python3 - "$1" "$FMNIST_DIGEST" <<'PY'
import sys, yaml
d, digest = sys.argv[1], sys.argv[2]
run = yaml.safe_load(open(f"{d}/run.yaml"))["spec"]
if run["dataset"]["sha256"] != digest:
    sys.exit(0)
job = yaml.safe_load(open(f"{d}/pytorchjob.yaml"))
c = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
env = {e["name"]: e.get("value", "") for e in c.get("env", [])}
mem = c["resources"]["requests"]["memory"]
units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
b = int(mem[:-2]) * units[mem[-2:]] if mem[-2:] in units else int(mem)
print(env.get("GOMAXPROCS", ""), env.get("GOMEMLIMIT", ""), env.get("GOGC", ""), b,
      run["model"]["batchSize"] // run["workers"]["count"])
PY
}

median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
spread() { sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%s–%s", lo, hi}'; }

printf 'load average before: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-14s %-10s %-10s %-5s %-6s %-14s %s\n' run GOMAXPROCS GOMEMLIMIT GOGC batch "request MiB" "peak RSS MiB (min–max): used/requested"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for dir in apps/jobs/*/; do
	[[ -f $dir/pytorchjob.yaml ]] || continue
	name=$(basename "$dir")
	read -r procs limit gc request batch < <(replica "$dir") || true
	if [[ -z ${request:-} ]]; then
		echo "$name: skipped: its dataset is not Fashion-MNIST"
		continue
	fi
	rss=()
	for _ in $(seq "$runs"); do
		# --max-steps prints the peak RSS (VmHWM) as peak_rss_mb, in MiB.
		GOMAXPROCS=$procs GOMEMLIMIT=$limit GOGC=$gc "$BIN/trainer" train --run="apps/jobs/runs/$name.yaml" \
			--data="$data" --batch-size="$batch" --max-steps="$steps" --output="file://$out/store" >"$out/log" 2>&1 || {
			cat "$out/log" >&2
			exit 1
		}
		rss+=("$(grep -o 'peak_rss_mb=[0-9]*' "$out/log" | cut -d= -f2)")
	done
	m=$(printf '%s\n' "${rss[@]}" | median)
	printf '%-14s %-10s %-10s %-5s %-6s %-14s %s (%s): %.0f%%\n' "$name" "$procs" "$limit" "$gc" "$batch" "$((request >> 20))" \
		"$m" "$(printf '%s\n' "${rss[@]}" | spread)" "$(awk -v m="$m" -v r="$((request >> 20))" 'BEGIN {print 100 * m / r}')"
	unset request
done
