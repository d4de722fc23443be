//! The one PostgreSQL connection layer. Every feature that talks to a server — the probe
//! (`wait-recovery --postgres`, `measure-rto watch`), the canary writer and the restore test of
//! `verify-backup` — connects through [`Target`], so a URL means the same thing everywhere.
//!
//! tokio-postgres speaks the protocol; this adds what libpq users expect and tokio-postgres
//! leaves out: passwords from `PGPASSWORD` or `~/.pgpass` (`PGPASSFILE`, `passfile=`), the full
//! `sslmode` ladder (`disable`, `allow`, `prefer`, `require`, `verify-ca`, `verify-full`, with
//! `sslrootcert`) over rustls with the ring provider, multi-host URLs with
//! `target_session_attrs`, and the `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGSSLMODE`,
//! `PGSSLROOTCERT` defaults. Errors are [`Error`], whose `code()` is the exit code.

mod conninfo;
mod pgpass;
pub mod sqlstate;
mod tls;

pub use pgpass::pgpass_lookup;

use crate::exit::{Code, Failure};
use crate::redact::redact;
use std::path::PathBuf;
use std::time::Duration;
use tokio_postgres::config::Host;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// libpq tries plain first; we treat it as `prefer` (TLS when offered, never verified).
    Allow,
    Prefer,
    /// Encrypt, do not verify the certificate (unless a root certificate is present: then, as in
    /// libpq, it behaves as `verify-ca`).
    Require,
    /// Verify the chain against `sslrootcert`, not the host name.
    VerifyCa,
    /// Verify the chain and that the certificate names the host.
    VerifyFull,
}

impl SslMode {
    /// The name libpq uses (`verify-full`).
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl std::str::FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "invalid sslmode '{other}'; expected disable, allow, prefer, require, verify-ca or verify-full"
                ))
            }
        })
    }
}

/// What went wrong talking to PostgreSQL. Messages never hold a password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection string, or a file it names, is wrong: the user must fix it (exit 2).
    #[error("{0}")]
    Config(String),
    /// The server could not be reached or refused us (exit 3). `message` is the server's own
    /// (`FATAL: password authentication failed for user "app" (28P01)`) or the cause chain.
    #[error("{message}")]
    Connect {
        message: String,
        sqlstate: Option<String>,
    },
    /// No answer in time (exit 3).
    #[error("timed out connecting after {0}")]
    Timeout(String),
}

impl Error {
    /// The exit code this error maps to.
    pub fn code(&self) -> Code {
        match self {
            Error::Config(_) => Code::BadInput,
            Error::Connect { .. } | Error::Timeout(_) => Code::Environment,
        }
    }

    /// Did the server reject the credentials (wrong password, no such role, pg_hba refusal)?
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Connect { sqlstate: Some(s), .. }
            if s == sqlstate::INVALID_PASSWORD || s == sqlstate::INVALID_AUTHORIZATION)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::new(e.code(), e)
    }
}

/// A resolved connection target: tokio-postgres config with the password found, and the TLS
/// connector `sslmode` asks for. Cheap to clone; connect as often as needed.
#[derive(Clone)]
pub struct Target {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    mode: SslMode,
    rootcert: Option<PathBuf>,
    shown: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("target", &self.shown)
            .finish()
    }
}

impl Target {
    /// Parse a `postgres://` URL (multi-host too) or a `key=value` string. An `Err` is a
    /// message for the user (a bad URL, an unsupported option, an unreadable root certificate).
    pub fn parse(conn: &str) -> Result<Target, Error> {
        Target::parse_with_db(conn, None)
    }

