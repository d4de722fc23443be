//! `inject-fault` and `wait-recovery` against real containers on a real Docker engine: each fault
//! (crash, stop with a hold, pause, kill with a signal) changes the container's state as
//! `docker inspect` sees it, and each revert — timed, by `inject-fault revert`, or after the
//! injector was SIGKILLed — brings it back. Selectors (label, compose service) pick exactly the
//! containers they name, `--max-targets` refuses a wide selector before anything is touched, and
//! an unreachable engine or a missing container is exit 3 with a message that names it.
//!
//! Skipped (with a line on stderr) when no Docker engine answers.

use crate::support::cmd::Bin;
use crate::support::docker::{self as dk, journal_events, journal_kinds, wait_child, Container};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn journal_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("journal.jsonl")
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Indexes of journal events of this kind.
fn positions(kinds: &[String], kind: &str) -> Vec<usize> {
    kinds
        .iter()
        .enumerate()
        .filter(|(_, k)| *k == kind)
        .map(|(i, _)| i)
        .collect()
}

fn count(j: &Path, kind: &str) -> usize {
    if !j.exists() {
        return 0;
    }
    positions(&journal_kinds(j), kind).len()
}

/// `inject-fault list --json` as an array.
fn open_faults(j: &Path) -> Vec<serde_json::Value> {
    let r = Bin::new("inject-fault")
        .args(["list", "--json"])
        .journal(j)
        .succeeds();
    r.json()
        .as_array()
        .unwrap_or_else(|| panic!("`inject-fault list --json` is not an array:\n{}", r.stdout))
        .clone()
}

const SECS_20: Duration = Duration::from_secs(20);

#[test]
fn crash_kills_the_main_process_and_the_restart_policy_brings_it_back() {
    require!(Docker);
    let c = dk::httpd("always", &["/index.html"]);
    let before = c.state();
    let dir = tmp();
    let j = journal_in(&dir);

    Bin::new("inject-fault")
        .args(["crash", "--container", &c.name])
        .journal(&j)
        .succeeds();

    let after = c.wait_for("restarted by its restart policy", SECS_20, |s| {
        s.restart_count > before.restart_count && s.up()
    });
    assert_ne!(after.pid, before.pid, "the main process is a new one");

    let url = format!("{}/index.html", c.base_url());
    Bin::new("wait-recovery")
        .args(["--docker", &c.name, "--http", &url, "--timeout", "30s"])
        .journal(&j)
        .succeeds();
    let (code, body) = dk::http_get(c.port(), "/index.html").expect("GET after recovery");
    assert_eq!((code, body.trim()), (200, "ok"));

    let events = journal_events(&j);
    let kinds = journal_kinds(&j);
    let planned = positions(&kinds, "fault_planned");
    let applied = positions(&kinds, "fault_applied");
    assert_eq!((planned.len(), applied.len()), (1, 1), "journal: {kinds:?}");
    assert!(
        planned[0] < applied[0],
        "fault_planned must be written before fault_applied: {kinds:?}"
    );
    let p = &events[planned[0]];
    assert_eq!(p["action"], "crash");
    assert_eq!(p["id"], events[applied[0]]["id"]);
    assert!(
        p["target"]
            .as_str()
            .is_some_and(|t| t.contains(c.name.as_str())),
        "fault_planned names the container: {p}"
    );
    let stable = positions(&kinds, "recovery_stable");
    assert_eq!(
        stable.len(),
        1,
        "wait-recovery recorded recovery: {kinds:?}"
    );
    assert!(applied[0] < stable[0], "{kinds:?}");
}

#[test]
fn stop_with_duration_holds_the_container_stopped_then_starts_it() {
    require!(Docker);
    let c = dk::sleeper("no").run_up();
    let dir = tmp();
    let j = journal_in(&dir);

    let line = format!("inject-fault stop --container {} --duration 2s", c.name);
    let started = Instant::now();
    let child = Bin::new("inject-fault")
        .args([
            "stop",
            "--container",
            &c.name,
            "--timeout",
            "1s",
            "--duration",
            "2s",
        ])
        .journal(&j)
        .spawn();
    let held = c.wait_for("stopped while the fault is held", SECS_20, |s| !s.running);
    assert_eq!(held.status, "exited");
    let r = wait_child(child, SECS_20, &line);
    assert_eq!(r.code, 0, "`{line}` exit code; stderr:\n{}", r.stderr);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the fault was held for --duration"
    );

    let s = c.state();
    assert!(s.up(), "running again after the hold: {s:?}");
    let kinds = journal_kinds(&j);
    for k in ["fault_planned", "fault_applied", "fault_reverted"] {
        assert_eq!(positions(&kinds, k).len(), 1, "{k} once in {kinds:?}");
    }
    assert!(open_faults(&j).is_empty(), "nothing left open");
}

