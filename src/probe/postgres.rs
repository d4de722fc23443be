//! PostgreSQL probe: "does this server answer, with the right answer, and does it take writes?"
//!
//! Used by `wait-recovery --postgres` and `measure-rto watch`, and (through [`PgTarget`]) by the
//! canary writer. It speaks the protocol through tokio-postgres and adds what libpq users expect
//! and tokio-postgres leaves out: passwords from `PGPASSWORD` or `~/.pgpass` (`PGPASSFILE`),
//! the full `sslmode` ladder (`disable`, `allow`, `prefer`, `require`, `verify-ca`,
//! `verify-full`, with `sslrootcert`) over rustls with the ring provider, and the `PGHOST`,
//! `PGPORT`, `PGUSER`, `PGDATABASE` defaults. A probe never panics: a wrong password, an
//! unreachable host or a timeout is a failed [`Outcome`] whose detail is the server's message.

use crate::probe::Outcome;
use crate::redact::redact;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::config::{Host, SslMode as PgSslMode};
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

/// A resolved connection target: tokio-postgres config with the password found, and the TLS
/// connector `sslmode` asks for. Cheap to clone; connect as often as needed.
#[derive(Clone)]
pub struct PgTarget {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    shown: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("target", &self.shown)
            .finish()
    }
}

