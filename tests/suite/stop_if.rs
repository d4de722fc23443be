//! Stop conditions (issue 15): `stop_if` in a scenario and `inject-fault guard` next to composed
//! steps. A container that never comes back (restart policy `no`) with a guard on its health
//! endpoint ends the drill aborted within seconds, not after the 60 s recovery timeout; the
//! error-rate condition trips on the demo service's outage; the halt file and the env switch
//! stop a drill; the guard binary reverts a composed run's open fault.
//!
//! The Docker cases are skipped (with a line on stderr) when no Docker engine answers.

use crate::support::cmd::Bin;
use crate::support::docker::{self as dk, journal_events, journal_kinds, wait_child};
use std::path::Path;
use std::time::{Duration, Instant};

fn summary(out: &Path) -> serde_json::Value {
    let p = out.join("summary.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON ({e})", p.display()))
}

/// The journal's event kinds so far; none while the file is not there yet.
fn kinds_so_far(journal: &Path) -> Vec<String> {
    if journal.exists() {
        journal_kinds(journal)
    } else {
        vec![]
    }
}

fn open_faults(journal: &Path) -> Vec<serde_json::Value> {
    let r = Bin::new("inject-fault")
        .args(["--json", "list"])
        .journal(journal)
        .succeeds();
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim())
        .unwrap_or_else(|e| panic!("list --json is not JSON ({e}): {}", r.stdout));
    v.as_array().cloned().unwrap_or_default()
}

