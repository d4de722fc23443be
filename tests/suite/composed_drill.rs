//! Issue 12: one verdict however the drill is run. The runbook's API crash drill composed from
//! single binaries (inject-fault crash → wait-recovery → measure-rto --rto-target 5m → report),
//! as a workflow runs it one step at a time, against a real busybox httpd whose restart policy
//! brings it back: the JUnit (read by junitparser) has no failure and a test case for the RTO
//! objective, the Markdown shows it met. The same drill through `drill run` gives the same
//! summary, field by field. A fault really still open when `report` runs is reported open and
//! named under Issues Encountered.

use crate::support::cmd::Bin;
use crate::support::docker::{self as dk, Container};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const HEALTH: &str = "/api/v1/health/ping";

/// Every suite of a JUnit file as junitparser reads it: tests, failures, errors and each case
/// with the kinds of its results.
fn junitparser(junit: &Path) -> Value {
    crate::support::py::require("junitparser", "junitparser");
    let script = r#"
import json, sys
from junitparser import JUnitXml, TestSuite
xml = JUnitXml.fromfile(sys.argv[1])
suites = [xml] if isinstance(xml, TestSuite) else list(xml)
out = []
for s in suites:
    cases = [[c.name, sorted(type(r).__name__ for r in c.result)] for c in s]
    out.append({"tests": s.tests, "failures": s.failures, "errors": s.errors, "cases": sorted(cases)})
print(json.dumps(out))
"#;
    serde_json::from_slice(&crate::support::py::run(script, junit)).expect("junitparser json")
}

/// The composed drill of the issue, step by step, each binary in its own process with only the
/// journal between them. Returns the folder with junit.xml, report.md and summary.json.
fn composed(api: &Container, dir: &Path) -> PathBuf {
    let out = dir.join("composed");
    let j = out.join("journal.jsonl");
    Bin::new("inject-fault")
        .args(["crash", "--container", &api.name])
        .journal(&j)
        .succeeds();
    Bin::new("wait-recovery")
        .args(["--http", &format!("{}{HEALTH}", api.base_url())])
        .args(["--timeout", "30s"])
        .journal(&j)
        .succeeds()
        .stderr_has("recovered by itself");
    Bin::new("measure-rto")
        .args(["--rto-target", "5m"])
        .journal(&j)
        .succeeds()
        .stderr_has("✓ RTO ≤ 5m");
    Bin::new("report")
        .journal(&j)
        .arg("--junit")
        .arg(out.join("junit.xml"))
        .arg("--markdown")
        .arg(out.join("report.md"))
        .arg("--summary-json")
        .arg(out.join("summary.json"))
        .succeeds();
    out
}

/// The same drill as a scenario, through `drill run`.
fn drill_run(api: &Container, dir: &Path) -> PathBuf {
    let out = dir.join("drill-run");
    let file = dir.join("crash.yaml");
    std::fs::write(
        &file,
        format!(
            "name: composed-crash\nobjectives:\n  rto: 5m\ntargets:\n  api:\n    container: {}\n\
             faults:\n  - action: crash\n    target: api\n\
             recovery:\n  timeout: 30s\n  interval: 250ms\n  consecutive: 3\n  probes:\n    - http: {}{HEALTH}\n",
            api.name,
            api.base_url()
        ),
    )
    .expect("write scenario");
    Bin::new("drill")
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .current_dir(dir)
        .succeeds();
    out
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

#[test]
fn composed_crash_drill_passes_with_its_rto_objective_issue_12() {
    require!(Docker);
    let api = dk::httpd("always", &[HEALTH]);
    let before = api.state();
    let dir = tempfile::tempdir().expect("tmp");
    let out = composed(&api, dir.path());

    let after = api.wait_up(Duration::from_secs(20));
    assert!(
        after.restart_count > before.restart_count,
        "Docker's restart policy brought it back: {before:?} -> {after:?}"
    );
    let suites = junitparser(&out.join("junit.xml"));
    let drill = &suites[0];
    assert_eq!(drill["failures"], 0, "{suites:#}");
    assert_eq!(drill["errors"], 0, "{suites:#}");
    let cases = drill["cases"].as_array().expect("cases");
    let case = |name: &str| {
        cases
            .iter()
            .find(|c| c[0] == name)
            .unwrap_or_else(|| panic!("no test case {name:?}: {suites:#}"))
    };
    assert_eq!(case("objective: RTO ≤ 5m")[1], serde_json::json!([]));
    let crash = cases
        .iter()
        .find(|c| {
            c[0].as_str()
                .is_some_and(|n| n.starts_with(&format!("fault: crash container {} ", api.name)))
        })
        .unwrap_or_else(|| panic!("no crash test case: {suites:#}"));
    assert_eq!(crash[1], serde_json::json!([]), "{suites:#}");

    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(
        md.lines()
            .any(|l| l.starts_with("| RTO ≤ 5m |") && l.ends_with("| ✅ met |")),
        "{md}"
    );
    assert!(md.contains("recovered by itself"), "{md}");
    let issues = md
        .split("## Issues Encountered")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("Issues Encountered");
    assert_eq!(issues.trim(), "None.", "{md}");
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary[0]["passed"], true, "{summary:#}");
}

