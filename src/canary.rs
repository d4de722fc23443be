//! Canary writer for measured RPO: the runbook says "no data loss (RPO = 0)"; this measures it.
//!
//! The canary writes sequence-numbered rows into a table it creates (and marks as its own with a
//! table comment; it refuses a table it did not create), records every acknowledged commit in the
//! journal (batched, about every 250 ms), keeps writing through the outage with reconnects (a
//! multi-host URL with `target_session_attrs=read-write` follows the new primary), and when it
//! stops reads back from the current primary which acknowledged writes survived. [`rpo`] turns
//! those events into the numbers `measure-rto` judges: lost writes, RPO and write outage.
//!
//! The drill runner calls [`run_canary`] with a [`CanaryConfig`], the drill's journal and a
//! cancellation token it cancels when the drill ends; `measure-rto canary` does the same with the
//! SIGINT/SIGTERM token. See docs/rpo.md for what the numbers can and cannot see.

use crate::exit::Failure;
use crate::journal::{Event, Journal, Kind, Ts};
use crate::pg::{error_message, sqlstate, Target as PgTarget};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub const DEFAULT_TABLE: &str = "drillkit_canary";
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(50);
/// How the canary marks its table: `COMMENT ON TABLE ... IS 'drillkit canary drill=... run=...'`.
pub const OWNER_MARK: &str = "drillkit canary";

/// One acknowledged commit: sequence number and the time the acknowledgement arrived.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Ack {
    pub seq: u64,
    pub t: Ts,
}

/// What the canary does; [`CanaryConfig::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct CanaryConfig {
    /// `postgres://` URL or key=value string; multi-host with `target_session_attrs=read-write`
    /// to follow a failover.
    pub url: String,
    /// Time between writes (`--interval`, default 50 ms).
    pub interval: Duration,
    /// Table to create and write (`--table`, default `drillkit_canary`; `schema.table` allowed).
    pub table: String,
    /// Keep the table after verification (`--keep`).
    pub keep: bool,
    /// Stop by itself after this long (`--duration`); otherwise only on cancellation.
    pub duration: Option<Duration>,
    /// Per-host connect timeout for every (re)connect.
    pub connect_timeout: Duration,
    /// A write not acknowledged within this is abandoned (its outcome unknown) and the connection
    /// replaced: a hung primary, or a synchronous commit waiting for a standby that is gone.
    pub write_timeout: Duration,
    /// How often acknowledgements are flushed to the journal.
    pub flush_every: Duration,
    /// How long the read-back keeps trying to reach a primary after the stop.
    pub verify_timeout: Duration,
}

impl CanaryConfig {
    pub fn new(url: impl Into<String>) -> CanaryConfig {
        CanaryConfig {
            url: url.into(),
            interval: DEFAULT_INTERVAL,
            table: DEFAULT_TABLE.into(),
            keep: false,
            duration: None,
            connect_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
            flush_every: Duration::from_millis(250),
            verify_timeout: Duration::from_secs(30),
        }
    }
}

/// What one canary run did and found (printed by `measure-rto canary --json`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CanarySummary {
    pub run: String,
    pub target: String,
    pub table: String,
    pub interval_ms: u64,
    /// Why it stopped: "SIGTERM", "SIGINT", "duration elapsed", "cancelled".
    pub stopped_by: String,
    pub seconds: f64,
    pub attempted: u64,
    pub acknowledged: u64,
    /// Acknowledged writes per second over the run.
    pub write_rate: f64,
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_error: Option<String>,
    /// Server the read-back used (address:port) and whether it was still a standby.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_on: Option<String>,
    pub survived: u64,
    pub lost_writes: u64,
    pub lost: Vec<[u64; 2]>,
    pub unacknowledged_present: u64,
    pub table_dropped: bool,
    /// Longest time between two consecutive acknowledgements.
    pub longest_gap_seconds: f64,
    /// RPO from this run's own events (no fault time: see [`rpo`]).
    pub rpo_seconds: f64,
}

