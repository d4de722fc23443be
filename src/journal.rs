//! The journal: one append-only JSON Lines file that makes separate binaries one drill.
//!
//! Every event carries a UTC timestamp (microseconds), the drill id, the writing binary and its
//! kind. Faults are written and fsynced *before* they are applied, with what undoes them, so that
//! `inject-fault revert` can undo them after a crash or SIGKILL. Appends from several processes
//! take an advisory lock and go out in a single `write` with `O_APPEND`, so lines never interleave
//! or tear. Readers skip (and report) a torn line or a line from a newer version; nothing already
//! written is ever rewritten.

use crate::faults::Undo;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = ".drill/journal.jsonl";
pub const ENV_PATH: &str = "DRILL_JOURNAL";
pub const ENV_DRILL_ID: &str = "DRILL_ID";

/// A UTC instant with microsecond precision, the one clock all durations come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub DateTime<Utc>);

impl Ts {
    pub fn now() -> Ts {
        let now = Utc::now();
        // Truncate to microseconds so that what we hold equals what we write.
        let micros = now.timestamp_micros();
        Ts(DateTime::from_timestamp_micros(micros).unwrap_or(now))
    }
    /// Seconds from `earlier` to `self` (negative when `self` is before).
    pub fn since(self, earlier: Ts) -> f64 {
        (self.0 - earlier.0).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
    }
    pub fn plus_secs(self, secs: f64) -> Ts {
        Ts(self.0 + chrono::Duration::microseconds((secs * 1e6).round() as i64))
    }
    pub fn to_rfc3339(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| Ts(t.with_timezone(&Utc)))
            .map_err(serde::de::Error::custom)
    }
}

/// One line of the journal.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub ts: Ts,
    pub drill: String,
    pub by: String,
    #[serde(flatten)]
    pub kind: Kind,
}

/// A probe result inside a sampler batch.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    pub t: Ts,
    pub ok: bool,
    /// Latency in milliseconds.
    pub ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProbeFailure {
    pub probe: String,
    pub error: String,
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(values: &mut [f64]) -> Latency {
        if values.is_empty() {
            return Latency::default();
        }
        values.sort_by(|a, b| a.total_cmp(b));
        let pick = |q: f64| {
            let idx = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
            values[idx]
        };
        Latency {
            count: values.len() as u64,
            p50: pick(0.50),
            p95: pick(0.95),
            p99: pick(0.99),
            max: values[values.len() - 1],
        }
    }
}

/// Objectives a drill is measured against (from the scenario or `measure-rto` flags).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Objectives {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    /// p99 latency users may see during the drill, in seconds (from watch samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_s: Option<f64>,
}

impl Objectives {
    /// No objective is set.
    pub fn is_empty(&self) -> bool {
        *self == Objectives::default()
    }
    /// Take every objective `other` sets; keep the rest.
    pub fn overlay(&mut self, other: &Objectives) {
        for (o, v) in [
            (&mut self.rto_s, other.rto_s),
            (&mut self.rpo_s, other.rpo_s),
            (&mut self.max_error_rate, other.max_error_rate),
            (&mut self.max_latency_s, other.max_latency_s),
        ] {
            if v.is_some() {
                *o = v;
            }
        }
    }
}

/// One engine of a drill that spans several (see [`Kind::Regions`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Region {
    /// The scenario's name for it (`primary`, `dr`), or `default` for the run's engine.
    pub name: String,
    pub engine: crate::docker::Engine,
    /// What the drill does there, in order: `fault: stop container api`, `recovery probe:
    /// docker api running on dr`.
    #[serde(default)]
    pub steps: Vec<String>,
    /// The descriptions of the probes and samplers that ask this engine (as the journal's
    /// probe events name them).
    #[serde(default)]
    pub probes: Vec<String>,
}

/// What the engine reported about a container at one moment (see `FaultApplied::before`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerSeen {
    pub pid: i64,
    pub restart_count: i64,
}

