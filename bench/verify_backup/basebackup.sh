#!/usr/bin/env bash
# verify-backup vs pg_verifybackup on the same base backup (issue 16).
#
#   bench/verify_backup/basebackup.sh [SCALE] [RUNS]
#
# Makes a PostgreSQL 15 cluster in a temp dir (as the postgres user when run as root), fills it
# with `pgbench -i -s SCALE` (default 20, ~300 MB), takes a plain (`-Fp -X stream`) and a tar
# (`-Ft -z -X stream`) base backup, then times, median of RUNS (default 5), with the page cache warm:
#   pg_verifybackup PLAIN         (PostgreSQL's own: manifest, files, WAL via pg_waldump)
#   verify-backup PLAIN           (manifest, files, WAL pages and record CRCs)
#   verify-backup TAR.gz          (pg_verifybackup 15 cannot read tar; the baseline a user has is
#                                  `tar -xzf` + pg_verifybackup, timed too)
# Needs target/release/verify-backup (cargo build --release --bin verify-backup) or $VERIFY_BACKUP.
set -euo pipefail
SCALE=${1:-20}
RUNS=${2:-5}
BIN=/usr/lib/postgresql/15/bin
VB=${VERIFY_BACKUP:-${CARGO_TARGET_DIR:-target}/release/verify-backup}
ROOT=$(mktemp -d /tmp/dk-bench-bb.XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() { as_pg "$BIN/pg_ctl" -D "$ROOT/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$ROOT"; }
trap cleanup EXIT
[ "$(id -u)" = 0 ] && chown postgres "$ROOT"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$BIN/initdb" -D "$ROOT/data" -A trust -U postgres --no-sync >/dev/null
as_pg "$BIN/pg_ctl" -D "$ROOT/data" -o "-c listen_addresses=127.0.0.1 -p $PORT -k $ROOT -c fsync=off" -l "$ROOT/log" -w start >/dev/null
"$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
"$BIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -D "$ROOT/plain" -X stream -c fast
"$BIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -D "$ROOT/tar" -Ft -z -X stream -c fast
SIZE=$(du -sm "$ROOT/plain" | cut -f1)
TARSIZE=$(du -sm "$ROOT/tar" | cut -f1)

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { # label, command...
  local label=$1; shift
  "$@" >/dev/null 2>&1 || { echo "$label: exit $?" >&2; exit 1; }   # warm the cache, and it must pass
  for _ in $(seq "$RUNS"); do
    local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N)
    echo "$e - $s" | bc
  done | median
}
untar_verify() {
  rm -rf "$ROOT/x"; mkdir -p "$ROOT/x/pg_wal"
  tar -xzf "$ROOT/tar/base.tar.gz" -C "$ROOT/x"
  tar -xzf "$ROOT/tar/pg_wal.tar.gz" -C "$ROOT/x/pg_wal"
  cp "$ROOT/tar/backup_manifest" "$ROOT/x/"
  "$BIN/pg_verifybackup" "$ROOT/x"
}
export DRILL_JOURNAL="$ROOT/journal.jsonl"
PV=$(timeit pg_verifybackup "$BIN/pg_verifybackup" "$ROOT/plain")
VP=$(timeit verify-backup-plain "$VB" "$ROOT/plain")
UT=$(timeit untar+pg_verifybackup untar_verify)
VT=$(timeit verify-backup-tar "$VB" "$ROOT/tar")
echo "scale $SCALE: plain backup ${SIZE} MB, tar.gz backup ${TARSIZE} MB, median of $RUNS"
printf '| %s | %s s | %s s | %.2f× |\n' "plain (-Fp -X stream)" "$VP" "$PV" "$(echo "$PV / $VP" | bc -l)"
printf '| %s | %s s | %s s | %.2f× |\n' "tar (-Ft -z -X stream)" "$VT" "$UT" "$(echo "$UT / $VT" | bc -l)"
