//! `inject-fault doctor`: after injectors were SIGKILLed and their journals lost, it still finds
//! drillkit's tagged rules, its qdisc, its proxy and its fill file (exit 1 without `--fix`),
//! removes them all with `--fix`, and never touches a fault a live injector still holds.

use crate::support::netns;

use crate::support::cmd::Bin;
use std::process::Command;
use std::time::{Duration, Instant};

fn applied(j: &std::path::Path) -> bool {
    std::fs::read_to_string(j)
        .unwrap_or_default()
        .contains("\"fault_applied\"")
}

/// Start an injector holding the fault for 60s; once applied, send `sig` (none: leave it
/// running and return it). Killed children are waited for here.
fn kill_after_apply(args: &[&str], j: &std::path::Path, sig: &str) -> std::process::Child {
    let mut child = Bin::new("inject-fault")
        .args(args)
        .args(["--duration", "60s"])
        .journal(j)
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !applied(j) {
        assert!(
            child.try_wait().ok().flatten().is_none(),
            "injector exited early"
        );
        assert!(Instant::now() < deadline, "not applied");
        std::thread::sleep(Duration::from_millis(20));
    }
    if !sig.is_empty() {
        Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .expect("kill");
        let _ = child.wait();
    }
    child
}

#[test]
fn doctor_finds_and_fixes_leftovers_of_killed_injectors_without_their_journals() {
    // A room of its own: it ends with a census of the whole host ("no drillkit leftovers"),
    // which the other test's live fault would spoil.
    let _host = crate::support::host_room("doctor-census");
    // Its doctor looks at the whole machine, and it leaves leftovers for it on purpose.
    let _census = crate::support::census();
    require!(Netns);
    let ns = netns::Ns::new(11);
    let echo = netns::Echo::start(&ns.host_ip);
    let to = echo.addr.to_string();
    let fs = tempfile::tempdir().expect("tmp");
    assert!(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(fs.path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false));
    let before = ns.state();
    let lost = tempfile::tempdir().expect("tmp");
    let fsp = fs.path().display().to_string();
    let _ = kill_after_apply(
        &["partition", "--netns", &ns.name, "--to", &to],
        &lost.path().join("a.jsonl"),
        "-KILL",
    )
    .wait();
    let _ = kill_after_apply(
        &[
            "degrade", "--netns", &ns.name, "--rate", "8mbit", "--delay", "20ms", "--to", &to,
            "--method", "proxy",
        ],
        &lost.path().join("b.jsonl"),
        "-KILL",
    )
    .wait();
    let _ = kill_after_apply(
        &["fill-disk", "--path", &fsp],
        &lost.path().join("c.jsonl"),
        "-KILL",
    )
    .wait();
    drop(lost); // the journals are gone, as on a lost runner

    let none = tempfile::tempdir().expect("tmp");
    let j = none.path().join("none.jsonl");
    let r = Bin::new("inject-fault")
        .args(["doctor", "--json"])
        .journal(&j)
        .code(1);
    let v = r.json();
    let kinds: Vec<String> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    for k in ["iptables-rule", "qdisc", "proxy", "fill-file"] {
        assert!(
            kinds.iter().any(|x| x == k),
            "doctor missed a {k}: {kinds:?}\n{}",
            r.stderr
        );
    }
    Bin::new("inject-fault")
        .args(["doctor", "--fix"])
        .journal(&j)
        .succeeds();
    Bin::new("inject-fault")
        .args(["doctor"])
        .journal(&j)
        .succeeds()
        .stderr_has("no drillkit leftovers");
    assert_eq!(ns.state(), before);
    assert_eq!(
        std::fs::read_dir(fs.path()).map(|r| r.count()).unwrap_or(1),
        0
    );
    let _ = Command::new("umount").arg(fs.path()).status();
}

#[test]
fn doctor_leaves_a_live_injectors_fault_alone() {
    let _host = crate::support::host_room("doctor");
    let _census = crate::support::census();
    require!(Netns);
    let ns = netns::Ns::new(12);
    let dir = tempfile::tempdir().expect("tmp");
    let j = dir.path().join("live.jsonl");
    let child = kill_after_apply(
        &["partition", "--netns", &ns.name, "--to", "10.0.2.0/24"],
        &j,
        "",
    );
    let r = Bin::new("inject-fault")
        .args(["doctor", "--fix"])
        .journal(&j)
        .succeeds();
    r.stderr_has("LIVE");
    assert!(
        ns.state().contains("drillkit:"),
        "doctor removed a live fault's rule"
    );
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    let r = crate::support::docker::wait_child(child, Duration::from_secs(20), "injector");
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(!ns.state().contains("drillkit:"));
}
