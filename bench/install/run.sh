#!/usr/bin/env bash
# How long the composite action takes to install drillkit (issue 13):
#   1. under act (a real runner, host mode): the action's install step with a release packed by
#      scripts/package.sh and served from a loopback HTTP server (busybox httpd), N runs;
#   2. the same install by the script alone (scripts/action-install.sh release), N runs;
#   3. with BENCH_SOURCE=1, once: under act with no release on the server, so the action builds
#      from source (with CARGO_TARGET_DIR as given: warm when it holds a release build).
# Prints one line per run and the medians; run from anywhere.
#
#   bench/install/run.sh [N]        N defaults to 5
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
n=${1:-5}
act_run=${DRILLKIT_ACT_RUN:-$root/../shared/gha/act-run}
work=$(mktemp -d)
httpd=
cleanup() { if [ -n "$httpd" ]; then kill "$httpd" 2>/dev/null || true; wait "$httpd" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
archive=$(scripts/package.sh "$work/pack")
mkdir -p "$work/serve/v$version" "$work/empty"
cp "$archive" "$archive.sha256" "$work/serve/v$version/"
echo "archive: $(basename "$archive") $(du -h "$archive" | cut -f1)"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/bin/busybox httpd -f -p "127.0.0.1:$port" -h "$work/serve" &
httpd=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
url=http://127.0.0.1:$port

# The demo scenario on a free port.
dport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed "s/127.0.0.1:18080/127.0.0.1:$dport/g" scenarios/demo.yaml >"$work/demo.yaml"

step_time() { # JSON log, step path -> seconds
  python3 -c '
import json, sys
want = sys.argv[2].split("/")
t = None
for l in open(sys.argv[1]):
    try: e = json.loads(l)
    except ValueError: continue
    if e.get("stepID") == want and "executionTime" in e: t = e["executionTime"] / 1e9
print("%.2f" % t if t is not None else "nan")' "$1" "$2"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "== act: the action installs the local release ($n runs)"
for i in $(seq "$n"); do
  start=$(date +%s.%N)
  bash "$act_run" workflow_dispatch -W tests/workflows/action-install.yml --json \
    --input download-url="$url" --input scenario="$work/demo.yaml" \
    --env DRILLKIT_INSTALL_DIR="$work/act-bin-$i" >"$work/act-$i.json" 2>/dev/null ||
    { echo "act run $i failed; log: $work/act-$i.json" >&2; cp "$work/act-$i.json" /tmp/; exit 1; }
  total=$(echo "$(date +%s.%N) - $start" | bc)
  step=$(step_time "$work/act-$i.json" drillkit/release)
  echo "$step" >>"$work/act-steps"
  printf 'run %d: install step %ss, whole act run (install + demo drill) %.1fs\n' "$i" "$step" "$total"
done
echo "median install step under act: $(median <"$work/act-steps")s"

echo "== the install script alone ($n runs)"
for i in $(seq "$n"); do
  start=$(date +%s.%N)
  ACTION_PATH=$root DRILLKIT_DOWNLOAD_URL=$url DRILLKIT_INSTALL_DIR=$work/script-bin-$i \
    bash scripts/action-install.sh release 2>/dev/null
  t=$(echo "$(date +%s.%N) - $start" | bc)
  echo "$t" >>"$work/script-times"
  printf 'run %d: %.2fs\n' "$i" "$t"
done
echo "median install by the script: $(median <"$work/script-times")s"

if [ "${BENCH_SOURCE:-0}" = 1 ]; then
  echo "== act: no release, the action builds from source (CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-unset})"
  envs=()
  if [ -n "${CARGO_TARGET_DIR:-}" ]; then envs+=(--env "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"); fi
  kill "$httpd"; wait "$httpd" 2>/dev/null || true
  /bin/busybox httpd -f -p "127.0.0.1:$port" -h "$work/empty" &
  httpd=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
  bash "$act_run" workflow_dispatch -W tests/workflows/action-install.yml --json \
    --input download-url="$url" --input scenario="$work/demo.yaml" \
    --env DRILLKIT_INSTALL_DIR="$work/act-src-bin" "${envs[@]}" >"$work/act-src.json" 2>/dev/null ||
    { echo "act source run failed; log: $work/act-src.json" >&2; cp "$work/act-src.json" /tmp/; exit 1; }
  echo "source build step under act: $(step_time "$work/act-src.json" drillkit/build)s (key step $(step_time "$work/act-src.json" drillkit/source)s)"
fi