// ---------------------------------------------------------------------------------------------
// Table names

/// A validated table name, `table` or `schema.table`, each part an unquoted SQL identifier.
#[derive(Clone, Debug, PartialEq)]
pub struct TableName {
    parts: Vec<String>,
}

impl TableName {
    pub fn parse(s: &str) -> Result<TableName, String> {
        let parts: Vec<String> = s.split('.').map(str::to_string).collect();
        let ident_ok = |p: &str| {
            let mut cs = p.chars();
            matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
                && p.len() <= 63
        };
        if parts.is_empty() || parts.len() > 2 || !parts.iter().all(|p| ident_ok(p)) {
            return Err(format!(
                "invalid table name '{s}'; use letters, digits and '_' (e.g. drillkit_canary or ops.drillkit_canary)"
            ));
        }
        Ok(TableName { parts })
    }
    /// Quoted for SQL: `"ops"."drillkit_canary"`.
    pub fn sql(&self) -> String {
        self.parts
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(".")
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.parts.join("."))
    }
}

// ---------------------------------------------------------------------------------------------
// The writer

/// Run the canary until `token` is cancelled (or `cfg.duration` elapses), then verify and clean
/// up. Errors only before writing starts: bad input (exit 2, flag named) or a server that cannot
/// be reached or holds a foreign table of that name (exit 3). Once running, outages are what it
/// measures, not errors; a failed read-back is reported in the summary (`verified: false`).
pub async fn run_canary(
    cfg: &CanaryConfig,
    journal: &Journal,
    token: CancellationToken,
) -> Result<CanarySummary, Failure> {
    if cfg.interval.is_zero() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--interval must be greater than 0"
        )));
    }
    let table = TableName::parse(&cfg.table)
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("--table: {e}")))?;
    let target = PgTarget::parse(&cfg.url)
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("--postgres: {e}")))?;
    let run = format!("{:08x}", rand::random::<u32>());
    let mark = format!("{OWNER_MARK} drill={} run={run}", journal.drill_id());

    let client = target.connect(cfg.connect_timeout).await.map_err(|e| {
        Failure::env(anyhow::anyhow!(
            "cannot reach PostgreSQL at {}: {e}",
            target.shown()
        ))
    })?;
    create_table(&client, &table, &mark).await?;
    let server = server_of(&client).await;
    journal.append_durable(Kind::CanaryStarted {
        run: run.clone(),
        target: target.shown().to_string(),
        table: table.to_string(),
        interval_ms: cfg.interval.as_millis() as u64,
    })?;
    tracing::info!(
        "canary writing to {} on {} every {}",
        table,
        server,
        crate::units::fmt_duration(cfg.interval.as_secs_f64())
    );
    journal.append(Kind::CanaryConnected {
        run: run.clone(),
        server,
    })?;

    let started = Instant::now();
    let mut w = Writer::new(cfg, journal, &target, &table, run.clone(), client).await;
    let stopped_by = w.write_until_stopped(&token).await;
    w.flush()?;
    let seconds = started.elapsed().as_secs_f64();
    let Writer {
        acked,
        attempted,
        longest_gap,
        ..
    } = w;

    let verify = read_back(cfg, &target, &table, &acked).await;
    let mut summary = CanarySummary {
        run: run.clone(),
        target: target.shown().to_string(),
        table: table.to_string(),
        interval_ms: cfg.interval.as_millis() as u64,
        stopped_by: stopped_by.clone(),
        seconds,
        attempted,
        acknowledged: acked.len() as u64,
        write_rate: if seconds > 0.0 {
            acked.len() as f64 / seconds
        } else {
            0.0
        },
        verified: false,
        verify_error: None,
        verified_on: None,
        survived: 0,
        lost_writes: 0,
        lost: Vec::new(),
        unacknowledged_present: 0,
        table_dropped: false,
        longest_gap_seconds: longest_gap,
        rpo_seconds: 0.0,
    };
    match verify {
        Ok(v) => {
            summary.verified = true;
            summary.verified_on = Some(v.server.clone());
            summary.survived = v.survived;
            summary.lost_writes = count_ranges(&v.lost);
            summary.lost = v.lost.clone();
            summary.unacknowledged_present = v.unacknowledged_present;
            journal.append_durable(Kind::CanaryVerified {
                run: run.clone(),
                acknowledged: acked.len() as u64,
                survived: v.survived,
                lost: v.lost,
                unacknowledged_present: v.unacknowledged_present,
                server: v.server,
                in_recovery: v.in_recovery,
            })?;
            if !cfg.keep {
                match drop_table(&v.client, &table, &mark).await {
                    Ok(dropped) => summary.table_dropped = dropped,
                    Err(e) => tracing::warn!("could not drop canary table {table}: {e}"),
                }
            }
        }
        Err(e) => {
            tracing::warn!("canary read-back failed: {e}");
            summary.verify_error = Some(e.clone());
            journal.append_durable(Kind::CanaryVerifyFailed {
                run: run.clone(),
                error: e,
            })?;
        }
    }
    journal.append_durable(Kind::CanaryStopped {
        run: run.clone(),
        reason: stopped_by,
        attempted,
        acknowledged: summary.acknowledged,
        table_dropped: summary.table_dropped,
    })?;
    let events = crate::journal::read(journal.path())?;
    let mine: Vec<&Event> = events.drill(journal.drill_id());
    if let Some(m) = rpo(&mine, None) {
        summary.rpo_seconds = m.rpo_seconds;
    }
    Ok(summary)
}

