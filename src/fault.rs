//! Faults: apply one action to one target, with the undo written to the journal (and fsynced)
//! *before* anything is touched, and revert whatever the journal shows as still open — also
//! after the injecting process was SIGKILLed.
//!
//! Container and process faults are single API calls or signals. Network and disk faults
//! (partition, degrade, fill-disk) are planned as a list of operations — the exact commands or
//! API calls, which `--dry-run` prints — each with its undo; the undo of the whole list is written
//! ahead, so a failure midway, a signal or a SIGKILL never leaves part of a fault behind. While a
//! fault is held, its injector holds a lock named after the fault (see [`lock_dir`]), so
//! `inject-fault doctor` can tell a live drill's fault from a leftover.

use crate::degrade::{self, ProxySpec};
use crate::exit::Failure;
use crate::fill::{self, Goal};
use crate::journal::{Journal, Kind, OpenFault, Undo};
use crate::netfault;
use crate::netns::{self, Netns};
use crate::target::{short, Target};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
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
    /// Options of partition, degrade and fill-disk.
    pub extra: Extra,
}

/// How a partition cuts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PartitionMethod {
    /// Docker for a container without --to; iptables otherwise.
    #[default]
    Auto,
    /// Disconnect the container from its networks (Docker API).
    Docker,
    /// DROP rules to each --to in the target's network namespace.
    Iptables,
}

/// Options of the network and disk faults.
#[derive(Clone, Debug, Default)]
pub struct Extra {
    /// partition (Docker): only these networks (default: all the container is on).
    pub networks: Vec<String>,
    /// partition (iptables) and degrade: destinations, `CIDR`, address or `HOST:PORT`.
    pub to: Vec<String>,
    pub partition_method: PartitionMethod,
    pub degrade_method: degrade::Method,
    pub delay: Option<Duration>,
    pub jitter: Option<Duration>,
    pub loss: Option<f64>,
    pub rate: Option<String>,
    pub devs: Vec<String>,
    /// fill-disk: how full (default: leave nothing).
    pub fill_goal: Option<Goal>,
    /// fill-disk on a container: its mount point (volume or bind mount).
    pub mount: Option<String>,
    pub allow_root_fs: bool,
    pub allow_journal_fs: bool,
    /// The journal, so fill-disk can refuse its filesystem.
    pub journal: Option<PathBuf>,
}

/// One operation of a network or disk fault.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A command (iptables, tc), with its `nsenter` prefix when in another namespace.
    Run(Vec<String>),
    DockerDisconnect {
        id: String,
        network: String,
    },
    Proxy(ProxySpec),
    /// `bytes` is what the goal means now; it is measured again when applied.
    Fill {
        file: PathBuf,
        goal: Goal,
        bytes: u64,
    },
}

impl Op {
    pub fn describe(&self) -> String {
        match self {
            Op::Run(argv) => netns::shell(argv),
            Op::DockerDisconnect { id, network } => format!(
                "POST /networks/{network}/disconnect {{\"Container\":\"{}\",\"Force\":false}}",
                short(id)
            ),
            Op::Proxy(p) => p.describe(),
            Op::Fill { file, goal, bytes } => format!(
                "fallocate -l {bytes} {} ({}; writes where fallocate is unsupported)",
                file.display(),
                goal.describe()
            ),
        }
    }
}

/// One step of a plan: what would be done and how it would be undone.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The fault id (`f-xxxxxxxx`), known when planned so rules can carry it.
    pub id: String,
    pub target: Target,
    pub action: Action,
    /// The exact API call or syscall.
    pub call: String,
    pub undo: Undo,
    /// The operations of a network or disk fault, in order (empty for the others).
    pub ops: Vec<Op>,
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
        Undo::All { steps } => steps
            .iter()
            .rev()
            .map(describe_undo)
            .collect::<Vec<_>>()
            .join("; "),
        Undo::DockerReconnect {
            id,
            name,
            network,
            aliases,
            ipv4,
            ..
        } => format!(
            "POST /networks/{network}/connect {} ({name}{}{}) if not connected",
            short(id),
            ipv4.as_ref()
                .map(|a| format!(", ip {a}"))
                .unwrap_or_default(),
            if aliases.is_empty() {
                String::new()
            } else {
                format!(", aliases {}", aliases.join(","))
            }
        ),
        Undo::IptablesDelete {
            netns,
            tool,
            table,
            chain,
            rule,
        } => {
            let mut argv = netns::sv(&[tool, "-w", "5", "-t", table, "-D", chain]);
            argv.extend(rule.iter().cloned());
            format!("{} while present", netns::shell(&netns.argv(&argv)))
        }
        Undo::QdiscRestore {
            netns,
            dev,
            previous,
        } => format!(
            "{} if its handle is {} (back to: {previous})",
            netns::shell(&netns.argv(&netns::sv(&["tc", "qdisc", "del", "dev", dev, "root"]))),
            degrade::HANDLE
        ),
        Undo::ProxyStop { fault, .. } => format!("SIGTERM the delay proxy of {fault}"),
        Undo::RemoveFile { path } => format!("rm {path}"),
    }
}