    /// [`Target::parse`], with `default_db` as the database when neither the string nor
    /// `PGDATABASE` names one (libpq's default is the user name). The `.pgpass` lookup uses the
    /// database finally chosen.
    pub fn parse_with_db(conn: &str, default_db: Option<&str>) -> Result<Target, Error> {
        let conn = conn.trim();
        if conn.is_empty() {
            return Err(Error::Config("empty PostgreSQL connection string".into()));
        }
        let (rest, ssl) = conninfo::split_libpq_only(conn).map_err(Error::Config)?;
        let mut config: tokio_postgres::Config = rest.parse().map_err(|e| {
            Error::Config(format!(
                "invalid PostgreSQL connection string: {}",
                error_message(&e)
            ))
        })?;
        conninfo::apply_env_defaults(&mut config);
        if config.get_dbname().is_none_or(str::is_empty) {
            if let Some(db) = default_db {
                config.dbname(db);
            }
        }
        if config.get_password().is_none() {
            if let Some(pw) = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()) {
                config.password(pw);
            } else if let Some(pw) = pgpass::password(&config, ssl.passfile.as_deref()) {
                config.password(pw);
            }
        }
        let mode = match ssl.mode {
            Some(m) => m,
            None => match std::env::var("PGSSLMODE") {
                Ok(v) if !v.is_empty() => v.parse().map_err(Error::Config)?,
                _ => SslMode::Prefer,
            },
        };
        let rootcert = ssl.rootcert.or_else(|| {
            std::env::var("PGSSLROOTCERT")
                .ok()
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let (pg_mode, tls) = tls::tls_for(mode, rootcert.as_deref()).map_err(Error::Config)?;
        config.ssl_mode(pg_mode);
        Ok(Target {
            config,
            tls,
            mode,
            rootcert,
            shown: redact(conn),
        })
    }

    /// The connection string with its password hidden.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The database this target connects to.
    pub fn dbname(&self) -> &str {
        self.config
            .get_dbname()
            .or(self.config.get_user())
            .unwrap_or("postgres")
    }

    /// The same server, user, password and TLS, another database (a scratch database).
    pub fn with_dbname(&self, db: &str) -> Target {
        let mut t = self.clone();
        t.config.dbname(db);
        t.shown = format!("{} (database {db})", self.shown);
        t
    }

    /// The password found (from the string, `PGPASSWORD` or `.pgpass`), for a child process
    /// that needs it in its environment. Never log it.
    pub fn password(&self) -> Option<String> {
        self.config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    /// A libpq `key=value` string for a client tool (`pg_restore --dbname`): hosts, ports,
    /// user, database, `sslmode`, `sslrootcert`, `target_session_attrs`. The password is not in
    /// it: pass [`Target::password`] as `PGPASSWORD`.
    pub fn libpq_conninfo(&self) -> String {
        let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
        let mut info = Vec::new();
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(s) => s.clone(),
                Host::Unix(p) => p.to_string_lossy().into_owned(),
            })
            .collect();
        if !hosts.is_empty() {
            info.push(format!("host={}", quote(&hosts.join(","))));
        }
        let ports: Vec<String> = self.config.get_ports().iter().map(u16::to_string).collect();
        if !ports.is_empty() {
            info.push(format!("port={}", quote(&ports.join(","))));
        }
        if let Some(u) = self.config.get_user() {
            info.push(format!("user={}", quote(u)));
        }
        info.push(format!("dbname={}", quote(self.dbname())));
        info.push(format!("sslmode={}", self.mode.name()));
        if let Some(r) = &self.rootcert {
            info.push(format!("sslrootcert={}", quote(&r.to_string_lossy())));
        }
        if self.config.get_target_session_attrs()
            == tokio_postgres::config::TargetSessionAttrs::ReadWrite
        {
            info.push("target_session_attrs=read-write".into());
        }
        info.join(" ")
    }

    /// Connect within `timeout` (per host, and for the whole attempt across all hosts). The
    /// connection is driven by a spawned task that ends when the client is dropped.
    pub async fn connect(&self, timeout: Duration) -> Result<tokio_postgres::Client, Error> {
        let mut config = self.config.clone();
        config.connect_timeout(timeout);
        let hosts = config.get_hosts().len().max(1) as u32;
        let fut = config.connect(self.tls.clone());
        match tokio::time::timeout(timeout * hosts + Duration::from_millis(100), fut).await {
            Ok(Ok((client, connection))) => {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(client)
            }
            Ok(Err(e)) => Err(Error::Connect {
                message: error_message(&e),
                sqlstate: sqlstate(&e).map(str::to_string),
            }),
            Err(_) => Err(Error::Timeout(crate::units::fmt_duration(
                timeout.as_secs_f64(),
            ))),
        }
    }
}

/// The user-facing text of a tokio-postgres error: the server's own message for server errors
/// (`FATAL: password authentication failed for user "app" (28P01)`), the cause chain otherwise
/// (`error connecting to server: Connection refused (os error 111)`).
pub fn error_message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            s.push_str(&format!("; {detail}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

/// The SQLSTATE of a server error, if it is one (compare with [`sqlstate`]'s constants).
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.as_db_error().map(|d| d.code().code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_for_client_tools_has_no_password() {
        let t = Target::parse(
            "postgres://app:s3cret@h1:5433,h2:5434/db?sslmode=disable&target_session_attrs=read-write",
        )
        .expect("parse");
        let info = t.libpq_conninfo();
        assert_eq!(
            info,
            "host='h1,h2' port='5433,5434' user='app' dbname='db' sslmode=disable target_session_attrs=read-write"
        );
        assert!(!info.contains("s3cret"));
        assert_eq!(t.password().as_deref(), Some("s3cret"));
        assert_eq!(t.with_dbname("scratch").dbname(), "scratch");
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn bad_strings_are_config_errors() {
        for bad in [
            "",
            "postgres://h:notaport/db",
            "postgres://h/db?sslmode=bogus",
        ] {
            let e = Target::parse(bad).expect_err(bad);
            assert_eq!(e.code(), Code::BadInput, "{bad}: {e}");
        }
    }
}