/// Create the canary table, marked as ours; refuse a table of that name that is not.
async fn create_table(
    client: &tokio_postgres::Client,
    table: &TableName,
    mark: &str,
) -> Result<(), Failure> {
    match table_comment(client, table).await.map_err(|e| Failure::env(anyhow::anyhow!("{e}")))? {
        None => {}
        Some(Some(c)) if c.starts_with(OWNER_MARK) => {
            tracing::warn!("replacing a leftover canary table {table} ({c})");
            client
                .batch_execute(&format!("DROP TABLE {}", table.sql()))
                .await
                .map_err(|e| Failure::env(anyhow::anyhow!("cannot drop leftover canary table {table}: {}", error_message(&e))))?;
        }
        Some(comment) => {
            return Err(Failure::env(anyhow::anyhow!(
                "table {table} exists and was not created by drillkit (comment: {}); choose another --table",
                comment.map(|c| format!("{c:?}")).unwrap_or_else(|| "none".into())
            )))
        }
    }
    let mark_sql = mark.replace('\'', "''");
    let ddl = format!(
        "BEGIN; \
         CREATE TABLE {t} (seq bigint PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT clock_timestamp()); \
         COMMENT ON TABLE {t} IS '{mark_sql}'; \
         COMMIT",
        t = table.sql()
    );
    if let Err(e) = client.batch_execute(&ddl).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(Failure::env(anyhow::anyhow!(
            "cannot create canary table {table}: {}",
            error_message(&e)
        )));
    }
    Ok(())
}

/// `None`: no such table; `Some(comment)`: it exists, with this comment (if any).
async fn table_comment(
    client: &tokio_postgres::Client,
    table: &TableName,
) -> Result<Option<Option<String>>, String> {
    let rows = client
        .query(
            "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c WHERE c.oid = to_regclass($1)",
            &[&table.sql()],
        )
        .await
        .map_err(|e| format!("cannot look up table {table}: {}", error_message(&e)))?;
    match rows.first() {
        None => Ok(None),
        Some(r) => Ok(Some(
            r.try_get::<_, Option<String>>(0)
                .map_err(|e| error_message(&e))?,
        )),
    }
}

