//! Probes: one question about the system ("does it answer?"), asked again and again by
//! `wait-recovery` and the `watch` sampler. Each kind lives in its own file; [`ProbeSpec`] is the
//! one description that scenario files and command-line flags both build probes from.

pub mod command;
pub mod dns;
pub mod docker;
pub mod http;
pub mod postgres;
pub mod redis;
pub mod tcp;

use crate::exit::Failure;
use crate::units::Dur;
use serde::{Deserialize, Serialize};
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
        Outcome {
            ok: true,
            detail: detail.into(),
            latency,
        }
    }
    pub fn fail(detail: impl Into<String>, latency: Duration) -> Outcome {
        Outcome {
            ok: false,
            detail: detail.into(),
            latency,
        }
    }
}

/// A probe ready to ask.
pub enum Probe {
    Http(http::HttpProbe),
    Tcp(tcp::TcpProbe),
    Docker(docker::DockerProbe),
    Redis(redis::RedisProbe),
    Command(command::CommandProbe),
    /// Boxed: it holds a connection config and TLS setup, much larger than the other kinds.
    Postgres(Box<postgres::PostgresProbe>),
    Dns(dns::DnsProbe),
}

impl Probe {
    pub fn describe(&self) -> String {
        match self {
            Probe::Http(p) => p.describe(),
            Probe::Tcp(p) => p.describe(),
            Probe::Docker(p) => p.describe(),
            Probe::Redis(p) => p.describe(),
            Probe::Command(p) => p.describe(),
            Probe::Postgres(p) => p.describe(),
            Probe::Dns(p) => p.describe(),
        }
    }

    /// Ask once; never panics, never hangs past `timeout` (plus scheduling).
    pub async fn check(&self, timeout: Duration) -> Outcome {
        let started = std::time::Instant::now();
        let run = async {
            match self {
                Probe::Http(p) => p.check(timeout).await,
                Probe::Tcp(p) => p.check(timeout).await,
                Probe::Docker(p) => p.check(timeout).await,
                Probe::Redis(p) => p.check(timeout).await,
                Probe::Command(p) => p.check(timeout).await,
                Probe::Postgres(p) => p.check(timeout).await,
                Probe::Dns(p) => p.check(timeout).await,
            }
        };
        // A last guard: a probe kind that overruns its own timeout still fails in time.
        match tokio::time::timeout(timeout + Duration::from_millis(250), run).await {
            Ok(o) => o,
            Err(_) => Outcome::fail(
                format!("no answer within {}", Dur(timeout)),
                started.elapsed(),
            ),
        }
    }
}

/// One probe as written in a scenario (`recovery.probes`, `watch`) or given by flags.
/// Exactly one of `http`, `tcp`, `docker`, `redis`, `command`, `postgres` is set.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// Per-request timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Sampling interval (watch probes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<String>,
    /// A scenario's engine (a key of `engines:`) for a docker probe; default: the run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub healthy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_keys: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub writable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replication_lag: Option<Dur>,
    /// A DNS name that must resolve (to `expect`, when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<String>,
    /// For dns: ask this server (IP or IP:PORT) instead of the system resolver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
}

const KINDS: &str = "http, tcp, docker, redis, command, postgres or dns";

