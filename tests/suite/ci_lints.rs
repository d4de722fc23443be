//! `scripts/lint-env.sh` (.ci/run evals it before the test build): a cargo build under its
//! settings lints what it compiles as `cargo clippy -- -D warnings` does — clippy's lints, the
//! crate's own `[lints]` table, a warning fails the build — and builds it; the library the
//! binaries link (a crate named drillkit, not its unit tests) is compiled by rustc alone, with
//! warnings denied (scripts/clippy-wrapper.sh). Checked on scratch crates, with and without the
//! settings.

use crate::support::release::root;
use std::path::Path;
use std::process::{Command, Output};

/// `scripts/lint-env.sh`'s assignments (`export NAME=VALUE`, one a line), unquoted, with the
/// wrapper installed under `target_dir`; None (a visible skip, or a failure when fixtures are
/// required) when clippy-driver is not installed.
fn lint_env(target_dir: &Path) -> Option<Vec<(String, String)>> {
    let out = Command::new(root().join("scripts/lint-env.sh"))
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .expect("run lint-env.sh");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("rustup component add clippy"), "{err}");
        crate::support::check("clippy-driver (rustup component add clippy)", false);
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
    assert_eq!(
        names,
        [
            "RUSTC_WORKSPACE_WRAPPER",
            "DRILLKIT_CLIPPY_DRIVER",
            "CLIPPY_ARGS"
        ],
        "{text}"
    );
    Some(vars)
}

fn scratch_crate(dir: &Path, name: &str, body: &str) {
    std::fs::create_dir_all(dir.join("src")).expect("mkdir");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [lints.clippy]\nunwrap_used = \"warn\"\n"
        ),
    )
    .expect("write Cargo.toml");
    std::fs::write(dir.join("src/lib.rs"), body).expect("write lib.rs");
}

fn build(dir: &Path, vars: &[(String, String)]) -> Output {
    cargo(dir, vars, &["build", "--release", "--offline"])
}

fn cargo(dir: &Path, vars: &[(String, String)], args: &[&str]) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("DRILLKIT_CLIPPY_DRIVER")
        .env_remove("CLIPPY_ARGS");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("run cargo")
}

#[test]
fn a_build_under_lint_env_fails_on_a_clippy_warning_and_builds_clean_code() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some(vars) = lint_env(&tmp.path().join("lint-target")) else {
        return;
    };

    // The Cargo.toml's [lints] (unwrap_used) and clippy's default set (len_zero), as errors.
    let linted = tmp.path().join("linted");
    scratch_crate(
        &linted,
        "scratch",
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
        "scratch",
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

/// The library the binaries link is rustc's compile (a release's), warnings denied; clippy
/// reaches its code through its unit-test build.
#[test]
fn the_library_itself_is_compiled_by_rustc_and_linted_in_its_unit_test_build() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some(vars) = lint_env(&tmp.path().join("lint-target")) else {
        return;
    };
    let lib = tmp.path().join("drillkit");
    scratch_crate(
        &lib,
        "drillkit",
        "pub fn first(x: Option<u8>) -> u8 {\n    x.unwrap()\n}\n",
    );
    let plain = build(&lib, &vars);
    assert!(
        plain.status.success(),
        "the library's own build is rustc's: clippy's lints are not its\n{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let tests = cargo(
        &lib,
        &vars,
        &["test", "--release", "--offline", "--lib", "--no-run"],
    );
    let err = String::from_utf8_lossy(&tests.stderr);
    assert!(
        !tests.status.success(),
        "its unit-test build is linted:\n{err}"
    );
    assert!(
        err.contains("error: used `unwrap()` on an `Option` value"),
        "{err}"
    );

    // rustc's own warnings fail the library's build.
    scratch_crate(
        &lib,
        "drillkit",
        "pub fn first(x: Option<u8>) -> u8 {\n    let unused = 1;\n    x.unwrap_or(0)\n}\n",
    );
    let warned = build(&lib, &vars);
    let err = String::from_utf8_lossy(&warned.stderr);
    assert!(!warned.status.success(), "a warning passed:\n{err}");
    assert!(err.contains("error: unused variable: `unused`"), "{err}");
}

/// Nothing in src/ is compiled only outside cfg(test): the unit-test build, which clippy lints,
/// holds every line of the library (scripts/clippy-wrapper.sh relies on it).
#[test]
fn no_library_code_is_left_out_of_the_unit_test_build() {
    let mut stack = vec![root().join("src")];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read src").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files += 1;
                let text = std::fs::read_to_string(&p).expect("read");
                let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
                assert!(
                    !squeezed.contains("not(test)"),
                    "{}: code outside cfg(test) only: clippy would not see it",
                    p.display()
                );
            }
        }
    }
    assert!(files > 40, "{files} files under src/");
}

/// .ci/run's commands (not its comments): the lint settings before the test build, the bench
/// built after it, no separate clippy pass.
#[test]
fn ci_run_lints_the_build_it_tests() {
    let run = std::fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
    let lines: Vec<&str> = run
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let at = |want: &str| {
        lines
            .iter()
            .position(|l| *l == want)
            .unwrap_or_else(|| panic!(".ci/run has no line `{want}`:\n{run}"))
    };
    let (get, set, test) = (
        at("lint_env=$(scripts/lint-env.sh)"),
        at("eval \"$lint_env\""),
        at("scripts/test.sh"),
    );
    assert!(
        get < set && set < test,
        "the lint settings come before the test build"
    );
    assert!(
        lines[test..]
            .iter()
            .any(|l| l.starts_with("cargo build") && l.contains("--bench '*'")),
        "the bench, which the tests do not build, is built (and linted) after them:\n{run}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("cargo clippy")),
        "a separate clippy pass compiles everything again"
    );
}
