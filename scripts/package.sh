#!/usr/bin/env bash
# Packs a drillkit release for the host: builds the six binaries statically and writes
#
#   OUTDIR/drillkit-v{VERSION}-{TARGET}.tar.gz          the binaries, LICENSE*, README.md
#   OUTDIR/drillkit-v{VERSION}-{TARGET}.tar.gz.sha256   `sha256sum` format
#
#   scripts/package.sh OUTDIR
#   scripts/package.sh --print-env     the build's settings as shell assignments, for `eval`
#
# Static: the musl target of the host's architecture when it is installed
# (`rustup target add x86_64-unknown-linux-musl`), else the host's glibc target with
# `crt-static` (no dynamic libraries at all). DRILLKIT_TARGET picks another installed target.
#
# Reproducible: the same commit packs to the same bytes on the same toolchain, from any
# checkout path. CARGO_HOME is remapped out of the dependencies (their panic locations);
# cargo names this workspace's files relative to it, and the debug info that holds the build
# directory is stripped, so the checkout's path never reaches the binaries (checked below).
# The path is deliberately NOT in the RUSTFLAGS: those apply to every crate, and a checkout at a
# new path (every CI clone) would then rebuild every static dependency. The archive's entries
# are sorted, owned by 0:0 with no names, and dated at the commit's time (SOURCE_DATE_EPOCH
# overrides); gzip stores no name or time. Debug info is stripped (symbols stay). The binaries
# carry the commit in `--version` (DRILLKIT_COMMIT).
#
# One build for the tests and the archive: scripts/test.sh builds the suite with --print-env's
# settings (`cargo test --target $DRILLKIT_TARGET`), so the binaries the suite ran are the ones
# this packs and the cargo build below finds nothing to do. CARGO_TARGET_DIR is honoured (the
# static build lives under TARGET/ in it).
set -euo pipefail

out=${1:?usage: scripts/package.sh OUTDIR | --print-env}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bins=(drill inject-fault wait-recovery verify-backup measure-rto report)

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
[ -n "$version" ] || { echo "package.sh: no version in Cargo.toml" >&2; exit 1; }
host=$(rustc -vV | sed -n 's/^host: //p')
arch=${host%%-*}
target=${DRILLKIT_TARGET:-}
rustflags=()
if [ -z "$target" ]; then
  if rustup target list --installed 2>/dev/null | grep -qx "$arch-unknown-linux-musl"; then
    target=$arch-unknown-linux-musl
  else
    target=$host
  fi
fi
case "$target" in
  *-linux-gnu*) rustflags+=(-C target-feature=+crt-static) ;;
esac

if [ -z "${DRILLKIT_COMMIT:-}" ]; then
  DRILLKIT_COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
fi
if [ "$out" != --print-env ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  echo "package.sh: warning: the work tree has uncommitted changes; the archive is not commit $DRILLKIT_COMMIT" >&2
fi
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
# The epoch dates the archive only. Build scripts (ring's, zstd-sys's through cc) watch
# SOURCE_DATE_EPOCH: a value that changes with every commit would rebuild them and every crate
# above them (9 min here), so cargo runs without it (no C code here uses __DATE__).
export DRILLKIT_COMMIT
unset SOURCE_DATE_EPOCH

cargo_home=${CARGO_HOME:-$HOME/.cargo}
rustflags+=("--remap-path-prefix=$cargo_home=/cargo")
# Applies to the target's code only (--target): build scripts and proc macros stay dynamic.
# Joined with 0x1f so paths with spaces survive.
CARGO_ENCODED_RUSTFLAGS=$(IFS=$'\x1f'; printf '%s' "${rustflags[*]}")
export CARGO_ENCODED_RUSTFLAGS

# Run from inside cargo (a test, `cargo run`), the enclosing package's CARGO_MANIFEST_DIR,
# CARGO_PKG_* and the like are set; build scripts watch some of them (ring's
# rerun-if-env-changed), so they would make this build differ from a top-level one and
# rebuild ring and everything above it. A top-level cargo never sees them: neither does this
# build, nor (through --print-env's unset lines) a build run with these settings.
enclosing=()
for v in $(compgen -e); do
  case "$v" in
    CARGO_PKG_* | CARGO_MANIFEST_* | CARGO_CRATE_* | CARGO_BIN_* | CARGO_PRIMARY_PACKAGE | CARGO_TARGET_TMPDIR | OUT_DIR) enclosing+=("$v") ;;
  esac
done
if [ ${#enclosing[@]} -gt 0 ]; then unset "${enclosing[@]}"; fi

if [ "$out" = --print-env ]; then
  if [ ${#enclosing[@]} -gt 0 ]; then printf 'unset %s\n' "${enclosing[@]}"; fi
  echo "unset SOURCE_DATE_EPOCH"
  for v in DRILLKIT_TARGET=$target CARGO_ENCODED_RUSTFLAGS DRILLKIT_COMMIT; do
    if [[ "$v" == *=* ]]; then printf '%s=%q\n' "${v%%=*}" "${v#*=}"; else printf '%s=%q\n' "$v" "${!v}"; fi
  done
  exit 0
fi

echo "package.sh: building drillkit $version ($DRILLKIT_COMMIT) for $target" >&2
cargo build --release --locked --target "$target" --bins >&2

target_dir=${CARGO_TARGET_DIR:-$root/target}
name=drillkit-v$version-$target
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/$name"
for b in "${bins[@]}"; do
  install -m 0755 "$target_dir/$target/release/$b" "$stage/$name/$b"
  # The release profile keeps line tables for backtraces (~95 MB a binary); the archive keeps
  # the symbols (function names in a backtrace) and drops the debug info: ~15 MB a binary.
  strip --strip-debug "$stage/$name/$b"
  # Static or nothing: a binary that needs a shared library (beyond the C library's loader
  # for a dynamic build) would not run on a machine without a Rust toolchain's libraries.
  needed=$(readelf -d "$stage/$name/$b" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' |
    grep -vxE 'libc\.so\.6|libm\.so\.6|ld-linux.*|libc\.musl.*' || true)
  if [ -n "$needed" ]; then
    echo "package.sh: $b needs shared libraries: $needed" >&2
    exit 1
  fi
  # Reproducible from any checkout: the build's own path must not be in the binary.
  if grep -qaF "$root/" "$stage/$name/$b"; then
    echo "package.sh: $b contains the checkout's path $root; the archive would differ per checkout" >&2
    exit 1
  fi
done
install -m 0644 LICENSE LICENSE-MIT LICENSE-APACHE README.md "$stage/$name/"

if [ "$target" = "$host" ] || [ "${target%%-*}" = "$arch" ]; then
  got=$("$stage/$name/drill" --version)
  if [ "$got" != "drill $version (commit $DRILLKIT_COMMIT)" ]; then
    echo "package.sh: drill --version says '$got'" >&2
    exit 1
  fi
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
archive=$name.tar.gz
tar -C "$stage" --sort=name --format=gnu --owner=0 --group=0 --numeric-owner \
  --mtime="@$epoch" --mode='u+rwX,go+rX,go-w' -cf - "$name" | gzip -6n >"$out/$archive.tmp"
mv "$out/$archive.tmp" "$out/$archive"
(cd "$out" && sha256sum "$archive" >"$archive.sha256")
echo "$out/$archive"