impl ProbeSpec {
    fn kinds(&self) -> Vec<&'static str> {
        let mut k = Vec::new();
        for (set, name) in [
            (self.http.is_some(), "http"),
            (self.tcp.is_some(), "tcp"),
            (self.docker.is_some(), "docker"),
            (self.redis.is_some(), "redis"),
            (self.command.is_some(), "command"),
            (self.postgres.is_some(), "postgres"),
            (self.dns.is_some(), "dns"),
        ] {
            if set {
                k.push(name);
            }
        }
        k
    }

    /// Check the spec without touching anything (used by `drill validate` and before a drill).
    pub fn validate(&self) -> Result<(), String> {
        let kinds = self.kinds();
        let kind = match kinds.as_slice() {
            [k] => *k,
            [] => return Err(format!("a probe needs one of {KINDS}")),
            many => {
                return Err(format!(
                    "a probe has exactly one kind, got {}",
                    many.join(" and ")
                ))
            }
        };
        let misplaced = |field: &str, owner: &str| {
            Err(format!(
                "'{field}' belongs to a {owner} probe, not a {kind} probe"
            ))
        };
        if kind != "http" && self.status.is_some() {
            return misplaced("status", "http");
        }
        if kind != "http" && self.body_contains.is_some() {
            return misplaced("body_contains", "http");
        }
        if kind != "docker" && self.healthy {
            return misplaced("healthy", "docker");
        }
        if kind != "docker" && self.engine.is_some() {
            return misplaced("engine", "docker");
        }
        if kind != "redis" && self.min_keys.is_some() {
            return misplaced("min_keys", "redis");
        }
        if kind != "dns" && self.resolver.is_some() {
            return misplaced("resolver", "dns");
        }
        if kind != "postgres" && kind != "dns" && self.expect.is_some() {
            return misplaced("expect", "postgres or dns");
        }
        if kind != "postgres" {
            for (set, f) in [
                (self.query.is_some(), "query"),
                (self.writable, "writable"),
                (self.max_replication_lag.is_some(), "max_replication_lag"),
            ] {
                if set {
                    return misplaced(f, "postgres");
                }
            }
        }
        if kind == "postgres" && self.expect.is_some() && self.query.is_none() {
            return Err("'expect' needs a 'query'".into());
        }
        match kind {
            "http" => {
                http::HttpProbe::new(self.http.as_deref().unwrap_or_default(), self.status, None)
                    .map(|_| ())
            }
            "tcp" => tcp::TcpProbe::new(self.tcp.as_deref().unwrap_or_default()).map(|_| ()),
            "redis" => {
                redis::RedisProbe::new(self.redis.as_deref().unwrap_or_default(), None).map(|_| ())
            }
            "command" => {
                command::CommandProbe::new(self.command.as_deref().unwrap_or_default()).map(|_| ())
            }
            "postgres" => self.postgres_probe().map(|_| ()),
            "dns" => self.dns_probe().map(|_| ()),
            "docker" if self.docker.as_deref().is_some_and(|d| d.trim().is_empty()) => {
                Err("docker probe needs a container name".into())
            }
            _ => Ok(()),
        }
    }

    fn dns_probe(&self) -> Result<dns::DnsProbe, String> {
        dns::DnsProbe::new(
            self.dns.as_deref().unwrap_or_default(),
            self.expect.as_deref(),
            self.resolver.as_deref(),
        )
    }

    fn postgres_probe(&self) -> Result<postgres::PostgresProbe, String> {
        postgres::PostgresProbe::new(
            self.postgres.as_deref().unwrap_or_default(),
            self.query.clone(),
            self.expect.clone(),
            self.writable,
            self.max_replication_lag.map(|d| d.0),
        )
    }

    /// Build the probe. Docker probes share one client, connected on first need.
    pub async fn build(
        &self,
        docker: &mut Vec<crate::docker::Docker>,
        engines: &crate::docker::engine::EngineSet,
    ) -> Result<Probe, Failure> {
        self.validate()
            .map_err(|e| Failure::bad_input(anyhow::anyhow!(e)))?;
        let bad = |e: String| Failure::bad_input(anyhow::anyhow!(e));
        Ok(if let Some(u) = &self.http {
            Probe::Http(
                http::HttpProbe::new(u, self.status, self.body_contains.clone()).map_err(bad)?,
            )
        } else if let Some(a) = &self.tcp {
            Probe::Tcp(tcp::TcpProbe::new(a).map_err(bad)?)
        } else if let Some(c) = &self.docker {
            let engine = engines.pick(self.engine.as_deref());
            let client = match docker.iter().find(|d| *d.engine() == engine) {
                Some(d) => d.clone(),
                None => {
                    let d = crate::docker::connect(&engine).await?;
                    docker.push(d.clone());
                    d
                }
            };
            Probe::Docker(
                docker::DockerProbe::new(c, self.healthy, client).on_engine(self.engine.as_deref()),
            )
        } else if let Some(u) = &self.redis {
            Probe::Redis(redis::RedisProbe::new(u, self.min_keys).map_err(bad)?)
        } else if let Some(c) = &self.command {
            Probe::Command(command::CommandProbe::new(c).map_err(bad)?)
        } else if self.dns.is_some() {
            Probe::Dns(self.dns_probe().map_err(bad)?)
        } else {
            Probe::Postgres(Box::new(self.postgres_probe().map_err(bad)?))
        })
    }
}

/// Whether any of these probes talks to Docker.
pub fn any_docker<'a>(mut specs: impl Iterator<Item = &'a ProbeSpec>) -> bool {
    specs.any(|s| s.docker.is_some())
}

/// Build every probe, sharing one Docker client per engine.
pub async fn build_all(
    specs: &[ProbeSpec],
    engines: &crate::docker::engine::EngineSet,
) -> Result<Vec<Probe>, Failure> {
    let mut docker = Vec::new();
    let mut probes = Vec::with_capacity(specs.len());
    for s in specs {
        probes.push(s.build(&mut docker, engines).await?);
    }
    Ok(probes)
}
