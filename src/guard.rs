//! Stop conditions (`stop_if:`, `inject-fault guard`): a drill that hurts more than planned is
//! stopped. One guard serves the scenario runner and composed workflows alike: it asks its
//! conditions every round — a probe failing for too long, the error rate of the watch samplers
//! over a window, a halt file, an environment switch — and when one trips it writes
//! `drill_aborted` (the condition and the value seen, fsynced) and reverts every open fault of the
//! drill at once. The verdict `aborted` comes from that event (`measure`), so `drill run` and a
//! composed workflow's `report` agree.

use crate::faults::{self, Reverted};
use crate::journal::{self, Journal, Kind, Ts};
use crate::probe::{Probe, ProbeSpec};
use crate::units::{fmt_duration, Dur, Ratio};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the guard asks its conditions.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);
/// Error-rate window when none is given.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
/// An error rate is judged only over at least this many samples (one failed request of two is
/// not a trend).
pub const MIN_SAMPLES: usize = 5;

/// One `stop_if:` entry as written: a probe (any kind the recovery section accepts) with
/// `failing_for`, or `error_rate` with `window`, or `file`, or `env`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct StopIfSpec {
    /// The probe trips after failing this long without a pass (default 0: the first failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_for: Option<Dur>,
    /// The share of failed watch samples over `window` that trips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<Ratio>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Dur>,
    /// A kill switch: trips when this file exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Trips when this environment variable holds a true value (1, true, yes, on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(flatten)]
    pub probe: ProbeSpec,
    /// Keys that are none of the above (serde's `deny_unknown_fields` does not work through
    /// `flatten`); `validate` rejects them.
    #[serde(flatten, skip_serializing)]
    pub unknown: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

const KEYS: &str = "failing_for, error_rate, window, file, env, or a probe's keys (http, tcp, docker, redis, command, postgres, dns, status, body_contains, timeout, …)";

impl StopIfSpec {
    /// Check one entry: exactly one kind, options only where they belong. The error starts with
    /// the key to point at (`key: message`).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(k) = self.unknown.keys().next() {
            return Err(format!("{k}: unknown key `{k}`; expected {KEYS}"));
        }
        let is_probe = self.probe != ProbeSpec::default();
        let kinds = [
            is_probe,
            self.error_rate.is_some(),
            self.file.is_some(),
            self.env.is_some(),
        ]
        .iter()
        .filter(|k| **k)
        .count();
        if kinds != 1 {
            return Err(format!(
                "stop_if: each condition needs exactly one of a probe (http, tcp, …), error_rate, file or env; found {kinds}"
            ));
        }
        if self.failing_for.is_some() && !is_probe {
            return Err("failing_for: applies to a probe condition".into());
        }
        if self.window.is_some() && self.error_rate.is_none() {
            return Err("window: applies to error_rate".into());
        }
        if let Some(w) = self.window {
            if w.0.is_zero() {
                return Err("window: must be longer than 0s".into());
            }
        }
        if let Some(v) = &self.env {
            if v.is_empty() || v.contains('=') {
                return Err(format!("env: '{v}' is not a variable name"));
            }
        }
        if is_probe {
            if self.probe.interval.is_some() {
                return Err("interval: belongs to watch probes; the guard asks every 250ms".into());
            }
            self.probe.validate().map_err(|m| format!("stop_if: {m}"))?;
        }
        Ok(())
    }

    /// What a report names the condition by, e.g. `http http://web/health failing for 2s`.
    pub fn describe(&self) -> String {
        Condition::from_spec_unbuilt(self)
    }
}

/// One condition, ready to ask.
pub enum Condition {
    Probe {
        probe: Box<Probe>,
        failing_for: Duration,
        /// When the probe last passed (or when the guard started).
        last_pass: tokio::time::Instant,
    },
    ErrorRate {
        max: f64,
        window: Duration,
    },
    File(PathBuf),
    Env(String),
}

