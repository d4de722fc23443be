//! `scripts/lint-env.sh` (.ci/run evals it before the test build): a cargo build under its
//! settings lints what it compiles as `cargo clippy -- -D warnings` does — clippy's lints, the
//! crate's own `[lints]` table, a warning fails the build — and builds it. Checked on a scratch
//! crate, with and without the settings.

use crate::support::release::root;
use std::path::Path;
use std::process::{Command, Output};

/// `scripts/lint-env.sh`'s assignments (`export NAME=VALUE`, one a line), unquoted; None when
/// clippy-driver is not installed.
fn lint_env() -> Option<Vec<(String, String)>> {
    let out = Command::new(root().join("scripts/lint-env.sh"))
        .output()
        .expect("run lint-env.sh");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("rustup component add clippy"), "{err}");
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let vars: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let (k, v) = l
                .strip_prefix("export ")
                .and_then(|a| a.split_once('='))
                .unwrap_or_else(|| panic!("not `export NAME=VALUE`: {l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect();
    let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["RUSTC_WORKSPACE_WRAPPER", "CLIPPY_ARGS"], "{text}");
    Some(vars)
}

fn scratch_crate(dir: &Path, body: &str) {
    std::fs::create_dir_all(dir.join("src")).expect("mkdir");
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"scratch\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [lints.clippy]\nunwrap_used = \"warn\"\n",
    )
    .expect("write Cargo.toml");
    std::fs::write(dir.join("src/lib.rs"), body).expect("write lib.rs");
}

fn build(dir: &Path, vars: &[(String, String)]) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--offline"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("run cargo")
}

#[test]
fn a_build_under_lint_env_fails_on_a_clippy_warning_and_builds_clean_code() {
    let Some(vars) = lint_env() else {
        assert!(crate::support::check(
            "clippy-driver (rustup component add clippy)",
            false
        ));
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");

    // The Cargo.toml's [lints] (unwrap_used) and clippy's default set (len_zero), as errors.
    let linted = tmp.path().join("linted");
    scratch_crate(
        &linted,
        "pub fn first(x: Option<u8>) -> u8 {\n    x.unwrap()\n}\n\n\
         pub fn empty(v: &[u8]) -> bool {\n    v.len() == 0\n}\n",
    );
    let plain = build(&linted, &[]);
    assert!(
        plain.status.success(),
        "without the settings the build is rustc's and passes: {}",
        String::from_utf8_lossy(&plain.stderr)
    );
    std::fs::remove_dir_all(linted.join("target")).expect("rm target");
    let failed = build(&linted, &vars);
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success(), "a clippy warning passed:\n{err}");
    assert!(
        err.contains("error: used `unwrap()` on an `Option` value"),
        "{err}"
    );
    assert!(err.contains("error: length comparison to zero"), "{err}");

    // Clean code builds: a library comes out of the linted build.
    let clean = tmp.path().join("clean");
    scratch_crate(
        &clean,
        "pub fn first(x: Option<u8>) -> u8 {\n    x.unwrap_or(0)\n}\n",
    );
    let ok = build(&clean, &vars);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(clean.join("target/release/libscratch.rlib").is_file());
}

#[test]
fn ci_run_lints_the_build_it_tests() {
    let run = std::fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
    let lint = run
        .find("scripts/lint-env.sh")
        .expect(".ci/run evals lint-env.sh");
    let test = run
        .find("\nscripts/test.sh")
        .expect(".ci/run runs scripts/test.sh");
    assert!(lint < test, "the lint settings come before the test build");
    assert!(
        run.contains("--bench '*'"),
        "the bench, which the tests do not build, is built (and linted) too"
    );
    assert!(
        !run.lines()
            .any(|l| l.trim_start().starts_with("cargo clippy")),
        "a separate clippy pass compiles everything again"
    );
}