/// The fields of a summary that must not depend on how the drill was run (not the name, ids,
/// times or measured numbers).
fn verdict(m: &Value) -> Value {
    let pick = |v: &Value, keys: &[&str]| -> Value {
        Value::Object(
            keys.iter()
                .map(|k| (k.to_string(), v[*k].clone()))
                .collect(),
        )
    };
    serde_json::json!({
        "passed": m["passed"],
        "problems": m["problems"],
        "error": m["error"],
        "objectives": m["objectives"].as_array().expect("objectives").iter()
            .map(|o| pick(o, &["name", "target", "passed"])).collect::<Vec<_>>(),
        "faults": m["faults"].as_array().expect("faults").iter()
            .map(|f| {
                let mut v = pick(f, &["action", "target", "error", "manual_undo", "recovered_by_itself"]);
                v["open"] = Value::Bool(f["applied_at"].is_string() && f["reverted_at"].is_null());
                // "restart count 0 → 1": the same words either way.
                v["revert"] = Value::String(f["revert"].as_str().unwrap_or("").split(',').next().unwrap_or("").into());
                v
            })
            .collect::<Vec<_>>(),
        "recovery": pick(&m["recovery"], &["probes", "recovered", "timeout_s"]),
        "rto_measured": m["rto_seconds"].is_number(),
    })
}

#[test]
fn composed_and_drill_run_reach_the_same_summary_issue_12() {
    require!(Docker);
    let dir = tempfile::tempdir().expect("tmp");
    let api = dk::httpd("always", &[HEALTH]);
    let composed_out = composed(&api, dir.path());
    api.wait_up(Duration::from_secs(20));
    let run_out = drill_run(&api, dir.path());

    let a = read_json(&composed_out.join("summary.json"));
    let a = &a[0]; // `report --summary-json` writes every reported drill
    let b = read_json(&run_out.join("summary.json"));
    let (va, vb) = (verdict(a), verdict(&b));
    for key in va.as_object().expect("object").keys() {
        assert_eq!(
            va[key], vb[key],
            "{key} differs between the composed drill and `drill run`\ncomposed: {va:#}\ndrill run: {vb:#}"
        );
    }
    assert_eq!(va["passed"], true, "{va:#}");
    // The JUnit of both: the same test cases with the same results.
    let ja = junitparser(&composed_out.join("junit.xml"));
    let jb = junitparser(&run_out.join("junit.xml"));
    for key in ["tests", "failures", "errors", "cases"] {
        assert_eq!(ja[0][key], jb[0][key], "JUnit {key}: {ja:#} vs {jb:#}");
    }
}

#[test]
fn a_fault_still_open_at_report_time_is_named_under_issues_issue_12() {
    require!(Docker);
    let c = dk::sleeper("no").run_up();
    let dir = tempfile::tempdir().expect("tmp");
    let j = dir.path().join("journal.jsonl");
    Bin::new("inject-fault")
        .args(["pause", "--container", &c.name])
        .journal(&j)
        .succeeds();
    let junit = dir.path().join("junit.xml");
    let md = dir.path().join("report.md");
    Bin::new("report")
        .journal(&j)
        .arg("--junit")
        .arg(&junit)
        .arg("--markdown")
        .arg(&md)
        .succeeds();
    // Undo before asserting, so a failed assertion leaves nothing paused.
    Bin::new("inject-fault")
        .args(["revert", "--all"])
        .journal(&j)
        .succeeds();
    let md = std::fs::read_to_string(&md).expect("report.md");
    let issues = md
        .split("## Issues Encountered")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("Issues Encountered");
    assert!(
        issues.contains(&format!("pause container {} (", c.name)) && issues.contains("still open"),
        "{md}"
    );
    let suites = junitparser(&junit);
    assert_eq!(suites[0]["failures"], 1, "{suites:#}");
}