/// The evidence of an aborted drill in every format: summary.json, JUnit and Markdown.
fn assert_aborted_everywhere(out: &Path, condition: &str) -> serde_json::Value {
    let m = summary(out);
    assert_eq!(m["verdict"], "aborted", "summary: {m:#}");
    assert_eq!(m["passed"], false, "summary: {m:#}");
    let c = m["aborted"]["condition"].as_str().unwrap_or_default();
    assert!(c.contains(condition), "condition {c:?} in {m:#}");
    assert!(
        !m["aborted"]["value"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "the value seen is recorded: {m:#}"
    );
    let junit = std::fs::read_to_string(out.join("junit.xml")).expect("junit.xml");
    let case = format!("name=\"stop_if: {c}");
    let at = junit
        .find(&case)
        .unwrap_or_else(|| panic!("no {case} test case in\n{junit}"));
    let rest = &junit[at..];
    let end = rest.find("</testcase>").unwrap_or(rest.len());
    assert!(rest[..end].contains("<failure"), "{}", &rest[..end]);
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(md.contains("🛑 Aborted"), "{md}");
    assert!(md.contains(c), "{md}");
    m
}

/// The "done when": `web` (restart policy `no`) is crashed, stop_if http failing_for 2s,
/// recovery timeout 60 s: exit 1 within 15 s, aborted with the condition, web running again, no
/// fault open.
#[test]
fn a_crash_that_never_recovers_is_aborted_by_its_health_guard_within_seconds() {
    require!(Docker);
    let web = dk::httpd("no", &["/health"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let file = dir.path().join("crash.yaml");
    let url = format!("{}/health", web.base_url());
    std::fs::write(
        &file,
        format!(
            "name: web-crash-guarded
faults:
  - action: crash
    target: {{ container: {name} }}
stop_if:
  - http: {url}
    failing_for: 2s
recovery:
  timeout: 60s
  probes:
    - http: {url}
",
            name = web.name
        ),
    )
    .expect("write scenario");

    let started = Instant::now();
    let r = Bin::new("drill")
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .current_dir(dir.path())
        .code(1);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "took {took:?}: {}",
        r.stderr
    );
    r.stderr_has("ABORTED");

    let m = assert_aborted_everywhere(&out, "failing for 2s");
    assert!(
        m["aborted"]["value"]
            .as_str()
            .unwrap_or_default()
            .starts_with("failing for"),
        "{m:#}"
    );
    web.wait_up(Duration::from_secs(10));
    let journal = out.join("journal.jsonl");
    assert!(open_faults(&journal).is_empty(), "no fault is open");
    let kinds = journal_kinds(&journal);
    assert!(kinds.iter().any(|k| k == "drill_aborted"), "{kinds:?}");
    // The abort came before the recovery wait could time out.
    assert!(!kinds.iter().any(|k| k == "recovery_timeout"), "{kinds:?}");
}

/// A demo service, a crash of its worker with a long restart delay, and the given stop_if.
fn demo_scenario(dir: &Path, stop_if: &str, restart_delay: &str) -> std::path::PathBuf {
    let port = dk::free_port();
    let file = dir.join("demo-guarded.yaml");
    std::fs::write(
        &file,
        format!(
            "name: demo-guarded
services:
  - name: demo-api
    demo:
      listen: 127.0.0.1:{port}
      pidfile: {pid}
      restart_delay: {restart_delay}
    ready:
      http: http://127.0.0.1:{port}/health
watch:
  - http: http://127.0.0.1:{port}/health
    interval: 50ms
faults:
  - action: crash
    target:
      pidfile: {pid}
stop_if:
{stop_if}
recovery:
  timeout: 60s
  probes:
    - http: http://127.0.0.1:{port}/health
",
            pid = dir.join("demo.pid").display()
        ),
    )
    .expect("write scenario");
    file
}

#[test]
fn the_error_rate_of_the_watch_samplers_aborts_the_demo_drill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let file = demo_scenario(dir.path(), "  - error_rate: 20%\n    window: 2s\n", "30s");
    let started = Instant::now();
    Bin::new("drill")
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .current_dir(dir.path())
        .code(1);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let m = assert_aborted_everywhere(&out, "error rate above 20% over 2s");
    let v = m["aborted"]["value"].as_str().unwrap_or_default();
    assert!(v.contains("requests failed"), "{v}");
}

#[test]
fn the_halt_file_aborts_a_running_drill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let halt = dir.path().join("HALT");
    let file = demo_scenario(
        dir.path(),
        &format!("  - file: {}\n", halt.display()),
        "30s",
    );
    let child = Bin::new("drill")
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .current_dir(dir.path())
        .spawn();
    // Pull the switch once the fault is in.
    let journal = out.join("journal.jsonl");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !kinds_so_far(&journal).iter().any(|k| k == "fault_applied") {
        assert!(Instant::now() < deadline, "no fault applied within 20s");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(&halt, "incident INC-1").expect("halt");
    let r = wait_child(child, Duration::from_secs(20), "drill run (halt file)");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_aborted_everywhere(&out, &format!("halt file {}", halt.display()));
}

#[test]
fn the_env_switch_stops_a_drill_before_its_first_fault() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let file = demo_scenario(dir.path(), "  - env: DK_ISSUE15_PAUSED\n", "1s");
    Bin::new("drill")
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .env("DK_ISSUE15_PAUSED", "true")
        .current_dir(dir.path())
        .code(1);
    let m = assert_aborted_everywhere(&out, "env DK_ISSUE15_PAUSED");
    assert_eq!(m["aborted"]["value"], "DK_ISSUE15_PAUSED=true");
    let kinds = journal_kinds(&out.join("journal.jsonl"));
    assert!(
        !kinds.iter().any(|k| k == "fault_planned"),
        "nothing was touched: {kinds:?}"
    );
    // A false value does not trip.
    let out2 = dir.path().join("out2");
    Bin::new("drill")
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out2)
        .env("DK_ISSUE15_PAUSED", "false")
        .current_dir(dir.path())
        .succeeds();
    assert_eq!(summary(&out2)["verdict"], "passed");
}

#[test]
fn stop_if_mistakes_are_bad_input_with_a_position() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "name: bad\nstop_if:\n  - file: /run/HALT\n    failing_for: 2s\n",
    )
    .expect("write");
    let r = Bin::new("drill").arg("validate").arg(&file).code(2);
    r.stderr_has(&format!("{}:4:5: stop_if: failing_for", file.display()));
}

