# shellcheck shell=bash
# bench/lib.sh: what the bench scripts share; source it from the
# repository's root.

cores=$(nproc)
# max_load is the 1-minute load average above which a machine is not idle
# enough to time on: 0.5 per core.
max_load=$(awk -v c="$cores" 'BEGIN {print 0.5 * c}')
SETTLE=${SETTLE:-120}

# settle waits up to SETTLE seconds for the 1-minute load average to fall
# to max_load, then prints it.
settle() {
	local load waited=0
	while read -r load _ </proc/loadavg && awk -v l="$load" -v m="$max_load" 'BEGIN {exit !(l > m)}' && ((waited < SETTLE)); do
		sleep 5
		waited=$((waited + 5))
	done
	echo "$load"
}
