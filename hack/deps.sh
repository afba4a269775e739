#!/usr/bin/env bash
# deps.sh installs what the tests and the demo need on a Debian machine: the
# Debian packages in .ci/apt-packages.txt that are missing, and the Go modules.
# It is idempotent and quiet when there is nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t wanted < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' .ci/apt-packages.txt | awk '{print $1}')
missing=()
for pkg in "${wanted[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
	sudo=""
	if ((EUID != 0)); then sudo="sudo"; fi
	echo "deps: installing Debian packages: ${missing[*]}" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
go mod download