impl PgTarget {
    /// Parse a `postgres://` URL (multi-host too) or a `key=value` string. `Err` is a message for
    /// the user (a bad URL, an unsupported option, an unreadable root certificate).
    pub fn parse(conn: &str) -> Result<PgTarget, String> {
        let conn = conn.trim();
        if conn.is_empty() {
            return Err("empty PostgreSQL connection string".into());
        }
        let (rest, ssl) = split_libpq_only(conn)?;
        let mut config: tokio_postgres::Config = rest.parse().map_err(|e| {
            format!(
                "invalid PostgreSQL connection string: {}",
                error_message(&e)
            )
        })?;
        apply_env_defaults(&mut config);
        if config.get_password().is_none() {
            if let Some(pw) = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()) {
                config.password(pw);
            } else if let Some(pw) = pgpass_password(&config, ssl.passfile.as_deref()) {
                config.password(pw);
            }
        }
        let mode = match ssl.mode {
            Some(m) => m,
            None => match std::env::var("PGSSLMODE") {
                Ok(v) if !v.is_empty() => v.parse()?,
                _ => SslMode::Prefer,
            },
        };
        let rootcert = ssl.rootcert.or_else(|| {
            std::env::var("PGSSLROOTCERT")
                .ok()
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let (pg_mode, tls) = tls_for(mode, rootcert.as_deref())?;
        config.ssl_mode(pg_mode);
        Ok(PgTarget {
            config,
            tls,
            shown: redact(conn),
        })
    }

    /// The connection string with its password hidden.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Connect within `timeout` (per host, and for the whole attempt across all hosts). The
    /// connection is driven by a spawned task that ends when the client is dropped.
    pub async fn connect(&self, timeout: Duration) -> Result<tokio_postgres::Client, String> {
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
            Ok(Err(e)) => Err(error_message(&e)),
            Err(_) => Err(format!(
                "timed out connecting after {}",
                crate::units::fmt_duration(timeout.as_secs_f64())
            )),
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

/// The SQLSTATE of a server error, if it is one.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.as_db_error().map(|d| d.code().code())
}

/// The probe `wait-recovery --postgres` and `measure-rto watch` ask again and again.
#[derive(Clone, Debug)]
pub struct PostgresProbe {
    target: PgTarget,
    query: Option<String>,
    expect: Option<String>,
    writable: bool,
    max_lag: Option<Duration>,
}

impl PostgresProbe {
    /// `url`: a `postgres://` URL (multi-host too) or a `key=value` string. `Err` is a message
    /// for the user: a bad URL, `--expect` without `--query`, an unsupported TLS option.
    pub fn new(
        url: &str,
        query: Option<String>,
        expect: Option<String>,
        writable: bool,
        max_replication_lag: Option<Duration>,
    ) -> Result<PostgresProbe, String> {
        if expect.is_some() && query.is_none() {
            return Err(
                "--expect needs --query (the value is compared with the query's first column)"
                    .into(),
            );
        }
        if query.as_deref().is_some_and(|q| q.trim().is_empty()) {
            return Err("--query is empty".into());
        }
        let target = PgTarget::parse(url)?;
        Ok(PostgresProbe {
            target,
            query,
            expect,
            writable,
            max_lag: max_replication_lag,
        })
    }

    /// e.g. `postgres postgres://app:***@127.0.0.1:5432/app writable`.
    pub fn describe(&self) -> String {
        let mut s = format!("postgres {}", self.target.shown());
        if let Some(q) = &self.query {
            s.push_str(&format!(" query {q:?}"));
            if let Some(e) = &self.expect {
                s.push_str(&format!(" expect {e:?}"));
            }
        }
        if self.writable {
            s.push_str(" writable");
        }
        if let Some(l) = self.max_lag {
            s.push_str(&format!(
                " max-lag {}",
                crate::units::fmt_duration(l.as_secs_f64())
            ));
        }
        s
    }

    /// One probe request, bounded by `timeout` as a whole (connect, query, write, lag).
    pub async fn check(&self, timeout: Duration) -> Outcome {
        let start = Instant::now();
        let stage: Mutex<&'static str> = Mutex::new("connecting");
        let result = tokio::time::timeout(timeout, self.check_inner(timeout, &stage)).await;
        let latency = start.elapsed();
        match result {
            Ok(Ok(detail)) => Outcome::pass(detail, latency),
            Ok(Err(msg)) => Outcome::fail(redact(&msg), latency),
            Err(_) => {
                let stage = stage.lock().map(|s| *s).unwrap_or("probing");
                Outcome::fail(
                    format!(
                        "timed out after {} while {stage}",
                        crate::units::fmt_duration(timeout.as_secs_f64())
                    ),
                    latency,
                )
            }
        }
    }

    async fn check_inner(
        &self,
        timeout: Duration,
        stage: &Mutex<&'static str>,
    ) -> Result<String, String> {
        let set = |s: &'static str| {
            if let Ok(mut g) = stage.lock() {
                *g = s;
            }
        };
        let client = self.target.connect(timeout).await?;
        let mut seen: Vec<String> = Vec::new();
        if let Some(q) = &self.query {
            set("running the query");
            let value = first_value(&client, q).await?;
            let shown = value.clone().unwrap_or_else(|| "NULL".into());
            match &self.expect {
                Some(want) if !matches_expected(value.as_deref(), want) => {
                    return Err(format!("query returned {shown:?}, expected {want:?}"));
                }
                _ => seen.push(format!("query returned {shown:?}")),
            }
        }
        if self.writable {
            set("proving the server takes writes");
            prove_writable(&client).await?;
            seen.push("accepts writes".into());
        }
        if let Some(max) = self.max_lag {
            set("reading the replication lag");
            seen.push(check_lag(&client, max).await?);
        }
        if seen.is_empty() {
            seen.push("connected".into());
        }
        Ok(seen.join("; "))
    }
}

/// The first column of the first row, as text exactly as psql shows it (`t`/`f` for booleans);
/// `None` for SQL NULL. A query without rows is an error.
async fn first_value(client: &tokio_postgres::Client, sql: &str) -> Result<Option<String>, String> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| error_message(&e))?;
    for m in messages {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = m {
            return row
                .try_get(0)
                .map(|v| v.map(str::to_string))
                .map_err(|e| error_message(&e));
        }
    }
    Err("query returned no rows".into())
}

/// `expect` matches the text value; `true`/`false` (any case) also match `t`/`f`. An empty
/// `expect` matches NULL (psql shows NULL as nothing).
pub fn matches_expected(value: Option<&str>, expect: &str) -> bool {
    let Some(v) = value else {
        return expect.is_empty() || expect.eq_ignore_ascii_case("null");
    };
    if v == expect {
        return true;
    }
    match v {
        "t" => expect.eq_ignore_ascii_case("true"),
        "f" => expect.eq_ignore_ascii_case("false"),
        _ => false,
    }
}

