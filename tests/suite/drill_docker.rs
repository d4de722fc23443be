//! `drill run` of the repository's own scenarios against real containers: the API crash drill
//! (scenarios/api-service-failure.yaml) measures a real RTO while Docker's restart policy brings a
//! busybox httpd back, and the Redis drill (scenarios/redis-cache-failure.yaml) stops a real
//! Redis, keeps the app answering, starts Redis again and finds its cache warm. A drill
//! interrupted by SIGINT or SIGTERM exits 4 and leaves no container stopped or paused.
//!
//! Skipped (with a line on stderr) when no Docker engine answers.

use crate::support::cmd::Bin;
use crate::support::docker::{self as dk, journal_kinds, wait_child, Container, Resp};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SECS_20: Duration = Duration::from_secs(20);

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

fn summary(out: &Path) -> serde_json::Value {
    let p = out.join("summary.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}):\n{text}", p.display()))
}

fn count(kinds: &[String], kind: &str) -> usize {
    kinds.iter().filter(|k| *k == kind).count()
}

/// Write `n` keys through RESP and SAVE them to /data, so a restarted Redis loads them again.
fn fill(redis: &Container, n: usize) {
    let mut r = Resp::connect(redis.port());
    for i in 0..n {
        let key = format!("company:{i}");
        assert_eq!(r.command(&["SET", &key, "cached"]), "+OK");
    }
    assert_eq!(r.command(&["SAVE"]), "+OK");
    assert_eq!(r.dbsize(), n as u64);
}

#[test]
fn api_service_failure_scenario_measures_the_restart_policy_recovery() {
    require!(Docker);
    let api = dk::httpd("always", &["/api/v1/health/ping"]);
    let before = api.state();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");

    let file = scenario("api-service-failure.yaml");
    let r = Bin::new("drill")
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .env("API_CONTAINER", &api.name)
        .env("API_URL", api.base_url())
        .env("RTO_TARGET", "30s")
        .env("RECOVERY_TIMEOUT", "30s")
        .current_dir(dir.path())
        .succeeds();
    r.stderr_has("Recovery completed in");

    let m = summary(&out);
    let rto = m["rto_seconds"].as_f64().expect("rto_seconds is a number");
    assert!(rto > 0.0 && rto < 30.0, "rto_seconds {rto}");
    assert_eq!(m["passed"], true, "summary: {m:#}");
    assert!(out.join("junit.xml").is_file(), "junit.xml written");
    assert!(out.join("report.md").is_file(), "report.md written");

    let s = api.wait_up(SECS_20);
    assert!(
        s.restart_count > before.restart_count,
        "the restart policy restarted it: {before:?} -> {s:?}"
    );
    let (code, body) = dk::http_get(api.port(), "/api/v1/health/ping").expect("GET ping");
    assert_eq!((code, body.trim()), (200, "ok"));
    let kinds = journal_kinds(&out.join("journal.jsonl"));
    assert_eq!(count(&kinds, "fault_planned"), 1, "{kinds:?}");
    assert_eq!(count(&kinds, "drill_finished"), 1, "{kinds:?}");
}

