//! Faults: everything that changes a system and undoes it.
//!
//! A fault is planned (the exact calls and their undo, which `--dry-run` prints), written to the
//! journal with its undo and fsynced *before* anything is touched, applied, and reverted by
//! whatever ends the drill — or later, from the journal alone, after the injecting process was
//! SIGKILLed. While a fault is held, its injector holds a lock named after the fault
//! ([`lock`]), so `doctor` can tell a live drill's fault from a leftover.
//!
//! - [`plan`]: targets + [`Fault`] → [`Step`]s (reads, never writes)
//! - [`apply`]: the write-ahead [`Injector`]
//! - [`undo`]: [`Undo`], how each fault is taken back, and [`revert`]ing what the journal shows open
//! - [`target`]: selectors → concrete targets, and the `--max-targets` refusal
//! - [`safety`]: the production guard and required labels, one rule for every binary
//! - the kinds: containers and processes (in `apply`), [`partition`], [`degrade`], [`fill`],
//!   network namespaces ([`netns`]) and the leftovers finder [`doctor`]
//! - [`reaper`]: the dead-man's switch, a detached process per fault that undoes it at its
//!   deadline if nothing else has

mod apply;
pub mod degrade;
pub mod doctor;
mod error;
pub mod fill;
mod lock;
pub mod netns;
pub mod partition;
mod plan;
pub mod reaper;
mod revert;
pub mod safety;
pub mod target;
mod undo;

pub use apply::Injector;
pub use error::{Error, Result};
pub use lock::{is_held, lock_dir};
pub use plan::{plan, Op, Step};
pub use revert::{close_recovered, revert, revert_open, Engines, Reverted};
pub use undo::Undo;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Grace period of `stop` and `restart` before SIGKILL, when none is given.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a fault does to its target (the name a scenario's `action:` and the subcommand use).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The main process dies from outside (SIGKILL from the host), as in a real crash, so the
    /// container's restart policy (or a process supervisor) applies.
    Crash,
    /// Graceful stop: SIGTERM, then SIGKILL after the timeout.
    Stop,
    /// Send a signal (default SIGKILL) through Docker or to the process.
    Kill,
    /// Freeze (cgroup freezer for containers, SIGSTOP for processes).
    Pause,
    /// Restart the container.
    Restart,
    /// Cut a container from its Docker networks, or a host/namespace from a CIDR or HOST:PORT.
    Partition,
    /// Delay, jitter, loss, rate on a container's or a namespace's traffic.
    Degrade,
    /// Fill the filesystem holding a path or a container's mount.
    #[serde(alias = "fill-disk")]
    FillDisk,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Crash => "crash",
            Action::Stop => "stop",
            Action::Kill => "kill",
            Action::Pause => "pause",
            Action::Restart => "restart",
            Action::Partition => "partition",
            Action::Degrade => "degrade",
            Action::FillDisk => "fill-disk",
        }
    }
}

/// One fault as asked for: the action with the options that belong to it, and nothing else.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    Crash,
    Stop { timeout: Duration },
    Kill { signal: Signal },
    Pause,
    Restart { timeout: Duration },
    Partition(partition::Options),
    Degrade(degrade::Options),
    FillDisk(fill::Options),
}

impl Fault {
    pub fn action(&self) -> Action {
        match self {
            Fault::Crash => Action::Crash,
            Fault::Stop { .. } => Action::Stop,
            Fault::Kill { .. } => Action::Kill,
            Fault::Pause => Action::Pause,
            Fault::Restart { .. } => Action::Restart,
            Fault::Partition(_) => Action::Partition,
            Fault::Degrade(_) => Action::Degrade,
            Fault::FillDisk(_) => Action::FillDisk,
        }
    }

    /// A scenario's fault. `journal` is the drill's journal, whose filesystem fill-disk refuses
    /// unless allowed. The error starts with the offending key (`key: message`) so the scenario
    /// parser can point at it.
    pub fn from_spec(
        f: &crate::scenario::FaultSpec,
        journal: Option<PathBuf>,
    ) -> std::result::Result<Fault, String> {
        let timeout = f.timeout.map(|d| d.0).unwrap_or(DEFAULT_STOP_TIMEOUT);
        Ok(match f.action {
            Action::Crash => Fault::Crash,
            Action::Stop => Fault::Stop { timeout },
            Action::Restart => Fault::Restart { timeout },
            Action::Pause => Fault::Pause,
            Action::Kill => Fault::Kill {
                signal: match &f.signal {
                    Some(s) => {
                        crate::process::parse_signal(s).map_err(|e| format!("signal: {e}"))?
                    }
                    None => Signal::SIGKILL,
                },
            },
            Action::Partition => Fault::Partition(partition::Options {
                networks: f.network.clone(),
                to: f.to.clone(),
                method: match &f.method {
                    Some(m) => m.parse().map_err(|e| format!("method: {e}"))?,
                    None => partition::Method::Auto,
                },
                helper_image: f.helper_image.clone(),
            }),
            Action::Degrade => {
                let o = degrade::Options {
                    delay: f.delay.map(|d| d.0),
                    jitter: f.jitter.map(|d| d.0),
                    loss: f.loss.map(|r| r.0),
                    rate: f.rate.clone(),
                    devs: f.dev.clone(),
                    to: f.to.clone(),
                    method: match &f.method {
                        Some(m) => m.parse().map_err(|e| format!("method: {e}"))?,
                        None => degrade::Method::Auto,
                    },
                    helper_image: f.helper_image.clone(),
                };
                o.check().map_err(|(key, e)| format!("{key}: {e}"))?;
                Fault::Degrade(o)
            }
            Action::FillDisk => Fault::FillDisk(fill::Options {
                goal: match (f.leave, f.to.as_slice()) {
                    (Some(_), [_, ..]) => return Err("to: give leave or to, not both".into()),
                    (Some(l), []) => fill::Goal::Leave(l.0),
                    (None, [p]) => fill::Goal::Percent(
                        p.parse::<crate::units::Ratio>()
                            .map_err(|e| format!("to: fill-disk takes a percentage: {e}"))?
                            .0,
                    ),
                    (None, []) => fill::Goal::Leave(0),
                    (None, _) => return Err("to: fill-disk takes one percentage".into()),
                },
                mount: f.mount.clone(),
                allow_root_fs: f.allow_root_fs,
                allow_journal_fs: f.allow_journal_fs,
                journal,
            }),
        })
    }
}

/// A new fault id, `f-xxxxxxxx`: known when planned, so rules and files can carry it.
fn new_id() -> String {
    format!("f-{:08x}", rand::random::<u32>())
}

#[cfg(test)]
mod tests;
