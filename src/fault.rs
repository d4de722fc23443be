//! Faults: apply one action to one target, with the undo written to the journal (and fsynced)
//! *before* anything is touched, and revert whatever the journal shows as still open — also
//! after the injecting process was SIGKILLed.

use crate::exit::Failure;
use crate::journal::{Journal, Kind, OpenFault, Undo};
use crate::target::{short, Target};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a fault does to its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Crash => "crash",
            Action::Stop => "stop",
            Action::Kill => "kill",
            Action::Pause => "pause",
            Action::Restart => "restart",
        }
    }
}

/// How to apply an action.
#[derive(Clone, Debug)]
pub struct Options {
    pub action: Action,
    /// For `kill`: the signal (default SIGKILL).
    pub signal: Option<Signal>,
    /// For `stop`/`restart`: grace period before SIGKILL.
    pub stop_timeout: Duration,
    /// Recorded with the fault so readers know it was meant to be held this long.
    pub duration: Option<Duration>,
}

/// One step of a plan: what would be done and how it would be undone.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub target: Target,
    pub action: Action,
    /// The exact API call or syscall.
    pub call: String,
    pub undo: Undo,
}

impl Step {
    pub fn describe(&self) -> String {
        format!(
            "{} {}: {} (undo: {})",
            self.action.as_str(),
            self.target.describe(),
            self.call,
            describe_undo(&self.undo)
        )
    }
}

pub fn describe_undo(u: &Undo) -> String {
    match u {
        Undo::Nothing { reason } => format!("nothing: {reason}"),
        Undo::DockerStart { name, id } => format!(
            "POST /containers/{}/start if {name} is not running",
            short(id)
        ),
        Undo::DockerUnpause { name, id } => {
            format!("POST /containers/{}/unpause if {name} is paused", short(id))
        }
        Undo::ProcessContinue { pid, .. } => format!("SIGCONT to pid {pid}"),
        Undo::Manual { hint } => format!("manual: {hint}"),
    }
}

/// Work out the exact call and undo for each target. Touches nothing.
pub fn plan(targets: &[Target], opts: &Options) -> Result<Vec<Step>, Failure> {
    targets.iter().map(|t| plan_one(t, opts)).collect()
}

fn plan_one(target: &Target, opts: &Options) -> Result<Step, Failure> {
    let t = opts.stop_timeout.as_secs();
    let (call, undo) = match target {
        Target::Container { id, name } => {
            let start = Undo::DockerStart {
                id: id.clone(),
                name: name.clone(),
            };
            let s = short(id);
            match opts.action {
                Action::Crash => (
                    format!("kill(<State.Pid of {s}>, SIGKILL) from the host"),
                    start,
                ),
                Action::Stop => (format!("POST /containers/{s}/stop?t={t}"), start),
                Action::Kill => {
                    let sig = opts.signal.unwrap_or(Signal::SIGKILL);
                    (format!("POST /containers/{s}/kill?signal={sig}"), start)
                }
                Action::Pause => (
                    format!("POST /containers/{s}/pause"),
                    Undo::DockerUnpause {
                        id: id.clone(),
                        name: name.clone(),
                    },
                ),
                Action::Restart => (format!("POST /containers/{s}/restart?t={t}"), start),
            }
        }
        Target::Process {
            pid,
            start_time,
            name,
        } => {
            let manual = |what: &str| {
                Undo::Manual {
                hint: format!("{what} process {name} (pid {pid}) cannot be started again by a signal; the scenario's restore step or its supervisor must"),
            }
            };
            match opts.action {
                Action::Crash => (
                    format!("kill({pid}, SIGKILL)"),
                    Undo::Nothing {
                        reason: "a crash is recovered by the process supervisor".into(),
                    },
                ),
                Action::Stop => (
                    format!("kill({pid}, SIGTERM), SIGKILL after {t}s"),
                    manual("a stopped"),
                ),
                Action::Kill => {
                    let sig = opts.signal.unwrap_or(Signal::SIGKILL);
                    (format!("kill({pid}, {sig})"), manual("a killed"))
                }
                Action::Pause => (
                    format!("kill({pid}, SIGSTOP)"),
                    Undo::ProcessContinue {
                        pid: *pid,
                        start_time: *start_time,
                    },
                ),
                Action::Restart => {
                    return Err(Failure::bad_input(anyhow::anyhow!(
                        "restart applies to containers; for a process use stop and a restore step"
                    )))
                }
            }
        }
    };
    Ok(Step {
        target: target.clone(),
        action: opts.action,
        call,
        undo,
    })
}

