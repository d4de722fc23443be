//! Probes: one question about the system ("does it answer?"), asked again and again by
//! `wait-recovery` and the `watch` sampler. Each kind lives in its own file.

pub mod postgres;

use std::time::Duration;

/// The answer of one probe request.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub ok: bool,
    /// What was seen: "200 OK", "PONG", "connection refused", the server's error message…
    pub detail: String,
    pub latency: Duration,
}

impl Outcome {
    pub fn pass(detail: impl Into<String>, latency: Duration) -> Outcome {
        Outcome { ok: true, detail: detail.into(), latency }
    }
    pub fn fail(detail: impl Into<String>, latency: Duration) -> Outcome {
        Outcome { ok: false, detail: detail.into(), latency }
    }
}