/// A write that leaves nothing behind: a temporary table created and filled inside a transaction
/// that is rolled back. A hot standby refuses it ("cannot execute CREATE TABLE in a read-only
/// transaction"), and so does a primary with `default_transaction_read_only = on` — exactly
/// what an application's writes would meet. (`SELECT txid_current()` is not used: it proves an
/// xid can be assigned, not that a statement may write.)
async fn prove_writable(client: &tokio_postgres::Client) -> Result<(), String> {
    let sql = "BEGIN; \
               CREATE TEMP TABLE drillkit_writable_probe (x int) ON COMMIT DROP; \
               INSERT INTO drillkit_writable_probe VALUES (1); \
               ROLLBACK";
    match client.batch_execute(sql).await {
        Ok(()) => Ok(()),
        Err(e) => {
            // Leave the session usable for a caller that keeps it (the probe drops it anyway).
            let _ = client.batch_execute("ROLLBACK").await;
            Err(format!("not writable: {}", error_message(&e)))
        }
    }
}

/// Replication lag of a standby: 0 when it has replayed everything it received from a streaming
/// WAL receiver, otherwise `now() - pg_last_xact_replay_timestamp()`. A standby with no WAL
/// receiver (the primary is gone) or that has replayed nothing yet fails: its lag is unknown.
/// A primary has no lag and passes.
async fn check_lag(client: &tokio_postgres::Client, max: Duration) -> Result<String, String> {
    let sql = "SELECT pg_is_in_recovery()::text, \
                      (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming')::text, \
                      (pg_last_wal_receive_lsn() IS NOT NULL AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn())::text, \
                      extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8::text";
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| error_message(&e))?;
    let row = messages
        .into_iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .ok_or("replication lag query returned no rows")?;
    let col = |i: usize| row.try_get(i).ok().flatten().map(str::to_string);
    if col(0).as_deref() != Some("true") {
        return Ok("not a standby (no replication lag)".into());
    }
    if col(1).as_deref() == Some("0") {
        return Err(
            "standby is not streaming from a primary (no WAL receiver); lag unknown".into(),
        );
    }
    let lag = if col(2).as_deref() == Some("true") {
        0.0
    } else {
        match col(3).and_then(|s| s.parse::<f64>().ok()) {
            Some(s) => s.max(0.0),
            None => return Err("standby has not replayed any transaction yet; lag unknown".into()),
        }
    };
    let shown = crate::units::fmt_duration(lag);
    if lag > max.as_secs_f64() {
        Err(format!(
            "replication lag {shown} exceeds {}",
            crate::units::fmt_duration(max.as_secs_f64())
        ))
    } else {
        Ok(format!("replication lag {shown}"))
    }
}

// ---------------------------------------------------------------------------------------------
// libpq options tokio-postgres does not know

#[derive(Debug, Default, PartialEq)]
struct LibpqOnly {
    mode: Option<SslMode>,
    rootcert: Option<PathBuf>,
    passfile: Option<PathBuf>,
}

/// Take `sslmode`, `sslrootcert` and `passfile` out of the connection string (tokio-postgres
/// rejects `verify-ca`/`verify-full` and does not know the others) and refuse client
/// certificates, which are not supported.
fn split_libpq_only(conn: &str) -> Result<(String, LibpqOnly), String> {
    let mut only = LibpqOnly::default();
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => only.mode = Some(value.parse()?),
            "sslrootcert" if value == "system" => {
                return Err(
                    "sslrootcert=system (the OS trust store) is not supported; give a PEM file"
                        .into(),
                )
            }
            "sslrootcert" => only.rootcert = Some(PathBuf::from(value)),
            "passfile" => only.passfile = Some(PathBuf::from(value)),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(format!(
                    "{key} (client certificates, CRLs) is not supported"
                ))
            }
            "sslsni" | "sslcompression" | "gssencmode" | "requiressl" => {}
            _ => return Ok(false),
        }
        Ok(true)
    };
    if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        let Some((base, query)) = conn.split_once('?') else {
            return Ok((conn.to_string(), only));
        };
        let mut kept: Vec<&str> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let value: String = url::form_urlencoded::parse(format!("v={v}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            if !take(k, &value)? {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok((rest, only))
    } else {
        let pairs = parse_key_values(conn)?;
        let mut rest = String::new();
        for (k, v) in pairs {
            if !take(&k, &v)? {
                let quoted = v.replace('\\', "\\\\").replace('\'', "\\'");
                rest.push_str(&format!("{k}='{quoted}' "));
            }
        }
        Ok((rest.trim_end().to_string(), only))
    }
}

