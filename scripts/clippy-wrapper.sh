#!/usr/bin/env bash
# The rustc wrapper of a linted build (scripts/lint-env.sh installs it): cargo runs it for
# drillkit's own crates as `WRAPPER RUSTC ARGS…`.
#
# The library as the binaries link it is compiled by rustc itself, exactly as a release compiles
# it, with warnings denied: the suite tests the code a release ships. Its code is linted by
# clippy in the unit-test build (the same sources with cfg(test); src/ has nothing that only a
# non-test build compiles, tests/suite/ci_lints.rs checks). Every other unit — the unit tests,
# the suite, the six thin mains, the bench — is compiled by clippy-driver
# ($DRILLKIT_CLIPPY_DRIVER), which lints it as it compiles it.
# bash, not sh: dash drops environment variables whose names are not shell names, and cargo
# hands the suite `CARGO_BIN_EXE_inject-fault` and its like that way.
rustc=$1
shift
name=
lib=0
test=0
prev=
for a in "$@"; do
  case "$prev" in
    --crate-name) name=$a ;;
    --crate-type) [ "$a" = lib ] && lib=1 ;;
  esac
  [ "$a" = --test ] && test=1
  prev=$a
done
if [ "$name" = drillkit ] && [ "$lib" = 1 ] && [ "$test" = 0 ]; then
  exec "$rustc" "$@" -D warnings
fi
exec "${DRILLKIT_CLIPPY_DRIVER:?set by scripts/lint-env.sh}" "$rustc" "$@"