#[test]
fn pause_is_listed_until_revert_unpauses_it() {
    require!(Docker);
    let c = dk::sleeper("no").run_up();
    let dir = tmp();
    let j = journal_in(&dir);

    Bin::new("inject-fault")
        .args(["pause", "--container", &c.name])
        .journal(&j)
        .succeeds();
    let s = c.state();
    assert!(s.paused && s.running, "paused: {s:?}");
    assert_eq!(s.status, "paused");

    let open = open_faults(&j);
    assert_eq!(open.len(), 1, "one open fault: {open:?}");
    assert_eq!(open[0]["action"], "pause");
    assert_eq!(open[0]["applied"], true);
    assert!(
        open[0]["target"]
            .as_str()
            .is_some_and(|t| t.contains(c.name.as_str())),
        "{open:?}"
    );
    assert_eq!(open[0]["undo"]["kind"], "docker_unpause");

    Bin::new("inject-fault")
        .arg("revert")
        .journal(&j)
        .succeeds()
        .stderr_has("1 fault(s) reverted");
    let s = c.state();
    assert!(s.up() && !s.paused, "running, not paused: {s:?}");
    assert!(open_faults(&j).is_empty(), "list is empty after revert");
}

#[test]
fn revert_after_the_injector_was_sigkilled_starts_the_container() {
    require!(Docker);
    let c = dk::sleeper("no").run_up();
    let started = c.state().started_at;
    let dir = tmp();
    let j = journal_in(&dir);

    let mut child = Bin::new("inject-fault")
        .args([
            "stop",
            "--container",
            &c.name,
            "--timeout",
            "1s",
            "--duration",
            "60s",
        ])
        .journal(&j)
        .spawn();
    c.wait_for("stopped by the injector", SECS_20, |s| !s.running);
    // Wait for the applied record too, so the kill lands during the hold.
    dk::wait_journal(&j, "fault_applied", SECS_20);
    child.kill().expect("SIGKILL the injector");
    let status = child.wait().expect("reap the injector");
    assert!(!status.success(), "the injector was killed: {status}");

    // Nobody reverted: the injector is gone, so the engine's state is final — still stopped, and
    // the journal shows the fault open.
    assert!(!c.state().running, "still stopped after the SIGKILL");
    assert_eq!(open_faults(&j).len(), 1);

    Bin::new("inject-fault")
        .arg("revert")
        .journal(&j)
        .succeeds()
        .stderr_has("1 fault(s) reverted");
    // `revert` returns once the engine has started it: no waiting.
    let s = c.state();
    assert!(
        s.up(),
        "revert returned, yet the container is not up: {s:?}"
    );
    assert_ne!(s.started_at, started, "started again by the revert");
    assert!(open_faults(&j).is_empty());
    assert_eq!(count(&j, "fault_reverted"), 1);
}

#[test]
fn a_label_matching_more_than_max_targets_is_refused_and_touches_nothing() {
    require!(Docker);
    let group = dk::unique();
    let cs: Vec<Container> = (0..3)
        .map(|_| dk::sleeper("no").group(&group).run_up())
        .collect();
    let started: Vec<String> = cs.iter().map(|c| c.state().started_at).collect();
    let selector = cs[0].selector();
    let dir = tmp();
    let j = journal_in(&dir);

    let r = Bin::new("inject-fault")
        .args(["stop", "--timeout", "1s", "--label", &selector])
        .journal(&j)
        .code(2);
    for c in &cs {
        r.stderr_has(&c.name);
    }
    r.stderr_has("--max-targets is 1");
    r.stderr_has("nothing was touched");
    for c in &cs {
        assert!(c.state().up(), "{} untouched", c.name);
    }
    assert_eq!(count(&j, "fault_planned"), 0, "no fault_planned written");

    let r = Bin::new("inject-fault")
        .args([
            "stop",
            "--timeout",
            "1s",
            "--label",
            &selector,
            "--max-targets",
            "3",
            "--dry-run",
        ])
        .journal(&j)
        .succeeds();
    for c in &cs {
        r.stderr_has(&c.name);
    }
    assert_eq!(
        r.stderr.matches("would stop").count(),
        3,
        "three planned stops:\n{}",
        r.stderr
    );
    // The binary has exited: anything it did to the engine is done. Same start time = never stopped.
    for (c, started) in cs.iter().zip(&started) {
        let s = c.state();
        assert!(s.up(), "{} untouched by --dry-run: {s:?}", c.name);
        assert_eq!(
            &s.started_at, started,
            "{} was restarted by --dry-run",
            c.name
        );
    }
    assert_eq!(count(&j, "fault_planned"), 0, "--dry-run wrote no fault");
}

