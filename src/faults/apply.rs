//! Applying planned steps, journal first: the fault and its undo are appended and fsynced before
//! anything is touched; a fault that fails after its record is undone at once, so nothing is
//! ever half-applied. Containers go through the Docker API, processes get signals, network and
//! disk faults run their operations in order.

use super::netns;
use super::plan::need_docker;
use super::target::Target;
use super::{
    degrade, fill, lock, partition, reaper, revert, Action, Error, Fault, Op, Result, Step, Undo,
};
use crate::journal::{ContainerSeen, Journal, Kind, OpenFault};
use nix::sys::signal::Signal;
use std::time::Duration;

/// Applies planned steps, journal first.
pub struct Injector<'a> {
    pub journal: &'a Journal,
    pub docker: Option<&'a crate::docker::Docker>,
    /// The engine host's socket a reaper container mounts (`--reaper-socket`); default: the
    /// engine's own socket when local, else `/var/run/docker.sock` (see [`reaper::reaper_socket`]).
    pub reaper_socket: Option<&'a std::path::Path>,
}

impl Injector<'_> {
    /// Write the plan (fsynced), apply it, record the outcome. On failure the undo is attempted
    /// at once so no half-applied fault is left, and the error is returned. `hold` is recorded
    /// with the fault so readers know it was meant to be held that long. Returns the fault id.
    ///
    /// `deadline` (from now) arms the dead-man's switch: after the record and before the fault,
    /// a reaper is started that undoes it then unless it was undone ([`super::reaper`]). A
    /// reaper that cannot be started stops the fault before it is applied.
    pub async fn apply(
        &self,
        step: &Step,
        hold: Option<Duration>,
        deadline: Duration,
    ) -> Result<String> {
        // Refuse a fault that cannot apply to the target's current state *before* anything is
        // recorded: its undo would otherwise change what the user left as it was (start a
        // container they had stopped, unpause one paused by an earlier fault).
        self.precheck(step).await?;
        let id = step.id.clone();
        let deadline = crate::journal::Ts::now().plus_secs(deadline.as_secs_f64());
        // The engine goes with every fault that involves Docker, so a revert from the journal
        // alone (no DOCKER_* set) reaches the same engine.
        let engine = self
            .docker
            .filter(|_| matches!(step.target, Target::Container { .. }) || step.undo.needs_docker())
            .map(|d| Box::new(d.engine().clone()));
        self.journal
            .append_durable(Kind::FaultPlanned {
                id: id.clone(),
                action: step.action().as_str().into(),
                target: step.target.describe(),
                undo: step.undo.clone(),
                duration_s: hold.map(|d| d.as_secs_f64()),
                deadline: Some(deadline),
                engine: engine.clone(),
            })
            .map_err(Error::Journal)?;
        lock::hold(&id);
        if reaper::reapable(&step.undo) {
            let orders = reaper::Orders {
                fault: id.clone(),
                drill: self.journal.drill_id().into(),
                action: step.action().as_str().into(),
                target: step.target.describe(),
                undo: step.undo.clone(),
                deadline,
                journal: std::path::absolute(self.journal.path())
                    .unwrap_or_else(|_| self.journal.path().to_path_buf()),
                engine: engine.clone(),
            };
            // Container faults: the reaper lives on the target's engine; the rest: on this host.
            let armed = match self.docker.filter(|_| reaper::by_container(&step.undo)) {
                Some(d) => match reaper::arm_container(d, &orders, self.reaper_socket).await {
                    Ok(a) => Ok(Kind::ReaperArmed {
                        id: id.clone(),
                        reaper: "container".into(),
                        container: Some(a.name),
                        socket: Some(a.socket),
                    }),
                    // An engine whose socket is on this host (podman's service, a rootless
                    // dockerd) is served as well by a reaper process here; anywhere else the
                    // fault is not applied without its switch.
                    Err(e) if reaper::socket_on_this_host(d.engine()) => {
                        self.journal
                            .append(Kind::Note {
                                message: format!(
                                    "fault {id}: no reaper container on {} ({e}); a reaper process on this host serves it",
                                    d.engine().describe()
                                ),
                            })
                            .map_err(Error::Journal)?;
                        reaper::arm(&orders).map(|()| Kind::ReaperArmed {
                            id: id.clone(),
                            reaper: "process".into(),
                            container: None,
                            socket: None,
                        })
                    }
                    Err(e) => Err(e),
                },
                None => reaper::arm(&orders).map(|()| Kind::ReaperArmed {
                    id: id.clone(),
                    reaper: "process".into(),
                    container: None,
                    socket: None,
                }),
            };
            let armed = match armed {
                Ok(event) => self.journal.append(event).map_err(Error::Journal),
                Err(e) => Err(e),
            };
            if let Err(e) = armed {
                self.journal
                    .append(Kind::FaultFailed {
                        id: id.clone(),
                        error: format!("not applied: no dead-man's switch: {e}"),
                    })
                    .map_err(Error::Journal)?;
                let _ = self.undo_now(step).await;
                return Err(e);
            }
        }
        let applied = if step.ops.is_empty() {
            self.apply_one(step).await
        } else {
            self.apply_ops(step).await.map(|()| None)
        };
        match applied {
            Ok(before) => {
                self.journal
                    .append(Kind::FaultApplied {
                        id: id.clone(),
                        before,
                    })
                    .map_err(Error::Journal)?;
                // An instantaneous fault with nothing to undo (a process crash recovered by its
                // supervisor) holds nothing open: close it at once so `list` and `revert` agree.
                if let Undo::Nothing { reason } = &step.undo {
                    self.journal
                        .append(Kind::FaultReverted {
                            id: id.clone(),
                            how: format!("nothing to undo ({reason})"),
                        })
                        .map_err(Error::Journal)?;
                }
                Ok(id)
            }
            Err(e) => {
                self.journal
                    .append(Kind::FaultFailed {
                        id: id.clone(),
                        error: e.to_string(),
                    })
                    .map_err(Error::Journal)?;
                // Best effort: the fault may have been half-applied.
                let _ = self.undo_now(step).await;
                Err(e)
            }
        }
    }

    /// Undo a step now, whatever the journal says (undo is idempotent): a fault that failed
    /// half-way, or one applied while a stop condition was reverting everything.
    pub async fn undo_now(&self, step: &Step) -> Result<String> {
        let open = OpenFault {
            id: step.id.clone(),
            drill: self.journal.drill_id().into(),
            action: step.action().as_str().into(),
            target: step.target.describe(),
            undo: step.undo.clone(),
            planned_at: crate::journal::Ts::now(),
            applied: false,
            before: None,
            engine: self.docker.map(|d| Box::new(d.engine().clone())),
        };
        revert(self.journal, self.docker, &open).await
    }

    async fn precheck(&self, step: &Step) -> Result<()> {
        let Target::Container { id, name } = &step.target else {
            return Ok(());
        };
        let Some(docker) = self.docker else {
            return Ok(());
        };
        let facts = crate::docker::inspect(docker, id).await?;
        let action = step.action();
        let refuse = |why: &str| {
            Err(Error::Target(format!(
                "container {name} {why}; nothing to {}",
                action.as_str()
            )))
        };
        match action {
            Action::Crash | Action::Stop | Action::Kill if !facts.running => {
                refuse(&format!("is not running ({})", facts.status))
            }
            Action::Crash | Action::Kill if facts.paused => {
                refuse("is paused (a signal would wait inside the frozen container)")
            }
            Action::Pause if !facts.running => {
                refuse(&format!("is not running ({})", facts.status))
            }
            Action::Pause if facts.paused => refuse("is already paused"),
            _ => Ok(()),
        }
    }

    /// The operations of a network or disk fault, in order; the first failure stops (the caller
    /// then reverts the whole undo, which is idempotent).
    async fn apply_ops(&self, step: &Step) -> Result<()> {
        for op in &step.ops {
            match op {
                Op::Run(cmd) => {
                    netns::exec_ok(&cmd.netns, self.docker, &cmd.args).await?;
                }
                Op::DockerDisconnect { id, network } => {
                    partition::disconnect(need_docker(self.docker)?, id, network).await?
                }
                Op::Proxy(p) => degrade::start_proxy(p, self.docker).await?,
                Op::ContainerFill { id, file, goal, .. } => {
                    let docker = need_docker(self.docker)?;
                    let arg = crate::docker::helper::goal_arg(*goal);
                    let n = crate::docker::helper::fill(docker, id, &step.id, file, &arg).await?;
                    tracing::info!("fill-disk: took {}", crate::units::Size(n));
                }
                Op::Fill { file, goal, .. } => {
                    let (file, goal) = (file.clone(), *goal);
                    let n = tokio::task::spawn_blocking(move || fill::fill(&file, goal))
                        .await
                        .map_err(|e| Error::Tool(format!("fill-disk task: {e}")))??;
                    tracing::info!("fill-disk: took {}", crate::units::Size(n));
                }
            }
        }
        Ok(())
    }

    /// One call or signal; a container crash returns what the engine reported before it.
    async fn apply_one(&self, step: &Step) -> Result<Option<ContainerSeen>> {
        match &step.target {
            Target::Container { id, name } => {
                let docker = need_docker(self.docker)?;
                if matches!(step.fault, Fault::Crash) {
                    return crash(docker, id, name, &step.id).await.map(Some);
                }
                container(docker, id, name, &step.fault)
                    .await
                    .map(|()| None)
            }
            Target::Process {
                pid,
                start_time,
                name,
            } => process(*pid, *start_time, name, &step.fault)
                .await
                .map(|()| None),
            Target::Netns { .. } | Target::Path { .. } => Err(Error::Invalid(format!(
                "{} applies to containers or processes",
                step.action().as_str()
            ))),
        }
    }
}