/// The kinds of event. Unknown kinds (from a newer drillkit) are skipped by readers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Kind {
    DrillStarted {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scenario: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        environment: Option<String>,
        #[serde(default)]
        objectives: Objectives,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        roles: Vec<(String, String)>,
    },
    DrillFinished {
        outcome: String,
    },
    /// A stop condition tripped (`stop_if`, `inject-fault guard`): every open fault of the drill
    /// is reverted at once and the verdict is `aborted`.
    DrillAborted {
        /// The condition as written, e.g. `http http://web/health failing for 2s`.
        condition: String,
        /// What was seen, e.g. `failing for 2.1s: connection refused`.
        value: String,
    },
    /// `drill run --negative-control`: the defect planted so that the drill must fail, and the
    /// finding that proves it was caught.
    NegativeControl {
        defect: String,
        expected: String,
        /// How the finding is recognised: `recovery_timeout`.
        catch: String,
    },
    /// Write-ahead record of a fault: everything needed to undo it.
    FaultPlanned {
        id: String,
        action: String,
        target: String,
        undo: Undo,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_s: Option<f64>,
        /// The dead-man's switch: when the fault's reaper undoes it if nothing else has.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deadline: Option<Ts>,
        /// The Docker engine the fault's target is on (so a revert from the journal alone
        /// reaches it); absent for faults that do not involve Docker.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engine: Option<Box<crate::docker::Engine>>,
    },
    /// The fault's dead-man's switch is armed: a reaper container on the fault's engine (with the
    /// engine host's socket it mounts) or a detached process on this machine.
    ReaperArmed {
        id: String,
        /// `container` or `process`.
        reaper: String,
        /// The reaper container's name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container: Option<String>,
        /// The socket path on the engine's host the reaper container mounts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        socket: Option<PathBuf>,
    },
    FaultApplied {
        id: String,
        /// The container as the engine reported it just before a crash: how a later step tells
        /// that the restart policy brought it back (a new pid or one more restart).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<ContainerSeen>,
    },
    FaultFailed {
        id: String,
        error: String,
    },
    FaultReverted {
        id: String,
        how: String,
    },
    RevertFailed {
        id: String,
        error: String,
    },
    /// The fault's target was observed recovered by itself (a crashed container running again
    /// under its restart policy): the fault is closed; its undo is no longer needed.
    FaultRecovered {
        id: String,
        how: String,
    },
    /// Objectives given to a later step (`measure-rto --rto-target 5m`): every reader after it
    /// judges the drill against them, field by field over the drill's own.
    ObjectivesSet {
        objectives: Objectives,
    },
    /// `drill run` of a scenario with an `engines:` map: every engine the drill talks to, by its
    /// scenario name, with the steps that hit it. The report shows the drill per region from it
    /// (faults are matched by their recorded engine, probes by their description).
    Regions {
        regions: Vec<Region>,
    },
    RecoveryStarted {
        probes: Vec<String>,
        consecutive: u32,
        timeout_s: f64,
        /// A scenario's `verify:` wait (after restore), not the recovery from the faults: the
        /// RTO is never measured to it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        verify: bool,
    },
    ProbeChanged {
        probe: String,
        ok: bool,
        detail: String,
        ms: f64,
    },
    RecoveryFirstSuccess {},
    RecoveryStable {
        /// Best estimate of when the system came back: midway between the last failing round
        /// and the first round of the passing streak (the first round, if none failed).
        recovered_at: Ts,
        /// Half the gap between the last failing round and the first passing one: how far
        /// `recovered_at` may be off.
        #[serde(default)]
        uncertainty_s: f64,
        /// Probe latency over every request made while waiting.
        latency: Latency,
    },
    RecoveryTimeout {
        failures: Vec<ProbeFailure>,
        latency: Latency,
    },
    WatchStarted {
        source: String,
        interval_ms: u64,
    },
    Samples {
        source: String,
        samples: Vec<Sample>,
    },
    WatchStopped {
        source: String,
    },
    PhaseStarted {
        name: String,
    },
    /// A phase of a dry run: recorded as planned, nothing was run.
    PhasePlanned {
        name: String,
        command: String,
    },
    PhaseFinished {
        name: String,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    BackupCheck {
        file: String,
        check: String,
        ok: bool,
        detail: String,
        #[serde(default)]
        warning: bool,
    },
    Note {
        message: String,
    },
    // --- canary events (owned by src/canary.rs) ---
    /// The canary writer created its table and starts writing; `run` tags its other events.
    CanaryStarted {
        run: String,
        target: String,
        table: String,
        interval_ms: u64,
    },
    /// The canary (re)connected; `server` is the address and port that answered.
    CanaryConnected {
        run: String,
        server: String,
    },
    /// Acknowledged canary commits, batched (one line about every 250 ms, never one per write).
    CanaryAcks {
        run: String,
        acks: Vec<crate::canary::Ack>,
    },
    /// Writes (or reconnects) started failing; `seq` is the first write that was not acknowledged.
    CanaryFailing {
        run: String,
        seq: u64,
        error: String,
    },
    /// Writes are acknowledged again after `failed` attempts over `outage_s` seconds.
    CanaryResumed {
        run: String,
        failed: u64,
        outage_s: f64,
    },
    /// Read-back from the current primary: which acknowledged writes survived. `lost` holds
    /// inclusive ranges of lost sequence numbers.
    CanaryVerified {
        run: String,
        acknowledged: u64,
        survived: u64,
        lost: Vec<[u64; 2]>,
        /// Rows present whose commit was never acknowledged (in flight when the connection broke).
        unacknowledged_present: u64,
        server: String,
        in_recovery: bool,
    },
    CanaryVerifyFailed {
        run: String,
        error: String,
    },
    CanaryStopped {
        run: String,
        reason: String,
        attempted: u64,
        acknowledged: u64,
        table_dropped: bool,
    },
    // --- end canary events ---
}

