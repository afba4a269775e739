#!/usr/bin/env bash
# pr-comment.sh PR TITLE FILE: post FILE to pull request PR as one comment
# headed TITLE, replacing this script's previous comment with the same title
# so a PR carries one current plan/diff rather than a stack of stale ones.
# Needs gh and GH_TOKEN (the workflow's token with pull-requests: write).
set -euo pipefail
pr=$1 title=$2 file=$3
[[ -n $pr && -n $title && -f $file ]] || { echo "usage: pr-comment.sh PR TITLE FILE" >&2; exit 2; }

marker="<!-- aerie: ${title} -->"
body=$(mktemp)
trap 'rm -f "$body"' EXIT
{
	echo "$marker"
	echo "### ${title}"
	echo
	if [[ ! -s $file ]]; then
		echo "No changes."
	else
		echo '```diff'
		# GitHub rejects comments over 65536 characters.
		head -c 60000 "$file"
		echo '```'
		if (($(wc -c <"$file") > 60000)); then echo "(truncated; the full output is in the workflow run's log)"; fi
	fi
} >"$body"

repo=${GITHUB_REPOSITORY:?}
old=$(gh api "repos/${repo}/issues/${pr}/comments" --paginate \
	--jq ".[] | select(.body | startswith(\"${marker}\")) | .id" | tail -n 1)
if [[ -n $old ]]; then
	gh api --method PATCH "repos/${repo}/issues/comments/${old}" -F "body=@${body}" >/dev/null
else
	gh api --method POST "repos/${repo}/issues/${pr}/comments" -F "body=@${body}" >/dev/null
fi