/// A container fault: one Docker API call (a crash is a signal from the host, see [`crash`]).
async fn container(
    docker: &crate::docker::Docker,
    id: &str,
    name: &str,
    fault: &Fault,
) -> Result<()> {
    let what = format!("{} container {name}", fault.action().as_str());
    let secs = |t: &Duration| i32::try_from(t.as_secs()).unwrap_or(i32::MAX);
    let result = match fault {
        Fault::Crash => {
            return Err(Error::Invalid(format!(
                "{what}: a crash is applied by `crash`"
            )))
        }
        Fault::Stop { timeout } => {
            docker
                .stop_container(
                    id,
                    Some(bollard::query_parameters::StopContainerOptions {
                        t: Some(secs(timeout)),
                        signal: None,
                    }),
                )
                .await
        }
        Fault::Kill { signal } => {
            docker
                .kill_container(
                    id,
                    Some(bollard::query_parameters::KillContainerOptions {
                        signal: signal.as_str().to_string(),
                    }),
                )
                .await
        }
        Fault::Pause => docker.pause_container(id).await,
        Fault::Restart { timeout } => {
            docker
                .restart_container(
                    id,
                    Some(bollard::query_parameters::RestartContainerOptions {
                        t: Some(secs(timeout)),
                        signal: None,
                    }),
                )
                .await
        }
        Fault::Partition(_) | Fault::Degrade(_) | Fault::FillDisk(_) => {
            return Err(Error::Invalid(format!("{what}: planned as operations")))
        }
    };
    result.map_err(|e| crate::docker::Error::api(what)(e).into())
}