#[test]
fn redis_cache_failure_scenario_keeps_the_app_up_and_finds_the_cache_warm() {
    require!(Docker);
    const KEYS: usize = 50;
    let redis = dk::redis("no");
    fill(&redis, KEYS);
    let before = redis.state();
    let app = dk::httpd("always", &["/api/v1/companies"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");

    Bin::new("drill")
        .arg("run")
        .arg(scenario("redis-cache-failure.yaml"))
        .arg("--out")
        .arg(&out)
        .env("REDIS_CONTAINER", &redis.name)
        .env("REDIS_URL", format!("redis://127.0.0.1:{}", redis.port()))
        .env("APP_URL", app.base_url())
        .env("REDIS_DOWN_FOR", "2s")
        .env("RECOVERY_TIMEOUT", "20s")
        .env("WARM_TIMEOUT", "20s")
        .env("WARM_KEYS", KEYS.to_string())
        .current_dir(dir.path())
        .succeeds();

    let m = summary(&out);
    assert_eq!(m["passed"], true, "summary: {m:#}");
    assert_eq!(
        m["problems"].as_array().map(Vec::len),
        Some(0),
        "no problems: {m:#}"
    );
    assert_eq!(m["error_rate"].as_f64(), Some(0.0), "summary: {m:#}");
    assert!(
        m["samples"].as_u64().unwrap_or(0) > 0,
        "the app was watched"
    );

    // Redis really went down and came back, with its keys.
    let s = redis.wait_up(SECS_20);
    assert_ne!(
        s.started_at, before.started_at,
        "redis was stopped and started"
    );
    assert_eq!(Resp::connect(redis.port()).dbsize(), KEYS as u64);
    let kinds = journal_kinds(&out.join("journal.jsonl"));
    assert_eq!(count(&kinds, "fault_applied"), 1, "{kinds:?}");
    assert_eq!(count(&kinds, "fault_reverted"), 1, "{kinds:?}");
}

/// A scenario that stops one container (held 60s) and pauses another, then waits for a probe
/// that never passes.
fn stuck_scenario(dir: &Path, stop: &Container, pause: &Container) -> PathBuf {
    let never = dk::free_port();
    let yaml = format!(
        "name: interrupted-drill
environment: test
faults:
  - action: stop
    target: {{ container: {stop} }}
    timeout: 1s
    duration: 60s
  - action: pause
    target: {{ container: {pause} }}
recovery:
  timeout: 60s
  probes:
    - tcp: 127.0.0.1:{never}
",
        stop = stop.name,
        pause = pause.name
    );
    let p = dir.join("stuck.yaml");
    std::fs::write(&p, yaml).expect("write the scenario");
    p
}

fn send(child: &std::process::Child, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
    nix::sys::signal::kill(pid, sig).unwrap_or_else(|e| panic!("send {sig} to {pid}: {e}"));
}

fn interrupted_drill_reverts_everything(sig: nix::sys::signal::Signal) {
    let stopped = dk::sleeper("no").run_up();
    let paused = dk::sleeper("no").run_up();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let file = stuck_scenario(dir.path(), &stopped, &paused);

    let child = Bin::new("drill")
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .current_dir(dir.path())
        .spawn();
    stopped.wait_for("stopped by the drill", SECS_20, |s| !s.running);
    paused.wait_for("paused by the drill", SECS_20, |s| s.paused);
    send(&child, sig);
    let r = wait_child(child, Duration::from_secs(15), "drill run stuck.yaml");
    assert_eq!(r.code, 4, "exit code after {sig}; stderr:\n{}", r.stderr);

    let s = stopped.state();
    assert!(s.up(), "the stopped container runs again: {s:?}");
    let s = paused.state();
    assert!(
        s.up() && !s.paused,
        "the paused container runs again: {s:?}"
    );
    let kinds = journal_kinds(&out.join("journal.jsonl"));
    assert_eq!(count(&kinds, "fault_reverted"), 2, "{kinds:?}");
    assert!(out.join("summary.json").is_file(), "evidence written");
}

#[test]
fn sigint_during_a_drill_exits_4_and_reverts_stop_and_pause() {
    require!(Docker);
    interrupted_drill_reverts_everything(nix::sys::signal::Signal::SIGINT);
}

#[test]
fn sigterm_during_a_drill_exits_4_and_reverts_stop_and_pause() {
    require!(Docker);
    interrupted_drill_reverts_everything(nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn sigint_while_redis_is_held_down_starts_it_again() {
    require!(Docker);
    let redis = dk::redis("no");
    fill(&redis, 5);
    let app = dk::httpd("always", &["/api/v1/companies"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");

    let child = Bin::new("drill")
        .arg("run")
        .arg(scenario("redis-cache-failure.yaml"))
        .arg("--out")
        .arg(&out)
        .env("REDIS_CONTAINER", &redis.name)
        .env("REDIS_URL", format!("redis://127.0.0.1:{}", redis.port()))
        .env("APP_URL", app.base_url())
        .env("REDIS_DOWN_FOR", "60s")
        .env("RECOVERY_TIMEOUT", "20s")
        .current_dir(dir.path())
        .spawn();
    redis.wait_for("stopped by the drill", SECS_20, |s| !s.running);
    // Once recovery is judged (the app answers), the signal lands in the 60s hold.
    dk::wait_journal(&out.join("journal.jsonl"), "recovery_stable", SECS_20);
    send(&child, nix::sys::signal::Signal::SIGINT);
    let r = wait_child(
        child,
        Duration::from_secs(15),
        "drill run redis-cache-failure.yaml",
    );
    assert_eq!(r.code, 4, "exit code after SIGINT; stderr:\n{}", r.stderr);
    let s = redis.state();
    assert!(s.up(), "redis runs again: {s:?}");
    assert_eq!(Resp::connect(redis.port()).dbsize(), 5);
}