/// libpq `key = value` pairs; values may be single-quoted with `\'` and `\\` escapes.
fn parse_key_values(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!(
                "invalid PostgreSQL connection string: expected '=' after '{key}'"
            ));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => {
                            return Err(
                                "invalid PostgreSQL connection string: unterminated quote".into()
                            )
                        }
                    },
                    Some(c) => value.push(c),
                    None => {
                        return Err(
                            "invalid PostgreSQL connection string: unterminated quote".into()
                        )
                    }
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

/// libpq's environment defaults for what the string leaves out.
fn apply_env_defaults(config: &mut tokio_postgres::Config) {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if config.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(|| env("USER"))
            .or_else(|| env("LOGNAME"))
            .unwrap_or_else(|| "postgres".into());
        config.user(user);
    }
    if config.get_dbname().is_none() {
        if let Some(db) = env("PGDATABASE") {
            config.dbname(db);
        }
    }
    if config.get_hosts().is_empty() {
        match env("PGHOST") {
            Some(hosts) => {
                for h in hosts.split(',') {
                    config.host(h);
                }
            }
            None => {
                config.host("localhost");
            }
        }
    }
    if config.get_ports().is_empty() {
        if let Some(port) = env("PGPORT").and_then(|p| p.parse::<u16>().ok()) {
            config.port(port);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ~/.pgpass

/// The password for the first host of `config` that has a `.pgpass` entry. The file is
/// `passfile` from the string, else `PGPASSFILE`, else `~/.pgpass`; as libpq does, a file that
/// group or others can read is ignored (with a warning).
fn pgpass_password(config: &tokio_postgres::Config, passfile: Option<&Path>) -> Option<String> {
    let path = passfile
        .map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os("PGPASSFILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
    let meta = std::fs::metadata(&path).ok()?;
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "password file {} has group or world access; permissions should be u=rw (0600) or less; ignored",
                path.display()
            );
            return None;
        }
    }
    let content = std::fs::read_to_string(&path).ok()?;
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    let ports = config.get_ports();
    for (i, host) in config.get_hosts().iter().enumerate() {
        let host = match host {
            Host::Tcp(h) => h.clone(),
            // libpq matches a Unix-socket connection against "localhost".
            Host::Unix(_) => "localhost".into(),
        };
        let port = ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(5432);
        if let Some(pw) = pgpass_lookup(&content, &host, port, db, user) {
            return Some(pw);
        }
    }
    None
}

/// Look up `host:port:database:user:password` lines; `*` matches anything, `\:` and `\\` are
/// escapes, `#` starts a comment line. The first match wins.
pub fn pgpass_lookup(content: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    for line in content.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass_line(line);
        if fields.len() < 5 {
            continue;
        }
        let want = [host, port.as_str(), db, user];
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

/// Split on unescaped ':' into at most five fields (the password keeps any further ':').
fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if let Some(f) = fields.last_mut() {
                        f.push(n);
                    }
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

// ---------------------------------------------------------------------------------------------
// TLS through rustls

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The tokio-postgres TLS mode and a rustls connector with the verification `mode` asks for.
fn tls_for(
    mode: SslMode,
    rootcert: Option<&Path>,
) -> Result<(PgSslMode, MakeRustlsConnect), String> {
    let pg_mode = match mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Allow | SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
    };
    let default_root =
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql/root.crt"));
    let root_path: Option<PathBuf> = rootcert.map(Path::to_path_buf).or(default_root);
    // libpq: `require` with a root certificate present behaves as `verify-ca`.
    let effective = match mode {
        SslMode::Require
            if rootcert.is_some() || root_path.as_deref().is_some_and(Path::exists) =>
        {
            SslMode::VerifyCa
        }
        m => m,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = match effective {
        SslMode::Disable | SslMode::Allow | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let path = root_path.ok_or("sslmode verify-ca/verify-full needs sslrootcert (no HOME for ~/.postgresql/root.crt)")?;
            let roots = load_roots(&path)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| format!("TLS setup with {}: {e}", path.display()))?;
            if effective == SslMode::VerifyFull {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
                    .with_no_client_auth()
            }
        }
    };
    Ok((pg_mode, MakeRustlsConnect::new(config)))
}

