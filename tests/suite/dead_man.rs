//! The dead-man's switch (issue 15): a stopped and a paused container, the injector SIGKILLed
//! and the journal deleted — the fault's reaper (a labelled container on the same engine, the
//! engine's socket mounted) brings each back within its deadline plus a few seconds, records
//! what it did next to the journal and in its logs, and removes itself: no drillkit container or
//! process is left. A normal revert disarms it; `doctor` lists it. A paused process (a host
//! fault) keeps the detached reaper process.
//!
//! Skipped (with a line on stderr) when no Docker engine answers.

use crate::support::cmd::Bin;
use crate::support::docker::{self as dk, State};
use std::path::Path;
use std::time::{Duration, Instant};

/// Processes (not zombies) whose command line mentions this fault: its reaper, or an injector.
fn drillkit_processes_of(fault: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let p = e.path();
        let Ok(cmd) = std::fs::read(p.join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if cmd.contains(fault) && !zombie {
            out.push(format!("{}: {cmd}", p.display()));
        }
    }
    out
}

/// Reaper containers of a fault on the local engine (any state).
pub fn reaper_containers_of(fault: &str) -> Vec<String> {
    dk::names(&dk::docker(dk::reaper_ps_args(Some(fault))))
}

/// The fault id the injector wrote to the journal (polled: the injector is still running).
pub fn planned_fault(journal: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let applied = journal.exists()
            && dk::journal_events(journal)
                .iter()
                .any(|e| e["event"] == "fault_applied");
        if applied {
            if let Some(e) = dk::journal_events(journal)
                .into_iter()
                .find(|e| e["event"] == "fault_planned")
            {
                assert!(
                    e["deadline"].is_string(),
                    "the deadline is in the journal: {e}"
                );
                return e["id"].as_str().unwrap_or_default().to_string();
            }
        }
        assert!(Instant::now() < deadline, "no fault applied within 20s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn killed_injector_and_lost_journal_are_undone_by_the_reaper(
    action: &str,
    faulted: impl Fn(&State) -> bool,
) {
    let web = dk::sleeper("no").run_up();
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = dir.path().join("journal.jsonl");
    let run_dir = dir.path().join("run");
    let mut injector = Bin::new("inject-fault")
        .args([
            action,
            "--container",
            &web.name,
            "--timeout",
            "1s",
            "--duration",
            "10m",
            "--deadline",
            "8s",
        ])
        .journal(&journal)
        .env("DRILL_RUN_DIR", &run_dir)
        .spawn();
    let fault = planned_fault(&journal);
    let armed_at = Instant::now();
    web.wait_for("faulted", Duration::from_secs(10), &faulted);
    let armed = dk::journal_events(&journal)
        .into_iter()
        .find(|e| e["event"] == "reaper_armed")
        .expect("reaper_armed in the journal");
    assert_eq!(armed["reaper"], "container", "{armed}");
    assert_eq!(armed["socket"], "/var/run/docker.sock", "{armed}");
    assert_eq!(
        reaper_containers_of(&fault).len(),
        1,
        "one reaper container"
    );
    let deadline_at = dk::journal_events(&journal)
        .into_iter()
        .find(|e| e["event"] == "fault_planned")
        .and_then(|e| e["deadline"].as_str().map(str::to_string))
        .expect("deadline");
    let deadline_at = chrono::DateTime::parse_from_rfc3339(&deadline_at).expect("rfc3339");

    // doctor lists the armed reaper and its deadline.
    let d = Bin::new("inject-fault")
        .args(["doctor"])
        .journal(&dir.path().join("none.jsonl"))
        .env("DRILL_RUN_DIR", &run_dir)
        .run();
    let line = d
        .stderr
        .lines()
        .find(|l| l.contains(&format!("for fault {fault}")))
        .unwrap_or_default();
    assert!(
        line.contains("armed reaper container drillkit-reaper-")
            && line.contains("deadline 20")
            && line.contains("ARMED"),
        "doctor lists the reaper:\n{}",
        d.stderr
    );

    // SIGKILL the injector and delete the journal: nothing on the runner side is left.
    injector.kill().expect("kill -9 the injector");
    let _ = injector.wait();
    std::fs::remove_file(&journal).expect("rm the journal");

    web.wait_for("running again", Duration::from_secs(25), State::up);
    let took = armed_at.elapsed();
    let late = chrono::Utc::now()
        .signed_duration_since(deadline_at)
        .num_milliseconds();
    eprintln!("timing: local {action}: running again {late} ms after the deadline");
    // Not before the deadline (the reaper waits for it), and within 25 s of the fault.
    assert!(
        late >= -200 && took < Duration::from_secs(25),
        "back {late} ms after the deadline, {took:?} after the fault"
    );
    // What the reaper did is next to the journal.
    let record = dir.path().join("journal.reaper.jsonl");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !record.exists() {
        assert!(Instant::now() < deadline, "no reaper record");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&record).expect("record");
    let r: serde_json::Value = serde_json::from_str(text.trim()).expect("record JSON");
    assert_eq!(r["fault"], fault.as_str(), "{r}");
    assert_eq!(r["outcome"], "reverted", "{r}");
    assert_eq!(r["journal_present"], false, "{r}");
    // No drillkit process or container is left (the reaper container removed itself).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut left = drillkit_processes_of(&fault);
        left.extend(reaper_containers_of(&fault));
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let files: Vec<_> = std::fs::read_dir(&run_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().ends_with(".reaper"))
        .collect();
    assert!(files.is_empty(), "reaper files left: {files:?}");
}

#[test]
fn a_stopped_container_comes_back_after_sigkill_and_a_deleted_journal() {
    require!(Docker);
    killed_injector_and_lost_journal_are_undone_by_the_reaper("stop", |s| !s.running);
}

#[test]
fn a_paused_container_comes_back_after_sigkill_and_a_deleted_journal() {
    require!(Docker);
    killed_injector_and_lost_journal_are_undone_by_the_reaper("pause", |s| s.paused);
}

#[test]
fn a_normal_revert_disarms_the_reaper() {
    require!(Docker);
    let web = dk::sleeper("no").run_up();
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = dir.path().join("journal.jsonl");
    let run_dir = dir.path().join("run");
    Bin::new("inject-fault")
        .args(["pause", "--container", &web.name, "--deadline", "1h"])
        .journal(&journal)
        .env("DRILL_RUN_DIR", &run_dir)
        .succeeds();
    let fault = dk::journal_events(&journal)
        .into_iter()
        .find(|e| e["event"] == "fault_planned")
        .and_then(|e| e["id"].as_str().map(str::to_string))
        .expect("planned");
    assert_eq!(
        reaper_containers_of(&fault).len(),
        1,
        "a reaper container is armed"
    );
    Bin::new("inject-fault")
        .arg("revert")
        .journal(&journal)
        .env("DRILL_RUN_DIR", &run_dir)
        .succeeds();
    web.wait_for("unpaused", Duration::from_secs(10), State::up);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut left = drillkit_processes_of(&fault);
        left.extend(reaper_containers_of(&fault));
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "reaper not disarmed: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !dir.path().join("journal.reaper.jsonl").exists(),
        "a disarmed reaper did nothing"
    );
}

