//! Targets: what a fault is pointed at. A selector (container names, labels, a compose service,
//! a pid, a pidfile, a process name) resolves to concrete targets before anything is touched,
//! and a selector that matches more than `max_targets` is refused. Network faults may also point
//! at a network namespace (`netns`, or the host's own with `host`), and fill-disk at a directory
//! (`path`). `require_label` lets only opted-in containers be targeted.

use super::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;

/// A target selector, as written in a scenario (`target:`) or given by flags.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// Container names or ids; each one is a target.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub container: Vec<String>,
    /// `key=value` labels, ANDed.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub label: Vec<String>,
    /// `[PROJECT/]SERVICE` of Docker Compose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose_service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pidfile: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_name: Option<String>,
    /// A named network namespace (`ip netns list`), for partition and degrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// The host's own network namespace, for partition and degrade.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host: bool,
    /// A directory whose filesystem fill-disk fills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// A scenario's engine (a key of `engines:`) for container targets; default: the run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

/// A string or a list of strings.
pub fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::One(s) => vec![s],
        Raw::Many(v) => v,
    })
}

/// What a selector resolved to.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Container {
        id: String,
        name: String,
    },
    Process {
        pid: i32,
        start_time: u64,
        name: String,
    },
    /// A network namespace (named, or the host's).
    Netns {
        netns: super::netns::Netns,
    },
    /// A directory (fill-disk).
    Path {
        path: PathBuf,
    },
}

impl Target {
    pub fn describe(&self) -> String {
        match self {
            Target::Container { name, id } => format!("container {name} ({})", short(id)),
            Target::Process { pid, name, .. } => format!("process {name} (pid {pid})"),
            Target::Netns { netns } => netns.describe(),
            Target::Path { path } => format!("path {}", path.display()),
        }
    }
}

pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

impl TargetSpec {
    pub fn is_docker(&self) -> bool {
        !self.container.is_empty() || !self.label.is_empty() || self.compose_service.is_some()
    }

