#!/usr/bin/env bash
# open-pr.sh BRANCH TITLE BODY PATH...: commit the changes under PATH... on
# a new branch, push it and open a pull request against main. Does nothing
# when PATH... is unchanged. Needs git push rights and gh with GH_TOKEN.
set -euo pipefail
branch=$1 title=$2 body=$3
shift 3
if git diff --quiet -- "$@" && [[ -z $(git ls-files --others --exclude-standard -- "$@") ]]; then
	echo "open-pr: nothing changed under $*" >&2
	exit 0
fi
git switch -c "$branch"
git add -- "$@"
git -c user.name="aerie-bot" -c user.email="aerie-bot@users.noreply.github.com" commit -m "$title" -- "$@"
git push origin "$branch"
gh pr create --base main --head "$branch" --title "$title" --body "$body"