/// `address:port` of the server behind a connection (`local` for a Unix socket).
async fn server_of(client: &tokio_postgres::Client) -> String {
    match client
        .query_one("SELECT coalesce(host(inet_server_addr()), 'local') || ':' || coalesce(inet_server_port(), 0)", &[])
        .await
    {
        Ok(row) => row.try_get::<_, String>(0).unwrap_or_else(|_| "?".into()),
        Err(e) => format!("? ({})", error_message(&e)),
    }
}

struct Writer<'a> {
    cfg: &'a CanaryConfig,
    journal: &'a Journal,
    target: &'a PgTarget,
    table: &'a TableName,
    run: String,
    client: Option<(tokio_postgres::Client, tokio_postgres::Statement)>,
    next_seq: u64,
    attempted: u64,
    acked: Vec<Ack>,
    pending: Vec<Ack>,
    last_flush: Instant,
    /// (time the outage started, failed attempts so far)
    failing: Option<(Ts, u64)>,
    last_ack: Option<Ts>,
    longest_gap: f64,
}

impl<'a> Writer<'a> {
    async fn new(
        cfg: &'a CanaryConfig,
        journal: &'a Journal,
        target: &'a PgTarget,
        table: &'a TableName,
        run: String,
        client: tokio_postgres::Client,
    ) -> Writer<'a> {
        let insert = format!("INSERT INTO {} (seq) VALUES ($1)", table.sql());
        let client = match client.prepare(&insert).await {
            Ok(stmt) => Some((client, stmt)),
            Err(_) => None,
        };
        Writer {
            cfg,
            journal,
            target,
            table,
            run,
            client,
            next_seq: 1,
            attempted: 0,
            acked: Vec::new(),
            pending: Vec::new(),
            last_flush: Instant::now(),
            failing: None,
            last_ack: None,
            longest_gap: 0.0,
        }
    }

    /// Write every interval until cancelled or the duration is over; returns why it stopped.
    async fn write_until_stopped(&mut self, token: &CancellationToken) -> String {
        let mut tick = tokio::time::interval(self.cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let deadline = self.cfg.duration.map(|d| tokio::time::Instant::now() + d);
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(until_deadline);
        loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => return stop_reason(),
                _ = &mut until_deadline => return "duration elapsed".into(),
                _ = tick.tick() => {}
            }
            tokio::select! {
                biased;
                _ = token.cancelled() => return stop_reason(),
                _ = self.step() => {}
            }
            if !self.pending.is_empty() && self.last_flush.elapsed() >= self.cfg.flush_every {
                if let Err(e) = self.flush() {
                    tracing::warn!("cannot write canary acknowledgements to the journal: {e}");
                }
            }
        }
    }

    /// One write, or one reconnect when there is no usable connection.
    async fn step(&mut self) {
        let Some((client, stmt)) = self.client.as_ref() else {
            self.reconnect().await;
            return;
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.attempted += 1;
        let seq_i64 = seq as i64;
        let result =
            tokio::time::timeout(self.cfg.write_timeout, client.execute(stmt, &[&seq_i64])).await;
        match result {
            Ok(Ok(_)) => self.acknowledged(seq),
            Ok(Err(e)) => {
                let msg = error_message(&e);
                // The table is ours by definition: a new primary that never received it gets it
                // again (every write made before is then counted as lost by the read-back).
                if sqlstate(&e) == Some(crate::pg::sqlstate::UNDEFINED_TABLE) {
                    let mark = self.owner_mark();
                    if let Some((c, _)) = self.client.take() {
                        if create_table(&c, self.table, &mark).await.is_ok() {
                            self.prepare(c).await;
                        }
                    }
                } else {
                    self.client = None;
                }
                self.failed(seq, msg);
            }
            Err(_) => {
                self.client = None;
                self.failed(
                    seq,
                    format!(
                        "write not acknowledged within {}",
                        crate::units::fmt_duration(self.cfg.write_timeout.as_secs_f64())
                    ),
                );
            }
        }
    }

    async fn reconnect(&mut self) {
        match self.target.connect(self.cfg.connect_timeout).await {
            Ok(client) => {
                let server = server_of(&client).await;
                tracing::info!("canary reconnected to {server}");
                let _ = self.journal.append(Kind::CanaryConnected {
                    run: self.run.clone(),
                    server,
                });
                self.prepare(client).await;
            }
            Err(e) => self.failed(self.next_seq, e.to_string()),
        }
    }

    /// The comment that marks the canary table as this run's.
    fn owner_mark(&self) -> String {
        format!(
            "{OWNER_MARK} drill={} run={}",
            self.journal.drill_id(),
            self.run
        )
    }

    async fn prepare(&mut self, client: tokio_postgres::Client) {
        let insert = format!("INSERT INTO {} (seq) VALUES ($1)", self.table.sql());
        match client.prepare(&insert).await {
            Ok(stmt) => self.client = Some((client, stmt)),
            Err(e) => {
                let msg = error_message(&e);
                if sqlstate(&e) == Some(crate::pg::sqlstate::UNDEFINED_TABLE) {
                    let mark = self.owner_mark();
                    if create_table(&client, self.table, &mark).await.is_ok() {
                        if let Ok(stmt) = client.prepare(&insert).await {
                            self.client = Some((client, stmt));
                            return;
                        }
                    }
                }
                self.failed(self.next_seq, msg);
            }
        }
    }

    fn acknowledged(&mut self, seq: u64) {
        let t = Ts::now();
        if let Some(prev) = self.last_ack {
            self.longest_gap = self.longest_gap.max(t.since(prev));
        }
        self.last_ack = Some(t);
        if let Some((since, failed)) = self.failing.take() {
            let outage_s = t.since(since);
            tracing::info!(
                "canary writes acknowledged again after {} ({failed} failed attempts)",
                crate::units::fmt_duration(outage_s)
            );
            let _ = self.flush();
            let _ = self.journal.append(Kind::CanaryResumed {
                run: self.run.clone(),
                failed,
                outage_s,
            });
        }
        let ack = Ack { seq, t };
        self.acked.push(ack);
        self.pending.push(ack);
    }

    fn failed(&mut self, seq: u64, error: String) {
        match &mut self.failing {
            Some((_, n)) => *n += 1,
            None => {
                let since = self.last_ack.unwrap_or_else(Ts::now);
                let error = crate::redact::redact(&error);
                tracing::warn!("canary write failing: {error}");
                let _ = self.flush();
                let _ = self.journal.append(Kind::CanaryFailing {
                    run: self.run.clone(),
                    seq,
                    error,
                });
                self.failing = Some((since, 1));
            }
        }
    }

    /// Write pending acknowledgements as one journal line (fsynced: one fsync per batch).
    fn flush(&mut self) -> std::io::Result<()> {
        self.last_flush = Instant::now();
        if self.pending.is_empty() {
            return Ok(());
        }
        let acks = std::mem::take(&mut self.pending);
        let e = self.journal.event(Kind::CanaryAcks {
            run: self.run.clone(),
            acks,
        });
        self.journal.write_events(std::slice::from_ref(&e), true)
    }
}

