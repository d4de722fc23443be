//! Probe flags shared by `wait-recovery` and `measure-rto watch`.

use crate::probe::ProbeSpec;
use crate::units::Dur;
use clap::Args;

#[derive(Args, Debug, Clone, Default)]
pub struct ProbeFlags {
    /// GET this URL; passes on 2xx/3xx (or --status). Repeatable.
    #[arg(long, value_name = "URL", help_heading = "Probes")]
    pub http: Vec<String>,
    /// Exact HTTP status every --http probe must answer.
    #[arg(long, help_heading = "Probes")]
    pub status: Option<u16>,
    /// Text every --http response body must contain.
    #[arg(long, value_name = "TEXT", help_heading = "Probes")]
    pub body_contains: Option<String>,
    /// A TCP connection is accepted. Repeatable.
    #[arg(long, value_name = "HOST:PORT", help_heading = "Probes")]
    pub tcp: Vec<String>,
    /// The container runs (not paused or restarting). Repeatable.
    #[arg(long, value_name = "NAME", help_heading = "Probes")]
    pub docker: Vec<String>,
    /// With --docker: its health check must report healthy.
    #[arg(long, help_heading = "Probes")]
    pub healthy: bool,
    /// PING answers PONG. Repeatable.
    #[arg(long, value_name = "URL", help_heading = "Probes")]
    pub redis: Vec<String>,
    /// With --redis: DBSIZE must reach N (a warm cache).
    #[arg(long, value_name = "N", help_heading = "Probes")]
    pub min_keys: Option<u64>,
    /// A shell command exits 0. Repeatable.
    #[arg(long, value_name = "SHELL", help_heading = "Probes")]
    pub command: Vec<String>,
    /// Connect to PostgreSQL. Repeatable.
    #[arg(long, value_name = "URL", help_heading = "Probes")]
    pub postgres: Vec<String>,
    /// With --postgres: run this query…
    #[arg(long, value_name = "SQL", help_heading = "Probes")]
    pub query: Option<String>,
    /// With --query: compare the first column of the first row with this; with --dns: an
    /// address the name must resolve to.
    #[arg(long, value_name = "VALUE", help_heading = "Probes")]
    pub expect: Option<String>,
    /// With --postgres: the server must accept writes.
    #[arg(long, help_heading = "Probes")]
    pub writable: bool,
    /// With --postgres on a standby: replay lag at most this.
    #[arg(long, value_name = "DURATION", help_heading = "Probes")]
    pub max_replication_lag: Option<Dur>,
    /// NAME resolves (to --expect, when given). Repeatable.
    #[arg(long, value_name = "NAME", help_heading = "Probes")]
    pub dns: Vec<String>,
    /// With --dns: ask this server (IP or IP:PORT) instead of the system resolver.
    #[arg(long, value_name = "IP[:PORT]", help_heading = "Probes")]
    pub resolver: Option<String>,
}

impl ProbeFlags {
    /// One spec per probe flag; modifiers apply to every probe of their kind.
    pub fn specs(&self) -> Vec<ProbeSpec> {
        let mut v = Vec::new();
        for u in &self.http {
            v.push(ProbeSpec {
                http: Some(u.clone()),
                status: self.status,
                body_contains: self.body_contains.clone(),
                ..Default::default()
            });
        }
        for a in &self.tcp {
            v.push(ProbeSpec {
                tcp: Some(a.clone()),
                ..Default::default()
            });
        }
        for d in &self.docker {
            v.push(ProbeSpec {
                docker: Some(d.clone()),
                healthy: self.healthy,
                ..Default::default()
            });
        }
        for r in &self.redis {
            v.push(ProbeSpec {
                redis: Some(r.clone()),
                min_keys: self.min_keys,
                ..Default::default()
            });
        }
        for c in &self.command {
            v.push(ProbeSpec {
                command: Some(c.clone()),
                ..Default::default()
            });
        }
        for p in &self.postgres {
            v.push(ProbeSpec {
                postgres: Some(p.clone()),
                query: self.query.clone(),
                expect: self.expect.clone(),
                writable: self.writable,
                max_replication_lag: self.max_replication_lag,
                ..Default::default()
            });
        }
        for d in &self.dns {
            v.push(ProbeSpec {
                dns: Some(d.clone()),
                expect: self.expect.clone(),
                resolver: self.resolver.clone(),
                ..Default::default()
            });
        }
        v
    }

    /// Modifiers given without the probe they modify are mistakes, not no-ops.
    pub fn check_modifiers(&self) -> Result<(), String> {
        let orphan = |set: bool, flag: &str, needs: &str, have: bool| {
            if set && !have {
                Err(format!("{flag} needs {needs}"))
            } else {
                Ok(())
            }
        };
        orphan(
            self.status.is_some(),
            "--status",
            "--http",
            !self.http.is_empty(),
        )?;
        orphan(
            self.body_contains.is_some(),
            "--body-contains",
            "--http",
            !self.http.is_empty(),
        )?;
        orphan(
            self.healthy,
            "--healthy",
            "--docker",
            !self.docker.is_empty(),
        )?;
        orphan(
            self.min_keys.is_some(),
            "--min-keys",
            "--redis",
            !self.redis.is_empty(),
        )?;
        let pg = !self.postgres.is_empty();
        orphan(self.query.is_some(), "--query", "--postgres", pg)?;
        orphan(
            self.resolver.is_some(),
            "--resolver",
            "--dns",
            !self.dns.is_empty(),
        )?;
        let expect_owner = self.query.is_some() || !self.dns.is_empty();
        orphan(
            self.expect.is_some(),
            "--expect",
            "--query (with --postgres) or --dns",
            expect_owner,
        )?;
        orphan(self.writable, "--writable", "--postgres", pg)?;
        orphan(
            self.max_replication_lag.is_some(),
            "--max-replication-lag",
            "--postgres",
            pg,
        )
    }
}