/// Whether reverting this needs Docker.
pub fn needs_docker(u: &Undo) -> bool {
    match u {
        Undo::DockerStart { .. } | Undo::DockerUnpause { .. } | Undo::DockerReconnect { .. } => {
            true
        }
        Undo::All { steps } => steps.iter().any(needs_docker),
        _ => false,
    }
}

fn new_id() -> String {
    format!("f-{:08x}", rand::random::<u32>())
}

/// Work out the exact calls and undo for each target. Reads (inspects containers, the current
/// qdiscs, free space) but touches nothing.
pub async fn plan(
    targets: &[Target],
    opts: &Options,
    docker: Option<&bollard::Docker>,
) -> Result<Vec<Step>, Failure> {
    let mut out = Vec::new();
    for t in targets {
        let step = match opts.action {
            Action::Partition | Action::Degrade | Action::FillDisk => {
                plan_ops(t, opts, docker).await?
            }
            _ => plan_one(t, opts)?,
        };
        out.push(step);
    }
    Ok(out)
}

/// The network namespace of a running container (its main process's).
async fn container_netns(
    docker: Option<&bollard::Docker>,
    id: &str,
    name: &str,
) -> Result<Netns, Failure> {
    let docker =
        docker.ok_or_else(|| Failure::env(anyhow::anyhow!("container targets need Docker")))?;
    let pid = host_pid(
        docker,
        id,
        name,
        "its network namespace exists only while it runs",
        "network faults inside a container enter its namespace on the Docker host",
    )
    .await?;
    let info = crate::process::info(pid).ok_or_else(|| {
        Failure::env(anyhow::anyhow!("cannot read /proc/{pid} of container {name} (drillkit must run in the Docker host's pid namespace)"))
    })?;
    Ok(Netns::Process {
        pid,
        start_time: info.start_time,
    })
}

