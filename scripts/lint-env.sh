#!/usr/bin/env bash
# Prints the settings that make a cargo build of this workspace lint it as it compiles it, as
# shell assignments for `eval` (.ci/run):
#
#   eval "$(scripts/lint-env.sh)"
#
# `cargo clippy` is `cargo check` with clippy-driver in front of rustc for the workspace's own
# crates; clippy-driver is rustc with clippy's lint passes added, and it compiles as rustc does.
# Put in front of a release build (RUSTC_WORKSPACE_WRAPPER) it gives the build the lints of
# `cargo clippy --release -- -D warnings`: every drillkit target the build compiles is linted,
# with [lints] from Cargo.toml, and a warning fails it. A separate clippy pass type-checked every
# dependency and drillkit a second time (~2 of a cold CI run's 14 minutes on 2 cores).
# Dependencies are compiled by rustc alone, as in `cargo clippy`.
#
# CLIPPY_ARGS is how cargo-clippy hands the arguments after `--` to clippy-driver (separated by
# __CLIPPY_HACKERY__); clippy-driver records it, so changing it recompiles what it linted.
# The wrapper is part of cargo's hash of each drillkit unit: builds with and without it keep
# separate artifacts, and a build of this checkout that should find the linted build fresh
# (package.sh, the action's source build in the tests) needs these two variables too.
set -euo pipefail
driver=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)
if [ -z "$driver" ] || [ ! -x "$driver" ]; then
  echo "lint-env.sh: clippy-driver not found: rustup component add clippy" >&2
  exit 1
fi
printf 'export RUSTC_WORKSPACE_WRAPPER=%q\n' "$driver"
printf 'export CLIPPY_ARGS=%q\n' "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