/// A line the reader could not use.
#[derive(Clone, Debug, PartialEq)]
pub struct Damage {
    pub line: usize,
    pub reason: String,
}

/// What a read of the journal found.
#[derive(Clone, Debug, Default)]
pub struct Contents {
    pub events: Vec<Event>,
    pub damaged: Vec<Damage>,
}

impl Contents {
    /// The events of one drill, in file order.
    pub fn drill(&self, id: &str) -> Vec<&Event> {
        self.events.iter().filter(|e| e.drill == id).collect()
    }
    /// Drill ids in order of first appearance.
    pub fn drill_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for e in &self.events {
            if !ids.contains(&e.drill) {
                ids.push(e.drill.clone());
            }
        }
        ids
    }
    /// The drill that new events belong to: the last one started.
    pub fn current_drill(&self) -> Option<String> {
        self.events
            .iter()
            .rev()
            .find(|e| matches!(e.kind, Kind::DrillStarted { .. }))
            .or_else(|| self.events.last())
            .map(|e| e.drill.clone())
    }
    /// Faults whose plan is in the journal without a matching `fault_reverted`.
    pub fn open_faults(&self) -> Vec<OpenFault> {
        let mut open: Vec<OpenFault> = Vec::new();
        for e in &self.events {
            match &e.kind {
                Kind::FaultPlanned {
                    id,
                    action,
                    target,
                    undo,
                    engine,
                    ..
                } => open.push(OpenFault {
                    id: id.clone(),
                    drill: e.drill.clone(),
                    action: action.clone(),
                    target: target.clone(),
                    undo: undo.clone(),
                    planned_at: e.ts,
                    applied: false,
                    before: None,
                    engine: engine.clone(),
                }),
                Kind::FaultApplied { id, before } => {
                    if let Some(f) = open.iter_mut().find(|f| &f.id == id) {
                        f.applied = true;
                        f.before = *before;
                    }
                }
                Kind::FaultReverted { id, .. } | Kind::FaultRecovered { id, .. } => {
                    open.retain(|f| &f.id != id)
                }
                _ => {}
            }
        }
        open
    }
}

/// A fault the journal shows as not yet undone.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenFault {
    pub id: String,
    pub drill: String,
    pub action: String,
    pub target: String,
    pub undo: Undo,
    pub planned_at: Ts,
    /// False when the process died between writing the plan and applying it; the undo is still
    /// attempted (it is idempotent) because the fault may have been half-applied.
    pub applied: bool,
    /// The container before a crash, when the fault recorded it.
    pub before: Option<ContainerSeen>,
    /// The Docker engine it was applied on, as recorded (None: not a Docker fault, or a journal
    /// written before engines were recorded).
    pub engine: Option<Box<crate::docker::Engine>>,
}

/// A handle for appending events of one drill.
#[derive(Clone, Debug)]
pub struct Journal {
    path: PathBuf,
    drill: String,
    by: String,
}

/// The journal path: the flag, else `DRILL_JOURNAL`, else `.drill/journal.jsonl`.
pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
    match flag {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os(ENV_PATH)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH)),
    }
}

/// A fresh drill id: the start time and a random suffix, e.g. `20261126T110630Z-3f9a`.
pub fn new_drill_id() -> String {
    let now = Utc::now();
    format!(
        "{}-{:04x}",
        now.format("%Y%m%dT%H%M%SZ"),
        rand::random::<u16>()
    )
}

