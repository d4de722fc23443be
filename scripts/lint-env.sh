#!/usr/bin/env bash
# Prints the settings that make a cargo build of this workspace lint it as it compiles it, as
# shell assignments for `eval` (.ci/run):
#
#   lint_env=$(scripts/lint-env.sh) && eval "$lint_env"
#
# `cargo clippy` is `cargo check` with clippy-driver in front of rustc for the workspace's own
# crates; clippy-driver is rustc with clippy's lint passes added. Put in front of a release build
# (RUSTC_WORKSPACE_WRAPPER) it gives the build the lints of `cargo clippy --release -- -D
# warnings`: with [lints] from Cargo.toml, and a warning fails the build. A separate clippy pass
# type-checked every dependency and drillkit a second time (~2 of a cold CI run's 14 minutes on
# 2 cores). Dependencies are compiled by rustc alone, as in `cargo clippy`.
#
# The wrapper is scripts/clippy-wrapper.sh: the library the binaries link is compiled by rustc
# (a release's compile; its code is linted in the unit-test build), every other drillkit unit by
# clippy-driver. cargo hashes the wrapper's path into each drillkit unit, so it is installed at a
# path that stays the same across clones and changes with its content: under the target dir
# (CARGO_TARGET_DIR, else ./target), named by its hash. A build of this checkout that should find
# the linted build fresh (package.sh, the action's source build in the tests) needs these
# variables too. CLIPPY_ARGS is how cargo-clippy hands the arguments after `--` to clippy-driver
# (separated by __CLIPPY_HACKERY__); clippy-driver records it, so changing it recompiles.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
driver=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)
if [ -z "$driver" ] || [ ! -x "$driver" ]; then
  echo "lint-env.sh: clippy-driver not found: rustup component add clippy" >&2
  exit 1
fi
target_dir=${CARGO_TARGET_DIR:-$root/target}
hash=$(sha256sum "$root/scripts/clippy-wrapper.sh" | cut -c1-16)
wrapper=$target_dir/lint/clippy-wrapper-$hash.sh
if [ ! -x "$wrapper" ]; then
  mkdir -p "$target_dir/lint"
  cp "$root/scripts/clippy-wrapper.sh" "$wrapper.tmp.$$"
  chmod +x "$wrapper.tmp.$$"
  mv "$wrapper.tmp.$$" "$wrapper"
fi
printf 'export RUSTC_WORKSPACE_WRAPPER=%q\n' "$wrapper"
printf 'export DRILLKIT_CLIPPY_DRIVER=%q\n' "$driver"
printf 'export CLIPPY_ARGS=%q\n' "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
