//! Release builds for the tests of issue 13: run `scripts/package.sh`, and know whether this
//! suite is itself the release build.
//!
//! scripts/test.sh builds the suite with `scripts/package.sh --print-env` (static, for the
//! host's target, the commit in `--version`). Then packing a release, or the action's source
//! build of this checkout, finds every unit built and only strips and tars: seconds, not a
//! second compile of drillkit. A compile there would also relink the binaries the other tests
//! are running, so [`assert_nothing_compiled`] turns it into a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The target dir this test run was built in, so package.sh and the source build reuse it.
pub fn cargo_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// `scripts/package.sh --print-env`'s value of `name`.
fn package_setting(name: &str) -> Option<String> {
    let out = Command::new("bash")
        .arg(root().join("scripts/package.sh"))
        .arg("--print-env")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .map(|v| v.trim_matches('\'').to_string())
}

/// Whether this suite was built the way package.sh builds a release (scripts/test.sh): in
/// the target's own folder, with the same commit, linked statically.
pub fn suite_is_release_build() -> bool {
    let (Some(target), Some(commit)) = (
        package_setting("DRILLKIT_TARGET"),
        package_setting("DRILLKIT_COMMIT"),
    ) else {
        return false;
    };
    let exe = std::env::current_exe().unwrap_or_default();
    let in_target = exe
        .to_string_lossy()
        .contains(&format!("/{target}/release/"));
    let dynamic = Command::new("readelf")
        .arg("-d")
        .arg(&exe)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("(NEEDED)"))
        .unwrap_or(true);
    in_target && !dynamic && option_env!("DRILLKIT_COMMIT") == Some(commit.as_str())
}

/// When the suite is the release build, a build of this checkout (`what`, whose cargo output
/// is `log`) must have compiled nothing of drillkit.
pub fn assert_nothing_compiled(what: &str, log: &str) {
    if suite_is_release_build() {
        assert!(
            !log.contains("Compiling drillkit"),
            "{what} compiled drillkit again although scripts/test.sh built the suite as the \
             release (the settings differ from scripts/package.sh --print-env?):\n{log}"
        );
    }
}

/// Run scripts/package.sh into `out` with this run's target dir; returns the archive's path.
pub fn package(out: &Path) -> PathBuf {
    let r = Command::new("bash")
        .arg(root().join("scripts/package.sh"))
        .arg(out)
        .env("CARGO_TARGET_DIR", cargo_target_dir())
        .output()
        .expect("run package.sh");
    let log = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "package.sh failed:\n{log}");
    assert_nothing_compiled("scripts/package.sh", &log);
    let archive = PathBuf::from(String::from_utf8_lossy(&r.stdout).trim());
    assert!(archive.is_file(), "package.sh printed {archive:?}");
    archive
}