/// Applies planned steps, journal first.
pub struct Injector<'a> {
    pub journal: &'a Journal,
    pub docker: Option<&'a bollard::Docker>,
}

impl Injector<'_> {
    /// Write the plan (fsynced), apply it, record the outcome. On failure the undo is attempted at
    /// once so no half-applied fault is left, and the error is returned. Returns the fault id.
    pub async fn apply(&self, step: &Step, opts: &Options) -> Result<String, Failure> {
        let id = format!("f-{:08x}", rand::random::<u32>());
        self.journal.append_durable(Kind::FaultPlanned {
            id: id.clone(),
            action: step.action.as_str().into(),
            target: step.target.describe(),
            undo: step.undo.clone(),
            duration_s: opts.duration.map(|d| d.as_secs_f64()),
        })?;
        match self.apply_now(step, opts).await {
            Ok(()) => {
                self.journal.append(Kind::FaultApplied { id: id.clone() })?;
                // An instantaneous fault with nothing to undo (a process crash recovered by its
                // supervisor) holds nothing open: close it at once so `list` and `revert` agree.
                if let Undo::Nothing { reason } = &step.undo {
                    self.journal.append(Kind::FaultReverted { id: id.clone(), how: format!("nothing to undo ({reason})") })?;
                }
                Ok(id)
            }
            Err(e) => {
                let msg = format!("{:#}", e.error);
                self.journal.append(Kind::FaultFailed {
                    id: id.clone(),
                    error: msg,
                })?;
                let open = OpenFault {
                    id: id.clone(),
                    drill: self.journal.drill_id().into(),
                    action: step.action.as_str().into(),
                    target: step.target.describe(),
                    undo: step.undo.clone(),
                    planned_at: crate::journal::Ts::now(),
                    applied: false,
                };
                // Best effort: the fault may have been half-applied.
                let _ = revert(self.journal, self.docker, &open).await;
                Err(e)
            }
        }
    }

    async fn apply_now(&self, step: &Step, opts: &Options) -> Result<(), Failure> {
        let t = i32::try_from(opts.stop_timeout.as_secs()).unwrap_or(i32::MAX);
        match &step.target {
            Target::Container { id, name } => {
                let docker = self.docker.ok_or_else(|| {
                    Failure::env(anyhow::anyhow!("container targets need Docker"))
                })?;
                let api = |e: bollard::errors::Error| {
                    Failure::env(anyhow::anyhow!(
                        "{} container {name}: {e}",
                        step.action.as_str()
                    ))
                };
                match step.action {
                    Action::Crash => crash_container(docker, id, name).await?,
                    Action::Stop => docker
                        .stop_container(
                            id,
                            Some(bollard::query_parameters::StopContainerOptions {
                                t: Some(t),
                                signal: None,
                            }),
                        )
                        .await
                        .map_err(api)?,
                    Action::Kill => {
                        let signal = opts.signal.unwrap_or(Signal::SIGKILL).as_str().to_string();
                        docker
                            .kill_container(
                                id,
                                Some(bollard::query_parameters::KillContainerOptions { signal }),
                            )
                            .await
                            .map_err(api)?
                    }
                    Action::Pause => docker.pause_container(id).await.map_err(api)?,
                    Action::Restart => docker
                        .restart_container(
                            id,
                            Some(bollard::query_parameters::RestartContainerOptions {
                                t: Some(t),
                                signal: None,
                            }),
                        )
                        .await
                        .map_err(api)?,
                }
            }
            Target::Process {
                pid,
                start_time,
                name,
            } => {
                if !crate::process::is_same(*pid, *start_time) {
                    return Err(Failure::env(anyhow::anyhow!(
                        "process {name} (pid {pid}) is gone"
                    )));
                }
                let send = |s: Signal| {
                    crate::process::signal(*pid, s).map_err(|e| Failure::env(anyhow::anyhow!(e)))
                };
                match step.action {
                    Action::Crash => send(Signal::SIGKILL)?,
                    Action::Kill => send(opts.signal.unwrap_or(Signal::SIGKILL))?,
                    Action::Pause => send(Signal::SIGSTOP)?,
                    Action::Stop => {
                        send(Signal::SIGTERM)?;
                        let deadline = tokio::time::Instant::now() + opts.stop_timeout;
                        while crate::process::is_same(*pid, *start_time)
                            && tokio::time::Instant::now() < deadline
                        {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        if crate::process::is_same(*pid, *start_time) {
                            tracing::warn!(
                                "{name} (pid {pid}) still running after SIGTERM; sending SIGKILL"
                            );
                            send(Signal::SIGKILL)?;
                        }
                    }
                    Action::Restart => {
                        return Err(Failure::bad_input(anyhow::anyhow!(
                            "restart applies to containers"
                        )))
                    }
                }
            }
        }
        Ok(())
    }
}

