#!/usr/bin/env bash
# Installs the drillkit binaries for the composite action (action.yml) and puts them on PATH.
#
#   prebuilt  download the release archive of this action's version for this runner, verify its
#             SHA-256 checksum, unpack it. Prints installed=true|false to $GITHUB_OUTPUT (false:
#             no release for this version/platform, or no network: the action then builds).
#   source    build from the action's own source with cargo (--release --locked), copy the
#             binaries into the install dir. CARGO_TARGET_DIR is honoured, so a cached target
#             dir (or the repo's own target/ in tests) makes this a no-op rebuild.
#
# Everything comes in through the environment (never ${{ }} in a script):
#   ACTION_PATH        the action's checkout (github.action_path); default: this script's repo
#   DRILLKIT_VERSION   the version to install (default: the version in ACTION_PATH/Cargo.toml)
#   DRILLKIT_REPO      owner/name of the release repository (default: GITHUB_ACTION_REPOSITORY)
#   DRILLKIT_INSTALL_DIR  where the binaries go (default: $RUNNER_TOOL_CACHE/drillkit/VERSION/bin
#                      or ~/.drillkit/bin)
set -euo pipefail

mode=${1:?usage: action-install.sh prebuilt|source}
action_path=${ACTION_PATH:-$(cd "$(dirname "$0")/.." && pwd)}
bins=(drill inject-fault wait-recovery verify-backup measure-rto report)

version=${DRILLKIT_VERSION:-}
version=${version#v}
if [ -z "$version" ]; then
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$action_path/Cargo.toml" | head -1)
fi
install_dir=${DRILLKIT_INSTALL_DIR:-${RUNNER_TOOL_CACHE:-$HOME/.drillkit}/drillkit/$version/bin}
mkdir -p "$install_dir"

output() { if [ -n "${GITHUB_OUTPUT:-}" ]; then printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"; fi; }
add_path() {
  if [ -n "${GITHUB_PATH:-}" ]; then printf '%s\n' "$install_dir" >>"$GITHUB_PATH"; fi
  output bin-dir "$install_dir"
}

case "$mode" in
prebuilt)
  if "$install_dir/drill" --version 2>/dev/null | grep -qx "drill $version"; then
    echo "drillkit $version already installed in $install_dir" >&2
    add_path; output installed true; exit 0
  fi
  repo=${DRILLKIT_REPO:-${GITHUB_ACTION_REPOSITORY:-}}
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) target=x86_64-unknown-linux-gnu ;;
    Linux-aarch64) target=aarch64-unknown-linux-gnu ;;
    Darwin-arm64) target=aarch64-apple-darwin ;;
    *) target= ;;
  esac
  if [ -z "$repo" ] || [ -z "$target" ]; then
    echo "no prebuilt drillkit for ${repo:-this checkout} on $(uname -sm); building from source" >&2
    output installed false; exit 0
  fi
  server=${GITHUB_SERVER_URL:-https://github.com}
  archive="drillkit-$version-$target.tar.gz"
  url="$server/$repo/releases/download/v$version/$archive"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  if ! curl -fsSL --retry 3 -o "$tmp/$archive" "$url" || ! curl -fsSL --retry 3 -o "$tmp/$archive.sha256" "$url.sha256"; then
    echo "no release archive at $url; building from source" >&2
    output installed false; exit 0
  fi
  want=$(awk '{print $1}' "$tmp/$archive.sha256")
  got=$(sha256sum "$tmp/$archive" | awk '{print $1}')
  if [ -z "$want" ] || [ "$want" != "$got" ]; then
    echo "::error::checksum mismatch for $archive (expected $want, got $got); refusing to install" >&2
    exit 1
  fi
  tar -xzf "$tmp/$archive" -C "$tmp"
  for b in "${bins[@]}"; do
    install -m 0755 "$(find "$tmp" -type f -name "$b" | head -1)" "$install_dir/$b"
  done
  echo "drillkit $version installed from $url (sha256 $got)" >&2
  add_path; output installed true
  ;;
source)
  command -v cargo >/dev/null || { echo "::error::cargo is needed to build drillkit from source (add dtolnay/rust-toolchain before this action)" >&2; exit 1; }
  target_dir=${CARGO_TARGET_DIR:-$action_path/target}
  echo "building drillkit $version from $action_path (target dir $target_dir)" >&2
  CARGO_TARGET_DIR=$target_dir cargo build --release --locked --manifest-path "$action_path/Cargo.toml" --bins >&2
  for b in "${bins[@]}"; do
    install -m 0755 "$target_dir/release/$b" "$install_dir/$b"
  done
  "$install_dir/drill" --version >&2
  add_path; output installed true
  ;;
*)
  echo "usage: action-install.sh prebuilt|source" >&2; exit 2 ;;
esac
