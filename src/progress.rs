//! What the library tells a person while it works. Library code does not print: it emits
//! [`Progress`] events to an [`Observer`], and `cli/` decides what they look like (a line on
//! stderr, a collapsible group under GitHub Actions). The journal stays the record of what
//! happened; these are only the live narration.

use std::sync::Arc;

/// One thing worth telling a person, as data.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// A part of a drill begins (preflight, inject faults, recovery, a restore step…); the
    /// matching [`Progress::SectionEnd`] follows.
    Section(String),
    SectionEnd,
    /// `drill run` started a drill.
    DrillStarted {
        name: String,
        id: String,
        journal: String,
    },
    /// A service the scenario runs for the drill is up.
    ServiceStarted(String),
    PreflightPassed {
        probe: String,
        detail: String,
    },
    /// A fault was applied (`step` is its plan as a person reads it).
    Injected {
        id: String,
        step: String,
    },
    /// A fault was undone.
    Reverted {
        id: String,
        action: String,
        target: String,
        how: String,
    },
    /// A fault's target recovered by itself (a crashed container is running again): closed.
    SelfHealed {
        id: String,
        action: String,
        target: String,
        how: String,
    },
    /// A fault could not be undone: it is still open.
    RevertFailed(String),
    /// A probe of a recovery wait changed state, `elapsed_s` after the wait began.
    ProbeChanged {
        elapsed_s: f64,
        ok: bool,
        probe: String,
        detail: String,
        latency_s: f64,
    },
    /// A recovery (or verify) wait ended.
    WaitEnded {
        what: String,
        recovered: bool,
        /// Seconds waited when recovered; the timeout otherwise.
        seconds: f64,
    },
    /// A background sampler saw the system go up or down.
    WatchChanged {
        elapsed_s: f64,
        source: String,
        up: bool,
        error: Option<String>,
    },
    /// A timed phase ended.
    PhaseEnded {
        name: String,
        took_s: f64,
        ok: bool,
        interrupted: bool,
        detail: Option<String>,
    },
    /// The drill body ended early (an error, a panic); cleanup follows.
    DrillStopped(String),
    /// A stop condition tripped: the drill is aborted and every open fault reverted.
    Aborted {
        condition: String,
        value: String,
    },
    /// `verify-backup` starts on a file (or a `--latest` folder, or the `--record` file).
    BackupFile(String),
    /// One check of a backup, settled (`--strict` applied).
    BackupChecked {
        file: String,
        check: crate::backup::Check,
    },
    /// A GitHub request failed and will be tried again.
    GitHubRetry {
        why: String,
        delay_s: f64,
        attempt: u32,
        attempts: u32,
    },
}

/// Receives progress. Implementations must be cheap: they run inline with the work.
pub trait Observer: Send + Sync {
    fn progress(&self, p: Progress);
}

/// An observer shared with background tasks.
pub type Sink = Arc<dyn Observer>;

/// Tells no one (library tests, callers that only want results).
pub struct Silent;

impl Observer for Silent {
    fn progress(&self, _: Progress) {}
}

/// A silent sink.
pub fn silent() -> Sink {
    Arc::new(Silent)
}

/// A section that ends when dropped, so every exit path closes it.
pub struct Section<'a>(&'a dyn Observer);

impl<'a> Section<'a> {
    pub fn start(obs: &'a dyn Observer, title: impl Into<String>) -> Section<'a> {
        obs.progress(Progress::Section(title.into()));
        Section(obs)
    }
}

impl Drop for Section<'_> {
    fn drop(&mut self) {
        self.0.progress(Progress::SectionEnd);
    }
}