/// A crash: SIGKILL to the container's main process from the host's pid namespace. A kill through
/// the Docker API marks the container as stopped by hand and its restart policy does not apply;
/// a process dying by itself does, as it would in a real crash.
async fn crash_container(docker: &bollard::Docker, id: &str, name: &str) -> Result<(), Failure> {
    let facts = crate::docker::inspect(docker, id).await?;
    if !facts.running || facts.pid <= 0 {
        return Err(Failure::env(anyhow::anyhow!(
            "container {name} is not running ({}); nothing to crash",
            facts.status
        )));
    }
    if !crate::docker::address().starts_with("unix://") {
        return Err(Failure::env(anyhow::anyhow!(
            "crash kills the container's main process from the Docker host; DOCKER_HOST={} is not local. Use kill or stop",
            crate::docker::address()
        )));
    }
    let pid = i32::try_from(facts.pid)
        .map_err(|_| Failure::env(anyhow::anyhow!("bad pid {}", facts.pid)))?;
    crate::process::signal(pid, Signal::SIGKILL).map_err(|e| {
        Failure::env(anyhow::anyhow!(
            "{e} (crash needs root on the Docker host, in its pid namespace)"
        ))
    })
}

/// Undo one open fault and record it. Idempotent: undoing what is already undone succeeds.
pub async fn revert(
    journal: &Journal,
    docker: Option<&bollard::Docker>,
    f: &OpenFault,
) -> Result<String, Failure> {
    let result = revert_now(docker, &f.undo).await;
    match &result {
        Ok(how) => {
            journal.append(Kind::FaultReverted {
                id: f.id.clone(),
                how: how.clone(),
            })?;
        }
        Err(e) => {
            journal.append(Kind::RevertFailed {
                id: f.id.clone(),
                error: format!("{:#}", e.error),
            })?;
        }
    }
    result
}

