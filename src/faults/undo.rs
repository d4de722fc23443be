//! How each fault is taken back. An [`Undo`] is written to the journal (fsynced) before its fault
//! is applied and carries everything needed to revert it from the journal alone; reverting is
//! idempotent, so a fault that was planned but never applied, or already undone, is harmless to
//! undo again.

use super::netns::{self, Netns};
use super::target::short;
use super::{degrade, fill, partition, Error, Result};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;

/// How to undo a fault; written before the fault is applied.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Undo {
    /// Nothing to undo by drillkit: e.g. a crash that the restart policy recovers from.
    Nothing { reason: String },
    /// Start the container again (after stop or kill), unless it is already running.
    DockerStart { id: String, name: String },
    /// Unpause the container.
    DockerUnpause { id: String, name: String },
    /// Send SIGCONT to a process that was stopped with SIGSTOP. `start_time` guards against pid reuse.
    ProcessContinue { pid: i32, start_time: u64 },
    /// A process that was stopped or killed cannot be brought back by a signal; the scenario's
    /// restore step (or a person) must. Recorded so reports and `list` show it.
    Manual { hint: String },
    /// Several undos, reverted last first (a degrade is a qdisc, a rule and a proxy).
    All { steps: Vec<Undo> },
    /// Connect the container to the network again, with the aliases and addresses it had.
    DockerReconnect {
        id: String,
        name: String,
        network: String,
        network_id: String,
        #[serde(default)]
        aliases: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ipv4: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ipv6: Option<String>,
    },
    /// Delete one iptables rule (it carries `-m comment --comment drillkit:<fault id>`).
    IptablesDelete {
        netns: Netns,
        /// `iptables` or `ip6tables`.
        tool: String,
        table: String,
        chain: String,
        rule: Vec<String>,
    },
    /// Delete drillkit's root qdisc (handle `dd17:`) so the previous one — the kernel's default,
    /// the only kind drillkit replaces — is back.
    QdiscRestore {
        netns: Netns,
        dev: String,
        /// `tc qdisc show dev DEV root` before the fault, for the record.
        previous: String,
    },
    /// Stop drillkit's delay proxy for this fault (found by its command line).
    ProxyStop { fault: String, netns: Netns },
    /// Delete the file drillkit created (fill-disk).
    RemoveFile { path: String },
    /// Delete the fill file drillkit wrote on a volume of container `id` on an engine elsewhere
    /// (`path` as the container sees it), through a helper with its volumes.
    ContainerRemoveFile {
        id: String,
        name: String,
        path: String,
        fault: String,
    },
}

