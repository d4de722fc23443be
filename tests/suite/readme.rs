//! The README's commands work as written: the demo drill, and the "Try each binary" block run
//! line for line by bash against the real binaries. Their JUnit is read back by a JUnit parser.

use crate::support::cmd::{exe, Run};
use std::path::{Path, PathBuf};

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

fn bin_dir() -> PathBuf {
    exe("drill").parent().expect("bin dir").to_path_buf()
}

/// The shell lines inside the fenced block between the readme-test markers.
fn marked_block(text: &str) -> String {
    let start = text
        .find("<!-- readme-test:start -->")
        .expect("start marker");
    let end = text.find("<!-- readme-test:end -->").expect("end marker");
    text[start..end]
        .lines()
        .filter(|l| !l.starts_with("```") && !l.starts_with("<!--"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn parse_junit(path: &Path) -> quick_junit::Report {
    let xml = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    quick_junit::Report::deserialize_from_str(&xml)
        .unwrap_or_else(|e| panic!("{} is not JUnit: {e}\n{xml}", path.display()))
}

fn bash(script: &str, dir: &Path) -> Run {
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env_clear()
        .env("PATH", path)
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .output()
        .expect("bash");
    Run::from_output(out, "README block".into())
}

#[test]
fn the_readme_demo_command_runs_a_complete_drill() {
    let text = readme();
    let cmd = "cargo run --release --bin drill -- run scenarios/demo.yaml";
    assert!(text.contains(cmd), "README no longer shows `{cmd}`");
    // Same command, already built: run it from a directory holding the scenario, as a user would.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("scenarios")).expect("mkdir");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/demo.yaml"),
        dir.path().join("scenarios/demo.yaml"),
    )
    .expect("copy");
    let r = bash("drill run scenarios/demo.yaml", dir.path());
    assert_eq!(r.code, 0, "demo drill failed:\n{}", r.stderr);
    assert!(r.stderr.contains("Recovery completed in"), "{}", r.stderr);

    let out = dir.path().join(".drill");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("summary.json")).expect("summary.json"),
    )
    .expect("json");
    assert_eq!(summary["passed"], true);
    let rto = summary["rto_seconds"].as_f64().expect("rto_seconds");
    // The demo supervisor restarts the worker 1 s after the crash.
    assert!((0.9..5.0).contains(&rto), "rto {rto}");
    assert!(summary["downtime_seconds"].as_f64().expect("downtime") > 0.5);

    let junit = parse_junit(&out.join("junit.xml"));
    assert_eq!(junit.test_suites.len(), 1);
    let suite = &junit.test_suites[0];
    assert_eq!(suite.name.as_str(), "demo-api-crash");
    let names: Vec<&str> = suite.test_cases.iter().map(|c| c.name.as_str()).collect();
    assert!(
        names.iter().any(|n| n.starts_with("fault: crash process")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("recovery: http http://127.0.0.1:18080/health")),
        "{names:?}"
    );
    assert!(names.contains(&"objective: RTO ≤ 10s"), "{names:?}");
    assert_eq!(suite.failures, 0);
    assert!(suite
        .properties
        .iter()
        .any(|p| p.name.as_str() == "rto_seconds"));

    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    for section in [
        "## Executive Summary",
        "## Metrics",
        "## Timeline",
        "```mermaid",
        "## What Went Well",
        "## Issues Encountered",
        "## Action Items",
        "## Recommendations",
        "## Next Steps",
    ] {
        assert!(
            report.contains(section),
            "report lacks {section}:\n{report}"
        );
    }
    // No demo service is left running.
    let pidfile = out.join("demo-api.pid");
    assert!(
        !pidfile.exists(),
        "the demo service's pidfile is still there"
    );
}

#[test]
fn the_readme_try_each_binary_block_runs() {
    let script = marked_block(&readme());
    assert!(script.contains("inject-fault crash"), "{script}");
    let dir = tempfile::tempdir().expect("tempdir");
    let r = bash(&script, dir.path());
    assert_eq!(
        r.code, 0,
        "README block failed\n--- stdout\n{}\n--- stderr\n{}",
        r.stdout, r.stderr
    );
    let measured: serde_json::Value =
        serde_json::from_str(r.stdout.trim()).expect("measure-rto --json on stdout");
    assert_eq!(measured["passed"], true, "{measured}");
    assert!(
        measured["rto_seconds"].as_f64().expect("rto") > 0.5,
        "{measured}"
    );
    assert!(
        measured["downtime_seconds"].as_f64().expect("downtime") > 0.5,
        "{measured}"
    );
    assert!(r.stderr.contains("no open faults"), "{}", r.stderr);
    let junit = parse_junit(&dir.path().join(".drill/try-junit.xml"));
    let cases: Vec<&str> = junit.test_suites[0]
        .test_cases
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert!(
        cases.iter().any(|c| c.starts_with("fault: crash")),
        "{cases:?}"
    );
    assert!(
        cases.iter().any(|c| c.starts_with("recovery:")),
        "{cases:?}"
    );
}