async fn revert_now(docker: Option<&bollard::Docker>, undo: &Undo) -> Result<String, Failure> {
    let need_docker = || {
        docker.ok_or_else(|| {
            Failure::env(anyhow::anyhow!("reverting a container fault needs Docker"))
        })
    };
    match undo {
        Undo::Nothing { reason } => Ok(format!("nothing to undo ({reason})")),
        Undo::Manual { hint } => {
            tracing::warn!("{hint}");
            Ok(format!("left to the restore step: {hint}"))
        }
        Undo::DockerStart { id, name } => {
            let docker = need_docker()?;
            let facts = match crate::docker::inspect(docker, id).await {
                Ok(f) => f,
                Err(_) => {
                    return Ok(format!(
                        "container {name} no longer exists; nothing to start"
                    ))
                }
            };
            if facts.paused {
                docker
                    .unpause_container(id)
                    .await
                    .map_err(|e| Failure::env(anyhow::anyhow!("unpause {name}: {e}")))?;
                return Ok(format!("unpaused {name}"));
            }
            if facts.running || facts.restarting {
                return Ok(format!("{name} already running"));
            }
            docker
                .start_container(id, None)
                .await
                .map_err(|e| Failure::env(anyhow::anyhow!("start {name}: {e}")))?;
            Ok(format!("started {name}"))
        }
        Undo::DockerUnpause { id, name } => {
            let docker = need_docker()?;
            let facts = match crate::docker::inspect(docker, id).await {
                Ok(f) => f,
                Err(_) => {
                    return Ok(format!(
                        "container {name} no longer exists; nothing to unpause"
                    ))
                }
            };
            if !facts.paused {
                return Ok(format!("{name} not paused"));
            }
            docker
                .unpause_container(id)
                .await
                .map_err(|e| Failure::env(anyhow::anyhow!("unpause {name}: {e}")))?;
            Ok(format!("unpaused {name}"))
        }
        Undo::ProcessContinue { pid, start_time } => {
            if !crate::process::is_same(*pid, *start_time) {
                return Ok(format!("pid {pid} is gone; nothing to continue"));
            }
            crate::process::signal(*pid, Signal::SIGCONT)
                .map_err(|e| Failure::env(anyhow::anyhow!(e)))?;
            Ok(format!("sent SIGCONT to pid {pid}"))
        }
    }
}

/// Revert one open fault by id with an existing Docker client (timed reverts).
pub async fn revert_open_with(
    journal: &Journal,
    docker: Option<&bollard::Docker>,
    id: Option<&str>,
) -> Result<(), Failure> {
    let contents = crate::journal::read(journal.path())?;
    for f in contents
        .open_faults()
        .iter()
        .filter(|f| id.is_none_or(|i| f.id == i))
    {
        let how = revert(journal, docker, f).await?;
        crate::cli::common::say(&format!(
            "reverted {} {} {}: {how}",
            f.id, f.action, f.target
        ));
    }
    Ok(())
}

/// Revert every open fault in the journal (optionally only one drill's or one id). Returns the
/// number reverted and the errors; connects to Docker only when a container fault is open.
pub async fn revert_open(
    journal: &Journal,
    only_drill: Option<&str>,
    only_id: Option<&str>,
) -> Result<(usize, Vec<String>), Failure> {
    let contents = crate::journal::read(journal.path())?;
    crate::journal::warn_damage(journal.path(), &contents);
    let open: Vec<OpenFault> = contents
        .open_faults()
        .into_iter()
        .filter(|f| only_drill.is_none_or(|d| f.drill == d))
        .filter(|f| only_id.is_none_or(|i| f.id == i))
        .collect();
    let needs_docker = open.iter().any(|f| {
        matches!(
            f.undo,
            Undo::DockerStart { .. } | Undo::DockerUnpause { .. }
        )
    });
    let docker = if needs_docker {
        Some(crate::docker::connect().await?)
    } else {
        None
    };
    let mut done = 0;
    let mut errors = Vec::new();
    // Newest first: undo in the reverse order of doing.
    for f in open.iter().rev() {
        match revert(journal, docker.as_ref(), f).await {
            Ok(how) => {
                crate::cli::common::say(&format!(
                    "reverted {} {} {}: {how}",
                    f.id, f.action, f.target
                ));
                done += 1;
            }
            Err(e) => errors.push(format!("{} {} {}: {:#}", f.id, f.action, f.target, e.error)),
        }
    }
    Ok((done, errors))
}