impl Undo {
    /// The undo as a person reads it (dry run, `list`, doctor).
    pub fn describe(&self) -> String {
        match self {
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
                .map(Undo::describe)
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
                super::degrade::HANDLE
            ),
            Undo::ProxyStop { fault, .. } => format!("SIGTERM the delay proxy of {fault}"),
            Undo::RemoveFile { path } => format!("rm {path}"),
            Undo::ContainerRemoveFile { id, path, .. } => format!(
                "rm {path} in a helper with the volumes of {} (docker run --rm --volumes-from {} …)",
                short(id),
                short(id)
            ),
        }
    }

    /// Whether reverting this needs Docker.
    pub fn needs_docker(&self) -> bool {
        match self {
            Undo::DockerStart { .. }
            | Undo::DockerUnpause { .. }
            | Undo::DockerReconnect { .. }
            | Undo::ContainerRemoveFile { .. } => true,
            Undo::IptablesDelete { netns, .. }
            | Undo::QdiscRestore { netns, .. }
            | Undo::ProxyStop { netns, .. } => netns.is_container(),
            Undo::All { steps } => steps.iter().any(Undo::needs_docker),
            _ => false,
        }
    }

    /// Undo it now. Idempotent: undoing what is already undone (or never happened) succeeds.
    /// Returns what was done, for the journal.
    pub fn revert<'a>(
        &'a self,
        docker: Option<&'a crate::docker::Docker>,
    ) -> Pin<Box<dyn Future<Output = Result<String>> + Send + 'a>> {
        // Boxed: `All` recurses.
        Box::pin(self.revert_inner(docker))
    }

    async fn revert_inner(&self, docker: Option<&crate::docker::Docker>) -> Result<String> {
        let need_docker = || {
            docker.ok_or_else(|| Error::Target("reverting a container fault needs Docker".into()))
        };
        match self {
            Undo::Nothing { reason } => Ok(format!("nothing to undo ({reason})")),
            Undo::Manual { hint } => {
                tracing::warn!("{hint}");
                Ok(format!("left to the restore step: {hint}"))
            }
            Undo::DockerStart { id, name } => {
                let docker = need_docker()?;
                let facts = match crate::docker::inspect(docker, id).await {
                    Ok(f) => f,
                    // Only a container that is gone is nothing to do; an engine that cannot be
                    // reached leaves the fault open.
                    Err(crate::docker::Error::NoSuchContainer(_)) => {
                        return Ok(format!(
                            "container {name} no longer exists; nothing to start"
                        ))
                    }
                    Err(e) => return Err(e.into()),
                };
                if facts.paused {
                    docker
                        .unpause_container(id)
                        .await
                        .map_err(crate::docker::Error::api(format!("unpause {name}")))?;
                    return Ok(format!("unpaused {name}"));
                }
                if facts.running || facts.restarting {
                    return Ok(format!("{name} already running"));
                }
                docker
                    .start_container(id, None)
                    .await
                    .map_err(crate::docker::Error::api(format!("start {name}")))?;
                Ok(format!("started {name}"))
            }
            Undo::DockerUnpause { id, name } => {
                let docker = need_docker()?;
                let facts = match crate::docker::inspect(docker, id).await {
                    Ok(f) => f,
                    // Only a container that is gone is nothing to do; an engine that cannot be
                    // reached leaves the fault open.
                    Err(crate::docker::Error::NoSuchContainer(_)) => {
                        return Ok(format!(
                            "container {name} no longer exists; nothing to unpause"
                        ))
                    }
                    Err(e) => return Err(e.into()),
                };
                if !facts.paused {
                    return Ok(format!("{name} not paused"));
                }
                docker
                    .unpause_container(id)
                    .await
                    .map_err(crate::docker::Error::api(format!("unpause {name}")))?;
                Ok(format!("unpaused {name}"))
            }
            Undo::ProcessContinue { pid, start_time } => {
                if !crate::process::is_same(*pid, *start_time) {
                    return Ok(format!("pid {pid} is gone; nothing to continue"));
                }
                crate::process::signal(*pid, Signal::SIGCONT).map_err(Error::Target)?;
                Ok(format!("sent SIGCONT to pid {pid}"))
            }
            Undo::All { steps } => {
                // Last applied, first undone; every part is tried even when one fails.
                let mut done = Vec::new();
                let mut errors = Vec::new();
                for u in steps.iter().rev() {
                    match u.revert(docker).await {
                        Ok(how) => done.push(how),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                if errors.is_empty() {
                    Ok(done.join("; "))
                } else {
                    Err(Error::Target(format!(
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
                partition::reconnect(
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
            } => partition::delete_rule(netns, docker, tool, table, chain, rule).await,
            Undo::QdiscRestore {
                netns,
                dev,
                previous,
            } => degrade::restore_qdisc(netns, docker, dev, previous).await,
            Undo::ProxyStop { fault, netns } => degrade::stop_proxy_on(fault, netns, docker).await,
            Undo::RemoveFile { path } => fill::remove(path),
            Undo::ContainerRemoveFile {
                id,
                name,
                path,
                fault,
            } => {
                let docker = need_docker()?;
                match crate::docker::inspect(docker, id).await {
                    Ok(_) => {}
                    Err(crate::docker::Error::NoSuchContainer(_)) => {
                        return Ok(format!(
                            "container {name} no longer exists; if its volume does, delete {path} there"
                        ))
                    }
                    Err(e) => return Err(e.into()),
                }
                Ok(crate::docker::helper::remove_file(docker, id, fault, path).await?)
            }
        }
    }
}