impl Condition {
    fn from_spec_unbuilt(s: &StopIfSpec) -> String {
        if let Some(r) = s.error_rate {
            let w = s.window.map(|d| d.0).unwrap_or(DEFAULT_WINDOW);
            return error_rate_name(r.0, w);
        }
        if let Some(f) = &s.file {
            return format!("halt file {}", f.display());
        }
        if let Some(v) = &s.env {
            return format!("env {v}");
        }
        let probe = crate::redact::redact(&describe_spec(&s.probe));
        failing_name(&probe, s.failing_for.map(|d| d.0).unwrap_or_default())
    }

    /// The name reports use: the condition as the user wrote it.
    pub fn describe(&self) -> String {
        match self {
            Condition::Probe {
                probe, failing_for, ..
            } => failing_name(&probe.describe(), *failing_for),
            Condition::ErrorRate { max, window } => error_rate_name(*max, *window),
            Condition::File(p) => format!("halt file {}", p.display()),
            Condition::Env(v) => format!("env {v}"),
        }
    }
}

/// A duration as users write it in a condition (`2s`, `1m 30s`).
fn written(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn failing_name(probe: &str, failing_for: Duration) -> String {
    if failing_for.is_zero() {
        format!("{probe} failing")
    } else {
        format!("{probe} failing for {}", written(failing_for))
    }
}

fn error_rate_name(max: f64, window: Duration) -> String {
    format!("error rate above {} over {}", pct(max), written(window))
}

fn pct(r: f64) -> String {
    let s = format!("{:.2}", r * 100.0);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

fn describe_spec(p: &ProbeSpec) -> String {
    [
        ("http", &p.http),
        ("tcp", &p.tcp),
        ("docker", &p.docker),
        ("redis", &p.redis),
        ("command", &p.command),
        ("postgres", &p.postgres),
        ("dns", &p.dns),
    ]
    .into_iter()
    .find_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
    .unwrap_or_else(|| "probe".into())
}

/// Is this environment value a "yes"?
pub fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on" | "y"
    )
}

/// A condition that tripped: which one and what was seen.
#[derive(Clone, Debug, PartialEq)]
pub struct Trip {
    pub condition: String,
    pub value: String,
}

/// Watches the journal for the drill's `drill_aborted` (written by the runner's guard or a
/// composed `inject-fault guard` in another process), so a recovery wait stops at once instead
/// of waiting out its timeout. Reads only what was appended since the last look.
pub struct AbortWatch {
    tail: Tail,
    drill: String,
}

/// How often [`AbortWatch::tripped`] looks at the journal.
const ABORT_POLL: Duration = Duration::from_millis(100);

impl AbortWatch {
    /// From the journal's start: a trip before the wait began stops it too.
    pub fn new(journal: &Journal) -> AbortWatch {
        AbortWatch {
            tail: Tail::new(journal.path()),
            drill: journal.drill_id().to_string(),
        }
    }

    /// The drill's first `drill_aborted` appended since the last look.
    pub fn check(&mut self) -> Option<Trip> {
        self.tail.read().into_iter().find_map(|e| match e.kind {
            Kind::DrillAborted { condition, value } if e.drill == self.drill => {
                Some(Trip { condition, value })
            }
            _ => None,
        })
    }

    /// Resolves when the drill is aborted.
    pub async fn tripped(&mut self) -> Trip {
        loop {
            if let Some(t) = self.check() {
                return t;
            }
            tokio::time::sleep(ABORT_POLL).await;
        }
    }
}

/// The guard: its conditions, and where it reads the watch samples from.
pub struct Guard {
    conditions: Vec<Condition>,
    journal: Journal,
    /// Samples of the drill read so far (the journal is read incrementally).
    tail: Tail,
    samples: Vec<journal::Sample>,
}

/// Incremental reader of the journal's new complete lines.
struct Tail {
    path: PathBuf,
    offset: u64,
}