/// `inject-fault guard` in the background of a composed run: the fault of another step is
/// reverted when the guard's endpoint stays down, and the drill's verdict is aborted.
#[test]
fn the_guard_binary_reverts_a_composed_runs_fault() {
    require!(Docker);
    let web = dk::httpd("no", &["/health"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = dir.path().join("journal.jsonl");
    let url = format!("{}/health", web.base_url());
    let guard = Bin::new("inject-fault")
        .args(["guard", "--http", &url, "--failing-for", "1s"])
        .journal(&journal)
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !kinds_so_far(&journal).iter().any(|k| k == "drill_started") {
        assert!(Instant::now() < deadline, "the guard started no drill");
        std::thread::sleep(Duration::from_millis(20));
    }
    Bin::new("inject-fault")
        .args(["stop", "--container", &web.name, "--timeout", "1s"])
        .journal(&journal)
        .succeeds();
    let r = wait_child(guard, Duration::from_secs(20), "inject-fault guard");
    assert_eq!(r.code, 1, "the guard tripped: {}", r.stderr);
    r.stderr_has("ABORTED");
    web.wait_up(Duration::from_secs(10));
    assert!(open_faults(&journal).is_empty(), "no fault is open");
    let aborted: Vec<_> = journal_events(&journal)
        .into_iter()
        .filter(|e| e["event"] == "drill_aborted")
        .collect();
    assert_eq!(aborted.len(), 1, "{aborted:?}");
    let brief = Bin::new("measure-rto")
        .arg("--json")
        .journal(&journal)
        .code(1);
    let v: serde_json::Value = serde_json::from_str(brief.stdout.trim()).expect("brief JSON");
    assert_eq!(v["verdict"], "aborted", "{v:#}");
}

/// A composed run (issue 15): `inject-fault guard` in the background, a fault from another step,
/// and `wait-recovery` waiting for a service that never comes back, each its own process on one
/// journal. When the guard trips (a halt file) it writes `drill_aborted` and reverts the fault;
/// the wait stops at once with the aborted verdict and the condition instead of waiting out its
/// 60 s timeout.
#[test]
fn wait_recovery_stops_when_a_composed_guard_aborts_the_drill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = dir.path().join("journal.jsonl");
    let halt = dir.path().join("HALT");
    let guard = Bin::new("inject-fault")
        .args(["guard", "--halt-file"])
        .arg(&halt)
        .journal(&journal)
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !kinds_so_far(&journal).iter().any(|k| k == "drill_started") {
        assert!(Instant::now() < deadline, "the guard started no drill");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The fault: a process paused (SIGSTOP) until it is reverted.
    let mut victim = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("sleep");
    let pid = victim.id().to_string();
    let stopped = || crate::support::proc_state(victim.id()) == Some('T');
    Bin::new("inject-fault")
        .args(["pause", "--pid", &pid])
        .journal(&journal)
        .succeeds();
    assert!(stopped(), "paused");
    // Nothing answers this port: the wait would run its whole 60 s.
    let port = dk::free_port();
    let wait = Bin::new("wait-recovery")
        .args([
            "--tcp",
            &format!("127.0.0.1:{port}"),
            "--timeout",
            "60s",
            "--json",
        ])
        .journal(&journal)
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !kinds_so_far(&journal)
        .iter()
        .any(|k| k == "recovery_started")
    {
        assert!(Instant::now() < deadline, "wait-recovery did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(&halt, "incident INC-2").expect("halt");
    let pulled = Instant::now();
    let r = wait_child(wait, Duration::from_secs(15), "wait-recovery");
    let took = pulled.elapsed();
    eprintln!("timing: wait-recovery stopped {took:?} after the halt file appeared");
    assert_eq!(r.code, 1, "aborted is a failed drill: {}", r.stderr);
    assert!(took < Duration::from_secs(5), "stopped promptly: {took:?}");
    let condition = format!("halt file {}", halt.display());
    r.stderr_has(&format!("aborted by stop condition '{condition}'"));
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("wait JSON");
    assert_eq!(v["verdict"], "aborted", "{v:#}");
    assert_eq!(v["aborted"]["condition"], condition.as_str(), "{v:#}");
    let g = wait_child(guard, Duration::from_secs(15), "inject-fault guard");
    assert_eq!(g.code, 1, "the guard tripped: {}", g.stderr);
    assert!(!stopped(), "the guard reverted the fault (SIGCONT)");
    assert!(open_faults(&journal).is_empty(), "no fault is open");
    assert!(
        !kinds_so_far(&journal)
            .iter()
            .any(|k| k == "recovery_timeout"),
        "the wait did not run out its timeout"
    );
    let _ = victim.kill();
    let _ = victim.wait();
}