    /// The selector that acts on this machine itself (a process, a network namespace, the host's
    /// namespace), if any: with an engine elsewhere that is almost surely not what was meant.
    pub fn local_only(&self) -> Option<&'static str> {
        if self.pid.is_some() {
            Some("pid")
        } else if self.pidfile.is_some() {
            Some("pidfile")
        } else if self.process_name.is_some() {
            Some("process_name")
        } else if self.netns.is_some() {
            Some("netns")
        } else if self.host {
            Some("host")
        } else {
            None
        }
    }

    /// Refuse (exit 2) a selector that acts on this machine while the chosen Docker engine is on
    /// another one: a drill aimed at that engine's host must not hurt the runner.
    pub fn check_engine(&self, engine: &crate::docker::Engine) -> Result<()> {
        match self.local_only() {
            Some(sel) if !engine.is_local() => Err(Error::Invalid(format!(
                "{sel} targets act on this machine only, but the Docker engine is {} (elsewhere); process, netns and host faults are local-only — unset DOCKER_HOST/DOCKER_CONTEXT or pass --docker-host unix:///var/run/docker.sock to drill this machine",
                engine.describe()
            ))),
            _ => Ok(()),
        }
    }

    fn is_place(&self) -> bool {
        self.netns.is_some() || self.host || self.path.is_some()
    }

    /// Check the selector's shape without touching anything.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let kinds = [
            !self.container.is_empty(),
            !self.label.is_empty() || self.compose_service.is_some(),
            self.pid.is_some(),
            self.pidfile.is_some(),
            self.process_name.is_some(),
            self.netns.is_some(),
            self.host,
            self.path.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if kinds == 0 {
            return Err(
                "a target needs container, label, compose_service, pid, pidfile, process_name, netns, host or path"
                    .into(),
            );
        }
        if kinds > 1 {
            return Err("a target takes one kind of selector (container, label/compose_service, pid, pidfile, process_name, netns, host or path)".into());
        }
        if let Some(n) = &self.netns {
            if n.is_empty() || n.contains('/') {
                return Err(format!(
                    "netns takes a name from `ip netns list`, got '{n}'"
                ));
            }
        }
        for l in &self.label {
            match l.split_once('=') {
                Some((k, _)) if !k.is_empty() => {}
                _ => return Err(format!("label selector must be key=value, got '{l}'")),
            }
        }
        if let Some(s) = &self.compose_service {
            if s.is_empty() || s.ends_with('/') || s.starts_with('/') {
                return Err(format!(
                    "compose_service must be [PROJECT/]SERVICE, got '{s}'"
                ));
            }
        }
        if let Some(p) = self.pid {
            if p <= 1 {
                return Err(format!("pid {p} is not a process drillkit will signal"));
            }
        }
        if self.container.iter().any(|c| c.trim().is_empty()) {
            return Err("container name is empty".into());
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.container.is_empty() {
            parts.push(format!("container {}", self.container.join(", ")));
        }
        if !self.label.is_empty() {
            parts.push(format!("label {}", self.label.join(" & ")));
        }
        if let Some(s) = &self.compose_service {
            parts.push(format!("compose service {s}"));
        }
        if let Some(p) = self.pid {
            parts.push(format!("pid {p}"));
        }
        if let Some(p) = &self.pidfile {
            parts.push(format!("pidfile {}", p.display()));
        }
        if let Some(n) = &self.process_name {
            parts.push(format!("process {n}"));
        }
        if let Some(n) = &self.netns {
            parts.push(format!("netns {n}"));
        }
        if self.host {
            parts.push("the host".into());
        }
        if let Some(p) = &self.path {
            parts.push(format!("path {}", p.display()));
        }
        parts.join(", ")
    }

    /// Resolve to concrete targets. More than `max_targets` matches is refused (exit 2) before
    /// anything is touched; no match is exit 3.
    pub async fn resolve(
        &self,
        docker: Option<&crate::docker::Docker>,
        max_targets: usize,
    ) -> Result<Vec<Target>> {
        self.validate().map_err(Error::Invalid)?;
        let targets = if self.is_docker() {
            let docker = super::plan::need_docker(docker)?;
            self.resolve_containers(docker).await?
        } else if self.is_place() {
            vec![self.resolve_place()?]
        } else {
            vec![self.resolve_process()?]
        };
        if targets.len() > max_targets {
            let names: Vec<String> = targets.iter().map(|t| t.describe()).collect();
            return Err(Error::Invalid(format!(
                "{} matches {} targets ({}) but --max-targets is {max_targets}; nothing was touched. \
                 Narrow the selector or raise --max-targets",
                self.describe(),
                targets.len(),
                names.join(", ")
            )));
        }
        Ok(targets)
    }

    async fn resolve_containers(&self, docker: &crate::docker::Docker) -> Result<Vec<Target>> {
        let mut out: Vec<Target> = Vec::new();
        for name in &self.container {
            let f = crate::docker::inspect(docker, name).await?;
            out.push(Target::Container {
                id: f.id,
                name: f.name,
            });
        }
        let mut labels = self.label.clone();
        if let Some(svc) = &self.compose_service {
            match svc.split_once('/') {
                Some((project, service)) => {
                    labels.push(format!("com.docker.compose.project={project}"));
                    labels.push(format!("com.docker.compose.service={service}"));
                }
                None => labels.push(format!("com.docker.compose.service={svc}")),
            }
        }
        if !labels.is_empty() {
            let mut filters = HashMap::new();
            filters.insert("label".to_string(), labels.clone());
            let opts = bollard::query_parameters::ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            };
            let list = docker
                .list_containers(Some(opts))
                .await
                .map_err(crate::docker::Error::api("cannot list containers"))?;
            if list.is_empty() {
                return Err(Error::Target(format!(
                    "no container matches {}",
                    self.describe()
                )));
            }
            for c in list {
                let id = c.id.unwrap_or_default();
                let name = c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_else(|| id.clone())
                    .trim_start_matches('/')
                    .to_string();
                out.push(Target::Container { id, name });
            }
            out.sort_by_key(|t| t.describe());
        }
        Ok(out)
    }

    fn resolve_place(&self) -> Result<Target> {
        if let Some(n) = &self.netns {
            return Ok(Target::Netns {
                netns: super::netns::Netns::named(n)?,
            });
        }
        if self.host {
            return Ok(Target::Netns {
                netns: super::netns::Netns::Host,
            });
        }
        let p = self
            .path
            .as_ref()
            .ok_or_else(|| Error::Invalid("no target".into()))?;
        let abs =
            std::fs::canonicalize(p).map_err(|e| Error::io(format!("path {}", p.display()), e))?;
        Ok(Target::Path { path: abs })
    }

    fn resolve_process(&self) -> Result<Target> {
        let pid = if let Some(p) = self.pid {
            p
        } else if let Some(file) = &self.pidfile {
            read_pidfile(file)?
        } else if let Some(name) = &self.process_name {
            find_process(name)?
        } else {
            return Err(Error::Invalid("no process selector".into()));
        };
        let info = crate::process::info(pid).ok_or_else(|| {
            Error::Target(format!("no such process: pid {pid} ({})", self.describe()))
        })?;
        Ok(Target::Process {
            pid,
            start_time: info.start_time,
            name: info.comm,
        })
    }
}

/// The first line of a pidfile (PostgreSQL's `postmaster.pid` has the pid there).
pub fn read_pidfile(file: &std::path::Path) -> Result<i32> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::io(format!("cannot read pidfile {}", file.display()), e))?;
    let first = text.lines().next().unwrap_or("").trim();
    first.parse::<i32>().ok().filter(|p| *p > 1).ok_or_else(|| {
        Error::Target(format!(
            "pidfile {} does not start with a pid (first line {first:?})",
            file.display()
        ))
    })
}

fn find_process(name: &str) -> Result<i32> {
    let me = std::process::id() as i32;
    let mut found: Vec<i32> = crate::process::all_pids()
        .into_iter()
        .filter(|p| *p != me)
        .filter(|p| crate::process::info(*p).is_some_and(|i| i.comm == name))
        .collect();
    found.sort_unstable();
    match found.as_slice() {
        [] => Err(Error::Target(format!("no process named {name}"))),
        [one] => Ok(*one),
        many => Err(Error::Invalid(format!(
            "{} processes are named {name} (pids {}); name one with --pid or --pidfile",
            many.len(),
            many.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