fn load_roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
        format!(
            "cannot read root certificate {} (sslrootcert): {e}",
            path.display()
        )
    })?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "no certificate in {} (sslrootcert)",
            path.display()
        ));
    }
    Ok(roots)
}

/// `prefer`/`require`: encrypt, accept any certificate (libpq does the same). Handshake
/// signatures are still checked, so the session is bound to the presented key.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to the root certificate; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_matches_wildcards_and_escapes() {
        let file = "# comment\n\
                    db1:5432:app:app:first\n\
                    *:5433:*:app:pa\\:ss:word\n\
                    127.0.0.1:*:*:*:fallback\\\\x\n";
        assert_eq!(
            pgpass_lookup(file, "db1", 5432, "app", "app").as_deref(),
            Some("first")
        );
        assert_eq!(
            pgpass_lookup(file, "db2", 5433, "x", "app").as_deref(),
            Some("pa:ss:word")
        );
        assert_eq!(
            pgpass_lookup(file, "127.0.0.1", 9, "d", "u").as_deref(),
            Some("fallback\\x")
        );
        assert_eq!(pgpass_lookup(file, "db1", 5432, "other", "app"), None);
    }

    #[test]
    fn libpq_only_options_are_taken_out() {
        let (rest, only) =
            split_libpq_only("postgres://u:p@h:1,h2:2/db?sslmode=verify-full&target_session_attrs=read-write&sslrootcert=%2Ftmp%2Fca.pem")
                .expect("split");
        assert_eq!(
            rest,
            "postgres://u:p@h:1,h2:2/db?target_session_attrs=read-write"
        );
        assert_eq!(only.mode, Some(SslMode::VerifyFull));
        assert_eq!(only.rootcert.as_deref(), Some(Path::new("/tmp/ca.pem")));
        let (rest, only) =
            split_libpq_only("host=h port = 5 password='a b\\'c' sslmode=require").expect("kv");
        assert_eq!(rest, "host='h' port='5' password='a b\\'c'");
        assert_eq!(only.mode, Some(SslMode::Require));
        assert!(split_libpq_only("postgres://h/db?sslmode=bogus").is_err());
        assert!(split_libpq_only("postgres://h/db?sslcert=x").is_err());
    }

    #[test]
    fn expected_values_compare_like_psql_shows_them() {
        assert!(matches_expected(Some("f"), "f"));
        assert!(matches_expected(Some("f"), "false"));
        assert!(matches_expected(Some("t"), "TRUE"));
        assert!(!matches_expected(Some("t"), "f"));
        assert!(matches_expected(Some("42"), "42"));
        assert!(matches_expected(None, ""));
        assert!(!matches_expected(None, "0"));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(
            PostgresProbe::new("postgres://h/db", None, Some("f".into()), false, None).is_err()
        );
        assert!(PostgresProbe::new("", None, None, false, None).is_err());
        assert!(PostgresProbe::new("postgres://h:notaport/db", None, None, false, None).is_err());
        let p = PostgresProbe::new(
            "postgres://app:secret@127.0.0.1:5432/app",
            None,
            None,
            true,
            None,
        )
        .expect("probe");
        assert_eq!(
            p.describe(),
            "postgres postgres://app:***@127.0.0.1:5432/app writable"
        );
    }
}