#[test]
fn docker_unreachable_or_no_such_container_is_exit_3_naming_it() {
    require!(Docker);
    let dir = tmp();
    let j = journal_in(&dir);
    Bin::new("inject-fault")
        .args(["stop", "--container", "x"])
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .journal(&j)
        .code(3)
        .stderr_has("cannot reach Docker at unix:///nonexistent.sock");

    let missing = format!("{}-missing", dk::unique());
    Bin::new("inject-fault")
        .args(["stop", "--container", &missing])
        .journal(&j)
        .code(3)
        .stderr_has(&format!("no such container: {missing}"));
    assert_eq!(count(&j, "fault_planned"), 0);
}

#[test]
fn kill_with_sigterm_goes_through_the_api_and_revert_starts_it() {
    require!(Docker);
    // A main process that exits on SIGTERM (a bare `sleep` as pid 1 would ignore it).
    let c = dk::Spec::new(dk::busybox_image())
        .cmd([
            "sh",
            "-c",
            "trap 'exit 143' TERM; while :; do sleep 1 & wait $!; done",
        ])
        .restart("no")
        .run_up();
    let dir = tmp();
    let j = journal_in(&dir);

    Bin::new("inject-fault")
        .args(["kill", "--container", &c.name, "--signal", "SIGTERM"])
        .journal(&j)
        .succeeds();
    let s = c.wait_for("stopped by SIGTERM", SECS_20, |s| !s.running);
    assert_eq!(s.status, "exited");
    let code = dk::docker(["inspect", "-f", "{{.State.ExitCode}}", &c.name]);
    assert_eq!(code, "143", "the trap ran: it was SIGTERM, not SIGKILL");
    let planned = journal_events(&j)
        .into_iter()
        .find(|e| e["event"] == "fault_planned")
        .expect("fault_planned");
    assert_eq!(planned["action"], "kill");

    Bin::new("inject-fault")
        .arg("revert")
        .journal(&j)
        .succeeds();
    c.wait_for("running after revert", SECS_20, |s| s.up());
}

#[test]
fn compose_service_selects_by_the_compose_labels() {
    require!(Docker);
    let project = dk::unique();
    let web = dk::sleeper("no")
        .label(&format!("com.docker.compose.project={project}"))
        .label("com.docker.compose.service=web")
        .run_up();
    let db = dk::sleeper("no")
        .label(&format!("com.docker.compose.project={project}"))
        .label("com.docker.compose.service=db")
        .run_up();
    let dir = tmp();
    let j = journal_in(&dir);

    let svc = format!("{project}/web");
    let r = Bin::new("inject-fault")
        .args(["pause", "--compose-service", &svc])
        .journal(&j)
        .succeeds();
    assert!(!r.stderr.contains(&db.name), "only web:\n{}", r.stderr);
    assert!(web.state().paused, "web paused");
    assert!(db.state().up(), "db untouched");

    Bin::new("inject-fault")
        .args(["pause", "--compose-service", &format!("{project}/nope")])
        .journal(&j)
        .code(3)
        .stderr_has("no container matches");

    Bin::new("inject-fault")
        .arg("revert")
        .journal(&j)
        .succeeds();
    let s = web.state();
    assert!(s.up() && !s.paused, "web unpaused: {s:?}");
    assert!(db.state().up());
}

