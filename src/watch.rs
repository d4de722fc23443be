//! The background sampler (`measure-rto watch`): asks one probe at a fixed interval, as users
//! would hit the service, until stopped. Requests overlap rather than queue, so a hanging request
//! does not stall the sampling clock; samples go to the journal in batches, not one fsync each.

use crate::journal::{Journal, Kind, Sample, Ts};
use crate::probe::Probe;
use crate::progress::{Observer, Progress};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a watch sampler asks, when not told (`measure-rto watch`, scenario `watch:`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(50);
/// Per-request timeout of a watch sample.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// How often collected samples are appended to the journal.
const FLUSH_EVERY: Duration = Duration::from_millis(500);

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub samples: u64,
    pub failed: u64,
}

pub async fn watch(
    probe: Probe,
    interval: Duration,
    request_timeout: Duration,
    journal: &Journal,
    cancel: &CancellationToken,
    obs: &dyn Observer,
) -> std::io::Result<Summary> {
    let source = probe.describe();
    journal.append(Kind::WatchStarted {
        source: source.clone(),
        interval_ms: interval.as_millis() as u64,
    })?;
    let probe = Arc::new(probe);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Sample>();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending: Vec<Sample> = Vec::new();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut summary = Summary::default();
    let mut state: Option<bool> = None;
    let started = Ts::now();
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {
                let p = probe.clone();
                let tx = tx.clone();
                in_flight.spawn(async move {
                    let t = Ts::now();
                    let o = p.check(request_timeout).await;
                    let _ = tx.send(Sample { t, ok: o.ok, ms: o.latency.as_secs_f64() * 1000.0, err: (!o.ok).then_some(o.detail) });
                });
            }
            Some(s) = rx.recv() => pending.push(s),
            _ = flush.tick() => {
                flush_samples(journal, &source, &mut pending, &mut summary, &mut state, started, obs)?;
            }
            Some(_) = in_flight.join_next() => {}
        }
    }
    // Let requests already sent finish (bounded by their timeout), then write everything.
    let _ = tokio::time::timeout(request_timeout + Duration::from_millis(300), async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    in_flight.abort_all();
    drop(tx);
    while let Ok(s) = rx.try_recv() {
        pending.push(s);
    }
    flush_samples(
        journal,
        &source,
        &mut pending,
        &mut summary,
        &mut state,
        started,
        obs,
    )?;
    journal.append(Kind::WatchStopped { source })?;
    Ok(summary)
}

/// Write the batch in send-time order, and tell the observer where the state changed. Requests
/// overlap and finish out of order, so changes are only judged after sorting.
fn flush_samples(
    journal: &Journal,
    source: &str,
    pending: &mut Vec<Sample>,
    summary: &mut Summary,
    state: &mut Option<bool>,
    started: Ts,
    obs: &dyn Observer,
) -> std::io::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    pending.sort_by_key(|s| s.t);
    for s in pending.iter() {
        if *state != Some(s.ok) {
            obs.progress(Progress::WatchChanged {
                elapsed_s: s.t.since(started),
                source: source.to_string(),
                up: s.ok,
                error: s.err.clone(),
            });
            *state = Some(s.ok);
        }
    }
    summary.samples += pending.len() as u64;
    summary.failed += pending.iter().filter(|s| !s.ok).count() as u64;
    let batch = journal.event(Kind::Samples {
        source: source.to_string(),
        samples: std::mem::take(pending),
    });
    journal.write_events(std::slice::from_ref(&batch), false)
}
