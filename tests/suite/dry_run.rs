//! Issue 12: a dry run executes nothing the user configured. `measure-rto phase --dry-run` (and
//! `DRILL_DRY_RUN=true`) records the phase as planned and runs nothing — not a shell line with
//! `&&`, `;`, `$( )` and `>` in it, not a program with arguments. And the full DR test workflow's
//! phase steps, run as the runner runs them (bash, the step's env, DRILL_DRY_RUN=true from the
//! job), with hostile DR_*_CMD values, leave no trace of any of them.

use crate::support::cmd::Bin;
use crate::support::docker::journal_events;
use std::path::{Path, PathBuf};

/// A command that would leave four files behind if any part of it ran.
fn hostile(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "touch {d}/and-1 && touch {d}/and-2; touch {d}/semi; echo $(touch {d}/subst) > {d}/redirect"
    )
}

fn traces(dir: &Path) -> Vec<PathBuf> {
    ["and-1", "and-2", "semi", "subst", "redirect"]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .collect()
}

fn planned(journal: &Path) -> Vec<(String, String)> {
    journal_events(journal)
        .iter()
        .filter(|e| e["event"] == "phase_planned")
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("").to_string(),
                e["command"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_dry_run_phase_runs_no_part_of_a_shell_line_issue_12() {
    let dir = tempfile::tempdir().expect("tmp");
    let j = dir.path().join("journal.jsonl");
    let cmd = hostile(dir.path());
    // The flag, the environment variable (as a workflow sets it), and the argv form.
    Bin::new("measure-rto")
        .args(["phase", "provision", "--dry-run", "--", &cmd])
        .journal(&j)
        .succeeds()
        .stderr_has("dry run, planned and not run");
    Bin::new("measure-rto")
        .args(["phase", "restore", "--", &cmd])
        .env("DRILL_DRY_RUN", "true")
        .journal(&j)
        .succeeds();
    Bin::new("measure-rto")
        .args(["phase", "deploy", "--", "sh", "-c", &cmd])
        .env("DRILL_DRY_RUN", "true")
        .journal(&j)
        .succeeds();
    assert_eq!(
        traces(dir.path()),
        Vec::<PathBuf>::new(),
        "a dry run ran it"
    );
    let p = planned(&j);
    assert_eq!(
        p.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["provision", "restore", "deploy"]
    );
    assert_eq!(p[0].1, cmd, "the plan shows the command as given");

    // The same line without a dry run does run (so the check above means something).
    Bin::new("measure-rto")
        .args(["phase", "for real", "--", &cmd])
        .journal(&j)
        .succeeds();
    assert_eq!(traces(dir.path()).len(), 5, "{:?}", traces(dir.path()));
}

#[test]
fn the_full_test_workflow_dry_run_executes_no_configured_command_issue_12() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("workflows/dr-full-test.yml")).expect("read");
    let w: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    let job = &w["jobs"]["full-test"];
    assert_eq!(
        job["env"]["DRILL_DRY_RUN"].as_str(),
        Some("${{ inputs.dry-run }}"),
        "the job passes the dry-run input to measure-rto phase"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("scenarios")).expect("mkdir");
    std::fs::copy(
        root.join("scenarios/full-dr-test.yaml"),
        work.join("scenarios/full-dr-test.yaml"),
    )
    .expect("copy scenario");
    let bins = crate::support::cmd::exe("measure-rto")
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cmd = hostile(dir.path());
    let mut phases = 0;
    for step in job["steps"].as_sequence().expect("steps") {
        let name = step["name"].as_str().unwrap_or("");
        if !name.starts_with("Phase") {
            continue;
        }
        let run = step["run"].as_str().expect("run");
        let mut c = std::process::Command::new("bash");
        c.args(["-e", "-c", run])
            .current_dir(&work)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", dir.path())
            .env("DRILL_JOURNAL", ".drill/journal.jsonl")
            .env("DRILL_DRY_RUN", "true")
            .env("DRILL_LOG", "info");
        if step["env"]["CMD"].is_string() {
            c.env("CMD", &cmd);
            phases += 1;
        }
        let out = c.output().expect("bash");
        assert!(
            out.status.success(),
            "{name}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(phases, 5, "five command phases");
    assert_eq!(
        traces(dir.path()),
        Vec::<PathBuf>::new(),
        "a dry run ran it"
    );
    let p = planned(&work.join(".drill/journal.jsonl"));
    assert_eq!(p.len(), 5, "{p:?}");
    assert!(p.iter().all(|(_, c)| *c == cmd), "{p:?}");
}
