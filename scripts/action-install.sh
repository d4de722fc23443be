#!/usr/bin/env bash
# Installs the drillkit binaries for the composite action (action.yml) and puts them on PATH.
#
#   release   install the release archive of this action's version for this runner:
#             ${DRILLKIT_DOWNLOAD_URL:-$GITHUB_SERVER_URL/$REPO/releases/download}/vVERSION/
#             drillkit-vVERSION-TARGET.tar.gz, its .sha256 verified before anything is unpacked
#             (and `gh attestation verify` with DRILLKIT_VERIFY_ATTESTATION=true). A copy
#             already in the tool cache is reused when every binary's --version shows the same
#             version and commit. Prints installed=true|false to $GITHUB_OUTPUT: false only
#             when there is no release to install (the server answers 404, or the action is a
#             local checkout with no repository); a checksum or attestation mismatch, a release
#             without a checksum or a server that cannot be reached is an error, never a
#             fallback to building.
#   key       prepare the source build: the source (the action's own, or the tag of another
#             requested version), the cache key (hash of Cargo.lock, the manifests, the sources
#             and `rustc -V` run there), the install dir for that key. installed=true when that
#             build is already in the tool cache.
#   source    build the source from its own directory (its toolchain file applies, not the
#             caller's) with cargo --release --locked and install the binaries.
#   prebuilt  the old name of `release`.
#
# Everything comes in through the environment (never ${{ }} in a script):
#   ACTION_PATH        the action's checkout (github.action_path); default: this script's repo
#   DRILLKIT_VERSION   the version to install (default: the version in ACTION_PATH/Cargo.toml)
#   DRILLKIT_REPO      owner/name of the release repository (github.action_repository; else
#                      GITHUB_ACTION_REPOSITORY; else read from ACTION_PATH .../_actions/OWNER/NAME/REF)
#   DRILLKIT_REF       the action's ref (github.action_ref); a full commit SHA is also the
#                      commit the installed binaries must report
#   DRILLKIT_DOWNLOAD_URL  base URL holding vVERSION/ folders (GHES, air-gapped mirrors)
#   DRILLKIT_VERIFY_ATTESTATION  true: `gh attestation verify` the archive (needs gh, GH_TOKEN)
#   DRILLKIT_INSTALL_DIR  where the binaries go (default: the tool cache, see install_root)
#   DRILLKIT_SOURCE_DIR, DRILLKIT_COMMIT  (source) what `key` printed
#   CARGO_TARGET_DIR   (key, source) build there instead of SOURCE/target; the action then
#                      leaves caching it to the caller
set -euo pipefail

mode=${1:?usage: action-install.sh release|key|source}
action_path=${ACTION_PATH:-$(cd "$(dirname "$0")/.." && pwd)}
bins=(drill inject-fault wait-recovery verify-backup measure-rto report)

say() { printf 'drillkit: %s\n' "$*" >&2; }
fail() { printf '::error::%s\n' "$*" >&2; exit 1; }
output() { if [ -n "${GITHUB_OUTPUT:-}" ]; then printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"; fi; }
cargo_version() { sed -n 's/^version = "\(.*\)"$/\1/p' "$1/Cargo.toml" | head -1; }

own_version=$(cargo_version "$action_path")
version=${DRILLKIT_VERSION:-}
version=${version#v}
version=${version:-$own_version}
ref=${DRILLKIT_REF:-}
expect_commit=
if [[ "$ref" =~ ^[0-9a-f]{40}$ ]]; then expect_commit=$ref; fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) target=x86_64-unknown-linux-gnu ;;
  Linux-aarch64 | Linux-arm64) target=aarch64-unknown-linux-gnu ;;
  Darwin-arm64) target=aarch64-apple-darwin ;;
  *) target= ;;
esac
install_root=${RUNNER_TOOL_CACHE:-$HOME/.drillkit}/drillkit/$version

repo=${DRILLKIT_REPO:-${GITHUB_ACTION_REPOSITORY:-}}
if [ -z "$repo" ] && [[ "$action_path" =~ /_actions/([^/]+)/([^/]+)/[^/]+$ ]]; then
  repo=${BASH_REMATCH[1]}/${BASH_REMATCH[2]}
fi

add_path() {
  if [ -n "${GITHUB_PATH:-}" ]; then printf '%s\n' "$1" >>"$GITHUB_PATH"; fi
  output bin-dir "$1"
}

