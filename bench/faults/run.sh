#!/usr/bin/env bash
# Time to apply and to revert each fault with drillkit, against the manual commands a person
# would type from the runbook (iptables, tc, fallocate/rm, docker network), as ratios; and the
# leftover count afterwards (inject-fault doctor), which must be 0.
#
# Needs root, iproute2, iptables, Docker (for the Docker partition) and a release build:
#   cargo build --release && sudo bench/faults/run.sh [ROUNDS]      # writes bench/faults/RESULTS.md
# Everything happens in a namespace, a tmpfs and a Docker network this script creates and removes.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-5}
BIN=target/release/inject-fault
OUT=bench/faults/RESULTS.md
WORK=$(mktemp -d)
NS=dkbench-$$
export DRILL_JOURNAL=$WORK/journal.jsonl
cleanup() {
  ip netns del "$NS" 2>/dev/null || true
  umount "$WORK/fs" 2>/dev/null || true
  docker rm -f dkbench-c-$$ >/dev/null 2>&1 || true
  docker network rm dkbench-n-$$ >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" ip link add dkb0 type veth peer name dkb1
ip netns exec "$NS" ip link set dkb0 up; ip netns exec "$NS" ip link set dkb1 up
mkdir -p "$WORK/fs" && mount -t tmpfs -o size=64m tmpfs "$WORK/fs"
IN="nsenter --net=/run/netns/$NS --"
now() { date +%s%N; }
# time_ms CMD...: milliseconds one run takes
time_ms() { local a b; a=$(now); "$@" >"$WORK/last.log" 2>&1 || { echo "FAILED: $*" >&2; cat "$WORK/last.log" >&2; }; b=$(now); echo $(( (b - a) / 1000 )); }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1000}'; }

declare -a ROWS
bench() { # name, drill apply, drill revert, manual apply, manual revert
  local name=$1 da=$2 dr=$3 ma=$4 mr=$5 i
  local f_da f_dr f_ma f_mr
  f_da=$WORK/da; f_dr=$WORK/dr; f_ma=$WORK/ma; f_mr=$WORK/mr; : >"$f_da"; : >"$f_dr"; : >"$f_ma"; : >"$f_mr"
  for i in $(seq "$ROUNDS"); do
    time_ms bash -c "$da" >>"$f_da"; time_ms bash -c "$dr" >>"$f_dr"
    time_ms bash -c "$ma" >>"$f_ma"; time_ms bash -c "$mr" >>"$f_mr"
  done
  local a b c d
  a=$(median <"$f_da"); b=$(median <"$f_dr"); c=$(median <"$f_ma"); d=$(median <"$f_mr")
  ROWS+=("| $name | $a | $c | $(awk "BEGIN{printf \"%.1f×\", $a/$c}") | $b | $d | $(awk "BEGIN{printf \"%.1f×\", $b/$d}") |")
}

bench "partition (iptables, §2.4)" \
  "$BIN partition --netns $NS --to 10.0.2.0/24" "$BIN revert" \
  "$IN iptables -A OUTPUT -d 10.0.2.0/24 -j DROP" "$IN iptables -D OUTPUT -d 10.0.2.0/24 -j DROP"
bench "degrade loss (iptables statistic)" \
  "$BIN degrade --netns $NS --loss 10% --method iptables" "$BIN revert" \
  "$IN iptables -A OUTPUT -m statistic --mode random --probability 0.1 -j DROP" \
  "$IN iptables -D OUTPUT -m statistic --mode random --probability 0.1 -j DROP"
bench "degrade rate (tbf)" \
  "$BIN degrade --netns $NS --dev dkb0 --rate 1mbit --method iptables" "$BIN revert" \
  "$IN tc qdisc add dev dkb0 root tbf rate 1mbit burst 32kbit latency 400ms" "$IN tc qdisc del dev dkb0 root"
bench "fill-disk 64 MiB tmpfs (§2.5)" \
  "$BIN fill-disk --path $WORK/fs" "$BIN revert" \
  "fallocate -l 64M $WORK/fs/test_fill.dat" "rm $WORK/fs/test_fill.dat"
if docker info >/dev/null 2>&1; then
  docker network create dkbench-n-$$ >/dev/null
  docker run -d --name dkbench-c-$$ --network dkbench-n-$$ drillkit-test-busybox:latest sleep 3600 >/dev/null
  bench "partition (Docker network)" \
    "$BIN partition --container dkbench-c-$$" "$BIN revert" \
    "docker network disconnect dkbench-n-$$ dkbench-c-$$" "docker network connect dkbench-n-$$ dkbench-c-$$"
fi
LEFT=$($BIN doctor --json 2>/dev/null | awk -F: '/"leftovers"/ {gsub(/[ ,]/, "", $2); print $2}')
{
  echo "# Fault apply/revert: drillkit vs the manual commands"
  echo
  echo "Median of $ROUNDS rounds, milliseconds, on $(uname -sr), $(nproc) CPUs ($(date -u +%Y-%m-%d))."
  echo "drillkit's time includes journaling (fsync), planning, tagging and checks; the manual"
  echo "commands leave no record and are not undone by a crash."
  echo
  echo "| fault | drillkit apply | manual apply | ratio | drillkit revert | manual revert | ratio |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Leftovers after the run (\`inject-fault doctor\`): **${LEFT:-?}**"
  echo
  echo "Reproduce: \`cargo build --release && sudo bench/faults/run.sh $ROUNDS\`"
} | tee "$OUT"