#[test]
fn sigint_during_the_hold_reverts_at_once_and_exits_4() {
    require!(Docker);
    let c = dk::sleeper("no").run_up();
    let dir = tmp();
    let j = journal_in(&dir);

    let line = format!("inject-fault stop --container {} --duration 60s", c.name);
    let child = Bin::new("inject-fault")
        .args([
            "stop",
            "--container",
            &c.name,
            "--timeout",
            "1s",
            "--duration",
            "60s",
        ])
        .journal(&j)
        .spawn();
    c.wait_for("stopped by the injector", SECS_20, |s| !s.running);
    dk::wait_journal(&j, "fault_applied", SECS_20);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("send SIGINT");
    let r = wait_child(child, Duration::from_secs(15), &line);
    assert_eq!(r.code, 4, "exit code after SIGINT; stderr:\n{}", r.stderr);
    assert!(c.state().up(), "running again after SIGINT");
    assert!(open_faults(&j).is_empty());
}

#[test]

fn stop_of_a_stopped_container_is_refused_and_revert_leaves_it_stopped() {
    require!(Docker);
    let c = dk::sleeper("no").run_up();
    dk::docker(["stop", "-t", "0", &c.name]);
    c.wait_for("stopped by hand before the drill", SECS_20, |s| !s.running);
    let started = c.state().started_at;
    let dir = tmp();
    let j = journal_in(&dir);

    // Nothing to stop: refused like `crash` refuses a container that is not running.
    Bin::new("inject-fault")
        .args(["stop", "--container", &c.name, "--timeout", "1s"])
        .journal(&j)
        .code(3)
        .stderr_has("not running");
    Bin::new("inject-fault")
        .arg("revert")
        .journal(&j)
        .succeeds();
    let s = c.state();
    assert!(
        !s.running,
        "drillkit started a container it never stopped: {s:?}"
    );
    assert_eq!(
        s.started_at, started,
        "started and stopped again behind our back"
    );
}

#[test]

fn a_failed_pause_does_not_undo_an_earlier_pause() {
    require!(Docker);
    let c = dk::sleeper("no").run_up();
    let dir = tmp();
    let j = journal_in(&dir);

    Bin::new("inject-fault")
        .args(["pause", "--container", &c.name])
        .journal(&j)
        .succeeds();
    Bin::new("inject-fault")
        .args(["pause", "--container", &c.name])
        .journal(&j)
        .code(3)
        .stderr_has("already paused");
    let s = c.state();
    assert!(
        s.paused,
        "the first pause is still open in the journal, so the container must still be paused: {s:?}"
    );
    assert_eq!(open_faults(&j).len(), 1);
    Bin::new("inject-fault")
        .arg("revert")
        .journal(&j)
        .succeeds();
    assert!(c.state().up());
}

#[test]

fn crash_of_a_paused_container_is_refused_and_revert_leaves_it_running() {
    require!(Docker);
    let c = dk::sleeper("no").run_up();
    let dir = tmp();
    let j = journal_in(&dir);

    Bin::new("inject-fault")
        .args(["pause", "--container", &c.name])
        .journal(&j)
        .succeeds();
    // The SIGKILL would stay pending in the frozen cgroup: nothing crashes now.
    Bin::new("inject-fault")
        .args(["crash", "--container", &c.name])
        .journal(&j)
        .code(3)
        .stderr_has("paused");
    Bin::new("inject-fault")
        .arg("revert")
        .journal(&j)
        .succeeds();
    let s = c.state();
    assert!(
        s.up(),
        "every fault reverted, yet the container is not running: {s:?}"
    );
}

#[test]

fn a_failed_kill_leaves_a_stopped_container_stopped() {
    require!(Docker);
    let c = dk::sleeper("no").run_up();
    dk::docker(["stop", "-t", "0", &c.name]);
    c.wait_for("stopped by hand before the drill", SECS_20, |s| !s.running);
    let started = c.state().started_at;
    let dir = tmp();
    let j = journal_in(&dir);

    Bin::new("inject-fault")
        .args(["kill", "--container", &c.name])
        .journal(&j)
        .code(3)
        .stderr_has("not running");
    let s = c.state();
    assert!(
        !s.running,
        "a failed kill must not start the container: {s:?}"
    );
    assert_eq!(
        s.started_at, started,
        "a failed kill started and stopped it"
    );
}
