//! Measured RPO against real PostgreSQL 15: a canary writing through a failover of a primary
//! and a streaming replica. Synchronous replication loses nothing; writes made while the
//! replica was down are lost and counted exactly; a foreign table, a wrong password or an
//! unreachable server stop the canary before it writes, with a clear error.

use crate::support::pg;
use drillkit::canary::{rpo, run_canary, CanaryConfig, CanarySummary};
use drillkit::exit::Code;
use drillkit::journal::{self, Event, Journal, Kind, Objectives, Ts};
use pg::{Cluster, Pair, APP_PASSWORD};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn new_journal(dir: &Path) -> Journal {
    Journal::start_with_id(
        &dir.join("journal.jsonl"),
        "test",
        "drill-1".into(),
        "canary",
        None,
        None,
        Objectives::default(),
        vec![],
    )
    .expect("journal")
}

fn config(url: String) -> CanaryConfig {
    let mut cfg = CanaryConfig::new(url);
    cfg.interval = Duration::from_millis(20);
    cfg.connect_timeout = Duration::from_secs(1);
    cfg.write_timeout = Duration::from_secs(1);
    cfg.verify_timeout = Duration::from_secs(15);
    cfg
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// How many writes the canary has acknowledged so far, read from its journal as it runs (a line
/// being written is not counted).
fn acks_so_far(j: &Journal) -> usize {
    journal::read(j.path()).map_or(0, |c| acked(&c.events).len())
}

/// Polls the journal until the canary has acknowledged `n` writes in all; returns the count seen.
/// Tests wait on what the canary did, not on the clock.
async fn acks_reach(j: &Journal, n: usize) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let have = acks_so_far(j);
        if have >= n {
            return have;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the canary acknowledged {have} writes; waited for {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Start the canary in the background; the returned token stops it.
fn start(
    cfg: CanaryConfig,
    journal: Journal,
) -> (CancellationToken, tokio::task::JoinHandle<CanarySummary>) {
    let token = CancellationToken::new();
    let t = token.clone();
    let handle = tokio::spawn(async move {
        match run_canary(&cfg, &journal, t).await {
            Ok(s) => s,
            Err(f) => panic!("canary failed: {f}"),
        }
    });
    (token, handle)
}

fn events(j: &Journal) -> Vec<Event> {
    let c = journal::read(j.path()).expect("read journal");
    assert!(c.damaged.is_empty(), "{:?}", c.damaged);
    c.events
}

fn acked(events: &[Event]) -> BTreeSet<u64> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Kind::CanaryAcks { acks, .. } => Some(acks.iter().map(|a| a.seq)),
            _ => None,
        })
        .flatten()
        .collect()
}

