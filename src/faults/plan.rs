//! Planning: targets and a [`Fault`] become [`Step`]s — the exact API calls or commands and the
//! undo of each — before anything is touched. Planning reads (inspects containers, the current
//! qdiscs, free space) but never writes; `--dry-run` prints its result.

use super::degrade::{self, ProxySpec};
use super::fill::{self, Goal};
use super::netns::{self, Netns};
use super::partition;
use super::target::{short, Target};
use super::{new_id, Action, Error, Fault, Result, Undo};
use nix::sys::signal::Signal;
use std::path::PathBuf;

/// One operation of a network or disk fault.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A command (iptables, tc) in a namespace: `nsenter` here, or a helper container on the
    /// engine of a container elsewhere.
    Run(netns::Cmd),
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
    /// fill-disk on a volume of a container on an engine elsewhere: a helper with its volumes
    /// (`volumes_from`) writes `file`, a path as the container sees it.
    ContainerFill {
        id: String,
        file: String,
        goal: Goal,
    },
}

impl Op {
    pub fn describe(&self) -> String {
        match self {
            Op::Run(cmd) => netns::shell(&cmd.argv()),
            Op::ContainerFill { id, file, goal } => format!(
                "docker run --rm --volumes-from {} --network none <drillkit helper> fill {file} ({}; measured in the helper)",
                short(id),
                goal.describe()
            ),
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

/// One step of a plan: what would be done to one target and how it would be undone.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The fault id (`f-xxxxxxxx`), known when planned so rules and files can carry it.
    pub id: String,
    pub target: Target,
    pub fault: Fault,
    /// The exact API call or syscall.
    pub call: String,
    pub undo: Undo,
    /// The operations of a network or disk fault, in order (empty for the others).
    pub ops: Vec<Op>,
}

impl Step {
    pub fn action(&self) -> Action {
        self.fault.action()
    }

    pub fn describe(&self) -> String {
        format!(
            "{} {}: {} (undo: {})",
            self.action().as_str(),
            self.target.describe(),
            self.call,
            self.undo.describe()
        )
    }
}

/// Work out the exact calls and undo for each target. Touches nothing.
pub async fn plan(
    targets: &[Target],
    fault: &Fault,
    docker: Option<&crate::docker::Docker>,
) -> Result<Vec<Step>> {
    let mut out = Vec::new();
    for t in targets {
        let step = match fault {
            Fault::Partition(_) | Fault::Degrade(_) | Fault::FillDisk(_) => {
                plan_ops(t, fault, docker).await?
            }
            _ => plan_one(t, fault)?,
        };
        out.push(step);
    }
    Ok(out)
}

/// A fault that is one API call or one signal.
pub(super) fn plan_one(target: &Target, fault: &Fault) -> Result<Step> {
    let action = fault.action().as_str();
    let (call, undo) = match target {
        Target::Netns { .. } | Target::Path { .. } => {
            return Err(Error::Invalid(format!(
                "{action} applies to containers or processes, not to {}",
                target.describe()
            )))
        }
        Target::Container { id, name } => {
            let start = Undo::DockerStart {
                id: id.clone(),
                name: name.clone(),
            };
            let s = short(id);
            match fault {
                Fault::Crash => (
                    format!("kill(<State.Pid of {s}>, SIGKILL) from the host"),
                    start,
                ),
                Fault::Stop { timeout } => (
                    format!("POST /containers/{s}/stop?t={}", timeout.as_secs()),
                    start,
                ),
                Fault::Kill { signal } => {
                    (format!("POST /containers/{s}/kill?signal={signal}"), start)
                }
                Fault::Pause => (
                    format!("POST /containers/{s}/pause"),
                    Undo::DockerUnpause {
                        id: id.clone(),
                        name: name.clone(),
                    },
                ),
                Fault::Restart { timeout } => (
                    format!("POST /containers/{s}/restart?t={}", timeout.as_secs()),
                    start,
                ),
                Fault::Partition(_) | Fault::Degrade(_) | Fault::FillDisk(_) => {
                    return Err(Error::Invalid(format!("{action} is planned as operations")))
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
            match fault {
                Fault::Crash => (
                    format!("kill({pid}, SIGKILL)"),
                    Undo::Nothing {
                        reason: "a crash is recovered by the process supervisor".into(),
                    },
                ),
                Fault::Stop { timeout } => (
                    format!("kill({pid}, SIGTERM), SIGKILL after {}s", timeout.as_secs()),
                    manual("a stopped"),
                ),
                Fault::Kill { signal } => (format!("kill({pid}, {signal})"), manual("a killed")),
                Fault::Pause => (
                    format!("kill({pid}, {})", Signal::SIGSTOP),
                    Undo::ProcessContinue {
                        pid: *pid,
                        start_time: *start_time,
                    },
                ),
                Fault::Restart { .. } => {
                    return Err(Error::Invalid(
                        "restart applies to containers; for a process use stop and a restore step"
                            .into(),
                    ))
                }
                Fault::Partition(_) | Fault::Degrade(_) | Fault::FillDisk(_) => {
                    return Err(Error::Invalid(format!(
                        "{action} applies to a container, a network namespace or a path, not to a process"
                    )))
                }
            }
        }
    };
    Ok(Step {
        id: new_id(),
        target: target.clone(),
        fault: fault.clone(),
        call,
        undo,
        ops: Vec::new(),
    })
}

/// A network or disk fault: a list of operations, each with its undo; the undo of the whole
/// list is what the journal records.
pub(super) async fn plan_ops(
    target: &Target,
    fault: &Fault,
    docker: Option<&crate::docker::Docker>,
) -> Result<Step> {
    let id = new_id();
    let action = fault.action().as_str();
    let refuse = |what: &str| {
        Error::Invalid(format!(
            "{action} applies to {what}, not to {}",
            target.describe()
        ))
    };
    let pieces: Vec<(Op, Undo)> = match fault {
        Fault::Partition(o) => match (o.method_for(target), target) {
            (partition::Method::Docker, Target::Container { id: cid, name }) => {
                if !o.to.is_empty() {
                    return Err(Error::Invalid(
                        "--to cuts with iptables; --method docker disconnects networks (use --network)"
                            .into(),
                    ));
                }
                let docker = need_docker(docker)?;
                partition::endpoints(docker, cid, name, &o.networks)
                    .await?
                    .iter()
                    .map(|e| {
                        (
                            Op::DockerDisconnect {
                                id: cid.clone(),
                                network: e.network.clone(),
                            },
                            partition::reconnect_undo(cid, name, e),
                        )
                    })
                    .collect()
            }
            (partition::Method::Docker, _) => {
                return Err(refuse("containers with --method docker"))
            }
            (_, Target::Process { .. } | Target::Path { .. }) => {
                return Err(refuse("a container, --netns or --host"))
            }
            (_, t) => {
                if o.to.is_empty() {
                    return Err(Error::Invalid(format!(
                        "partition with iptables needs --to CIDR|HOST:PORT (what to cut {} from)",
                        t.describe()
                    )));
                }
                if !o.networks.is_empty() {
                    return Err(Error::Invalid(
                        "--network disconnects a container through Docker; it does not combine with --to"
                            .into(),
                    ));
                }
                let ns = target_netns(t, docker, &id, o.helper_image.as_deref()).await?;
                partition::parse_dests(&o.to)
                    .await?
                    .iter()
                    .map(|d| partition::cut(&ns, d, &id))
                    .collect()
            }
        },
        Fault::Degrade(o) => {
            if matches!(target, Target::Process { .. } | Target::Path { .. }) {
                return Err(refuse("a container, --netns or --host"));
            }
            let settings = o.settings().await?;
            // What was asked is checked before any system is asked about (exit 2 first).
            degrade::resolve_for(o.method, &settings, || Ok(()))?;
            let ns = target_netns(target, docker, &id, o.helper_image.as_deref()).await?;
            let method = match (&ns, docker) {
                // The engine's kernel, not this machine's, decides whether netem is there.
                (Netns::Container { .. }, Some(d)) if o.method != degrade::Method::Proxy => {
                    let there = crate::docker::helper::netem_available(d, &id).await?;
                    degrade::resolve_for(o.method, &settings, || there.clone())?
                }
                _ => degrade::resolve(o.method, &settings)?,
            };
            degrade::plan(&ns, docker, &id, method, &settings)
                .await?
                .into_iter()
                .map(|(piece, undo)| {
                    let op = match piece {
                        degrade::Piece::Cmd(argv) => Op::Run(argv),
                        degrade::Piece::Proxy(p) => Op::Proxy(p),
                    };
                    (op, undo)
                })
                .collect()
        }
        Fault::FillDisk(o) => {
            if let (Target::Container { id: cid, name }, Some(d)) = (target, docker) {
                if !d.engine().is_local() {
                    let m = o.mount.as_deref().ok_or_else(|| {
                        Error::Invalid(
                            "fill-disk on a container needs --mount PATH (its volume or bind mount, e.g. /var/lib/postgresql/data)"
                                .into(),
                        )
                    })?;
                    // Checked to be a volume or bind mount of the container (not its image's
                    // filesystem, not a tmpfs); the helper sees it at the same path.
                    fill::container_mount(d, cid, name, m).await?;
                    let file = format!("{}/{}{id}", m.trim_end_matches('/'), fill::FILE_PREFIX);
                    let op = Op::ContainerFill {
                        id: cid.clone(),
                        file: file.clone(),
                        goal: o.goal,
                    };
                    let undo = Undo::ContainerRemoveFile {
                        id: cid.clone(),
                        name: name.clone(),
                        path: file,
                        fault: id.clone(),
                    };
                    return Ok(Step {
                        id,
                        target: target.clone(),
                        fault: fault.clone(),
                        call: op.describe(),
                        undo,
                        ops: vec![op],
                    });
                }
            }
            let dir = match target {
                Target::Path { path } => {
                    if o.mount.is_some() {
                        return Err(Error::Invalid(
                            "--mount names a container's mount point; with --path give the directory itself"
                                .into(),
                        ));
                    }
                    path.clone()
                }
                Target::Container { id: cid, name } => {
                    let m = o.mount.as_deref().ok_or_else(|| {
                        Error::Invalid(
                            "fill-disk on a container needs --mount PATH (its volume or bind mount, e.g. /var/lib/postgresql/data)"
                                .into(),
                        )
                    })?;
                    fill::container_mount(need_docker(docker)?, cid, name, m).await?
                }
                _ => return Err(refuse("--path or a container's --mount")),
            };
            let (file, bytes) = fill::plan(&dir, &id, o)?;
            let path = file.display().to_string();
            vec![(
                Op::Fill {
                    file,
                    goal: o.goal,
                    bytes,
                },
                Undo::RemoveFile { path },
            )]
        }
        _ => return Err(refuse("containers or processes")),
    };
    if pieces.is_empty() {
        return Err(Error::Target(format!(
            "nothing to do for {action} on {}",
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
        fault: fault.clone(),
        call,
        undo,
        ops,
    })
}

pub(super) fn need_docker(
    docker: Option<&crate::docker::Docker>,
) -> Result<&crate::docker::Docker> {
    docker.ok_or_else(|| Error::Invalid("container targets need Docker".into()))
}

/// The network namespace a network fault enters: a container's through `nsenter` when its
/// engine is on this machine, else through helper containers from `image` on its engine (checked
/// to be there before anything is recorded).
async fn target_netns(
    t: &Target,
    docker: Option<&crate::docker::Docker>,
    fault: &str,
    image: Option<&str>,
) -> Result<Netns> {
    match t {
        Target::Container { id, name } if need_docker(docker)?.engine().is_local() => {
            let pid = super::apply::host_pid(
                need_docker(docker)?,
                id,
                name,
                "its network namespace exists only while it runs",
                "network faults inside a container enter its namespace on the Docker host",
            )
            .await?;
            let info = crate::process::info(pid).ok_or_else(|| {
                Error::Target(format!("cannot read /proc/{pid} of container {name} (drillkit must run in the Docker host's pid namespace)"))
            })?;
            Ok(Netns::Process {
                pid,
                start_time: info.start_time,
            })
        }
        Target::Container { id, name } => {
            let docker = need_docker(docker)?;
            let facts = crate::docker::inspect(docker, id).await?;
            if !facts.running {
                return Err(Error::Target(format!(
                    "container {name} is not running ({}); its network namespace exists only while it runs",
                    facts.status
                )));
            }
            let image = image
                .map(str::to_string)
                .unwrap_or_else(crate::docker::helper::default_net_image);
            crate::docker::helper::require_image(docker, &image).await?;
            Ok(Netns::Container {
                id: id.clone(),
                name: name.clone(),
                image,
                fault: fault.to_string(),
            })
        }
        Target::Netns { netns } => Ok(netns.clone()),
        other => Err(Error::Invalid(format!(
            "{} has no network namespace drillkit can enter",
            other.describe()
        ))),
    }
}