async fn plan_ops(
    target: &Target,
    opts: &Options,
    docker: Option<&bollard::Docker>,
) -> Result<Step, Failure> {
    let id = new_id();
    let x = &opts.extra;
    let mut pieces: Vec<(Op, Undo)> = Vec::new();
    let refuse = |what: &str| {
        Failure::bad_input(anyhow::anyhow!(
            "{} applies to {what}, not to {}",
            opts.action.as_str(),
            target.describe()
        ))
    };
    match opts.action {
        Action::Partition => {
            let method = match (x.partition_method, target) {
                (PartitionMethod::Auto, Target::Container { .. }) if x.to.is_empty() => {
                    PartitionMethod::Docker
                }
                (PartitionMethod::Auto, _) => PartitionMethod::Iptables,
                (m, _) => m,
            };
            match (method, target) {
                (PartitionMethod::Docker, Target::Container { id: cid, name }) => {
                    if !x.to.is_empty() {
                        return Err(Failure::bad_input(anyhow::anyhow!(
                            "--to cuts with iptables; --method docker disconnects networks (use --network)"
                        )));
                    }
                    let docker = docker.ok_or_else(|| {
                        Failure::env(anyhow::anyhow!("container targets need Docker"))
                    })?;
                    for e in netfault::endpoints(docker, cid, name, &x.networks).await? {
                        pieces.push((
                            Op::DockerDisconnect {
                                id: cid.clone(),
                                network: e.network.clone(),
                            },
                            netfault::reconnect_undo(cid, name, &e),
                        ));
                    }
                }
                (PartitionMethod::Docker, _) => {
                    return Err(refuse("containers with --method docker"))
                }
                (_, Target::Process { .. } | Target::Path { .. }) => {
                    return Err(refuse("a container, --netns or --host"))
                }
                (_, t) => {
                    if x.to.is_empty() {
                        return Err(Failure::bad_input(anyhow::anyhow!(
                            "partition with iptables needs --to CIDR|HOST:PORT (what to cut {} from)",
                            t.describe()
                        )));
                    }
                    if !x.networks.is_empty() {
                        return Err(Failure::bad_input(anyhow::anyhow!(
                            "--network disconnects a container through Docker; it does not combine with --to"
                        )));
                    }
                    let ns = target_netns(t, docker).await?;
                    for d in netfault::parse_dests(&x.to).await? {
                        let rule = netfault::partition_rule(&d, &id);
                        pieces.push((
                            Op::Run(ns.argv(&netfault::insert_argv(
                                d.tool(),
                                "filter",
                                "OUTPUT",
                                &rule,
                            ))),
                            Undo::IptablesDelete {
                                netns: ns.clone(),
                                tool: d.tool().into(),
                                table: "filter".into(),
                                chain: "OUTPUT".into(),
                                rule,
                            },
                        ));
                    }
                }
            }
        }
        Action::Degrade => {
            if matches!(target, Target::Process { .. } | Target::Path { .. }) {
                return Err(refuse("a container, --netns or --host"));
            }
            let settings = degrade::Settings {
                delay: x.delay,
                jitter: x.jitter,
                loss: x.loss,
                rate: x.rate.clone(),
                devs: x.devs.clone(),
                to: netfault::parse_dests(&x.to).await?,
            };
            let method = degrade::resolve(x.degrade_method, &settings)?;
            let ns = target_netns(target, docker).await?;
            for (piece, undo) in degrade::plan(&ns, &id, method, &settings)? {
                let op = match piece {
                    degrade::Piece::Cmd(argv) => Op::Run(argv),
                    degrade::Piece::Proxy(p) => Op::Proxy(p),
                };
                pieces.push((op, undo));
            }
        }
        Action::FillDisk => {
            let dir = match target {
                Target::Path { path } => {
                    if x.mount.is_some() {
                        return Err(Failure::bad_input(anyhow::anyhow!(
                            "--mount names a container's mount point; with --path give the directory itself"
                        )));
                    }
                    path.clone()
                }
                Target::Container { id: cid, name } => {
                    let m = x.mount.as_deref().ok_or_else(|| {
                        Failure::bad_input(anyhow::anyhow!(
                            "fill-disk on a container needs --mount PATH (its volume or bind mount, e.g. /var/lib/postgresql/data)"
                        ))
                    })?;
                    let docker = docker.ok_or_else(|| {
                        Failure::env(anyhow::anyhow!("container targets need Docker"))
                    })?;
                    fill::container_mount(docker, cid, name, m).await?
                }
                _ => return Err(refuse("--path or a container's --mount")),
            };
            let goal = x.fill_goal.unwrap_or(Goal::Leave(0));
            let (file, bytes) = fill::plan(
                &dir,
                &id,
                goal,
                x.allow_root_fs,
                x.journal.as_deref(),
                x.allow_journal_fs,
            )?;
            let path = file.display().to_string();
            let op = Op::Fill { file, goal, bytes };
            pieces.push((op, Undo::RemoveFile { path }));
        }
        _ => return Err(refuse("containers or processes")),
    }
    if pieces.is_empty() {
        return Err(Failure::env(anyhow::anyhow!(
            "nothing to do for {} on {}",
            opts.action.as_str(),
            target.describe()
        )));
    }
    let call = pieces
        .iter()
        .map(|(op, _)| op.describe())
        .collect::<Vec<_>>()
        .join("; ");
    let (ops, mut undos): (Vec<Op>, Vec<Undo>) = pieces.into_iter().unzip();
    let undo = if undos.len() == 1 {
        undos.remove(0)
    } else {
        Undo::All { steps: undos }
    };
    Ok(Step {
        id,
        target: target.clone(),
        action: opts.action,
        call,
        undo,
        ops,
    })
}