#[test]
fn a_paused_process_comes_back_after_sigkill_and_a_deleted_journal() {
    // A host fault: its reaper is a detached process on this machine.
    let mut sleeper = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("sleep");
    let pid = sleeper.id().to_string();
    let stopped = |pid: &str| {
        pid.parse()
            .ok()
            .and_then(crate::support::proc_state)
            .is_some_and(|s| s == 'T')
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = dir.path().join("journal.jsonl");
    let run_dir = dir.path().join("run");
    let mut injector = Bin::new("inject-fault")
        .args([
            "pause",
            "--pid",
            &pid,
            "--duration",
            "10m",
            "--deadline",
            "3s",
        ])
        .journal(&journal)
        .env("DRILL_RUN_DIR", &run_dir)
        .spawn();
    let fault = planned_fault(&journal);
    let armed = dk::journal_events(&journal)
        .into_iter()
        .find(|e| e["event"] == "reaper_armed")
        .expect("reaper_armed");
    assert_eq!(armed["reaper"], "process", "{armed}");
    assert!(stopped(&pid), "paused");
    injector.kill().expect("kill -9 the injector");
    let _ = injector.wait();
    std::fs::remove_file(&journal).expect("rm the journal");
    let deadline = Instant::now() + Duration::from_secs(15);
    while stopped(&pid) {
        assert!(Instant::now() < deadline, "still paused after 15s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = drillkit_processes_of(&fault);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}