# installed_ok DIR COMMIT: every binary in DIR reports `NAME VERSION (commit C)`, the same C
# for all, and C is COMMIT when COMMIT is given. Prints C.
installed_ok() {
  local dir=$1 want=$2 commit='' b line c
  for b in "${bins[@]}"; do
    [ -x "$dir/$b" ] || return 1
    line=$("$dir/$b" --version 2>/dev/null) || return 1
    [[ "$line" =~ ^"$b $version (commit "([^\)]+)")"$ ]] || return 1
    c=${BASH_REMATCH[1]}
    if [ -n "$commit" ] && [ "$c" != "$commit" ]; then return 1; fi
    commit=$c
  done
  if [ -n "$want" ] && [ "$commit" != "$want" ]; then return 1; fi
  printf '%s' "$commit"
}

tmp=
trap 'if [ -n "$tmp" ]; then rm -rf "$tmp"; fi' EXIT

# fetch URL FILE: prints the HTTP status (000 when the server could not be reached; why is in
# $tmp/curl.err).
fetch() {
  curl -sSL --retry 2 --connect-timeout 10 -o "$2" -w '%{http_code}' "$1" 2>"$tmp/curl.err" || true
}

release() {
  local dir=${DRILLKIT_INSTALL_DIR:-$install_root/$target} commit
  if [ -z "$target" ]; then
    say "no release is built for $(uname -sm); building from source"
    output installed false; return
  fi
  if commit=$(installed_ok "$dir" "$expect_commit") && [ "$commit" != unknown ]; then
    say "$version (commit $commit) already installed in $dir"
    add_path "$dir"; output installed true; output commit "$commit"; return
  fi
  local base=${DRILLKIT_DOWNLOAD_URL:-}
  if [ -z "$base" ]; then
    if [ -z "$repo" ]; then
      say "a local action (no repository) has no release; building from source"
      output installed false; return
    fi
    base=${GITHUB_SERVER_URL:-https://github.com}/$repo/releases/download
  fi
  local archive=drillkit-v$version-$target.tar.gz
  local url=${base%/}/v$version/$archive
  local status want got
  tmp=$(mktemp -d)
  status=$(fetch "$url" "$tmp/$archive")
  case "$status" in
    200) ;;
    404 | 410)
      say "no release archive at $url (HTTP $status); building from source"
      output installed false; return ;;
    000) fail "cannot reach $url to download drillkit $version ($(tail -1 "$tmp/curl.err")); set the action's download-url to a mirror that can be reached" ;;
    *) fail "downloading $url failed with HTTP $status" ;;
  esac
  status=$(fetch "$url.sha256" "$tmp/$archive.sha256")
  [ "$status" = 200 ] || fail "the release has $archive but no $archive.sha256 (HTTP $status at $url.sha256); refusing to install an unverified archive"
  want=$(awk 'NR == 1 {print $1}' "$tmp/$archive.sha256")
  got=$(sha256sum "$tmp/$archive" | awk '{print $1}')
  [[ "$want" =~ ^[0-9a-f]{64}$ ]] || fail "$url.sha256 holds no SHA-256 checksum; refusing to install"
  [ "$want" = "$got" ] || fail "SHA-256 checksum mismatch for $archive: expected $want ($url.sha256), got $got; refusing to install"
  if [ "${DRILLKIT_VERIFY_ATTESTATION:-false}" = true ]; then
    command -v gh >/dev/null || fail "verify-attestation is true but the gh CLI is not installed"
    [ -n "$repo" ] || fail "verify-attestation is true but the action's repository is unknown"
    gh attestation verify "$tmp/$archive" --repo "$repo" >&2 ||
      fail "the build provenance attestation of $archive does not verify for $repo; refusing to install"
  fi
  mkdir "$tmp/unpacked"
  tar -xzf "$tmp/$archive" -C "$tmp/unpacked" --no-same-owner
  local from=$tmp/unpacked/drillkit-v$version-$target
  commit=$(installed_ok "$from" "") ||
    fail "$archive does not hold the six drillkit $version binaries for $target"
  if [ -n "$expect_commit" ] && [ "$commit" != "$expect_commit" ]; then
    say "warning: the release v$version was built from $commit, this action is $expect_commit"
  fi
  mkdir -p "$dir"
  for b in "${bins[@]}"; do
    install -m 0755 "$from/$b" "$dir/.$b.new"
    mv -f "$dir/.$b.new" "$dir/$b"
  done
  say "$version (commit $commit) installed from $url (sha256 $got)"
  add_path "$dir"; output installed true; output commit "$commit"
}

