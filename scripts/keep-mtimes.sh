#!/usr/bin/env bash
# Lets a target dir kept between CI runs (.ci/run) serve a fresh clone: gives every tracked file
# whose content is the same as at the last run the modification time it had then.
#
#   scripts/keep-mtimes.sh RECORD
#
# cargo decides whether a unit is fresh by modification time (an output newer than each of its
# sources), and a clone dates every file at the time of the clone: without this, each CI run
# recompiles drillkit (its lib twice, the suite, six binaries) although nothing changed.
# Content decides here, not git's index: each file's blob hash is taken from the work tree
# (`git hash-object`), so an edited, unstaged file keeps its new time and is rebuilt. A file that
# changed, or is new, keeps the clone's time: cargo rebuilds what changed and what depends on it,
# nothing else. RECORD (in the target dir) is then rewritten with this tree's hashes and times.
set -euo pipefail
record=${1:?usage: scripts/keep-mtimes.sh RECORD}
cd "$(dirname "$0")/.."
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "keep-mtimes: not a git work tree; every file keeps its time" >&2
  exit 0
fi

now=$(mktemp)
trap 'rm -f "$now"' EXIT
# "<blob> <path>" for every tracked file present in the work tree (content, not the index).
git ls-files -z | while IFS= read -r -d '' f; do
  [ -f "$f" ] && [ ! -L "$f" ] && printf '%s\n' "$f"
done | {
  mapfile -t files
  [ ${#files[@]} -eq 0 ] || paste -d ' ' <(printf '%s\n' "${files[@]}" | git hash-object --stdin-paths) <(printf '%s\n' "${files[@]}")
} >"$now"

restored=0
if [ -f "$record" ]; then
  # RECORD lines: "<blob> <mtime> <path>"; a file gets its recorded time back only when its
  # blob is the same.
  declare -A blob_now
  while read -r blob path; do blob_now[$path]=$blob; done <"$now"
  while read -r blob mtime path; do
    if [ "${blob_now[$path]:-}" = "$blob" ]; then
      touch -m -d "@$mtime" -- "$path"
      restored=$((restored + 1))
    fi
  done <"$record"
fi

mkdir -p "$(dirname "$record")"
while read -r blob path; do
  printf '%s %s %s\n' "$blob" "$(stat -c %.9Y -- "$path")" "$path"
done <"$now" >"$record.tmp"
mv "$record.tmp" "$record"
echo "keep-mtimes: $restored of $(wc -l <"$now") files dated as at the last run" >&2