/// A process fault: a signal, checked against the recorded start time so a recycled pid is
/// never signalled.
async fn process(pid: i32, start_time: u64, name: &str, fault: &Fault) -> Result<()> {
    if !crate::process::is_same(pid, start_time) {
        return Err(Error::Target(format!("process {name} (pid {pid}) is gone")));
    }
    let send = |s: Signal| crate::process::signal(pid, s).map_err(Error::Target);
    match fault {
        Fault::Crash => send(Signal::SIGKILL),
        Fault::Kill { signal } => send(*signal),
        Fault::Pause => {
            // Applied once it is in effect: the kernel stops the process when it next runs, which
            // on a loaded machine is a moment after the signal was sent.
            send(Signal::SIGSTOP)?;
            let deadline = tokio::time::Instant::now() + PAUSE_SEEN_WITHIN;
            let stopped =
                || crate::process::info(pid).is_some_and(|p| matches!(p.state, 'T' | 't'));
            while !stopped() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if !stopped() {
                tracing::warn!(
                    "{name} (pid {pid}) not seen stopped {} after SIGSTOP (in uninterruptible \
                     sleep?); it stops when it next runs",
                    crate::units::Dur(PAUSE_SEEN_WITHIN)
                );
            }
            Ok(())
        }
        Fault::Stop { timeout } => {
            send(Signal::SIGTERM)?;
            let deadline = tokio::time::Instant::now() + *timeout;
            while crate::process::is_same(pid, start_time) && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if crate::process::is_same(pid, start_time) {
                tracing::warn!("{name} (pid {pid}) still running after SIGTERM; sending SIGKILL");
                send(Signal::SIGKILL)?;
            }
            Ok(())
        }
        Fault::Restart { .. } | Fault::Partition(_) | Fault::Degrade(_) | Fault::FillDisk(_) => {
            Err(Error::Invalid(format!(
                "{} applies to containers",
                fault.action().as_str()
            )))
        }
    }
}