impl Journal {
    /// Attach to the journal's current drill (or `DRILL_ID`); when there is none yet, start one
    /// named `name` so that binaries called one by one from a script still make a drill.
    pub fn attach(path: &Path, by: &str, name: &str) -> io::Result<Journal> {
        let env_id = std::env::var(ENV_DRILL_ID).ok().filter(|s| !s.is_empty());
        let existing = read(path)?;
        let known = |id: &str| existing.events.iter().any(|e| e.drill == id);
        match env_id.or_else(|| existing.current_drill()) {
            Some(id) if known(&id) => Ok(Journal {
                path: path.to_path_buf(),
                drill: id,
                by: by.into(),
            }),
            Some(id) => Journal::start_with_id(
                path,
                by,
                id,
                name,
                None,
                None,
                Objectives::default(),
                vec![],
            ),
            None => Journal::start_with_id(
                path,
                by,
                new_drill_id(),
                name,
                None,
                None,
                Objectives::default(),
                vec![],
            ),
        }
    }

    /// Append to a drill known to be in this journal (`--drill ID`).
    pub fn for_drill(path: &Path, by: &str, id: &str) -> Journal {
        Journal {
            path: path.to_path_buf(),
            drill: id.to_string(),
            by: by.into(),
        }
    }

    /// Start a new drill in this journal (creating the file and its folder).
    #[allow(clippy::too_many_arguments)]
    pub fn start_with_id(
        path: &Path,
        by: &str,
        id: String,
        name: &str,
        scenario: Option<String>,
        environment: Option<String>,
        objectives: Objectives,
        roles: Vec<(String, String)>,
    ) -> io::Result<Journal> {
        let j = Journal {
            path: path.to_path_buf(),
            drill: id,
            by: by.into(),
        };
        j.append(Kind::DrillStarted {
            name: name.into(),
            scenario,
            environment,
            objectives,
            roles,
        })?;
        Ok(j)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn drill_id(&self) -> &str {
        &self.drill
    }

    pub fn event(&self, kind: Kind) -> Event {
        Event {
            ts: Ts::now(),
            drill: self.drill.clone(),
            by: self.by.clone(),
            kind,
        }
    }

    /// Append one event.
    pub fn append(&self, kind: Kind) -> io::Result<Event> {
        let e = self.event(kind);
        self.write_events(std::slice::from_ref(&e), false)?;
        Ok(e)
    }

    /// Append one event and fsync it before returning: for fault plans, written ahead of the fault.
    pub fn append_durable(&self, kind: Kind) -> io::Result<Event> {
        let e = self.event(kind);
        self.write_events(std::slice::from_ref(&e), true)?;
        Ok(e)
    }

    /// Append prepared events in one write (sampler batches).
    pub fn write_events(&self, events: &[Event], durable: bool) -> io::Result<()> {
        let mut buf = Vec::with_capacity(events.len() * 128);
        for e in events {
            serde_json::to_writer(&mut buf, e).map_err(io::Error::other)?;
            buf.push(b'\n');
        }
        append_bytes(&self.path, &buf, durable)
    }
}

/// Append whole lines under an exclusive advisory lock, as one `write` with `O_APPEND`. When the
/// file does not end in a newline (a writer died mid-line), a newline is written first so the torn
/// line stays alone and readers can skip it.
fn append_bytes(path: &Path, lines: &[u8], durable: bool) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)?;
    let locked = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| io::Error::from(errno))?;
    let file: &File = &locked;
    let len = file.metadata()?.len();
    let mut buf = Vec::with_capacity(lines.len() + 1);
    if len > 0 {
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, len - 1)?;
        if last[0] != b'\n' {
            buf.push(b'\n');
        }
    }
    buf.extend_from_slice(lines);
    let mut w: &File = file;
    w.write_all(&buf)?;
    if durable {
        file.sync_data()?;
    }
    Ok(())
}

/// Read every event; damaged lines are collected, not fatal. A missing file is an empty journal.
pub fn read(path: &Path) -> io::Result<Contents> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Contents::default()),
        Err(e) => return Err(e),
    };
    Ok(parse(&bytes))
}

/// Parse journal bytes (see [`read`]).
pub fn parse(bytes: &[u8]) -> Contents {
    let mut out = Contents::default();
    let text = String::from_utf8_lossy(bytes);
    let ends_clean = text.ends_with('\n');
    let lines: Vec<&str> = text.split('\n').collect();
    let count = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let last_unterminated = i + 1 == count && !ends_clean;
        match serde_json::from_str::<Event>(line) {
            Ok(e) => out.events.push(e),
            Err(_) if last_unterminated => out.damaged.push(Damage {
                line: n,
                reason: "torn last line (a writer stopped mid-write); skipped".into(),
            }),
            Err(e) => out.damaged.push(Damage {
                line: n,
                reason: describe_bad_line(line, &e),
            }),
        }
    }
    out
}