fn stop_reason() -> String {
    crate::signal::received().unwrap_or("cancelled").to_string()
}

// ---------------------------------------------------------------------------------------------
// Read-back

struct ReadBack {
    client: tokio_postgres::Client,
    server: String,
    in_recovery: bool,
    survived: u64,
    lost: Vec<[u64; 2]>,
    unacknowledged_present: u64,
}

/// Reach the current primary (retrying up to `verify_timeout`; a standby is used only when no
/// primary answers in time) and compare its rows with the acknowledged writes.
async fn read_back(
    cfg: &CanaryConfig,
    target: &PgTarget,
    table: &TableName,
    acked: &[Ack],
) -> Result<ReadBack, String> {
    let deadline = Instant::now() + cfg.verify_timeout;
    let mut last_err;
    let mut standby: Option<tokio_postgres::Client> = None;
    let client = loop {
        match target.connect(cfg.connect_timeout).await {
            Ok(c) => match c.query_one("SELECT pg_is_in_recovery()", &[]).await {
                Ok(row) if !row.try_get::<_, bool>(0).unwrap_or(true) => break c,
                Ok(_) => {
                    last_err = "only a standby answered".into();
                    standby = Some(c);
                }
                Err(e) => last_err = error_message(&e),
            },
            Err(e) => last_err = e.to_string(),
        }
        if Instant::now() >= deadline {
            match standby.take() {
                Some(c) => break c,
                None => {
                    return Err(format!(
                        "no server at {} answered within {} for the read-back: {last_err}",
                        target.shown(),
                        crate::units::fmt_duration(cfg.verify_timeout.as_secs_f64())
                    ))
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let server = server_of(&client).await;
    let in_recovery = match client.query_one("SELECT pg_is_in_recovery()", &[]).await {
        Ok(row) => row.try_get::<_, bool>(0).unwrap_or(false),
        Err(e) => return Err(error_message(&e)),
    };
    let present: BTreeSet<u64> = match client
        .query(&format!("SELECT seq FROM {}", table.sql()), &[])
        .await
    {
        Ok(rows) => rows
            .iter()
            .filter_map(|r| r.try_get::<_, i64>(0).ok())
            .map(|v| v as u64)
            .collect(),
        // The table itself never reached this server: every acknowledged write is lost.
        Err(e) if sqlstate(&e) == Some(crate::pg::sqlstate::UNDEFINED_TABLE) => BTreeSet::new(),
        Err(e) => {
            return Err(format!(
                "cannot read {table} on {server}: {}",
                error_message(&e)
            ))
        }
    };
    let acked_set: BTreeSet<u64> = acked.iter().map(|a| a.seq).collect();
    let lost: Vec<u64> = acked_set.difference(&present).copied().collect();
    let unacknowledged_present = present.difference(&acked_set).count() as u64;
    Ok(ReadBack {
        client,
        server,
        in_recovery,
        survived: (acked_set.len() - lost.len()) as u64,
        lost: to_ranges(&lost),
        unacknowledged_present,
    })
}

/// Drop the table only if it still carries our mark. `Ok(false)`: it was not there or not ours.
async fn drop_table(
    client: &tokio_postgres::Client,
    table: &TableName,
    mark: &str,
) -> Result<bool, String> {
    match table_comment(client, table).await? {
        Some(Some(c)) if c == mark => {
            client
                .batch_execute(&format!("DROP TABLE {}", table.sql()))
                .await
                .map_err(|e| error_message(&e))?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Sorted numbers → inclusive ranges: [1,2,3,7] → [[1,3],[7,7]].
pub fn to_ranges(sorted: &[u64]) -> Vec<[u64; 2]> {
    let mut out: Vec<[u64; 2]> = Vec::new();
    for &n in sorted {
        match out.last_mut() {
            Some(r) if r[1] + 1 == n => r[1] = n,
            _ => out.push([n, n]),
        }
    }
    out
}

fn count_ranges(ranges: &[[u64; 2]]) -> u64 {
    ranges.iter().map(|r| r[1].saturating_sub(r[0]) + 1).sum()
}

fn in_ranges(ranges: &[[u64; 2]], n: u64) -> bool {
    ranges.iter().any(|r| r[0] <= n && n <= r[1])
}

// ---------------------------------------------------------------------------------------------
// RPO from the journal

/// RPO and write outage of one drill, from its canary events.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RpoMeasure {
    /// Acknowledged canary writes.
    pub acknowledged: u64,
    /// Acknowledged writes missing from the current primary at read-back.
    pub lost_writes: u64,
    pub first_lost: Option<u64>,
    pub last_lost: Option<u64>,
    /// Longest span of acknowledged data lost: from the last surviving acknowledged write to the
    /// last lost one after it (0 when nothing was lost).
    pub rpo_seconds: f64,
    /// Last acknowledgement at or before the fault → first after it (or, without a fault time,
    /// the longest gap between acknowledgements). `None` when there is no such pair.
    pub write_outage_seconds: Option<f64>,
    /// False when the read-back did not happen (no primary reachable at the end): the lost count
    /// and RPO are then unknown and reported as 0; treat the objective as not demonstrated.
    pub verified: bool,
}

/// From one drill's events (file order) and the time the first fault was applied.
///
/// Uses the last canary run of the drill that has a read-back (else the last one started);
/// `None` when no canary ran. In the usual failover — the last writes before the fault never
/// reached the replica — RPO is exactly "last acknowledged write before the fault minus last
/// surviving acknowledged write". When writes acknowledged *after* the fault are lost too (an
/// old primary kept accepting writes), the window extends to the last lost write, so a loss is
/// never reported as RPO 0.
pub fn rpo(events: &[&Event], fault_at: Option<Ts>) -> Option<RpoMeasure> {
    let runs: Vec<(&str, Ts)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Kind::CanaryStarted { run, .. } => Some((run.as_str(), e.ts)),
            _ => None,
        })
        .collect();
    let verified_run = |r: &str| {
        events
            .iter()
            .any(|e| matches!(&e.kind, Kind::CanaryVerified { run, .. } if run == r))
    };
    let (run, started) = runs
        .iter()
        .rev()
        .find(|(r, _)| verified_run(r))
        .or(runs.last())
        .copied()?;

    let mut acks: Vec<Ack> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Kind::CanaryAcks { run: r, acks } if r == run => Some(acks.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect();
    acks.sort_by_key(|a| a.seq);
    let lost: Option<Vec<[u64; 2]>> = events.iter().rev().find_map(|e| match &e.kind {
        Kind::CanaryVerified { run: r, lost, .. } if r == run => Some(lost.clone()),
        _ => None,
    });
    let verified = lost.is_some();
    let lost = lost.unwrap_or_default();

    let lost_acks: Vec<&Ack> = acks.iter().filter(|a| in_ranges(&lost, a.seq)).collect();
    let mut rpo_seconds: f64 = 0.0;
    let mut last_surviving: Option<Ts> = None;
    for a in &acks {
        if in_ranges(&lost, a.seq) {
            let from = last_surviving.unwrap_or(started);
            rpo_seconds = rpo_seconds.max(a.t.since(from));
        } else {
            last_surviving = Some(a.t);
        }
    }

    let mut by_time: Vec<Ts> = acks.iter().map(|a| a.t).collect();
    by_time.sort();
    let write_outage_seconds = match fault_at {
        Some(f) => {
            let before = by_time.iter().rev().find(|t| **t <= f);
            let after = by_time.iter().find(|t| **t > f);
            match (before, after) {
                (Some(b), Some(a)) => Some(a.since(*b)),
                _ => None,
            }
        }
        None => by_time
            .windows(2)
            .map(|w| w[1].since(w[0]))
            .fold(None, |m: Option<f64>, g| Some(m.map_or(g, |m| m.max(g)))),
    };

    Some(RpoMeasure {
        acknowledged: acks.len() as u64,
        lost_writes: lost_acks.len() as u64,
        first_lost: lost_acks.first().map(|a| a.seq),
        last_lost: lost_acks.last().map(|a| a.seq),
        rpo_seconds,
        write_outage_seconds,
        verified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(ms: i64) -> Ts {
        Ts(chrono::DateTime::from_timestamp_millis(1_800_000_000_000 + ms).expect("ts"))
    }

    fn ev(ms: i64, kind: Kind) -> Event {
        Event {
            ts: ts(ms),
            drill: "d".into(),
            by: "test".into(),
            kind,
        }
    }

    /// Writes every 50 ms from t=0; acks listed by time in ms.
    fn journal(ack_ms: &[i64], lost: Vec<[u64; 2]>) -> Vec<Event> {
        let mut v = vec![ev(
            -10,
            Kind::CanaryStarted {
                run: "r".into(),
                target: "t".into(),
                table: "x".into(),
                interval_ms: 50,
            },
        )];
        let acks = ack_ms
            .iter()
            .enumerate()
            .map(|(i, &ms)| Ack {
                seq: i as u64 + 1,
                t: ts(ms),
            })
            .collect();
        v.push(ev(
            3000,
            Kind::CanaryAcks {
                run: "r".into(),
                acks,
            },
        ));
        v.push(ev(
            4000,
            Kind::CanaryVerified {
                run: "r".into(),
                acknowledged: ack_ms.len() as u64,
                survived: 0,
                lost,
                unacknowledged_present: 0,
                server: "s".into(),
                in_recovery: false,
            },
        ));
        v
    }

    #[test]
    fn nothing_lost_is_rpo_zero_and_outage_spans_the_fault() {
        // Acks at 0..1000 every 50 ms, fault at 1010, first ack after at 2500.
        let mut t: Vec<i64> = (0..=20).map(|i| i * 50).collect();
        t.extend([2500, 2550]);
        let j = journal(&t, vec![]);
        let refs: Vec<&Event> = j.iter().collect();
        let m = rpo(&refs, Some(ts(1010))).expect("measure");
        assert_eq!(m.lost_writes, 0);
        assert_eq!(m.rpo_seconds, 0.0);
        assert!(m.verified);
        assert_eq!(m.acknowledged, 23);
        let outage = m.write_outage_seconds.expect("outage");
        assert!((outage - 1.5).abs() < 1e-9, "{outage}");
    }

    #[test]
    fn lost_tail_before_the_fault_is_the_rpo() {
        // seqs 1..=21 at 0..1000 ms; 17..=21 (800..1000 ms) lost; last surviving at 750 ms.
        let mut t: Vec<i64> = (0..=20).map(|i| i * 50).collect();
        t.extend([2500]);
        let j = journal(&t, vec![[17, 21]]);
        let refs: Vec<&Event> = j.iter().collect();
        let m = rpo(&refs, Some(ts(1010))).expect("measure");
        assert_eq!(m.lost_writes, 5);
        assert_eq!((m.first_lost, m.last_lost), (Some(17), Some(21)));
        assert!((m.rpo_seconds - 0.25).abs() < 1e-9, "{}", m.rpo_seconds);
    }

    #[test]
    fn without_read_back_the_loss_is_unknown_and_said_so() {
        let t: Vec<i64> = (0..10).map(|i| i * 50).collect();
        let mut j = journal(&t, vec![]);
        j.pop();
        let refs: Vec<&Event> = j.iter().collect();
        let m = rpo(&refs, None).expect("measure");
        assert!(!m.verified);
        assert_eq!(
            m.write_outage_seconds.map(|s| (s * 1000.0).round()),
            Some(50.0)
        );
        assert!(rpo(&[], None).is_none());
    }

    #[test]
    fn ranges_and_table_names() {
        assert_eq!(
            to_ranges(&[1, 2, 3, 7, 9, 10]),
            vec![[1, 3], [7, 7], [9, 10]]
        );
        assert_eq!(count_ranges(&[[1, 3], [7, 7]]), 4);
        assert_eq!(
            TableName::parse("ops.drillkit_canary").map(|t| t.sql()),
            Ok("\"ops\".\"drillkit_canary\"".into())
        );
        assert!(TableName::parse("x; DROP TABLE y").is_err());
        assert!(TableName::parse("a.b.c").is_err());
        assert!(TableName::parse("1abc").is_err());
    }
}
