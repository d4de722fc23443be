//! `report` under GitHub Actions and with the full-DR-test extras: GITHUB_OUTPUT in the runner's
//! syntax, the step summary, annotations; a pytest suite merged into the JUnit and read back by
//! a real consumer (python's junitparser); the runbook §3 metrics block from timed phases; trends
//! from earlier drills' summary.json files.

use crate::support::cmd::Bin;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn ts(secs: f64) -> String {
    let base = chrono::DateTime::parse_from_rfc3339("2025-10-06T10:00:00Z")
        .expect("base")
        .with_timezone(&chrono::Utc);
    (base + chrono::Duration::microseconds((secs * 1e6) as i64))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// One drill: RTO `rto` s against a 5 s objective, then `extra` events (with their own offsets).
fn journal(dir: &Path, drill: &str, rto: f64, extra: &[(f64, Value)]) -> PathBuf {
    let path = dir.join(format!("{drill}.jsonl"));
    let ev = |t: f64, v: Value| {
        let mut v = v;
        v["ts"] = json!(ts(t));
        v["drill"] = json!(drill);
        v["by"] = json!("drill");
        v.to_string()
    };
    let mut lines = vec![
        ev(
            0.0,
            json!({"event": "drill_started", "name": "api-service-failure", "scenario": "api-service-failure",
            "objectives": {"rto_s": 5.0}, "roles": [["application_lead", "@bob"]]}),
        ),
        ev(
            0.5,
            json!({"event": "fault_planned", "id": "f1", "action": "crash", "target": "api", "undo": {"kind": "nothing", "reason": "restart policy"}}),
        ),
        ev(1.0, json!({"event": "fault_applied", "id": "f1"})),
        ev(
            1.0,
            json!({"event": "recovery_started", "probes": ["http://api/health"], "consecutive": 3, "timeout_s": 60.0}),
        ),
        ev(
            1.5 + rto,
            json!({"event": "recovery_stable", "recovered_at": ts(1.0 + rto), "uncertainty_s": 0.1,
            "latency": {"count": 10, "p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 4.0}}),
        ),
        ev(
            1.6 + rto,
            json!({"event": "fault_reverted", "id": "f1", "how": "restart policy"}),
        ),
    ];
    for (t, e) in extra {
        lines.push(ev(*t, e.clone()));
    }
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    path
}

/// The runner's GITHUB_OUTPUT reader: `name=value`, or `name<<DELIM` lines `DELIM`.
fn parse_outputs(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.split('\n');
    while let Some(l) = lines.next() {
        if l.is_empty() {
            continue;
        }
        let heredoc = l.find("<<").filter(|i| l.find('=').is_none_or(|e| *i < e));
        if let Some(i) = heredoc {
            let (name, delim) = (&l[..i], &l[i + 2..]);
            assert!(!delim.is_empty(), "empty delimiter");
            let mut v = Vec::new();
            loop {
                let n = lines
                    .next()
                    .unwrap_or_else(|| panic!("heredoc {delim} not closed"));
                if n == delim {
                    break;
                }
                v.push(n);
            }
            out.push((name.to_string(), v.join("\n")));
        } else {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            out.push((k.to_string(), v.to_string()));
        }
    }
    out
}

#[test]
fn outputs_summary_and_annotations_in_the_runners_syntax() {
    let dir = tempfile::tempdir().expect("tmp");
    // A failed drill with more problems than the annotation cap, one with a newline and a %.
    let mut extra = Vec::new();
    for i in 0..14 {
        let name = format!("step {i}");
        extra.push((
            20.0 + i as f64,
            json!({"event": "phase_started", "name": name}),
        ));
        extra.push((20.5 + i as f64, json!({"event": "phase_finished", "name": name, "ok": false, "detail": "exit 1: 100% broken\nsecond line"})));
    }
    let j = journal(dir.path(), "d-gha", 9.0, &extra);
    let out = dir.path().join("output");
    let summary = dir.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").expect("write");
    let r = Bin::new("report")
        .journal(&j)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &out)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_TOKEN", "ghs_SecretForMaskTest123")
        .args(["--github-summary", "--markdown"])
        .arg(dir.path().join("report.md"))
        .succeeds();
    let outs = parse_outputs(&std::fs::read_to_string(&out).expect("output"));
    let get = |k: &str| {
        outs.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no output {k}: {outs:?}"))
    };
    assert_eq!(get("result"), "failed");
    assert_eq!(get("rto-seconds"), "9.000");
    assert_eq!(get("rpo-seconds"), "");
    assert!(get("report-path").ends_with("report.md"));
    let problems = get("problems");
    assert!(problems.lines().count() >= 15, "{problems}");
    assert!(
        problems.contains("100% broken\nsecond line"),
        "multi-line value kept: {problems}"
    );
    let raw = std::fs::read_to_string(&out).expect("output");
    let delim_line = raw
        .lines()
        .find(|l| l.starts_with("problems<<"))
        .expect("heredoc");
    assert!(
        delim_line.starts_with("problems<<ghadelimiter_"),
        "{delim_line}"
    );

    let s = std::fs::read_to_string(&summary).expect("summary");
    assert!(s.starts_with("earlier step\n"), "appended, not overwritten");
    assert!(s.contains("# DR Drill Report"));

    // Annotations: escaped, one line each, capped at 10 per step; the token only in add-mask.
    let errors: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error::"))
        .collect();
    assert_eq!(errors.len(), 10, "{}", r.stdout);
    assert!(
        errors
            .iter()
            .any(|l| l.contains("100%25 broken%0Asecond line")),
        "{errors:?}"
    );
    let masks: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.contains("ghs_SecretForMaskTest123"))
        .collect();
    assert_eq!(masks, ["::add-mask::ghs_SecretForMaskTest123"]);
    assert!(!r.stderr.contains("ghs_SecretForMaskTest123"));
}

#[test]
fn plain_output_outside_actions() {
    let dir = tempfile::tempdir().expect("tmp");
    let j = journal(dir.path(), "d-plain", 9.0, &[]);
    let r = Bin::new("report")
        .journal(&j)
        .args(["--github-summary"])
        .succeeds();
    assert!(!r.stdout.contains("::"), "{}", r.stdout);
    r.stderr_has("GITHUB_STEP_SUMMARY is not set");
}

/// DRILL_LOG picks what is logged with `target=level` directives (drillkit's default: info,
/// `-v` debug; everyone else's warn). A damaged journal line is a warning from `drillkit`.
#[test]
fn drill_log_directives_pick_what_is_logged() {
    let dir = tempfile::tempdir().expect("tmp");
    let j = journal(dir.path(), "d-log", 9.0, &[]);
    let mut text = std::fs::read_to_string(&j).expect("read");
    text.push_str("this line is not json\n");
    std::fs::write(&j, text).expect("write");
    let warning = "not a journal event";
    let report = |log: Option<&str>| {
        let b = Bin::new("report").journal(&j);
        match log {
            Some(v) => b.env("DRILL_LOG", v),
            None => b.env_remove("DRILL_LOG"),
        }
        .succeeds()
    };
    for (log, shown) in [
        (None, true),
        (Some("warn"), true),
        (Some("error"), false),
        (Some("drillkit=warn"), true),
        (Some("drillkit::journal=trace"), true),
        (Some("drillkit::report=trace"), false),
        (Some("bollard=trace"), false),
        (Some("error,drillkit=debug"), true),
        (Some("drillkit=loud"), true),      // not a level: the default
        (Some(""), true),                   // empty: the default
        (Some("error,"), false),            // an empty directive is not "every target"
        (Some("off, drillkit=warn"), true), // spaces around a directive
    ] {
        let r = report(log);
        assert_eq!(
            r.stderr.contains(warning),
            shown,
            "DRILL_LOG={log:?}: {}",
            r.stderr
        );
        if shown {
            assert!(
                r.stderr.contains(&format!("{}:7: ", j.display())),
                "{}",
                r.stderr
            );
        }
    }
}

const PYTEST_XML: &str = r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="0" failures="1" skipped="1" tests="4" time="1.234" timestamp="2025-10-06T10:05:00.123456+00:00" hostname="runner"><testcase classname="tests.smoke.test_api" name="test_health" time="0.101" /><testcase classname="tests.smoke.test_api" name="test_companies" time="0.202" /><testcase classname="tests.smoke.test_api" name="test_login" time="0.303"><failure message="AssertionError: assert 500 == 200">def test_login():
&gt;       assert r.status_code == 200
E       AssertionError: assert 500 == 200</failure></testcase><testcase classname="tests.smoke.test_api" name="test_export" time="0.000"><skipped type="pytest.skip" message="export disabled in DR">skipped</skipped></testcase></testsuite></testsuites>"#;

#[test]
fn merged_junit_is_read_by_junitparser() {
    crate::support::py::require("junitparser", "junitparser");
    let dir = tempfile::tempdir().expect("tmp");
    let smoke = dir.path().join("smoke.xml");
    std::fs::write(&smoke, PYTEST_XML).expect("write");
    let j = journal(dir.path(), "d-merge", 2.0, &[]);
    let junit = dir.path().join("junit.xml");
    let md = dir.path().join("report.md");
    Bin::new("report")
        .journal(&j)
        .arg("--merge-junit")
        .arg(&smoke)
        .arg("--junit")
        .arg(&junit)
        .arg("--markdown")
        .arg(&md)
        .succeeds();
    let script = r#"
import json, sys
from junitparser import JUnitXml, TestSuite, Failure, Error, Skipped
xml = JUnitXml.fromfile(sys.argv[1])
suites = [xml] if isinstance(xml, TestSuite) else list(xml)
out = {}
for s in suites:
    cases = []
    for c in s:
        res = [type(r).__name__ for r in c.result]
        cases.append([c.classname, c.name, res])
    out[s.name] = {"tests": s.tests, "failures": s.failures, "errors": s.errors, "skipped": s.skipped, "cases": cases}
print(json.dumps(out))
"#;
    let v: Value = serde_json::from_slice(&crate::support::py::run(script, &junit)).expect("json");
    let drill = &v["api-service-failure"];
    assert_eq!(drill["failures"], json!(0), "{v}");
    assert!(drill["tests"].as_u64().expect("tests") >= 2, "{v}");
    let names: Vec<&str> = drill["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter_map(|c| c[1].as_str())
        .collect();
    assert!(names.contains(&"fault: crash api"), "{names:?}");
    assert!(names.contains(&"objective: RTO ≤ 5s"), "{names:?}");
    let py = &v["pytest"];
    assert_eq!(
        (
            py["tests"].clone(),
            py["failures"].clone(),
            py["skipped"].clone()
        ),
        (json!(4), json!(1), json!(1)),
        "{v}"
    );
    assert_eq!(
        py["cases"][2],
        json!(["tests.smoke.test_api", "test_login", ["Failure"]])
    );

    // The report: the smoke suite's table, and the failure as a problem with an action item.
    let text = std::fs::read_to_string(&md).expect("md");
    assert!(text.contains("## Smoke Tests (merged JUnit)"), "{text}");
    assert!(text.contains("| pytest | 4 | 1 | 0 | 1 |"), "{text}");
    assert!(
        text.contains(
            "smoke test tests.smoke.test_api::test_login failed: AssertionError: assert 500 == 200"
        ),
        "{text}"
    );
    assert!(
        text.contains("| Investigate: smoke test tests.smoke.test_api::test_login failed"),
        "{text}"
    );

    // A bare <testsuite> root with a naive timestamp (older pytest) merges too; junk does not.
    let bare = dir.path().join("bare.xml");
    std::fs::write(&bare, r#"<testsuite name="nextest-run" tests="1" failures="0" errors="0" timestamp="2025-10-06T10:05:00"><testcase name="t" classname="c"/></testsuite>"#).expect("write");
    Bin::new("report")
        .journal(&j)
        .arg("--merge-junit")
        .arg(&bare)
        .arg("--junit")
        .arg(&junit)
        .succeeds();
    assert!(std::fs::read_to_string(&junit)
        .expect("junit")
        .contains("nextest-run"));
    let junk = dir.path().join("junk.xml");
    std::fs::write(&junk, "not xml").expect("write");
    Bin::new("report")
        .journal(&j)
        .arg("--merge-junit")
        .arg(&junk)
        .code(2)
        .stderr_has("--merge-junit");
}

#[test]
fn full_dr_test_phases_fill_the_runbooks_metrics_block() {
    let dir = tempfile::tempdir().expect("tmp");
    let phase = |name: &str, start: f64, secs: f64| {
        vec![
            (start, json!({"event": "phase_started", "name": name})),
            (
                start + secs,
                json!({"event": "phase_finished", "name": name, "ok": true}),
            ),
        ]
    };
    let mut extra = Vec::new();
    extra.extend(phase("detection", 100.0, 300.0));
    extra.extend(phase("assessment", 400.0, 1500.0));
    extra.extend(phase("infrastructure provisioning", 1900.0, 3000.0));
    extra.extend(phase("database recovery", 4900.0, 5400.0));
    extra.extend(phase("application deployment", 10300.0, 2400.0));
    extra.extend(phase("verification", 12700.0, 600.0));
    let j = journal(dir.path(), "d-full", 2.0, &extra);
    let r = Bin::new("report").journal(&j).succeeds();
    let md = r.stdout;
    assert!(md.contains("## DR Metrics (runbook §3)"), "{md}");
    for row in [
        "| detection_time | 5m 00s | 5m 00s |",
        "| assessment_time | 30m 00s | 25m 00s |",
        "| infrastructure_provisioning | 1h 00m | 50m 00s |",
        "| database_recovery | 1h 30m | 1h 30m |",
        "| application_deployment | 1h 30m | 40m 00s |",
        "| verification | 1h 30m | 10m 00s |",
    ] {
        assert!(md.contains(row), "missing {row}\n{md}");
    }
    assert!(md.contains("  database_recovery: \"1h 30m\""), "{md}");
}

#[test]
fn history_adds_trends_and_flags_a_regression() {
    let dir = tempfile::tempdir().expect("tmp");
    let hist = dir.path().join("artifacts");
    // Five earlier runs around 3 s (one per artifact folder, the way downloads land).
    for (i, rto) in [3.0, 3.2, 2.9, 3.1, 3.0].iter().enumerate() {
        let d = hist.join(format!("dr-drill-{i}"));
        std::fs::create_dir_all(&d).expect("mkdir");
        let v = json!({"drill": format!("old-{i}"), "name": "api-service-failure", "scenario": "api-service-failure",
            "started_at": format!("2025-0{}-06T10:00:00.000000Z", i + 4), "rto_seconds": rto, "rpo": null, "passed": true});
        std::fs::write(d.join("summary.json"), v.to_string()).expect("write");
    }
    std::fs::write(hist.join("summary.json"), "{broken").expect("write");
    let j = journal(dir.path(), "d-now", 9.0, &[]);
    let md = dir.path().join("r.md");
    let r = Bin::new("report")
        .journal(&j)
        .arg("--history")
        .arg(&hist)
        .arg("--markdown")
        .arg(&md)
        .arg("--summary-json")
        .arg(dir.path().join("summary.json"))
        .succeeds();
    r.stderr_has("skipped");
    let text = std::fs::read_to_string(&md).expect("md");
    assert!(text.contains("## Trends"), "{text}");
    assert!(
        text.contains("⚠️ **RTO regression**: 9.00s now, median of the last 5 runs 3.00s"),
        "{text}"
    );
    assert!(
        text.contains("| 2025-10-06 (this run) | `d-now` | 9.00s |"),
        "{text}"
    );
    assert!(text.contains("xychart-beta"), "{text}");
    // What this run wrote can be the next run's history.
    let again = Bin::new("report")
        .journal(&j)
        .arg("--history")
        .arg(dir.path())
        .succeeds();
    assert!(again.stdout.contains("## Trends"));
    Bin::new("report")
        .journal(&j)
        .arg("--history")
        .arg(dir.path().join("nope"))
        .code(2)
        .stderr_has("--history");
}
