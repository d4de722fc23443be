//! The runbook's §2.1 drill end to end on a real primary and streaming replica:
//! `drill run scenarios/database-primary-failure.yaml` (its target swapped for the primary's
//! pidfile) measures RTO and RPO through a real promotion, and reports "not recovered" when no
//! failover happens.

use crate::support::cmd::Bin;
use crate::support::pg::{free_port, Pair, BIN};
use std::path::{Path, PathBuf};

/// The shipped scenario with the container target replaced by the primary's postmaster.pid,
/// stopped with PostgreSQL's fast shutdown (SIGINT), as a failover test on hosts does.
fn scenario_for(pair: &Pair, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/database-primary-failure.yaml"
    ))
    .expect("scenario");
    let pidfile = pair.primary.data().join("postmaster.pid");
    let target = "    container: ${PRIMARY_CONTAINER:-corporate-intel-postgres-primary}";
    assert!(text.contains(target), "scenario target line changed");
    let fault = "  - action: stop\n    target: primary\n";
    assert!(text.contains(fault), "scenario fault changed");
    let text = text
        .replace(target, &format!("    pidfile: {}", pidfile.display()))
        .replace(
            fault,
            "  - action: kill\n    signal: SIGINT\n    target: primary\n",
        );
    let file = dir.join("database-primary-failure.yaml");
    std::fs::write(&file, text).expect("write scenario");
    file
}

/// drillkit's demo service stands in for the application's database health endpoint.
struct App {
    child: std::process::Child,
    port: u16,
}

impl App {
    fn start(dir: &Path) -> App {
        let port = free_port();
        let child = std::process::Command::new(crate::support::cmd::exe("drill"))
            .args([
                "demo-service",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--pidfile",
            ])
            .arg(dir.join("app.pid"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("app");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the demo service never listened on 127.0.0.1:{port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        App { child, port }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn drill(
    pair: &Pair,
    dir: &Path,
    failover: &str,
    recovery_timeout: &str,
    read_back_timeout: &str,
) -> (crate::support::cmd::Run, serde_json::Value) {
    let app = App::start(dir);
    let file = scenario_for(pair, dir);
    let out = dir.join("out");
    let r = Bin::new("drill")
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .env("PRIMARY_URL", pair.primary.url())
        .env("REPLICA_URL", pair.replica.url())
        .env("CANARY_URL", pair.failover_url())
        .env("APP_URL", format!("http://127.0.0.1:{}", app.port))
        .env("FAILOVER_COMMAND", failover)
        .env("RECOVERY_TIMEOUT", recovery_timeout)
        .env("CANARY_READ_BACK_TIMEOUT", read_back_timeout)
        .run();
    let summary = std::fs::read_to_string(out.join("summary.json"))
        .unwrap_or_else(|e| panic!("summary.json: {e}\n{}", r.stderr));
    (r, serde_json::from_str(&summary).expect("summary json"))
}

#[test]
fn failover_with_synchronous_replication_meets_rto_and_rpo() {
    let pair = Pair::new(true);
    let dir = tempfile::tempdir().expect("tempdir");
    let promote = format!(
        "runuser -u postgres -- {BIN}/pg_ctl promote -w -t 60 -D {}",
        pair.replica.data().display()
    );
    let (r, s) = drill(&pair, dir.path(), &promote, "60s", "30s");
    assert_eq!(r.code, 0, "drill failed:\n{}", r.stderr);
    assert_eq!(s["passed"], true, "{}", r.stderr);
    let rto = s["rto_seconds"].as_f64().expect("rto");
    assert!(rto > 0.0 && rto < 30.0, "rto {rto}");
    let rpo = &s["rpo"];
    assert_eq!(rpo["verified"], true, "{rpo}");
    assert_eq!(rpo["lost_writes"], 0, "{rpo}");
    assert!(rpo["acknowledged"].as_u64().expect("acks") > 0, "{rpo}");
    // The replica is the primary now, and took writes.
    assert_eq!(pair.replica.sql("SELECT pg_is_in_recovery()"), "f");
    let phases: Vec<&str> = s["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        phases.contains(&"failover") && phases.contains(&"re-sync old primary"),
        "{phases:?}"
    );
}

#[test]
fn without_a_failover_the_drill_is_not_recovered() {
    let pair = Pair::new(false);
    let dir = tempfile::tempdir().expect("tempdir");
    // No primary will answer the canary's read-back: it looks for one for 2 s (the shipped
    // default is 30 s), then reads the standby.
    let (r, s) = drill(&pair, dir.path(), "true", "3s", "2s");
    assert_eq!(r.code, 1, "expected a failed drill:\n{}", r.stderr);
    assert_eq!(s["passed"], false);
    let problems = s["problems"].to_string();
    assert!(
        problems.contains("not recovered within 3.00s"),
        "{problems}"
    );
    assert!(
        problems.contains("RTO ≤ 5m missed: not recovered"),
        "{problems}"
    );
    let report = std::fs::read_to_string(dir.path().join("out/report.md")).expect("report");
    assert!(report.contains("not recovered within 3.00s"), "{report}");
}