impl Tail {
    fn new(path: &Path) -> Tail {
        Tail {
            path: path.to_path_buf(),
            offset: 0,
        }
    }
    /// Events appended since the last call (only whole lines).
    fn read(&mut self) -> Vec<journal::Event> {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return vec![];
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return vec![];
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return vec![];
        }
        let Some(end) = memchr::memrchr(b'\n', &buf) else {
            return vec![];
        };
        self.offset += end as u64 + 1;
        journal::parse(&buf[..=end]).events
    }
}

impl Guard {
    /// Build the guard's conditions (probes are connected here, as the samplers' are).
    pub async fn build(
        specs: &[StopIfSpec],
        journal: &Journal,
        engines: &crate::docker::engine::EngineSet,
    ) -> Result<Guard, crate::exit::Failure> {
        let mut conditions = Vec::new();
        let now = tokio::time::Instant::now();
        for s in specs {
            let c = if let Some(r) = s.error_rate {
                Condition::ErrorRate {
                    max: r.0,
                    window: s.window.map(|d| d.0).unwrap_or(DEFAULT_WINDOW),
                }
            } else if let Some(f) = &s.file {
                Condition::File(f.clone())
            } else if let Some(v) = &s.env {
                Condition::Env(v.clone())
            } else {
                Condition::Probe {
                    probe: Box::new(s.probe.build(&mut Vec::new(), engines).await?),
                    failing_for: s.failing_for.map(|d| d.0).unwrap_or_default(),
                    last_pass: now,
                }
            };
            conditions.push(c);
        }
        Ok(Guard {
            conditions,
            journal: journal.clone(),
            tail: Tail::new(journal.path()),
            samples: Vec::new(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    /// The conditions as reports name them.
    pub fn describe(&self) -> Vec<String> {
        self.conditions.iter().map(Condition::describe).collect()
    }

    /// Ask every condition once; the first that trips.
    pub async fn round(&mut self) -> Option<Trip> {
        let needs_samples = self
            .conditions
            .iter()
            .any(|c| matches!(c, Condition::ErrorRate { .. }));
        if needs_samples {
            let drill = self.journal.drill_id().to_string();
            for e in self.tail.read() {
                if e.drill != drill {
                    continue;
                }
                if let Kind::Samples { samples, .. } = e.kind {
                    self.samples.extend(samples);
                }
            }
        }
        let now_ts = Ts::now();
        for c in &mut self.conditions {
            let name = c.describe();
            let trip = |value: String| {
                Some(Trip {
                    condition: name.clone(),
                    value,
                })
            };
            match c {
                Condition::File(p) => {
                    if p.exists() {
                        return trip(format!("{} exists", p.display()));
                    }
                }
                Condition::Env(v) => {
                    if let Some(val) = std::env::var(v.as_str()).ok().filter(|x| truthy(x)) {
                        return trip(format!("{v}={val}"));
                    }
                }
                Condition::ErrorRate { max, window } => {
                    let since = now_ts.plus_secs(-window.as_secs_f64());
                    let recent: Vec<&journal::Sample> =
                        self.samples.iter().filter(|s| s.t >= since).collect();
                    if recent.len() >= MIN_SAMPLES {
                        let failed = recent.iter().filter(|s| !s.ok).count();
                        let rate = failed as f64 / recent.len() as f64;
                        if rate > *max {
                            return trip(format!(
                                "{} ({failed} of {} requests failed)",
                                pct(rate),
                                recent.len()
                            ));
                        }
                    }
                }
                Condition::Probe {
                    probe,
                    failing_for,
                    last_pass,
                } => {
                    let timeout = crate::wait::DEFAULT_REQUEST_TIMEOUT.min(Duration::from_secs(2));
                    let o = probe.check(timeout).await;
                    let now = tokio::time::Instant::now();
                    if o.ok {
                        *last_pass = now;
                    } else {
                        let down = now.duration_since(*last_pass);
                        if down >= *failing_for {
                            return trip(format!(
                                "failing for {}: {}",
                                fmt_duration(down.as_secs_f64()),
                                crate::redact::redact(&o.detail)
                            ));
                        }
                    }
                }
            }
        }
        // Keep only what a window can still use.
        let longest = self
            .conditions
            .iter()
            .filter_map(|c| match c {
                Condition::ErrorRate { window, .. } => Some(*window),
                _ => None,
            })
            .max();
        if let Some(w) = longest {
            let since = now_ts.plus_secs(-w.as_secs_f64() - 1.0);
            self.samples.retain(|s| s.t >= since);
        }
        None
    }

    /// Ask the conditions every `interval` until one trips (returned) or `stop` is cancelled
    /// (None).
    pub async fn watch(&mut self, interval: Duration, stop: &CancellationToken) -> Option<Trip> {
        loop {
            if stop.is_cancelled() {
                return None;
            }
            if let Some(t) = self.round().await {
                return Some(t);
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.cancelled() => return None,
            }
        }
    }
}

/// Act on a trip: `drill_aborted` (fsynced) with the condition and the value seen, then every
/// open fault of the drill reverted at once, newest first.
pub async fn abort(
    journal: &Journal,
    docker: Option<&crate::docker::Docker>,
    trip: &Trip,
) -> Result<Reverted, crate::exit::Failure> {
    journal.append_durable(Kind::DrillAborted {
        condition: trip.condition.clone(),
        value: trip.value.clone(),
    })?;
    let mut engines = faults::Engines::new(docker, None);
    Ok(faults::revert_open(journal, &mut engines, Some(journal.drill_id()), None).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_named_as_written() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let s = StopIfSpec {
            error_rate: Some(Ratio(0.05)),
            window: Some(Dur::secs(10)),
            ..Default::default()
        };
        assert_eq!(s.describe(), "error rate above 5% over 10s");
        let p = StopIfSpec {
            failing_for: Some(Dur::secs(2)),
            probe: ProbeSpec {
                http: Some("http://web/health".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(p.describe(), "http http://web/health failing for 2s");
        assert!(p.validate().is_ok());
        let both = StopIfSpec {
            file: Some("/x".into()),
            env: Some("Y".into()),
            ..Default::default()
        };
        assert!(both.validate().is_err());
        assert!(truthy("TRUE") && truthy("1") && !truthy("0") && !truthy(""));
    }

    #[tokio::test]
    async fn error_rate_trips_over_its_window_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::start_with_id(
            &dir.path().join("j.jsonl"),
            "test",
            "d1".into(),
            "x",
            None,
            None,
            Default::default(),
            vec![],
        )
        .expect("journal");
        let spec = StopIfSpec {
            error_rate: Some(Ratio(0.2)),
            window: Some(Dur::secs(5)),
            ..Default::default()
        };
        let engines = crate::docker::engine::EngineSet::one(crate::docker::engine::Engine::local());
        let mut g = Guard::build(&[spec], &j, &engines).await.expect("guard");
        let sample = |secs_ago: f64, ok: bool| journal::Sample {
            t: Ts::now().plus_secs(-secs_ago),
            ok,
            ms: 1.0,
            err: None,
        };
        // Old failures (outside the window) do not count.
        let mut batch: Vec<_> = (0..10).map(|_| sample(30.0, false)).collect();
        batch.extend((0..10).map(|_| sample(1.0, true)));
        j.append(Kind::Samples {
            source: "s".into(),
            samples: batch,
        })
        .expect("append");
        assert_eq!(g.round().await, None);
        j.append(Kind::Samples {
            source: "s".into(),
            samples: (0..5).map(|_| sample(0.5, false)).collect(),
        })
        .expect("append");
        let t = g.round().await.expect("tripped");
        assert_eq!(t.condition, "error rate above 20% over 5s");
        assert!(t.value.starts_with("33.33% (5 of 15"), "{}", t.value);
    }
}