fn seqs(c: &Cluster) -> BTreeSet<u64> {
    c.sql("SELECT seq FROM drillkit_canary")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_replication_loses_no_acknowledged_write() {
    require!(Postgres);
    let pair = blocking(|| Pair::new(true));
    let dir = tempfile::tempdir().expect("tempdir");
    let j = new_journal(dir.path());
    let (token, handle) = start(config(pair.failover_url()), j.clone());

    let before = acks_reach(&j, 25).await;
    let fault_at = Ts::now();
    blocking(|| pair.primary.stop("immediate"));
    blocking(|| pair.replica.promote());
    // Writes resumed on the promoted replica.
    acks_reach(&j, before + 5).await;
    token.cancel();
    let s = handle.await.expect("join");

    assert!(s.verified, "{s:?}");
    assert_eq!(s.lost_writes, 0, "{s:?}");
    assert!(s.acknowledged > 20, "{s:?}");
    assert!(s.table_dropped, "{s:?}");
    assert_eq!(
        s.verified_on.as_deref(),
        Some(format!("127.0.0.1:{}", pair.replica.port).as_str())
    );

    let ev = events(&j);
    let refs: Vec<&Event> = ev.iter().collect();
    let m = rpo(&refs, Some(fault_at)).expect("rpo");
    assert!(m.verified);
    assert_eq!(m.lost_writes, 0);
    assert_eq!(m.rpo_seconds, 0.0);
    assert_eq!(m.acknowledged, s.acknowledged);
    let outage = m
        .write_outage_seconds
        .expect("writes resumed on the new primary");
    assert!(outage > 0.0 && outage < 10.0, "{outage}");
    // The canary followed the promotion to the replica's port.
    let followed = ev.iter().any(|e| matches!(&e.kind, Kind::CanaryConnected { server, .. } if server.ends_with(&format!(":{}", pair.replica.port))));
    assert!(followed, "no reconnect to the replica recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_the_replica_never_received_are_counted_as_lost() {
    require!(Postgres);
    let pair = blocking(|| Pair::new(false));
    let dir = tempfile::tempdir().expect("tempdir");
    let j = new_journal(dir.path());
    let mut cfg = config(pair.failover_url());
    cfg.keep = true;
    let (token, handle) = start(cfg, j.clone());

    acks_reach(&j, 5).await;
    blocking(|| pair.wait_caught_up());
    let replica_down_at = Ts::now();
    blocking(|| pair.replica.stop("fast"));
    // Writes the replica never receives: enough that losing them is unmistakable.
    let at_stop = acks_so_far(&j);
    acks_reach(&j, at_stop + 15).await;
    let fault_at = Ts::now();
    blocking(|| pair.primary.stop("immediate"));
    blocking(|| {
        pair.replica.start();
        pair.replica.promote();
    });
    let at_promote = acks_so_far(&j);
    acks_reach(&j, at_promote + 3).await;
    token.cancel();
    let s = handle.await.expect("join");
    assert!(s.verified, "{s:?}");
    assert!(!s.table_dropped);

    // What the fixture knows: rows the old primary committed that the promoted replica lacks.
    blocking(|| pair.primary.start());
    let old = blocking(|| seqs(&pair.primary));
    let new = blocking(|| seqs(&pair.replica));
    let ev = events(&j);
    let acked = acked(&ev);
    let lost_known: BTreeSet<u64> = old
        .difference(&new)
        .filter(|n| acked.contains(n))
        .copied()
        .collect();
    assert!(
        lost_known.len() > 10,
        "expected writes lost while the replica was down: {lost_known:?}"
    );
    assert_eq!(s.lost_writes, lost_known.len() as u64, "{s:?}");
    // At most the one write in flight at the crash committed without an acknowledgement.
    assert!(old.difference(&new).count() - lost_known.len() <= 1);

    let refs: Vec<&Event> = ev.iter().collect();
    let m = rpo(&refs, Some(fault_at)).expect("rpo");
    assert_eq!(m.lost_writes, lost_known.len() as u64);
    assert_eq!(m.first_lost, lost_known.first().copied());
    assert_eq!(m.last_lost, lost_known.last().copied());
    // The loss window is the time the replica was away, within the write interval.
    let window = fault_at.since(replica_down_at);
    assert!(
        (m.rpo_seconds - window).abs() < 0.5,
        "rpo {} vs replica down {window}",
        m.rpo_seconds
    );
    assert!(m.write_outage_seconds.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_foreign_tables_wrong_passwords_and_unreachable_servers() {
    require!(Postgres);
    let c = blocking(|| {
        let c = Cluster::init("canary");
        c.start();
        c.create_app();
        c
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let j = new_journal(dir.path());
    let token = CancellationToken::new;

    blocking(|| c.sql("CREATE TABLE drillkit_canary (x int)"));
    let err = run_canary(&config(c.url()), &j, token())
        .await
        .expect_err("foreign table");
    assert_eq!(err.code, Code::Environment);
    assert!(
        format!("{err}").contains("was not created by drillkit"),
        "{err}"
    );
    assert_eq!(
        blocking(|| c.sql("SELECT count(*) FROM drillkit_canary")),
        "0",
        "foreign table untouched"
    );

    let err = run_canary(&config(c.app_url("wrong")), &j, token())
        .await
        .expect_err("wrong password");
    assert_eq!(err.code, Code::Environment);
    assert!(
        format!("{err}").contains(r#"password authentication failed for user "app""#),
        "{err}"
    );

    let port = pg::free_port();
    let err = run_canary(
        &config(format!("postgres://postgres@127.0.0.1:{port}/postgres")),
        &j,
        token(),
    )
    .await
    .expect_err("unreachable");
    assert_eq!(err.code, Code::Environment);
    assert!(format!("{err}").contains("refused"), "{err}");

    let mut bad = config(c.url());
    bad.table = "x; DROP TABLE y".into();
    let err = run_canary(&bad, &j, token()).await.expect_err("bad table");
    assert_eq!(err.code, Code::BadInput);
    assert!(format!("{err}").contains("--table"), "{err}");

    // The happy path as the app role (scram), stopping by itself after --duration.
    let mut ok = config(c.app_url(APP_PASSWORD));
    ok.duration = Some(Duration::from_millis(600));
    let s = run_canary(&ok, &j, token()).await.expect("canary");
    assert_eq!(s.stopped_by, "duration elapsed");
    assert!(
        s.verified && s.lost_writes == 0 && s.acknowledged > 10,
        "{s:?}"
    );
    assert!(s.table_dropped);
    assert_eq!(
        blocking(|| c.try_sql_db("app", "SELECT to_regclass('drillkit_canary') IS NULL"))
            .as_deref(),
        Ok("t")
    );
    // Acknowledgements were batched, not one journal line per write.
    let batches = events(&j)
        .iter()
        .filter(|e| matches!(e.kind, Kind::CanaryAcks { .. }))
        .count();
    assert!(
        batches >= 1 && (batches as u64) < s.acknowledged / 3,
        "{batches} batches for {} acks",
        s.acknowledged
    );
}

/// The real binary: `measure-rto canary` in the background, stopped by SIGTERM as a workflow
/// step would, exits 0 after verifying; `measure-rto` then reports the RPO from the journal.
#[test]
fn measure_rto_canary_stops_cleanly_on_sigterm_and_sigint() {
    require!(Postgres);
    let c = Cluster::init("canary-bin");
    c.start();
    let dir = tempfile::tempdir().expect("tempdir");
    let j = dir.path().join("journal.jsonl");

    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        let before = journal::read(&j).map_or(0, |c| acked(&c.events).len());
        let child = crate::support::cmd::Bin::new("measure-rto")
            .args(["canary", "--interval", "20ms", "--json"])
            .env("DRILL_CANARY_POSTGRES", c.url())
            .journal(&j)
            .spawn();
        // Signal it once it has acknowledged enough writes to count (polling its journal).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while journal::read(&j).map_or(0, |c| acked(&c.events).len()) < before + 12 {
            assert!(
                std::time::Instant::now() < deadline,
                "the canary wrote nothing"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)
            .expect("signal");
        let out = child.wait_with_output().expect("wait");
        let run =
            crate::support::cmd::Run::from_output(out, format!("measure-rto canary ({signal})"));
        assert_eq!(
            run.code, 0,
            "{signal}: exit {}\n{}\n{}",
            run.code, run.stdout, run.stderr
        );
        let v = run.json();
        assert_eq!(v["verified"], true, "{v}");
        assert_eq!(v["lost_writes"], 0, "{v}");
        assert_eq!(v["stopped_by"], signal.as_str(), "{v}");
        assert!(v["acknowledged"].as_u64().unwrap_or(0) > 10, "{v}");
        run.stderr_has("no acknowledged write lost");
    }
    assert_eq!(
        c.sql("SELECT to_regclass('drillkit_canary') IS NULL"),
        "t",
        "table dropped"
    );

    let m = crate::support::cmd::Bin::new("measure-rto")
        .args(["--rpo-target", "0s", "--json"])
        .journal(&j)
        .run();
    let v = m.json();
    assert_eq!(v["rpo_lost_writes"], 0, "{v}");
    assert_eq!(v["rpo_seconds"], 0.0, "{v}");

    // Bad input is exit 2 naming the flag; an unreachable server is exit 3.
    crate::support::cmd::Bin::new("measure-rto")
        .args(["canary", "--interval", "0s", "--postgres", &c.url()])
        .journal(&j)
        .code(2)
        .stderr_has("--interval");
    let port = pg::free_port();
    crate::support::cmd::Bin::new("measure-rto")
        .args([
            "canary",
            "--postgres",
            &format!("postgres://app:hunter22@127.0.0.1:{port}/app"),
        ])
        .journal(&j)
        .code(3)
        .stderr_has("refused");
}

/// CPU time (user + system) of this process, from /proc/self/stat, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the command name; 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}

/// Benchmarks for bench/rpo (run with bench/rpo/run.sh): RPO resolution and error at the
/// default interval against the old primary's own commit timestamps, RTO precision of a
/// promotion against the server log, canary write rate and CPU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run bench/rpo/run.sh"]
async fn bench_rpo() {
    require!(Postgres);
    println!("\n## RPO resolution (interval 50ms, async replica stopped, then primary killed)\n");
    println!("| replica down for | true loss window (server) | lost rows (server) | canary lost | measured RPO | error |");
    println!("|---|---|---|---|---|---|");
    for gap_ms in [0u64, 25, 50, 100, 250, 1000] {
        let pair = blocking(|| Pair::new(false));
        let dir = tempfile::tempdir().expect("tempdir");
        let j = new_journal(dir.path());
        let mut cfg = CanaryConfig::new(pair.failover_url());
        cfg.keep = true;
        let (token, handle) = start(cfg, j.clone());
        acks_reach(&j, 5).await;
        blocking(|| pair.wait_caught_up());
        blocking(|| pair.replica.stop("immediate"));
        // The experiment's variable, not synchronisation: how long the replica stays away.
        tokio::time::sleep(Duration::from_millis(gap_ms)).await;
        let fault_at = Ts::now();
        blocking(|| pair.primary.stop("immediate"));
        blocking(|| {
            pair.replica.start();
            pair.replica.promote();
        });
        let at_promote = acks_so_far(&j);
        acks_reach(&j, at_promote + 3).await;
        token.cancel();
        let s = handle.await.expect("join");
        blocking(|| pair.primary.start());
        // Ground truth from the old primary's own commit clock: rows it has that the promoted
        // replica lacks, measured from the last row before them that both have.
        let new_rows = blocking(|| seqs(&pair.replica));
        let old_rows: Vec<(u64, f64)> = blocking(|| {
            pair.primary.sql("SELECT seq, extract(epoch FROM written_at)::float8 FROM drillkit_canary ORDER BY seq")
        })
        .lines()
        .filter_map(|l| l.split_once('|'))
        .filter_map(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .collect();
        let lost_rows: Vec<&(u64, f64)> = old_rows
            .iter()
            .filter(|(q, _)| !new_rows.contains(q))
            .collect();
        let rows = lost_rows.len();
        let window = match (lost_rows.first(), lost_rows.last()) {
            (Some(first), Some(last)) => {
                let before = old_rows
                    .iter()
                    .filter(|(q, _)| *q < first.0 && new_rows.contains(q))
                    .map(|r| r.1)
                    .next_back();
                before.map(|b| last.1 - b).unwrap_or(0.0)
            }
            _ => 0.0,
        };
        let ev = events(&j);
        let refs: Vec<&Event> = ev.iter().collect();
        let m = rpo(&refs, Some(fault_at)).expect("rpo");
        println!(
            "| {gap_ms} ms | {:.1} ms | {rows} | {} | {:.1} ms | {:+.1} ms |",
            window * 1000.0,
            s.lost_writes,
            m.rpo_seconds * 1000.0,
            (m.rpo_seconds - window) * 1000.0
        );
    }

    println!("\n## RTO precision of a promotion (writable probe every 50ms vs the server log)\n");
    println!("| run | kill → new timeline (log) | kill → ready (log) | kill → first writable probe | probe − new timeline | canary outage | canary first ack − new timeline |");
    println!("|---|---|---|---|---|---|---|");
    for run in 1..=5 {
        let pair = blocking(|| Pair::new(false));
        let dir = tempfile::tempdir().expect("tempdir");
        let j = new_journal(dir.path());
        let (token, handle) = start(CanaryConfig::new(pair.failover_url()), j.clone());
        acks_reach(&j, 5).await;
        let probe = drillkit::probe::postgres::PostgresProbe::new(
            &pair.replica.url(),
            None,
            None,
            true,
            None,
        )
        .expect("probe");
        let killed = Ts::now();
        blocking(|| pair.primary.stop("immediate"));
        let promoter = {
            let data = pair.replica.data();
            std::thread::spawn(move || {
                std::process::Command::new("runuser")
                    .args([
                        "-u",
                        "postgres",
                        "--",
                        &format!("{}/pg_ctl", pg::BIN),
                        "promote",
                        "-D",
                    ])
                    .arg(data)
                    .output()
            })
        };
        let mut first_ok: Option<Ts> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        for _ in 0..400 {
            tick.tick().await;
            let at = Ts::now();
            if probe.check(Duration::from_secs(1)).await.ok {
                first_ok = Some(at);
                break;
            }
        }
        let _ = promoter.join();
        let at_promote = acks_so_far(&j);
        acks_reach(&j, at_promote + 3).await;
        token.cancel();
        let _ = handle.await;
        let ready = pair
            .replica
            .log_time("database system is ready to accept connections")
            .map(Ts)
            .expect("ready line in log");
        let timeline = pair
            .replica
            .log_time("selected new timeline ID")
            .map(Ts)
            .expect("timeline line in log");
        let first_ok = first_ok.expect("promoted");
        let ev = events(&j);
        let refs: Vec<&Event> = ev.iter().collect();
        let m = rpo(&refs, Some(killed)).expect("rpo");
        let first_ack_after = ev
            .iter()
            .filter_map(|e| match &e.kind {
                Kind::CanaryAcks { acks, .. } => Some(acks.iter().map(|a| a.t)),
                _ => None,
            })
            .flatten()
            .find(|t| *t > killed);
        println!(
            "| {run} | {:.0} ms | {:.0} ms | {:.0} ms | {:+.0} ms | {:.0} ms | {:+.0} ms |",
            timeline.since(killed) * 1000.0,
            ready.since(killed) * 1000.0,
            first_ok.since(killed) * 1000.0,
            first_ok.since(timeline) * 1000.0,
            m.write_outage_seconds.unwrap_or(f64::NAN) * 1000.0,
            first_ack_after
                .map(|t| t.since(timeline) * 1000.0)
                .unwrap_or(f64::NAN)
        );
    }

    println!("\n## Canary overhead (single cluster, 5 s per interval)\n");
    println!("| interval | acknowledged writes/s | canary CPU (client process) | journal lines | journal bytes |");
    println!("|---|---|---|---|---|");
    let c = blocking(|| {
        let c = Cluster::init("bench");
        c.start();
        c
    });
    for interval_ms in [50u64, 10, 1] {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = new_journal(dir.path());
        let mut cfg = CanaryConfig::new(c.url());
        cfg.interval = Duration::from_millis(interval_ms);
        cfg.duration = Some(Duration::from_secs(5));
        let cpu0 = cpu_seconds();
        let s = run_canary(&cfg, &j, CancellationToken::new())
            .await
            .expect("canary");
        let cpu = cpu_seconds() - cpu0;
        let bytes = std::fs::metadata(j.path()).map(|m| m.len()).unwrap_or(0);
        println!(
            "| {interval_ms} ms | {:.1} | {:.1}% of one core | {} | {} |",
            s.write_rate,
            cpu / s.seconds * 100.0,
            events(&j).len(),
            bytes
        );
    }
}