async fn target_netns(t: &Target, docker: Option<&bollard::Docker>) -> Result<Netns, Failure> {
    match t {
        Target::Container { id, name } => container_netns(docker, id, name).await,
        Target::Netns { netns } => Ok(netns.clone()),
        other => Err(Failure::bad_input(anyhow::anyhow!(
            "{} has no network namespace drillkit can enter",
            other.describe()
        ))),
    }
}

fn plan_one(target: &Target, opts: &Options) -> Result<Step, Failure> {
    let t = opts.stop_timeout.as_secs();
    let (call, undo) = match target {
        Target::Netns { .. } | Target::Path { .. } => {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "{} applies to containers or processes, not to {}",
                opts.action.as_str(),
                target.describe()
            )))
        }
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
                Action::Partition | Action::Degrade | Action::FillDisk => {
                    return Err(Failure::bad_input(anyhow::anyhow!("planned elsewhere")))
                }
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
                Action::Partition | Action::Degrade | Action::FillDisk => {
                    return Err(Failure::bad_input(anyhow::anyhow!(
                        "{} applies to a container, a network namespace or a path, not to a process",
                        opts.action.as_str()
                    )))
                }
            }
        }
    };
    Ok(Step {
        id: new_id(),
        target: target.clone(),
        action: opts.action,
        call,
        undo,
        ops: Vec::new(),
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
        // Refuse a fault that cannot apply to the target's current state *before* anything is
        // recorded: its undo would otherwise change what the user left as it was (start a
        // container they had stopped, unpause one paused by an earlier fault).
        self.precheck(step).await?;
        let id = step.id.clone();
        self.journal.append_durable(Kind::FaultPlanned {
            id: id.clone(),
            action: step.action.as_str().into(),
            target: step.target.describe(),
            undo: step.undo.clone(),
            duration_s: opts.duration.map(|d| d.as_secs_f64()),
        })?;
        hold(&id);
        let applied = if step.ops.is_empty() {
            self.apply_now(step, opts).await
        } else {
            self.apply_ops(step).await
        };
        match applied {
            Ok(()) => {
                self.journal.append(Kind::FaultApplied { id: id.clone() })?;
                // An instantaneous fault with nothing to undo (a process crash recovered by its
                // supervisor) holds nothing open: close it at once so `list` and `revert` agree.
                if let Undo::Nothing { reason } = &step.undo {
                    self.journal.append(Kind::FaultReverted {
                        id: id.clone(),
                        how: format!("nothing to undo ({reason})"),
                    })?;
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

    /// The operations of a network or disk fault, in order; the first failure stops (the caller
    /// then reverts the whole undo, which is idempotent).
    async fn apply_ops(&self, step: &Step) -> Result<(), Failure> {
        for op in &step.ops {
            match op {
                Op::Run(argv) => {
                    netns::run_ok(&Netns::Host, argv)?;
                }
                Op::DockerDisconnect { id, network } => {
                    let docker = self.docker.ok_or_else(|| {
                        Failure::env(anyhow::anyhow!("container targets need Docker"))
                    })?;
                    netfault::disconnect(docker, id, network).await?;
                }
                Op::Proxy(p) => degrade::start_proxy(p).await?,
                Op::Fill { file, goal, .. } => {
                    let (file, goal) = (file.clone(), *goal);
                    let n = tokio::task::spawn_blocking(move || fill::fill(&file, goal))
                        .await
                        .map_err(|e| Failure::env(anyhow::anyhow!("fill-disk task: {e}")))??;
                    tracing::info!("fill-disk: took {}", crate::units::Size(n));
                }
            }
        }
        Ok(())
    }

    async fn apply_now(&self, step: &Step, opts: &Options) -> Result<(), Failure> {
        let t = i32::try_from(opts.stop_timeout.as_secs()).unwrap_or(i32::MAX);
        match &step.target {
            Target::Netns { .. } | Target::Path { .. } => {
                return Err(Failure::bad_input(anyhow::anyhow!(
                    "{} applies to containers or processes",
                    step.action.as_str()
                )))
            }
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
                    Action::Partition | Action::Degrade | Action::FillDisk => {
                        return Err(Failure::bad_input(anyhow::anyhow!(
                            "{} was not planned",
                            step.action.as_str()
                        )))
                    }
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
                    Action::Restart | Action::Partition | Action::Degrade | Action::FillDisk => {
                        return Err(Failure::bad_input(anyhow::anyhow!(
                            "{} applies to containers",
                            step.action.as_str()
                        )))
                    }
                }
            }
        }
        Ok(())
    }
}

impl Injector<'_> {
    async fn precheck(&self, step: &Step) -> Result<(), Failure> {
        let Target::Container { id, name } = &step.target else {
            return Ok(());
        };
        let Some(docker) = self.docker else {
            return Ok(());
        };
        let facts = crate::docker::inspect(docker, id).await?;
        let refuse = |why: &str| {
            Err(Failure::env(anyhow::anyhow!(
                "container {name} {why}; nothing to {}",
                step.action.as_str()
            )))
        };
        match step.action {
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
}

/// A crash: SIGKILL to the container's main process from the host's pid namespace. A kill through
/// the Docker API marks the container as stopped by hand and its restart policy does not apply;
/// a process dying by itself does, as it would in a real crash.
async fn crash_container(docker: &bollard::Docker, id: &str, name: &str) -> Result<(), Failure> {
    let pid = host_pid(
        docker,
        id,
        name,
        "nothing to crash",
        "crash kills the container's main process from the Docker host (use kill or stop)",
    )
    .await?;
    crate::process::signal(pid, Signal::SIGKILL).map_err(|e| {
        Failure::env(anyhow::anyhow!(
            "{e} (crash needs root on the Docker host, in its pid namespace)"
        ))
    })
}

/// The host pid of a running container's main process. Needs the engine on this host (a local
/// socket): the pid means nothing elsewhere. `why` completes the "not running" error, `needs`
/// explains why a remote engine will not do.
async fn host_pid(
    docker: &bollard::Docker,
    id: &str,
    name: &str,
    why: &str,
    needs: &str,
) -> Result<i32, Failure> {
    let facts = crate::docker::inspect(docker, id).await?;
    if !facts.running || facts.pid <= 0 {
        return Err(Failure::env(anyhow::anyhow!(
            "container {name} is not running ({}); {why}",
            facts.status
        )));
    }
    if !crate::docker::address().starts_with("unix://") {
        return Err(Failure::env(anyhow::anyhow!(
            "{needs}; DOCKER_HOST={} is not local",
            crate::docker::address()
        )));
    }
    i32::try_from(facts.pid).map_err(|_| Failure::env(anyhow::anyhow!("bad pid {}", facts.pid)))
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
            release(&f.id);
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

/// Undo one thing (boxed: `All` recurses).
pub fn revert_now<'a>(
    docker: Option<&'a bollard::Docker>,
    undo: &'a Undo,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, Failure>> + Send + 'a>> {
    Box::pin(revert_inner(docker, undo))
}

async fn revert_inner(docker: Option<&bollard::Docker>, undo: &Undo) -> Result<String, Failure> {
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
        Undo::All { steps } => {
            // Last applied, first undone; every part is tried even when one fails.
            let mut done = Vec::new();
            let mut errors = Vec::new();
            for u in steps.iter().rev() {
                match revert_now(docker, u).await {
                    Ok(how) => done.push(how),
                    Err(e) => errors.push(format!("{:#}", e.error)),
                }
            }
            if errors.is_empty() {
                Ok(done.join("; "))
            } else {
                Err(Failure::env(anyhow::anyhow!(
                    "{} (undone: {})",
                    errors.join("; "),
                    done.join("; ")
                )))
            }
        }
        Undo::DockerReconnect {
            id,
            name,
            network,
            network_id,
            aliases,
            ipv4,
            ipv6,
        } => {
            let docker = need_docker()?;
            netfault::reconnect(
                docker,
                id,
                name,
                network,
                network_id,
                aliases,
                ipv4.as_deref(),
                ipv6.as_deref(),
            )
            .await
        }
        Undo::IptablesDelete {
            netns,
            tool,
            table,
            chain,
            rule,
        } => netfault::delete_rule(netns, tool, table, chain, rule),
        Undo::QdiscRestore {
            netns,
            dev,
            previous,
        } => degrade::restore_qdisc(netns, dev, previous),
        Undo::ProxyStop { fault, .. } => degrade::stop_proxy(fault).await,
        Undo::RemoveFile { path } => fill::remove(path),
    }
}

/// Where injectors keep one lock file per held fault: `DRILL_RUN_DIR`, else /run/drillkit,
/// else the temp dir.
pub fn lock_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DRILL_RUN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let run = PathBuf::from("/run/drillkit");
    if std::fs::create_dir_all(&run).is_ok() {
        return run;
    }
    std::env::temp_dir().join("drillkit")
}

type Held = HashMap<String, nix::fcntl::Flock<std::fs::File>>;
static HELD: std::sync::Mutex<Option<Held>> = std::sync::Mutex::new(None);

/// Take the fault's lock for as long as this process holds the fault (released on revert or
/// when the process dies, SIGKILL included). Best effort: without it doctor only errs on the
/// side of reporting.
fn hold(id: &str) {
    let dir = lock_dir();
    let _ = std::fs::create_dir_all(&dir);
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{id}.lock")))
    else {
        return;
    };
    if let Ok(lock) = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        if let Ok(mut h) = HELD.lock() {
            h.get_or_insert_with(HashMap::new)
                .insert(id.to_string(), lock);
        }
    }
}

fn release(id: &str) {
    let lock = HELD
        .lock()
        .ok()
        .and_then(|mut h| h.as_mut().and_then(|m| m.remove(id)));
    if lock.is_some() {
        let _ = std::fs::remove_file(lock_dir().join(format!("{id}.lock")));
    } else {
        // Reverted by another process (after a SIGKILL, or a fault left in place): the lock file
        // is free, and `is_held` removes a free one.
        let _ = is_held(id);
    }
}

/// Whether a live injector holds this fault (its lock is taken).
pub fn is_held(id: &str) -> bool {
    let path = lock_dir().join(format!("{id}.lock"));
    let Ok(file) = std::fs::OpenOptions::new().write(true).open(&path) else {
        return false;
    };
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(_free) => {
            let _ = std::fs::remove_file(&path);
            false
        }
        Err(_) => true,
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
    let needs_docker = open.iter().any(|f| needs_docker(&f.undo));
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

/// A scenario fault's options as [`Extra`]; the error starts with the offending key
/// (`key: message`) so the scenario parser can point at it.
pub fn extra_from_spec(f: &crate::scenario::FaultSpec) -> Result<Extra, String> {
    let mut x = Extra {
        networks: f.network.clone(),
        delay: f.delay.map(|d| d.0),
        jitter: f.jitter.map(|d| d.0),
        loss: f.loss.map(|r| r.0),
        rate: f.rate.clone(),
        devs: f.dev.clone(),
        mount: f.mount.clone(),
        allow_root_fs: f.allow_root_fs,
        allow_journal_fs: f.allow_journal_fs,
        ..Default::default()
    };
    match f.action {
        Action::Partition => {
            x.to = f.to.clone();
            if let Some(m) = &f.method {
                x.partition_method = <PartitionMethod as clap::ValueEnum>::from_str(m, true)
                    .map_err(|_| {
                        format!("method: partition takes auto, docker or iptables, got '{m}'")
                    })?;
            }
        }
        Action::Degrade => {
            x.to = f.to.clone();
            if let Some(m) = &f.method {
                x.degrade_method = <degrade::Method as clap::ValueEnum>::from_str(m, true)
                    .map_err(|_| {
                        format!("method: degrade takes auto, netem, iptables or proxy, got '{m}'")
                    })?;
            }
            if let Some(r) = &f.rate {
                degrade::rate_bits(r).map_err(|e| format!("rate: {:#}", e.error))?;
            }
            if f.delay.is_none() && f.loss.is_none() && f.rate.is_none() {
                return Err("action: degrade needs at least one of delay, loss, rate".into());
            }
            if f.jitter.is_some() && f.delay.is_none() {
                return Err("jitter: jitter needs delay".into());
            }
        }
        Action::FillDisk => {
            x.fill_goal = Some(match (f.leave, f.to.as_slice()) {
                (Some(_), [_, ..]) => return Err("to: give leave or to, not both".into()),
                (Some(l), []) => Goal::Leave(l.0),
                (None, [p]) => Goal::Percent(
                    p.parse::<crate::units::Ratio>()
                        .map_err(|e| format!("to: fill-disk takes a percentage: {e}"))?
                        .0,
                ),
                (None, []) => Goal::Leave(0),
                (None, _) => return Err("to: fill-disk takes one percentage".into()),
            });
        }
        _ => {}
    }
    Ok(x)
}
