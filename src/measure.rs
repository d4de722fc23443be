//! Measurements from the journal: RTO, time to detect, downtime users saw, availability, error
//! rate, probe latency, phase times — and the verdict against the objectives. A pure function of
//! the events, so the same journal always gives the same numbers.

use crate::faults::Undo;
use crate::journal::{Event, Kind, Latency, Objectives, Ts};
use crate::units::{fmt_duration, fmt_target, Ratio};
use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct FaultRow {
    pub id: String,
    pub action: String,
    pub target: String,
    pub planned_at: Option<Ts>,
    pub applied_at: Option<Ts>,
    pub reverted_at: Option<Ts>,
    pub revert: Option<String>,
    pub error: Option<String>,
    pub manual_undo: bool,
    /// Closed because its target recovered by itself (a crashed container running again under
    /// its restart policy); `reverted_at`/`revert` say when and how it was seen.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered_by_itself: bool,
}

impl FaultRow {
    /// Applied and neither reverted nor recovered: still in place when measured.
    pub fn open(&self) -> bool {
        self.applied_at.is_some() && self.reverted_at.is_none()
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PhaseRow {
    pub name: String,
    pub started_at: Ts,
    pub finished_at: Option<Ts>,
    pub seconds: Option<f64>,
    pub ok: Option<bool>,
    pub detail: Option<String>,
    /// A dry run's phase: planned, not run (`detail` holds the command).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub planned: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BackupRow {
    pub file: String,
    pub check: String,
    pub ok: bool,
    pub warning: bool,
    pub detail: String,
    pub at: Ts,
}

/// One objective and whether it was met.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ObjectiveRow {
    /// e.g. "RTO ≤ 5m"
    pub name: String,
    pub target: String,
    pub achieved: String,
    pub passed: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Recovery {
    pub started_at: Ts,
    pub probes: Vec<String>,
    pub recovered: Option<bool>,
    pub recovered_at: Option<Ts>,
    pub uncertainty_s: f64,
    pub first_success_at: Option<Ts>,
    pub finished_at: Option<Ts>,
    pub failures: Vec<(String, String)>,
    pub latency: Option<Latency>,
    pub timeout_s: f64,
}

/// One engine (region) of a drill that spans several.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RegionRow {
    /// The scenario's name for the engine (`primary`, `dr`; `default` for the run's own).
    pub name: String,
    /// Where it is: `tcp://10.0.0.9:2376 (TLS)`.
    pub engine: String,
    /// What the drill did there, in order.
    pub steps: Vec<String>,
    /// The faults applied on this engine (ids).
    pub faults: Vec<String>,
    /// The first fault on it applied: the region was cut.
    pub cut_at: Option<Ts>,
    /// Its last fault reverted (or seen recovered).
    pub restored_at: Option<Ts>,
    /// Cut → restored.
    pub down_seconds: Option<f64>,
    /// When a wait asking this engine's probes passed (the estimate of `recovery_stable`).
    pub serving_at: Option<Ts>,
    /// To `serving_at`: from its own restore for a region that was cut (the failback), from the
    /// drill's first fault for one that was not (the failover: it took over).
    pub recovery_seconds: Option<f64>,
    /// `cut, then served again`, `took over`, `not seen serving`…
    pub role: String,
}

/// A switch between regions: from the cut to recovery (failover) or from the first restore
/// step to the verify wait's end (failback), with the watch samples taken meanwhile.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SwitchRow {
    /// `failover` or `failback`.
    pub name: String,
    pub from: Ts,
    pub to: Ts,
    pub seconds: f64,
    pub samples: u64,
    pub failed_samples: u64,
    /// failed / samples (None without samples in the window).
    pub error_rate: Option<f64>,
    /// Outage users saw inside the window (the samplers' down intervals).
    pub downtime_seconds: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Measurement {
    pub drill: String,
    pub name: String,
    pub scenario: Option<String>,
    pub environment: Option<String>,
    pub roles: Vec<(String, String)>,
    pub started_at: Option<Ts>,
    pub finished_at: Option<Ts>,
    pub duration_seconds: Option<f64>,
    pub outcome: Option<String>,
    pub fault_at: Option<Ts>,
    pub rto_seconds: Option<f64>,
    /// Where the RTO's end came from: "wait-recovery" (stable recovery) or "watch" (samples).
    pub rto_source: Option<String>,
    pub detect_seconds: Option<f64>,
    pub downtime_seconds: Option<f64>,
    pub availability: Option<f64>,
    pub error_rate: Option<f64>,
    pub samples: u64,
    pub failed_samples: u64,
    pub latency: Option<Latency>,
    pub recovery: Option<Recovery>,
    /// A scenario's `verify:` wait after restore (in a regional failover: the failback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<Recovery>,
    /// A drill across several engines (a scenario's `engines:`): each region, what hit it, and
    /// when it served.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<RegionRow>,
    /// The switches between regions (failover, failback) and the error rate users saw in each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub switches: Vec<SwitchRow>,
    pub faults: Vec<FaultRow>,
    pub phases: Vec<PhaseRow>,
    pub backups: Vec<BackupRow>,
    pub rpo: Option<crate::canary::RpoMeasure>,
    pub objectives: Vec<ObjectiveRow>,
    pub passed: bool,
    /// `passed`, `failed` or `aborted` (a stop condition tripped); for a negative control
    /// `caught` or `missed`.
    pub verdict: String,
    /// The stop condition that aborted the drill, if one did.
    pub aborted: Option<Aborted>,
    /// `drill run --negative-control`: the planted defect and whether the drill caught it.
    pub negative_control: Option<NegativeControl>,
    /// Why the drill failed, one line each (for reports and action items).
    pub problems: Vec<String>,
    pub notes: Vec<String>,
    /// The tool could not run the drill, or stopped it with an error (not a finding about the
    /// system): the message. Reports show it as an error, not as a failed check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `drill run` notes when its body stopped with an error.
pub const STOPPED_NOTE: &str = "drill stopped: ";

impl Measurement {
    /// A drill that could not run at all (bad scenario, unreachable engine before anything was
    /// recorded): no journal, only the message. Reports still show it — as an error.
    pub fn could_not_run(drill: &str, name: &str, scenario: Option<String>, error: &str) -> Self {
        let now = Ts::now();
        let mut m = measure(drill, &[], &Objectives::default());
        m.name = name.to_string();
        m.scenario = scenario;
        m.started_at = Some(now);
        m.finished_at = Some(now);
        m.duration_seconds = Some(0.0);
        m.outcome = Some("could not run".into());
        m.error = Some(error.to_string());
        m.problems = vec![format!("drill could not run: {error}")];
        m.passed = false;
        m
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Aborted {
    pub condition: String,
    pub value: String,
    pub at: Ts,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NegativeControl {
    pub defect: String,
    pub expected: String,
    pub caught: bool,
    /// The findings that caught it (the drill's problems), or why it was missed.
    pub findings: Vec<String>,
    /// The day the drill was proven able to fail (when caught).
    pub proven_on: Option<String>,
}

/// The headline numbers of a drill (`measure-rto --json`): what a later workflow step reads.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Brief {
    pub drill: String,
    pub name: String,
    pub rto_seconds: Option<f64>,
    pub rto_source: Option<String>,
    pub detect_seconds: Option<f64>,
    pub downtime_seconds: Option<f64>,
    pub availability: Option<f64>,
    pub error_rate: Option<f64>,
    pub samples: u64,
    pub latency_ms: Option<Latency>,
    pub rpo_seconds: Option<f64>,
    pub rpo_lost_writes: Option<u64>,
    pub write_outage_seconds: Option<f64>,
    pub phases: Vec<BriefPhase>,
    pub objectives: Vec<ObjectiveRow>,
    pub problems: Vec<String>,
    pub passed: bool,
    pub verdict: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BriefPhase {
    pub name: String,
    pub seconds: Option<f64>,
    pub ok: Option<bool>,
}

impl Measurement {
    pub fn brief(&self) -> Brief {
        Brief {
            drill: self.drill.clone(),
            name: self.name.clone(),
            rto_seconds: self.rto_seconds,
            rto_source: self.rto_source.clone(),
            detect_seconds: self.detect_seconds,
            downtime_seconds: self.downtime_seconds,
            availability: self.availability,
            error_rate: self.error_rate,
            samples: self.samples,
            latency_ms: self.latency,
            rpo_seconds: self.rpo.as_ref().map(|r| r.rpo_seconds),
            rpo_lost_writes: self.rpo.as_ref().map(|r| r.lost_writes),
            write_outage_seconds: self.rpo.as_ref().and_then(|r| r.write_outage_seconds),
            phases: self
                .phases
                .iter()
                .map(|p| BriefPhase {
                    name: p.name.clone(),
                    seconds: p.seconds,
                    ok: p.ok,
                })
                .collect(),
            objectives: self.objectives.clone(),
            problems: self.problems.clone(),
            passed: self.passed,
            verdict: self.verdict.clone(),
        }
    }
}

/// Measure one drill. `overrides` replace the drill's own objectives where set.
pub fn measure(drill: &str, events: &[&Event], overrides: &Objectives) -> Measurement {
    let mut m = Measurement {
        drill: drill.to_string(),
        name: drill.to_string(),
        scenario: None,
        environment: None,
        roles: vec![],
        started_at: events.first().map(|e| e.ts),
        finished_at: None,
        duration_seconds: None,
        outcome: None,
        fault_at: None,
        rto_seconds: None,
        rto_source: None,
        detect_seconds: None,
        downtime_seconds: None,
        availability: None,
        error_rate: None,
        samples: 0,
        failed_samples: 0,
        latency: None,
        recovery: None,
        verify: None,
        regions: vec![],
        switches: vec![],
        faults: vec![],
        phases: vec![],
        backups: vec![],
        rpo: None,
        objectives: vec![],
        passed: true,
        verdict: String::new(),
        aborted: None,
        negative_control: None,
        problems: vec![],
        notes: vec![],
        error: None,
    };
    let mut control: Option<(String, String, String)> = None;
    let mut objectives = Objectives::default();
    let mut samples: Vec<(usize, crate::journal::Sample)> = Vec::new();
    let mut sources: Vec<String> = Vec::new();
    // The wait the recovery events belong to: the recovery, or a scenario's verify.
    let mut in_verify = false;
    let mut regions: Vec<(crate::journal::Region, Vec<String>)> = Vec::new();
    let mut engine_of: Vec<(String, crate::docker::Engine)> = Vec::new();
    for e in events {
        match &e.kind {
            Kind::DrillStarted {
                name,
                scenario,
                environment,
                objectives: o,
                roles,
            } => {
                m.name = name.clone();
                m.scenario = scenario.clone();
                m.environment = environment.clone();
                m.roles = roles.clone();
                objectives = o.clone();
            }
            Kind::DrillFinished { outcome } => {
                m.finished_at = Some(e.ts);
                m.outcome = Some(outcome.clone());
            }
            // The first trip is the one that aborted the drill.
            Kind::DrillAborted { condition, value } if m.aborted.is_none() => {
                m.aborted = Some(Aborted {
                    condition: condition.clone(),
                    value: value.clone(),
                    at: e.ts,
                });
            }
            Kind::NegativeControl {
                defect,
                expected,
                catch,
            } => control = Some((defect.clone(), expected.clone(), catch.clone())),
            Kind::Regions { regions: r } => {
                regions = r.iter().map(|r| (r.clone(), Vec::new())).collect();
            }
            Kind::FaultPlanned {
                id,
                action,
                target,
                undo,
                engine,
                ..
            } => {
                if let Some(en) = engine {
                    engine_of.push((id.clone(), (**en).clone()));
                }
                m.faults.push(FaultRow {
                    id: id.clone(),
                    action: action.clone(),
                    target: target.clone(),
                    planned_at: Some(e.ts),
                    manual_undo: matches!(undo, Undo::Manual { .. }),
                    ..Default::default()
                })
            }
            Kind::FaultApplied { id, .. } => {
                if let Some(f) = m.faults.iter_mut().find(|f| &f.id == id) {
                    f.applied_at = Some(e.ts);
                }
                if m.fault_at.is_none() {
                    m.fault_at = Some(e.ts);
                }
            }
            Kind::FaultFailed { id, error } => {
                if let Some(f) = m.faults.iter_mut().find(|f| &f.id == id) {
                    f.error = Some(error.clone());
                }
            }
            Kind::FaultReverted { id, how } => {
                if let Some(f) = m.faults.iter_mut().find(|f| &f.id == id) {
                    f.reverted_at = Some(e.ts);
                    f.revert = Some(how.clone());
                }
            }
            Kind::FaultRecovered { id, how } => {
                if let Some(f) = m.faults.iter_mut().find(|f| &f.id == id) {
                    f.reverted_at = Some(e.ts);
                    f.revert = Some(how.clone());
                    f.recovered_by_itself = true;
                }
            }
            Kind::ObjectivesSet { objectives: o } => objectives.overlay(o),
            Kind::RevertFailed { id, error } => {
                if let Some(f) = m.faults.iter_mut().find(|f| &f.id == id) {
                    f.error = Some(format!("revert failed: {error}"));
                }
            }
            Kind::RecoveryStarted {
                probes,
                timeout_s,
                verify,
                ..
            } => {
                in_verify = *verify;
                let r = Some(Recovery {
                    started_at: e.ts,
                    probes: probes.clone(),
                    recovered: None,
                    recovered_at: None,
                    uncertainty_s: 0.0,
                    first_success_at: None,
                    finished_at: None,
                    failures: vec![],
                    latency: None,
                    timeout_s: *timeout_s,
                });
                if *verify {
                    m.verify = r;
                } else {
                    m.recovery = r;
                }
            }
            Kind::RecoveryFirstSuccess {} => {
                if let Some(r) = wait_of(&mut m, in_verify) {
                    r.first_success_at = Some(e.ts);
                }
            }
            Kind::RecoveryStable {
                recovered_at,
                uncertainty_s,
                latency,
            } => {
                if let Some(r) = wait_of(&mut m, in_verify) {
                    r.recovered = Some(true);
                    r.recovered_at = Some(*recovered_at);
                    r.uncertainty_s = *uncertainty_s;
                    r.finished_at = Some(e.ts);
                    r.latency = Some(*latency);
                }
            }
            Kind::RecoveryTimeout { failures, latency } => {
                if let Some(r) = wait_of(&mut m, in_verify) {
                    r.recovered = Some(false);
                    r.finished_at = Some(e.ts);
                    r.failures = failures
                        .iter()
                        .map(|f| (f.probe.clone(), f.error.clone()))
                        .collect();
                    r.latency = Some(*latency);
                }
            }
            Kind::Samples {
                source,
                samples: batch,
            } => {
                let idx = match sources.iter().position(|s| s == source) {
                    Some(i) => i,
                    None => {
                        sources.push(source.clone());
                        sources.len() - 1
                    }
                };
                samples.extend(batch.iter().cloned().map(|s| (idx, s)));
            }
            Kind::PhaseStarted { name } => m.phases.push(PhaseRow {
                name: name.clone(),
                started_at: e.ts,
                finished_at: None,
                seconds: None,
                ok: None,
                detail: None,
                planned: false,
            }),
            Kind::PhasePlanned { name, command } => m.phases.push(PhaseRow {
                name: name.clone(),
                started_at: e.ts,
                finished_at: None,
                seconds: None,
                ok: None,
                detail: Some(command.clone()),
                planned: true,
            }),
            Kind::PhaseFinished { name, ok, detail } => {
                if let Some(p) = m
                    .phases
                    .iter_mut()
                    .rev()
                    .find(|p| &p.name == name && p.finished_at.is_none())
                {
                    p.finished_at = Some(e.ts);
                    p.seconds = Some(e.ts.since(p.started_at));
                    p.ok = Some(*ok);
                    p.detail = detail.clone();
                }
            }
            Kind::BackupCheck {
                file,
                check,
                ok,
                detail,
                warning,
            } => m.backups.push(BackupRow {
                file: file.clone(),
                check: check.clone(),
                ok: *ok,
                warning: *warning,
                detail: detail.clone(),
                at: e.ts,
            }),
            Kind::Note { message } => m.notes.push(message.clone()),
            _ => {}
        }
    }
    m.finished_at = m.finished_at.or_else(|| events.last().map(|e| e.ts));
    if let (Some(s), Some(f)) = (m.started_at, m.finished_at) {
        m.duration_seconds = Some(f.since(s));
    }
    objectives.overlay(overrides);

    // Samples: downtime as users saw it, error rate, latency, detection.
    samples.sort_by_key(|(_, s)| s.t);
    m.samples = samples.len() as u64;
    m.failed_samples = samples.iter().filter(|(_, s)| !s.ok).count() as u64;
    let mut down: Vec<(Ts, Ts)> = Vec::new();
    for i in 0..sources.len() {
        let mine: Vec<&crate::journal::Sample> = samples
            .iter()
            .filter(|(s, _)| *s == i)
            .map(|(_, s)| s)
            .collect();
        down.extend(down_intervals(&mine));
    }
    let down = union(down);
    if !samples.is_empty() {
        let total: f64 = down.iter().map(|(a, b)| b.since(*a)).sum();
        m.downtime_seconds = Some(total);
        m.error_rate = Some(m.failed_samples as f64 / m.samples as f64);
        let (first, last) = (samples[0].1.t, samples[samples.len() - 1].1.t);
        let window = last.since(first);
        m.availability = Some(if window > 0.0 {
            (1.0 - total / window).clamp(0.0, 1.0)
        } else {
            1.0
        });
        let mut lat: Vec<f64> = samples.iter().map(|(_, s)| s.ms).collect();
        m.latency = Some(Latency::of(&mut lat));
    } else if let Some(l) = m.recovery.as_ref().and_then(|r| r.latency) {
        m.latency = Some(l);
    }

    // RTO: the first fault applied → stable recovery (or, without a wait, the end of the last
    // outage the samplers saw after the fault).
    if let Some(fault_at) = m.fault_at {
        if let Some(r) = m.recovery.as_ref().filter(|r| r.recovered_at.is_some()) {
            let rec = r.recovered_at.unwrap_or(fault_at);
            // The samplers usually poll faster than the wait: when one of their outages ends
            // inside the wait's window of uncertainty, that edge is the sharper estimate.
            let sharper = sharper_edge(&down, fault_at, r);
            match sharper {
                Some(end) => {
                    m.rto_seconds = Some(end.since(fault_at).max(0.0));
                    m.rto_source = Some("wait-recovery, edge from watch samples".into());
                }
                None => {
                    m.rto_seconds = Some(rec.since(fault_at).max(0.0));
                    m.rto_source = Some("wait-recovery".into());
                }
            }
        } else if m.recovery.as_ref().and_then(|r| r.recovered) != Some(false) {
            if let Some((_, end)) = down.iter().rfind(|(_, b)| *b > fault_at) {
                if samples.last().is_some_and(|(_, s)| s.ok) {
                    m.rto_seconds = Some(end.since(fault_at).max(0.0));
                    m.rto_source = Some("watch".into());
                }
            }
        }
        let first_fail = samples
            .iter()
            .find(|(_, s)| !s.ok && s.t >= fault_at)
            .map(|(_, s)| s.t);
        let first_probe_fail = events
            .iter()
            .find(|e| e.ts >= fault_at && matches!(&e.kind, Kind::ProbeChanged { ok: false, .. }))
            .map(|e| e.ts);
        m.detect_seconds = [first_fail, first_probe_fail]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.since(fault_at));
    }

    m.rpo = crate::canary::rpo(events, m.fault_at);
    if !regions.is_empty() {
        for (r, ids) in regions.iter_mut() {
            ids.extend(
                engine_of
                    .iter()
                    .filter(|(_, en)| *en == r.engine)
                    .map(|(id, _)| id.clone()),
            );
        }
        m.regions = regions
            .iter()
            .map(|(r, ids)| region_row(&m, r, ids, &down))
            .collect();
        m.switches = switches(&m, events, &samples, &down);
    }

    judge(&mut m, &objectives);
    m.verdict = match (&m.aborted, m.passed) {
        (Some(_), _) => "aborted",
        (None, true) => "passed",
        (None, false) => "failed",
    }
    .into();
    if let Some((defect, expected, catch)) = control {
        negative_control(&mut m, defect, expected, &catch);
    }
    m
}

/// The end of a sampler outage after `after` that lies inside a wait's window of uncertainty
/// around its `recovered_at`: the samplers usually poll faster than the wait, so that edge is
/// the sharper estimate of when the system came back.
fn sharper_edge(down: &[(Ts, Ts)], after: Ts, w: &Recovery) -> Option<Ts> {
    let rec = w.recovered_at?;
    let slack = w.uncertainty_s + 0.1;
    down.iter()
        .map(|(_, end)| *end)
        .rfind(|end| *end > after && end.since(rec).abs() <= slack)
}

/// The wait the recovery events go to: the recovery, or a scenario's verify.
fn wait_of(m: &mut Measurement, verify: bool) -> Option<&mut Recovery> {
    if verify {
        m.verify.as_mut()
    } else {
        m.recovery.as_mut()
    }
}

/// One region's row: its faults' times and when a wait asking its probes passed.
fn region_row(
    m: &Measurement,
    r: &crate::journal::Region,
    ids: &[String],
    down: &[(Ts, Ts)],
) -> RegionRow {
    let mine: Vec<&FaultRow> = m.faults.iter().filter(|f| ids.contains(&f.id)).collect();
    let cut_at = mine.iter().filter_map(|f| f.applied_at).min();
    let restored_at = if cut_at.is_some()
        && mine
            .iter()
            .all(|f| f.applied_at.is_none() || f.reverted_at.is_some())
    {
        mine.iter().filter_map(|f| f.reverted_at).max()
    } else {
        None
    };
    let asks = |w: &&Recovery| w.probes.iter().any(|p| r.probes.contains(p));
    let waits: Vec<&Recovery> = [m.recovery.as_ref(), m.verify.as_ref()]
        .into_iter()
        .flatten()
        .filter(asks)
        .collect();
    // A region that was cut serves again after its restore; one that was not takes over after
    // the drill's first fault.
    let base = match cut_at {
        Some(_) => restored_at,
        None => m.fault_at,
    };
    let serving_at = base.and_then(|b| {
        waits
            .iter()
            .filter(|w| w.recovered_at.is_some_and(|t| t >= b))
            .map(|w| sharper_edge(down, b, w).or(w.recovered_at))
            .next()
            .flatten()
    });
    let role = match (cut_at, restored_at, serving_at) {
        (Some(_), Some(_), Some(_)) => "cut, then served again",
        (Some(_), None, _) => "cut, never restored",
        (Some(_), Some(_), None) if waits.is_empty() => "cut, then restored (no probe asks it)",
        (Some(_), Some(_), None) => "cut, restored, not seen serving",
        (None, _, Some(_)) => "took over",
        (None, _, None) if waits.is_empty() => "no probe asks it",
        (None, _, None) => "not seen serving",
    };
    RegionRow {
        name: r.name.clone(),
        engine: r.engine.describe(),
        steps: r.steps.clone(),
        faults: mine.iter().map(|f| f.id.clone()).collect(),
        cut_at,
        restored_at,
        down_seconds: cut_at.zip(restored_at).map(|(a, b)| b.since(a)),
        serving_at,
        recovery_seconds: base.zip(serving_at).map(|(b, s)| s.since(b).max(0.0)),
        role: role.into(),
    }
}

/// The failover window (first fault → recovery's end) and the failback window (the first
/// restore step or revert after recovery → verify's end), with what the samplers saw in each.
fn switches(
    m: &Measurement,
    events: &[&Event],
    samples: &[(usize, crate::journal::Sample)],
    down: &[(Ts, Ts)],
) -> Vec<SwitchRow> {
    let row = |name: &str, from: Ts, to: Ts| {
        let inside: Vec<&crate::journal::Sample> = samples
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.t >= from && s.t <= to)
            .collect();
        let failed = inside.iter().filter(|s| !s.ok).count() as u64;
        let downtime: f64 = down
            .iter()
            .map(|(a, b)| (*a.max(&from), *b.min(&to)))
            .filter(|(a, b)| b > a)
            .map(|(a, b)| b.since(a))
            .sum();
        SwitchRow {
            name: name.into(),
            from,
            to,
            seconds: to.since(from),
            samples: inside.len() as u64,
            failed_samples: failed,
            error_rate: (!inside.is_empty()).then(|| failed as f64 / inside.len() as f64),
            downtime_seconds: downtime,
        }
    };
    let mut out = Vec::new();
    let Some(fault_at) = m.fault_at else {
        return out;
    };
    let Some(rec_end) = m.recovery.as_ref().and_then(|r| r.finished_at) else {
        return out;
    };
    out.push(row("failover", fault_at, rec_end));
    let back_from = events
        .iter()
        .filter(|e| e.ts >= rec_end)
        .find(|e| {
            matches!(
                e.kind,
                Kind::PhaseStarted { .. } | Kind::FaultReverted { .. }
            )
        })
        .map(|e| e.ts);
    let back_to = m.verify.as_ref().and_then(|v| v.finished_at);
    if let (Some(from), Some(to)) = (back_from, back_to) {
        out.push(row("failback", from, to));
    }
    out
}

/// A negative control passes when the drill failed with the expected finding, and only then.
fn negative_control(m: &mut Measurement, defect: String, expected: String, catch: &str) {
    let timed_out =
        m.aborted.is_none() && m.recovery.as_ref().and_then(|r| r.recovered) == Some(false);
    let not_recovered = || -> Vec<String> {
        m.problems
            .iter()
            .filter(|p| p.starts_with("not recovered within"))
            .cloned()
            .collect()
    };
    let (caught, found) = match catch {
        crate::negative::RECOVERY_TIMEOUT => (timed_out, not_recovered()),
        // The last wait gave up while a fault was still in place (reverted only afterwards, by
        // the runner's safety net, or never).
        crate::negative::FAULT_LEFT_OPEN => {
            // The last wait: `verify:` after the restore when the scenario has one.
            let last = m.verify.as_ref().or(m.recovery.as_ref());
            let last_timed_out =
                m.aborted.is_none() && last.and_then(|r| r.recovered) == Some(false);
            let gave_up = last.and_then(|r| r.finished_at);
            let open: Vec<String> = match gave_up {
                Some(at) if last_timed_out => m
                    .faults
                    .iter()
                    .filter(|f| f.applied_at.is_some_and(|a| a <= at))
                    .filter(|f| !f.recovered_by_itself && f.reverted_at.is_none_or(|r| r > at))
                    .map(|f| {
                        format!(
                            "fault {} ({} {}) was still in place when the wait gave up",
                            f.id, f.action, f.target
                        )
                    })
                    .collect(),
                _ => vec![],
            };
            let mut found: Vec<String> = m
                .problems
                .iter()
                .filter(|p| {
                    p.starts_with("not recovered within") || p.starts_with("verify did not pass")
                })
                .cloned()
                .collect();
            found.extend(open.iter().cloned());
            (!open.is_empty(), found)
        }
        // The backup's verification reported the damaged copy: an integrity check failed.
        crate::negative::BACKUP_DAMAGED => {
            let damaged: Vec<String> = m
                .backups
                .iter()
                .filter(|b| !b.ok && !b.warning && integrity_check(&b.check, &b.detail))
                .map(|b| format!("verify-backup {} check failed: {}", b.check, b.detail))
                .collect();
            (!damaged.is_empty(), damaged)
        }
        _ => (false, vec![]),
    };
    let findings = if caught {
        found
    } else {
        let mut why = vec![format!(
            "the planted defect was not caught: expected {expected}; the drill ended {}",
            m.verdict
        )];
        why.extend(m.problems.iter().cloned());
        why
    };
    m.passed = caught;
    m.verdict = if caught { "caught" } else { "missed" }.into();
    m.problems = if caught { vec![] } else { findings.clone() };
    m.negative_control = Some(NegativeControl {
        defect,
        expected,
        caught,
        findings,
        proven_on: caught
            .then(|| m.finished_at.map(|t| t.0.format("%Y-%m-%d").to_string()))
            .flatten(),
    });
}

/// Whether a failed backup check is about the bytes (a checksum, a CRC, the manifest, the
/// compressed stream) rather than, say, a restore that could not connect.
fn integrity_check(check: &str, detail: &str) -> bool {
    const CHECKS: [&str; 8] = [
        "checksum", "gzip", "zstd", "lz4", "manifest", "files", "wal", "format",
    ];
    let d = detail.to_ascii_lowercase();
    let kind = check.split(':').next().unwrap_or(check);
    CHECKS.contains(&kind)
        || ["checksum", "crc", "mismatch", "sha-256", "sha256", "digest"]
            .iter()
            .any(|w| d.contains(w))
}

/// Intervals during which one sampler saw failures; each edge is placed midway between the
/// last sample of one state and the first of the other (the best estimate at that resolution).
pub fn down_intervals(samples: &[&crate::journal::Sample]) -> Vec<(Ts, Ts)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < samples.len() {
        if samples[i].ok {
            i += 1;
            continue;
        }
        let first_bad = i;
        while i < samples.len() && !samples[i].ok {
            i += 1;
        }
        let last_bad = i - 1;
        let start = match first_bad.checked_sub(1) {
            Some(p) => mid(samples[p].t, samples[first_bad].t),
            None => samples[first_bad].t,
        };
        let end = match samples.get(i) {
            Some(next) => mid(samples[last_bad].t, next.t),
            None => samples[last_bad].t,
        };
        out.push((start, end));
    }
    out
}

fn mid(a: Ts, b: Ts) -> Ts {
    a.plus_secs(b.since(a) / 2.0)
}

fn union(mut v: Vec<(Ts, Ts)>) -> Vec<(Ts, Ts)> {
    v.sort();
    let mut out: Vec<(Ts, Ts)> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn judge(m: &mut Measurement, o: &Objectives) {
    let mut problems = Vec::new();
    if let Some(a) = &m.aborted {
        problems.push(format!(
            "aborted: stop condition '{}' tripped ({})",
            a.condition, a.value
        ));
    }
    if let Some(target) = o.rto_s {
        let name = format!("RTO ≤ {}", fmt_target(target));
        let (achieved, passed) =
            match (m.rto_seconds, m.recovery.as_ref().and_then(|r| r.recovered)) {
                (Some(rto), _) => (fmt_duration(rto), rto <= target),
                (None, Some(false)) => ("not recovered".to_string(), false),
                (None, _) if m.fault_at.is_none() => ("no fault applied".to_string(), false),
                (None, _) => ("not measured".to_string(), false),
            };
        if !passed {
            problems.push(format!("{name} missed: {achieved}"));
        }
        m.objectives.push(ObjectiveRow {
            name,
            target: fmt_duration(target),
            achieved,
            passed,
        });
    }
    if let Some(target) = o.rpo_s {
        let name = format!("RPO ≤ {}", fmt_target(target));
        let (achieved, passed) = match &m.rpo {
            Some(r) if r.verified => (
                format!(
                    "{} ({} of {} acknowledged writes lost)",
                    fmt_duration(r.rpo_seconds),
                    r.lost_writes,
                    r.acknowledged
                ),
                r.rpo_seconds <= target && (target > 0.0 || r.lost_writes == 0),
            ),
            Some(_) => ("canary could not verify its writes".to_string(), false),
            None => ("not measured (no canary ran)".to_string(), false),
        };
        if !passed {
            problems.push(format!("{name} missed: {achieved}"));
        }
        m.objectives.push(ObjectiveRow {
            name,
            target: fmt_duration(target),
            achieved,
            passed,
        });
    }
    if let Some(target) = o.max_error_rate {
        let name = format!("error rate ≤ {}", Ratio(target));
        let (achieved, passed) = match m.error_rate {
            Some(r) => (
                format!(
                    "{} ({} of {} requests)",
                    Ratio(r),
                    m.failed_samples,
                    m.samples
                ),
                r <= target,
            ),
            None => ("not measured (no watch samples)".to_string(), false),
        };
        if !passed {
            problems.push(format!("{name} missed: {achieved}"));
        }
        m.objectives.push(ObjectiveRow {
            name,
            target: Ratio(target).to_string(),
            achieved,
            passed,
        });
    }
    if let Some(target) = o.max_latency_s {
        let name = format!("p99 latency ≤ {}", fmt_target(target));
        let (achieved, passed) = match m.latency.filter(|l| l.count > 0 && m.samples > 0) {
            Some(l) => (fmt_duration(l.p99 / 1000.0), l.p99 / 1000.0 <= target),
            None => ("not measured (no watch samples)".to_string(), false),
        };
        if !passed {
            problems.push(format!("{name} missed: {achieved}"));
        }
        m.objectives.push(ObjectiveRow {
            name,
            target: fmt_duration(target),
            achieved,
            passed,
        });
    }
    if let Some(r) = &m.recovery {
        if r.recovered == Some(false) {
            let why: Vec<String> = r
                .failures
                .iter()
                .map(|(p, e)| format!("{p}: {e}"))
                .collect();
            problems.push(format!(
                "not recovered within {} ({})",
                fmt_duration(r.timeout_s),
                why.join("; ")
            ));
        } else if r.recovered.is_none() && m.aborted.is_none() {
            problems.push("recovery wait did not finish".into());
        }
    }
    if let Some(v) = &m.verify {
        if v.recovered == Some(false) {
            let why: Vec<String> = v
                .failures
                .iter()
                .map(|(p, e)| format!("{p}: {e}"))
                .collect();
            problems.push(format!(
                "verify did not pass within {} ({})",
                fmt_duration(v.timeout_s),
                why.join("; ")
            ));
        } else if v.recovered.is_none() && m.aborted.is_none() {
            problems.push("verify wait did not finish".into());
        }
    }
    for f in &m.faults {
        if let Some(e) = &f.error {
            problems.push(format!("fault {} {} {}: {e}", f.id, f.action, f.target));
        } else if f.open() {
            problems.push(format!(
                "fault {} {} {} still open: not reverted and not seen recovered (run `inject-fault revert`)",
                f.id, f.action, f.target
            ));
        }
    }
    for p in m.phases.iter().filter(|p| !p.planned) {
        match p.ok {
            Some(false) => problems.push(format!(
                "phase {} failed{}",
                p.name,
                p.detail
                    .as_ref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            )),
            None => problems.push(format!("phase {} did not finish", p.name)),
            Some(true) => {}
        }
    }
    for b in m.backups.iter().filter(|b| !b.ok && !b.warning) {
        problems.push(format!(
            "backup {} failed {}: {}",
            b.file, b.check, b.detail
        ));
    }
    if let Some(outcome) = &m.outcome {
        if outcome == "interrupted" {
            problems.push("drill interrupted".into());
        }
        if outcome == "error" {
            let why = m
                .notes
                .iter()
                .rev()
                .find_map(|n| n.strip_prefix(STOPPED_NOTE))
                .unwrap_or("the drill stopped with an error")
                .to_string();
            problems.push(format!("drill stopped: {why}"));
            m.error = Some(why);
        }
    }
    m.passed = problems.is_empty();
    m.problems = problems;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Event, Sample};

    fn t0() -> Ts {
        Ts(chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("time"))
    }
    fn at(s: f64) -> Ts {
        t0().plus_secs(s)
    }
    fn ev(s: f64, kind: Kind) -> Event {
        Event {
            ts: at(s),
            drill: "d".into(),
            by: "test".into(),
            kind,
        }
    }
    fn sample(s: f64, ok: bool) -> Sample {
        Sample {
            t: at(s),
            ok,
            ms: 2.0,
            err: (!ok).then(|| "refused".into()),
        }
    }

    fn drill(rto_s: f64, samples: Vec<Sample>, recovered_at: Option<f64>) -> Vec<Event> {
        let mut v = vec![
            ev(
                0.0,
                Kind::DrillStarted {
                    name: "api".into(),
                    scenario: None,
                    environment: None,
                    objectives: Objectives {
                        rto_s: Some(rto_s),
                        rpo_s: None,
                        max_error_rate: Some(0.5),
                        max_latency_s: None,
                    },
                    roles: vec![],
                },
            ),
            ev(
                1.0,
                Kind::FaultPlanned {
                    id: "f1".into(),
                    action: "crash".into(),
                    target: "c".into(),
                    undo: Undo::Nothing { reason: "x".into() },
                    duration_s: None,
                    deadline: None,
                    engine: None,
                },
            ),
            ev(
                1.0,
                Kind::FaultApplied {
                    id: "f1".into(),
                    before: None,
                },
            ),
            ev(
                1.0,
                Kind::FaultReverted {
                    id: "f1".into(),
                    how: "nothing to undo".into(),
                },
            ),
            ev(
                1.0,
                Kind::RecoveryStarted {
                    probes: vec!["http".into()],
                    consecutive: 3,
                    timeout_s: 60.0,
                    verify: false,
                },
            ),
            ev(
                9.0,
                Kind::Samples {
                    source: "http".into(),
                    samples,
                },
            ),
        ];
        if let Some(r) = recovered_at {
            v.push(ev(
                r + 0.5,
                Kind::RecoveryStable {
                    recovered_at: at(r),
                    uncertainty_s: 0.0,
                    latency: Latency::default(),
                },
            ));
        } else {
            v.push(ev(
                61.0,
                Kind::RecoveryTimeout {
                    failures: vec![crate::journal::ProbeFailure {
                        probe: "http".into(),
                        error: "refused".into(),
                    }],
                    latency: Latency::default(),
                },
            ));
        }
        v
    }

    /// Two regions: `primary` (the fault, then the verify probe) and `dr` (the recovery probe).
    /// Samples every 0.1 s from 0 to 12: down from 1.1 to 2.0 (the failover), up after.
    fn two_regions() -> Vec<Event> {
        let engine = |h: &str| crate::docker::Engine {
            host: h.into(),
            ..crate::docker::Engine::local()
        };
        let wait = |s: f64, probe: &str, verify: bool| {
            ev(
                s,
                Kind::RecoveryStarted {
                    probes: vec![probe.into(), "http".into()],
                    consecutive: 3,
                    timeout_s: 30.0,
                    verify,
                },
            )
        };
        let stable = |s: f64, rec: f64| {
            ev(
                s,
                Kind::RecoveryStable {
                    recovered_at: at(rec),
                    uncertainty_s: 0.5,
                    latency: Latency::default(),
                },
            )
        };
        let region = |name: &str, host: &str, probe: &str| crate::journal::Region {
            name: name.into(),
            engine: engine(host),
            steps: vec![format!("probe: {probe}")],
            probes: vec![probe.into()],
        };
        let samples: Vec<Sample> = (0..=120)
            .map(|i| i as f64 / 10.0)
            .map(|t| sample(t, !(1.05..=2.0).contains(&t)))
            .collect();
        vec![
            ev(
                0.0,
                Kind::Regions {
                    regions: vec![
                        region("dr", "tcp://dr:2376", "docker api running on dr"),
                        region("primary", "unix:///p.sock", "docker api running on primary"),
                    ],
                },
            ),
            ev(
                1.0,
                Kind::FaultPlanned {
                    id: "f1".into(),
                    action: "stop".into(),
                    target: "container api".into(),
                    undo: Undo::Nothing { reason: "x".into() },
                    duration_s: None,
                    deadline: None,
                    engine: Some(Box::new(engine("unix:///p.sock"))),
                },
            ),
            ev(
                1.0,
                Kind::FaultApplied {
                    id: "f1".into(),
                    before: None,
                },
            ),
            wait(1.0, "docker api running on dr", false),
            stable(4.0, 2.2),
            ev(
                6.0,
                Kind::PhaseStarted {
                    name: "primary region back".into(),
                },
            ),
            ev(
                6.5,
                Kind::FaultReverted {
                    id: "f1".into(),
                    how: "started".into(),
                },
            ),
            wait(7.0, "docker api running on primary", true),
            stable(9.0, 7.5),
            ev(
                12.0,
                Kind::Samples {
                    source: "http".into(),
                    samples,
                },
            ),
        ]
    }

    #[test]
    fn regions_and_switches_come_from_the_journal() {
        let events = two_regions();
        let refs: Vec<&Event> = events.iter().collect();
        let m = measure("d", &refs, &Objectives::default());
        // The verify wait is measured apart; the RTO ends at recovery (sharpened to the
        // samplers' edge at 2.05), not at verify.
        assert_eq!(m.verify.as_ref().and_then(|v| v.recovered), Some(true));
        let rto = m.rto_seconds.expect("rto");
        assert!((rto - 1.05).abs() < 1e-6, "{rto}");
        let (dr, p) = (&m.regions[0], &m.regions[1]);
        assert_eq!((dr.name.as_str(), dr.role.as_str()), ("dr", "took over"));
        assert!(dr.faults.is_empty() && dr.cut_at.is_none());
        assert!(
            (dr.recovery_seconds.expect("dr") - 1.05).abs() < 1e-6,
            "{dr:?}"
        );
        assert_eq!(p.role, "cut, then served again");
        assert_eq!(p.faults, ["f1"]);
        assert_eq!((p.cut_at, p.restored_at), (Some(at(1.0)), Some(at(6.5))));
        assert!((p.down_seconds.expect("down") - 5.5).abs() < 1e-6);
        // No sampler outage near verify: its own estimate (7.5), from the restore at 6.5.
        assert!((p.recovery_seconds.expect("p") - 1.0).abs() < 1e-6, "{p:?}");
        let (fo, fb) = (&m.switches[0], &m.switches[1]);
        assert_eq!(
            (fo.name.as_str(), fb.name.as_str()),
            ("failover", "failback")
        );
        // Failover 1.0..4.0: samples 1.0..=4.0 (31), of which 1.1..=2.0 failed (10).
        assert_eq!((fo.samples, fo.failed_samples), (31, 10));
        assert!((fo.seconds - 3.0).abs() < 1e-6);
        assert!((fo.downtime_seconds - 1.0).abs() < 1e-6, "{fo:?}");
        // Failback from the first restore step (6.0) to verify's end (9.0): nothing failed.
        assert_eq!((fb.from, fb.to), (at(6.0), at(9.0)));
        assert_eq!((fb.samples, fb.failed_samples), (31, 0));
        assert_eq!(fb.error_rate, Some(0.0));
        // Without a `regions` event there are none (a drill on one engine).
        let one: Vec<&Event> = events.iter().skip(1).collect();
        let m = measure("d", &one, &Objectives::default());
        assert!(m.regions.is_empty() && m.switches.is_empty());
    }

    #[test]
    fn rto_downtime_and_error_rate_come_from_the_journal() {
        // Up every 0.1s until 1.05, down from 1.1 to 4.0, up again from 4.1 to 8.0.
        let samples: Vec<Sample> = (0..=80)
            .map(|i| i as f64 / 10.0)
            .map(|t| sample(t, !(1.1..=4.05).contains(&t)))
            .collect();
        let events = drill(5.0, samples, Some(4.05));
        let refs: Vec<&Event> = events.iter().collect();
        let m = measure("d", &refs, &Objectives::default());
        assert!(
            (m.rto_seconds.expect("rto") - 3.05).abs() < 1e-6,
            "{:?}",
            m.rto_seconds
        );
        assert_eq!(
            m.rto_source.as_deref(),
            Some("wait-recovery, edge from watch samples")
        );
        // Edges at midpoints 1.05 and 4.05 → 3.0 s down.
        assert!(
            (m.downtime_seconds.expect("downtime") - 3.0).abs() < 1e-6,
            "{:?}",
            m.downtime_seconds
        );
        assert_eq!(m.failed_samples, 30);
        assert!((m.detect_seconds.expect("detect") - 0.1).abs() < 1e-6);
        assert!(m.passed, "{:?}", m.problems);
        assert_eq!(m.objectives[0].name, "RTO ≤ 5s");
    }

    #[test]
    fn a_missed_rto_and_a_timeout_fail_the_drill() {
        let samples = vec![sample(0.5, true), sample(2.0, false)];
        let events = drill(5.0, samples.clone(), Some(8.0));
        let refs: Vec<&Event> = events.iter().collect();
        let m = measure("d", &refs, &Objectives::default());
        assert!(!m.passed);
        assert_eq!(m.objectives[0].achieved, "7.00s");
        let events = drill(5.0, samples, None);
        let refs: Vec<&Event> = events.iter().collect();
        let m = measure("d", &refs, &Objectives::default());
        assert!(!m.passed);
        assert_eq!(m.objectives[0].achieved, "not recovered");
        assert!(
            m.problems
                .iter()
                .any(|p| p.contains("not recovered within 1m 00s")),
            "{:?}",
            m.problems
        );
    }

    #[test]
    fn overlapping_outages_of_two_samplers_count_once() {
        let a = [sample(0.0, true), sample(1.0, false), sample(3.0, true)];
        let b = [sample(0.0, true), sample(2.0, false), sample(4.0, true)];
        let mut all = down_intervals(&a.iter().collect::<Vec<_>>());
        all.extend(down_intervals(&b.iter().collect::<Vec<_>>()));
        let u = union(all);
        assert_eq!(u, vec![(at(0.5), at(3.0))]);
    }
}