# The source to build: the action's own when it is the requested version, else that version's
# tag cloned from the action's repository. Sets source_dir.
resolve_source() {
  source_dir=${DRILLKIT_SOURCE_DIR:-}
  if [ -n "$source_dir" ]; then return; fi
  if [ "$version" = "$own_version" ]; then
    source_dir=$action_path; return
  fi
  [ -n "$repo" ] || fail "drillkit $version has no release, and this action's own source is $own_version: cannot build $version without the action's repository"
  source_dir=${RUNNER_TEMP:-${TMPDIR:-/tmp}}/drillkit-src-$version
  if [ "$(cargo_version "$source_dir" 2>/dev/null)" != "$version" ]; then
    rm -rf "$source_dir"
    git clone -q --depth 1 --branch "v$version" "${GITHUB_SERVER_URL:-https://github.com}/$repo" "$source_dir" >&2 ||
      fail "drillkit $version has no release and its tag v$version cannot be cloned from $repo"
  fi
  [ "$(cargo_version "$source_dir")" = "$version" ] || fail "tag v$version of $repo is not drillkit $version"
}

key() {
  resolve_source
  cd "$source_dir"
  command -v rustc >/dev/null || fail "drillkit $version has no release for this runner, and building it needs a Rust toolchain (add one before this action)"
  local rustc_v hash own_target=false
  rustc_v=$(rustc -V) || fail "rustc -V failed in $source_dir"
  hash=$({
    printf '%s\n' "$rustc_v"
    { find Cargo.lock Cargo.toml rust-toolchain rust-toolchain.toml build.rs src bins \
      -type f 2>/dev/null || true; } | LC_ALL=C sort | xargs -r sha256sum
  } | sha256sum | cut -c1-32)
  local prefix="drillkit-src-${RUNNER_OS:-$(uname -s)}-${RUNNER_ARCH:-$(uname -m)}-"
  local dir=${DRILLKIT_INSTALL_DIR:-$install_root/${target:-$(uname -m)}-src-${hash:0:16}}
  if [ -n "${CARGO_TARGET_DIR:-}" ]; then own_target=true; fi
  output key "$prefix$version-$hash"
  output restore-prefix "$prefix"
  output source-dir "$source_dir"
  output target-dir "${CARGO_TARGET_DIR:-$source_dir/target}"
  output own-target-dir "$own_target"
  output install-dir "$dir"
  output commit "$expect_commit"
  local commit
  if commit=$(installed_ok "$dir" "$expect_commit"); then
    say "$version (commit $commit) built from this source is already installed in $dir"
    add_path "$dir"; output installed true; return
  fi
  say "building drillkit $version from $source_dir (cache key $prefix$version-$hash, $rustc_v)"
  output installed false
}

source_build() {
  resolve_source
  local dir=${DRILLKIT_INSTALL_DIR:-$install_root/${target:-$(uname -m)}-src}
  command -v cargo >/dev/null || fail "cargo is needed to build drillkit from source (add a Rust toolchain before this action)"
  cd "$source_dir"
  # The commit goes into --version only when it is known (a SHA ref): an empty value would be a
  # different build from an unset one and make cargo rebuild.
  if [ -n "${DRILLKIT_COMMIT:-$expect_commit}" ]; then
    export DRILLKIT_COMMIT=${DRILLKIT_COMMIT:-$expect_commit}
  else
    unset DRILLKIT_COMMIT
  fi
  local target_dir=${CARGO_TARGET_DIR:-$source_dir/target}
  say "cargo build --release --locked in $source_dir (target dir $target_dir)"
  CARGO_TARGET_DIR=$target_dir cargo build --release --locked --bins >&2
  mkdir -p "$dir"
  for b in "${bins[@]}"; do
    install -m 0755 "$target_dir/release/$b" "$dir/.$b.new"
    mv -f "$dir/.$b.new" "$dir/$b"
  done
  installed_ok "$dir" "${DRILLKIT_COMMIT:-}" >/dev/null ||
    fail "the binaries built in $source_dir are not drillkit $version: $("$dir/drill" --version 2>&1)"
  "$dir/drill" --version >&2
  add_path "$dir"; output installed true
}

case "$mode" in
  release | prebuilt) release ;;
  key) key ;;
  source) source_build ;;
  *) echo "usage: action-install.sh release|key|source" >&2; exit 2 ;;
esac