/// How long a paused process may take to be seen stopped after SIGSTOP.
const PAUSE_SEEN_WITHIN: Duration = Duration::from_secs(2);

/// How long a crashed container's engine may take to notice that its main process died.
const CRASH_SEEN_WITHIN: Duration = Duration::from_secs(10);

/// A crash: SIGKILL to the container's main process from the host's pid namespace. A kill through
/// the Docker API marks the container as stopped by hand and its restart policy does not apply;
/// a process dying by itself does, as it would in a real crash. On a local engine drillkit sends
/// the signal itself; on any other, a short-lived helper container on that engine does (`pid:
/// host`, `CAP_KILL`; see `docker::helper`). The crash is applied once the engine has seen the
/// process die (not running, a new main process, or one more restart): until then the engine
/// still reports the old process running, and a revert in that window would take the container
/// for recovered. Returns the pid and restart count before the crash, for the journal: a later
/// step closes the fault when it sees either change with the container running (see
/// [`super::close_recovered`]).
async fn crash(
    docker: &crate::docker::Docker,
    id: &str,
    name: &str,
    fault_id: &str,
) -> Result<ContainerSeen> {
    let before = crate::docker::inspect(docker, id).await?;
    if !before.running || before.pid <= 0 {
        return Err(Error::Target(format!(
            "container {name} is not running ({}); nothing to crash",
            before.status
        )));
    }
    if docker.engine().is_local() {
        let pid = host_pid(docker, id, name, "nothing to crash", "").await?;
        crate::process::signal(pid, Signal::SIGKILL).map_err(|e| {
            Error::Target(format!(
                "{e} (crash needs root on the Docker host, in its pid namespace)"
            ))
        })?;
    } else {
        crate::docker::helper::kill_main_process(docker, id, before.pid, fault_id).await?;
    }
    let deadline = tokio::time::Instant::now() + CRASH_SEEN_WITHIN;
    loop {
        let now = crate::docker::inspect(docker, id).await?;
        if !now.running || now.pid != before.pid || now.restart_count > before.restart_count {
            return Ok(ContainerSeen {
                pid: before.pid,
                restart_count: before.restart_count,
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Target(format!(
                "container {name}: the engine still reports pid {} running {}s after SIGKILL",
                before.pid,
                CRASH_SEEN_WITHIN.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The host pid of a running container's main process. Needs the engine on this host (a local
/// socket): the pid means nothing elsewhere. `why` completes the "not running" error, `needs`
/// explains why a remote engine will not do (exit 2: asked of an engine it cannot work on).
pub(super) async fn host_pid(
    docker: &crate::docker::Docker,
    id: &str,
    name: &str,
    why: &str,
    needs: &str,
) -> Result<i32> {
    let facts = crate::docker::inspect(docker, id).await?;
    if !facts.running || facts.pid <= 0 {
        return Err(Error::Target(format!(
            "container {name} is not running ({}); {why}",
            facts.status
        )));
    }
    if !docker.engine().is_local() {
        return Err(Error::Invalid(format!(
            "{needs}; the Docker engine {} is not on this machine",
            docker.engine().describe()
        )));
    }
    i32::try_from(facts.pid).map_err(|_| Error::Target(format!("bad pid {}", facts.pid)))
}
