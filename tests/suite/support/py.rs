//! Python modules the tests use as real consumers of drillkit's output (junitparser).

use std::process::Command;

fn importable(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Make sure python3 can import `module` (PyPI package `package`), installing it with pip when
/// missing; a module that cannot be had fails the test (scripts/test.sh installs it).
pub fn require(module: &str, package: &str) {
    if importable(module) {
        return;
    }
    let st = Command::new("python3")
        .args(["-m", "pip", "install", "-q", package])
        .status();
    assert!(
        importable(module),
        "{module} is needed (python3 -m pip install {package}): {st:?}"
    );
}

/// Run a Python script (`python3 -c`) with one argument; its stdout, or the test fails with its
/// stderr.
pub fn run(script: &str, arg: &std::path::Path) -> Vec<u8> {
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(arg)
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}
