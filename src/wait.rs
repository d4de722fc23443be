//! Waiting for recovery: ask every probe each interval until all pass N times in a row, or the
//! timeout. The observer hears when a probe changes state (not every poll); first and stable
//! success go to the journal.

use crate::journal::{Journal, Kind, Latency, ProbeFailure, Ts};
use crate::probe::Probe;
use crate::progress::{Observer, Progress};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Defaults of a recovery wait, for `wait-recovery` flags and scenario `recovery:` alike.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);
pub const DEFAULT_CONSECUTIVE: u32 = 3;
/// Per-request timeout of each probe.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub struct Config {
    pub timeout: Duration,
    pub interval: Duration,
    pub consecutive: u32,
    /// Per-request timeout of each probe.
    pub request_timeout: Duration,
    /// A scenario's `verify:` wait (recorded as such; never the end of the RTO).
    pub verify: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Recovered {
        recovered_at: Ts,
        waited_s: f64,
    },
    TimedOut {
        failures: Vec<ProbeFailure>,
    },
    Interrupted,
    /// A stop condition tripped (`drill_aborted` in the journal, from this process or another):
    /// waiting on is pointless, the faults are being reverted.
    Aborted(crate::guard::Trip),
}

pub async fn wait(
    probes: &[Probe],
    cfg: &Config,
    journal: &Journal,
    cancel: &CancellationToken,
    obs: &dyn Observer,
) -> std::io::Result<Outcome> {
    let names: Vec<String> = probes.iter().map(|p| p.describe()).collect();
    journal.append(Kind::RecoveryStarted {
        probes: names.clone(),
        consecutive: cfg.consecutive,
        timeout_s: cfg.timeout.as_secs_f64(),
        verify: cfg.verify,
    })?;
    let started = Ts::now();
    let deadline = tokio::time::Instant::now() + cfg.timeout;
    let mut ticker = tokio::time::interval(cfg.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Vec<Option<(bool, String)>> = vec![None; probes.len()];
    let mut latencies: Vec<f64> = Vec::new();
    let mut streak = 0u32;
    let mut streak_start: Option<(Ts, f64)> = None;
    let mut last_failing_round: Option<Ts> = None;
    let mut first_success_seen = false;
    let mut aborts = crate::guard::AbortWatch::new(journal);
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Ok(Outcome::Interrupted),
            t = aborts.tripped() => return Ok(Outcome::Aborted(t)),
            _ = ticker.tick() => {}
        }
        let round = Ts::now();
        let outcomes = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Ok(Outcome::Interrupted),
            t = aborts.tripped() => return Ok(Outcome::Aborted(t)),
            o = futures_util::future::join_all(probes.iter().map(|p| p.check(cfg.request_timeout))) => o,
        };
        for (i, o) in outcomes.iter().enumerate() {
            latencies.push(o.latency.as_secs_f64() * 1000.0);
            let changed = last[i].as_ref().is_none_or(|(ok, _)| *ok != o.ok);
            if changed {
                obs.progress(Progress::ProbeChanged {
                    elapsed_s: round.since(started),
                    ok: o.ok,
                    probe: names[i].clone(),
                    detail: o.detail.clone(),
                    latency_s: o.latency.as_secs_f64(),
                });
                journal.append(Kind::ProbeChanged {
                    probe: names[i].clone(),
                    ok: o.ok,
                    detail: o.detail.clone(),
                    ms: o.latency.as_secs_f64() * 1000.0,
                })?;
            }
            last[i] = Some((o.ok, o.detail.clone()));
        }
        if outcomes.iter().all(|o| o.ok) {
            if streak == 0 {
                streak_start = Some(match last_failing_round {
                    Some(f) => (f.plus_secs(round.since(f) / 2.0), round.since(f) / 2.0),
                    None => (round, 0.0),
                });
                if !first_success_seen {
                    first_success_seen = true;
                    journal.append(Kind::RecoveryFirstSuccess {})?;
                }
            }
            streak += 1;
            if streak >= cfg.consecutive {
                let (recovered_at, uncertainty_s) = streak_start.unwrap_or((round, 0.0));
                journal.append(Kind::RecoveryStable {
                    recovered_at,
                    uncertainty_s,
                    latency: Latency::of(&mut latencies),
                })?;
                close_self_healed(journal, obs).await;
                return Ok(Outcome::Recovered {
                    recovered_at,
                    waited_s: recovered_at.since(started),
                });
            }
        } else {
            streak = 0;
            last_failing_round = Some(round);
        }
        if tokio::time::Instant::now() >= deadline {
            let failures: Vec<ProbeFailure> = last
                .iter()
                .zip(&names)
                .filter_map(|(l, n)| match l {
                    Some((false, d)) => Some(ProbeFailure {
                        probe: n.clone(),
                        error: d.clone(),
                    }),
                    _ => None,
                })
                .collect();
            journal.append(Kind::RecoveryTimeout {
                failures: failures.clone(),
                latency: Latency::of(&mut latencies),
            })?;
            return Ok(Outcome::TimedOut { failures });
        }
    }
}

/// Once the system is back, a crashed container that its restart policy brought back is no
/// longer a fault in place: close it in the journal (see [`crate::faults::close_recovered`]), so
/// a composed workflow and `drill run` report the same. A Docker engine that cannot be asked
/// leaves the crash open; the revert step closes it then.
async fn close_self_healed(journal: &Journal, obs: &dyn Observer) {
    match crate::faults::close_recovered(journal, None).await {
        Ok(closed) => {
            for (f, how) in closed {
                obs.progress(Progress::SelfHealed {
                    id: f.id,
                    action: f.action,
                    target: f.target,
                    how,
                });
            }
        }
        Err(e) => tracing::warn!("could not check whether crashed containers are back: {e}"),
    }
}