fn describe_bad_line(line: &str, e: &serde_json::Error) -> String {
    // A well-formed object with an event kind we do not know comes from a newer drillkit.
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        if let Some(kind) = v.get("event").and_then(|k| k.as_str()) {
            return format!("event '{kind}' is unknown to this version ({e}); skipped");
        }
    }
    format!("not a journal event ({e}); skipped")
}

/// Warn on stderr about damaged lines, once per read.
pub fn warn_damage(path: &Path, contents: &Contents) {
    for d in &contents.damaged {
        tracing::warn!("{}:{}: {}", path.display(), d.line, d.reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(dir: &Path) -> Journal {
        Journal::start_with_id(
            &dir.join("j.jsonl"),
            "test",
            "d1".into(),
            "demo",
            None,
            None,
            Objectives::default(),
            vec![],
        )
        .expect("start")
    }

    #[test]
    fn events_round_trip_with_microseconds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = journal(dir.path());
        let e = j
            .append(Kind::Note {
                message: "hi".into(),
            })
            .expect("append");
        let c = read(j.path()).expect("read");
        assert_eq!(c.events.len(), 2);
        assert_eq!(c.events[1], e);
        assert!(c.damaged.is_empty());
        let raw = std::fs::read_to_string(j.path()).expect("raw");
        assert!(raw.contains(r#""event":"note""#), "{raw}");
        assert_eq!(e.ts.to_rfc3339().len(), "2026-11-26T11:06:30.123456Z".len());
    }

    #[test]
    fn torn_last_line_is_skipped_and_next_append_starts_a_new_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = journal(dir.path());
        std::fs::OpenOptions::new()
            .append(true)
            .open(j.path())
            .and_then(|mut f| f.write_all(br#"{"ts":"2026-11-26T11:0"#))
            .expect("tear");
        let c = read(j.path()).expect("read");
        assert_eq!(c.events.len(), 1);
        assert_eq!(c.damaged.len(), 1);
        assert!(c.damaged[0].reason.contains("torn"));
        j.append(Kind::Note {
            message: "after".into(),
        })
        .expect("append");
        let c = read(j.path()).expect("read");
        assert_eq!(c.events.len(), 2, "{:?}", c.damaged);
        assert_eq!(c.damaged.len(), 1);
        assert!(c.damaged[0].reason.contains("not a journal event"));
    }

    #[test]
    fn unknown_event_kinds_are_reported_not_fatal() {
        let c = parse(
            br#"{"ts":"2026-11-26T11:06:30.000001Z","drill":"d","by":"x","event":"from_the_future","x":1}
{"ts":"2026-11-26T11:06:30.000002Z","drill":"d","by":"x","event":"note","message":"ok"}
"#,
        );
        assert_eq!(c.events.len(), 1);
        assert!(
            c.damaged[0].reason.contains("from_the_future"),
            "{:?}",
            c.damaged
        );
    }

    #[test]
    fn open_faults_are_planned_minus_reverted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = journal(dir.path());
        for id in ["a", "b"] {
            j.append_durable(Kind::FaultPlanned {
                id: id.into(),
                action: "stop".into(),
                target: "c".into(),
                undo: Undo::DockerStart {
                    id: "x".into(),
                    name: "c".into(),
                },
                duration_s: None,
                deadline: None,
                engine: None,
            })
            .expect("plan");
        }
        j.append(Kind::FaultApplied {
            id: "a".into(),
            before: None,
        })
        .expect("applied");
        j.append(Kind::FaultReverted {
            id: "b".into(),
            how: "started".into(),
        })
        .expect("reverted");
        let open = read(j.path()).expect("read").open_faults();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].id, "a");
        assert!(open[0].applied);
    }

    #[test]
    fn concurrent_writers_never_interleave() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = journal(dir.path());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let j = j.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let samples = (0..20)
                            .map(|k| Sample {
                                t: Ts::now(),
                                ok: k % 2 == 0,
                                ms: 1.5,
                                err: Some(format!("e{t}-{i}-{k}")),
                            })
                            .collect();
                        j.append(Kind::Samples {
                            source: format!("t{t}"),
                            samples,
                        })
                        .expect("append");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("join");
        }
        let c = read(j.path()).expect("read");
        assert!(
            c.damaged.is_empty(),
            "{:?}",
            &c.damaged[..c.damaged.len().min(3)]
        );
        assert_eq!(c.events.len(), 1 + 8 * 200);
    }
}
