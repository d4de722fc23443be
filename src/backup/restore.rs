//! The restore test: a backup is only proven by restoring it. A scratch database with a
//! generated name (never an existing one: `CREATE DATABASE` refuses duplicates and we retry
//! with a new name) receives the dump — a plain dump through tokio-postgres (statements, and
//! `COPY FROM STDIN` streamed in pieces; no `psql` needed), a custom dump through `pg_restore`.
//! Then row counts per table, `--expect-rows` and `--check-sql`. The scratch database is
//! dropped on every way out (success, failure, timeout, SIGINT/SIGTERM through the binary's one
//! cancellation token) unless `--keep`. Connections go through [`crate::pg`], so `--restore-to`
//! honours `sslmode`, `PGPASSWORD` and `.pgpass` as the probe does.

use super::engine::TapReader;
use super::sql::{DumpReader, Item};
use super::Check;
use super::Error;
use crate::pg::{self, Target};
use futures_util::SinkExt;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

/// `--expect-rows TABLE>=N` (also `>`, `=`, `<=`, `<`).
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectRows {
    pub table: String,
    pub op: String,
    pub n: u64,
}

impl FromStr for ExpectRows {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        for op in [">=", "<=", "==", ">", "<", "="] {
            if let Some(at) = s.find(op) {
                let table = s[..at].trim();
                let n = s[at + op.len()..].trim();
                if table.is_empty() {
                    break;
                }
                let n: u64 = n.parse().map_err(|_| {
                    format!("--expect-rows '{s}': '{n}' is not a row count (expected e.g. public.orders>=1000)")
                })?;
                let op = if op == "==" { "=" } else { op };
                return Ok(ExpectRows {
                    table: table.to_string(),
                    op: op.to_string(),
                    n,
                });
            }
        }
        Err(format!(
            "--expect-rows '{s}': expected TABLE>=N, e.g. public.orders>=1000"
        ))
    }
}

impl ExpectRows {
    fn holds(&self, rows: u64) -> bool {
        match self.op.as_str() {
            ">=" => rows >= self.n,
            "<=" => rows <= self.n,
            ">" => rows > self.n,
            "<" => rows < self.n,
            _ => rows == self.n,
        }
    }
}

/// What to restore into and what to check afterwards.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    pub url: String,
    pub expect_rows: Vec<ExpectRows>,
    pub check_sql: Vec<String>,
    pub keep: bool,
    pub pg_restore: Option<PathBuf>,
    pub timeout: Option<Duration>,
    /// Sessions that load one big COPY block of a plain dump together (1: no splitting).
    pub jobs: usize,
    /// The largest zstd window decoded when the dump is read again, as a power of two.
    pub zstd_window_log: u32,
}

/// The evidence of a restore.
#[derive(Clone, Debug, Serialize, Default)]
pub struct RestoreReport {
    pub database: String,
    pub method: String,
    pub seconds: f64,
    pub statements: u64,
    pub copy_rows: u64,
    /// The most sessions one COPY block was loaded over (plain dumps; 0 for custom dumps).
    pub copy_sessions: usize,
    pub tables: BTreeMap<String, u64>,
    pub kept: bool,
    pub dropped: bool,
    pub warnings: Vec<String>,
}

/// The dump kind to restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpKind {
    Plain,
    Custom,
    /// `pg_dump -Fd`: restored by `pg_restore -j`.
    Directory,
}

fn pg_err(e: &tokio_postgres::Error) -> String {
    pg::error_message(e)
}

/// How long one connection attempt to the restore server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn quote_qualified(name: &str) -> String {
    name.split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

async fn connect(target: &Target) -> Result<Client, pg::Error> {
    target.connect(CONNECT_TIMEOUT).await
}

/// Open the file and undo gzip/zstd, as one stream.
fn open_decoded(path: &Path, zstd_window_log: u32) -> std::io::Result<Box<dyn BufRead + Send>> {
    let mut f = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let head = f.fill_buf()?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::bufread::MultiGzDecoder::new(f),
        ))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let mut z = zstd::stream::read::Decoder::with_buffer(f)?;
        z.window_log_max(zstd_window_log)?;
        Box::new(BufReader::with_capacity(1 << 20, z))
    } else {
        Box::new(f)
    })
}

/// The dump kind of `path` from its first decoded bytes, before any check has run.
pub fn sniff(path: &Path, zstd_window_log: u32) -> Option<DumpKind> {
    if super::pgdir::is_directory_dump(path) {
        return Some(DumpKind::Directory);
    }
    let mut r = open_decoded(path, zstd_window_log).ok()?;
    let head = r.fill_buf().ok()?;
    if head.starts_with(b"PGDMP") {
        Some(DumpKind::Custom)
    } else if head.starts_with(b"--")
        || head.starts_with(b"\\restrict")
        || head.starts_with(b"SET ")
    {
        Some(DumpKind::Plain)
    } else {
        None
    }
}

/// Statements whose failure only means the target lacks the dump's roles (as `pg_restore
/// --no-owner --no-acl` would skip them).
fn tolerated(stmt: &str) -> bool {
    let u = stmt.trim_start().to_ascii_uppercase();
    (u.starts_with("ALTER ") && u.contains(" OWNER TO "))
        || u.starts_with("GRANT ")
        || u.starts_with("REVOKE ")
        || u.starts_with("COMMENT ON EXTENSION")
        || u.starts_with("ALTER DEFAULT PRIVILEGES")
}

fn switches_database(stmt: &str) -> bool {
    let u = stmt.trim_start().to_ascii_uppercase();
    [
        "CREATE DATABASE",
        "DROP DATABASE",
        "ALTER DATABASE",
        "CREATE ROLE",
        "ALTER ROLE",
        "DROP ROLE",
    ]
    .iter()
    .any(|p| u.starts_with(p))
}

fn short(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 120 {
        format!("{}…", one.chars().take(120).collect::<String>())
    } else {
        one
    }
}

type CopySink = std::pin::Pin<Box<tokio_postgres::CopyInSink<std::io::Cursor<Vec<u8>>>>>;

/// A COPY block is split over more sessions once this much of it has been sent per session.
const SPLIT_AFTER: usize = 4 << 20;

/// A statement that changes how this session parses or names things (`SET client_encoding`,
/// `RESET search_path`, `set_config('search_path', …)`): helper sessions replay these before
/// they load data.
fn is_session_setting(stmt: &str) -> bool {
    let upper: String = stmt
        .chars()
        .take(40)
        .collect::<String>()
        .to_ascii_uppercase();
    let set = (upper.starts_with("SET ") || upper.starts_with("RESET "))
        && !upper.starts_with("SET LOCAL ")
        && !upper.starts_with("SET TRANSACTION")
        && !upper.starts_with("SET SESSION CHARACTERISTICS")
        && !upper.starts_with("SET CONSTRAINTS");
    set || upper.starts_with("SELECT PG_CATALOG.SET_CONFIG(")
        || upper.starts_with("SELECT SET_CONFIG(")
}

/// Whether `stmt` opens (`Some(true)`) or plainly closes (`Some(false)`) an explicit
/// transaction; `None` for anything else, including what only looks like a close (`ROLLBACK TO
/// SAVEPOINT`, `COMMIT AND CHAIN`, `COMMIT PREPARED`): a COPY inside a transaction is never
/// split, since helper sessions would commit what the dump might still roll back.
fn transaction_edge(stmt: &str) -> Option<bool> {
    let words: Vec<String> = stmt
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
        .split_whitespace()
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["BEGIN", ..] | ["START", "TRANSACTION", ..] => Some(true),
        ["COMMIT" | "END" | "ROLLBACK" | "ABORT"]
        | ["COMMIT" | "END" | "ROLLBACK" | "ABORT", "WORK" | "TRANSACTION"] => Some(false),
        _ => None,
    }
}

/// The table a `COPY name [(columns)] FROM stdin;` statement loads, as written.
fn copy_target(stmt: &str) -> Option<&str> {
    let rest = stmt.get(5..)?;
    let end = rest
        .find(" (")
        .or_else(|| rest.to_ascii_uppercase().find(" FROM "))?;
    Some(rest[..end].trim())
}

/// Rows of one table may be loaded by several sessions at once: it has no unique or exclusion
/// index (two sessions inserting the same key would wait on each other, through this client,
/// forever) and no trigger. Asked on the helper, whose search path is the dump's.
async fn splittable(client: &Client, stmt: &str) -> bool {
    let Some(table) = copy_target(stmt) else {
        return false;
    };
    let sql = "SELECT to_regclass($1) IS NOT NULL \
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i \
                        WHERE i.indrelid = to_regclass($1)::oid AND (i.indisunique OR i.indisexclusion)) \
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = to_regclass($1)::oid)";
    match client.query_one(sql, &[&table]).await {
        Ok(row) => row.try_get::<_, bool>(0).unwrap_or(false),
        Err(_) => false,
    }
}

/// Extra sessions to the scratch database, connected when the first big COPY block needs them.
struct Helpers<'a> {
    cfg: &'a Target,
    /// Each helper and how many of the dump's session settings it has replayed.
    clients: Vec<(Client, usize)>,
    /// A helper could not connect or start a COPY: load the rest over one session.
    gave_up: bool,
}

impl Helpers<'_> {
    /// Start `stmt` on helper `i` (connecting it first if needed), after replaying the session
    /// settings it has not seen and checking the table can take concurrent loads. `None` when
    /// that is not possible: the block then stays on the sessions it has.
    async fn start(&mut self, i: usize, stmt: &str, session: &[String]) -> Option<CopySink> {
        if self.gave_up {
            return None;
        }
        if self.clients.len() <= i {
            match connect(self.cfg).await {
                Ok(c) => self.clients.push((c, 0)),
                Err(_) => {
                    self.gave_up = true;
                    return None;
                }
            }
        }
        let (client, replayed) = self.clients.get_mut(i)?;
        for setting in &session[*replayed..] {
            // It ran on the main session; if it fails here, this session would load data under
            // other settings: use none of the helpers from now on.
            if client.batch_execute(setting).await.is_err() {
                self.gave_up = true;
                return None;
            }
        }
        *replayed = session.len();
        if !splittable(client, stmt).await {
            return None;
        }
        // A COPY a helper cannot start (a temporary table of the main session) keeps this block
        // on the sessions it has; the next block may split again.
        client
            .copy_in::<_, std::io::Cursor<Vec<u8>>>(stmt)
            .await
            .ok()
            .map(|sink| Box::pin(sink) as CopySink)
    }
}

/// One COPY block on its way in: the main session's stream first, helpers' once it proves big.
struct CopyLoad {
    stmt: String,
    line: u64,
    sinks: Vec<CopySink>,
    deal: Deal,
    may_split: bool,
}

/// How a COPY block's pieces are dealt out over its sessions.
#[derive(Debug, Default)]
struct Deal {
    sent: usize,
    next: usize,
    /// The last piece sent ended inside a data line.
    mid_line: bool,
}

impl Deal {
    /// Whether another session should join before the next piece: enough has gone to each of
    /// the `sessions` there are, and the next piece starts a line.
    fn wants_session(&self, sessions: usize, jobs: usize) -> bool {
        !self.mid_line && sessions < jobs && self.sent >= SPLIT_AFTER * sessions
    }

    /// The session the next piece of `len` bytes goes to. Whole-line pieces go round in turn; a
    /// piece that ends inside a line (`whole` false) keeps the next one on the same session.
    fn route(&mut self, sessions: usize, len: usize, whole: bool) -> usize {
        self.sent += len;
        let i = self.next % sessions.max(1);
        self.mid_line = !whole;
        if whole {
            self.next += 1;
        }
        i
    }
}

/// Send one piece of a COPY block. Whole-line pieces are dealt out over the block's sessions
/// in turn (starting a helper once enough has gone); a piece that ends inside a line (`whole`
/// false) keeps the next piece on the same session, which must receive the rest of that line.
async fn send_copy(
    copy: Option<&mut CopyLoad>,
    data: Vec<u8>,
    whole: bool,
    jobs: usize,
    helpers: &mut Helpers<'_>,
    session: &[String],
) -> Result<(), String> {
    let Some(c) = copy else {
        return Ok(());
    };
    if c.may_split && c.deal.wants_session(c.sinks.len(), jobs) {
        match helpers.start(c.sinks.len() - 1, &c.stmt, session).await {
            Some(sink) => c.sinks.push(sink),
            None => c.may_split = false,
        }
    }
    let i = c.deal.route(c.sinks.len(), data.len(), whole);
    c.sinks[i]
        .send(std::io::Cursor::new(data))
        .await
        .map_err(|e| {
            format!(
                "COPY from line {}: {} in: {}",
                c.line,
                pg_err(&e),
                short(&c.stmt)
            )
        })
}

/// Restore a plain dump through the protocol. `Err` is a restore failure (a finding). Big COPY
/// blocks are loaded over up to `jobs` sessions at once (data lines dealt out in turn), which is
/// how this beats `psql`, which has one.
async fn restore_plain(
    client: &Client,
    cfg: &Target,
    jobs: usize,
    path: &Path,
    source: Option<TapReader>,
    zstd_window_log: u32,
    rep: &mut RestoreReport,
) -> Result<(), String> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Item, String>>(16);
    let p = path.to_path_buf();
    let producer = tokio::task::spawn_blocking(move || {
        let opened = match source {
            Some(shared) => Ok(Box::new(shared) as Box<dyn BufRead + Send>),
            None => open_decoded(&p, zstd_window_log),
        };
        let r = match opened {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(format!("cannot read the dump: {e}")));
                return;
            }
        };
        let mut d = DumpReader::new(r);
        loop {
            match d.next_item() {
                Ok(Some(item)) => {
                    if tx.blocking_send(Ok(item)).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.blocking_send(Err(format!("reading the dump: {e}")));
                    return;
                }
            }
        }
    });
    let mut copy: Option<CopyLoad> = None;
    let mut session: Vec<String> = Vec::new();
    let mut in_transaction = false;
    let mut helpers = Helpers {
        cfg,
        clients: Vec::new(),
        gave_up: jobs < 2,
    };
    let result = async {
        while let Some(item) = rx.recv().await {
            match item? {
                Item::Meta(m, line) => {
                    if m.starts_with("\\restrict") || m.starts_with("\\unrestrict") {
                        continue;
                    }
                    if m.starts_with("\\connect") || m.starts_with("\\c ") {
                        return Err(format!(
                            "line {line}: the dump switches databases ({}): it was made with --create or pg_dumpall; not restored, so nothing outside the scratch database is touched",
                            short(&m)
                        ));
                    }
                    rep.warnings.push(format!("line {line}: psql meta-command ignored: {}", short(&m)));
                }
                Item::Statement(s, line) => {
                    if switches_database(&s) {
                        return Err(format!(
                            "line {line}: cluster-level statement refused in a restore test: {}",
                            short(&s)
                        ));
                    }
                    rep.statements += 1;
                    if let Err(e) = client.batch_execute(&s).await {
                        if tolerated(&s) {
                            rep.warnings.push(format!("line {line}: {} (ignored: {})", pg_err(&e), short(&s)));
                        } else {
                            return Err(format!("line {line}: {} in: {}", pg_err(&e), short(&s)));
                        }
                    } else if is_session_setting(&s) {
                        session.push(s);
                    } else if let Some(open) = transaction_edge(&s) {
                        in_transaction = open;
                    }
                }
                Item::CopyStart(s, line) => {
                    let sink = client
                        .copy_in::<_, std::io::Cursor<Vec<u8>>>(s.as_str())
                        .await
                        .map_err(|e| format!("line {line}: {} in: {}", pg_err(&e), short(&s)))?;
                    copy = Some(CopyLoad {
                        stmt: s,
                        line,
                        sinks: vec![Box::pin(sink)],
                        deal: Deal::default(),
                        may_split: !in_transaction,
                    });
                }
                Item::CopyData(data) => send_copy(copy.as_mut(), data, true, jobs, &mut helpers, &session).await?,
                Item::CopyPart(data) => send_copy(copy.as_mut(), data, false, jobs, &mut helpers, &session).await?,
                Item::CopyEnd(_) => {
                    if let Some(mut c) = copy.take() {
                        rep.copy_sessions = rep.copy_sessions.max(c.sinks.len());
                        let done = futures_util::future::join_all(
                            c.sinks.iter_mut().map(|sink| sink.as_mut().finish()),
                        )
                        .await;
                        for n in done {
                            rep.copy_rows += n.map_err(|e| {
                                format!("COPY from line {}: {} in: {}", c.line, pg_err(&e), short(&c.stmt))
                            })?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    drop(rx);
    let _ = producer.await;
    result
}

fn find_pg_restore(given: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = given {
        return Some(p.to_path_buf());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let p = e.path().join("bin/pg_restore");
            p.is_file().then_some((v, p))
        })
        .collect();
    versions.sort();
    if let Some((_, p)) = versions.pop() {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("pg_restore"))
            .find(|p| p.is_file())
    })
}

/// Restore a custom dump with `pg_restore` (compressed archives through its stdin).
async fn restore_custom(
    target: &Target,
    path: &Path,
    kind: DumpKind,
    opts: &RestoreOptions,
    rep: &mut RestoreReport,
) -> Result<(), Error> {
    let Some(bin) = find_pg_restore(opts.pg_restore.as_deref()) else {
        return Err(Error::Environment(
            "pg_restore is needed to restore a custom-format dump and was not found: install the PostgreSQL client (apt-get install postgresql-client) or pass --pg-restore PATH".into()
        ));
    };
    let mut cmd = tokio::process::Command::new(&bin);
    // A directory dump loads in parallel (`-j`, which excludes --single-transaction).
    let parallel = kind == DumpKind::Directory && opts.jobs > 1;
    let mut flags = vec!["--no-owner", "--no-acl", "--exit-on-error"];
    let jobs = format!("--jobs={}", opts.jobs);
    if parallel {
        flags.push(&jobs);
    } else {
        flags.push("--single-transaction");
    }
    cmd.args(&flags)
        .arg(format!("--dbname={}", target.libpq_conninfo()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    // The password found by the connection layer (URL, PGPASSWORD, .pgpass), never on the
    // command line.
    if let Some(pw) = target.password() {
        cmd.env("PGPASSWORD", pw);
    }
    let compressed = {
        let mut head = [0u8; 4];
        let n = std::fs::File::open(path)
            .and_then(|mut f| f.read(&mut head))
            .unwrap_or(0);
        n >= 2 && (head[..2] == [0x1f, 0x8b] || head == [0x28, 0xb5, 0x2f, 0xfd])
    };
    if compressed {
        cmd.stdin(std::process::Stdio::piped());
    } else {
        cmd.arg(path).stdin(std::process::Stdio::null());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Environment(format!("cannot run {}: {e}", bin.display())))?;
    if compressed {
        if let Some(mut stdin) = child.stdin.take() {
            let p = path.to_path_buf();
            let window_log = opts.zstd_window_log;
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                use tokio::io::AsyncWriteExt;
                let Ok(mut r) = open_decoded(&p, window_log) else {
                    return;
                };
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    match r.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if handle.block_on(stdin.write_all(&buf[..n])).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| Error::Environment(format!("waiting for pg_restore: {e}")))?;
    rep.method = format!("{} {}", bin.display(), flags.join(" "));
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        rep.warnings
            .push(format!("pg_restore said: {}", tail.join(" | ")));
        return Err(Error::Restore(format!(
            "pg_restore exited {}: {}",
            out.status.code().unwrap_or(-1),
            short(&tail.join(" | "))
        )));
    }
    Ok(())
}

async fn count_rows(client: &Client) -> Result<BTreeMap<String, u64>, String> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2 LIMIT 5000",
            &[],
        )
        .await
        .map_err(|e| pg_err(&e))?;
    let mut out = BTreeMap::new();
    for r in rows {
        let (ns, rel): (String, String) = (r.get(0), r.get(1));
        let q = format!(
            "SELECT count(*) FROM {}.{}",
            quote_ident(&ns),
            quote_ident(&rel)
        );
        let n: i64 = client
            .query_one(&q, &[])
            .await
            .map_err(|e| pg_err(&e))?
            .get(0);
        out.insert(format!("{ns}.{rel}"), n.max(0) as u64);
    }
    Ok(out)
}

pub(super) async fn after_restore(
    client: &Client,
    opts: &RestoreOptions,
    rep: &mut RestoreReport,
    checks: &mut Vec<Check>,
) {
    match count_rows(client).await {
        Ok(t) => {
            let total: u64 = t.values().sum();
            let list: Vec<String> = t.iter().take(12).map(|(k, v)| format!("{k}={v}")).collect();
            checks.push(Check::pass(
                "rows",
                format!(
                    "{} tables, {total} rows: {}{}",
                    t.len(),
                    list.join(", "),
                    if t.len() > 12 { ", …" } else { "" }
                ),
            ));
            rep.tables = t;
        }
        Err(e) => checks.push(Check::fail("rows", format!("cannot count rows: {e}"))),
    }
    for x in &opts.expect_rows {
        let name = format!("rows:{}", x.table);
        let found = rep.tables.get(&x.table).copied().or_else(|| {
            let mut m = rep
                .tables
                .iter()
                .filter(|(k, _)| k.rsplit('.').next() == Some(x.table.as_str()));
            match (m.next(), m.next()) {
                (Some((_, &n)), None) => Some(n),
                _ => None,
            }
        });
        match found {
            None => {
                // Maybe a view or a quoted name: ask the database itself.
                let q = format!("SELECT count(*) FROM {}", quote_qualified(&x.table));
                match client.query_one(&q, &[]).await {
                    Ok(r) => {
                        let n = r.get::<_, i64>(0).max(0) as u64;
                        let verdict = if x.holds(n) { Check::pass } else { Check::fail };
                        checks.push(verdict(
                            &name,
                            format!("{n} rows, expected {}{}", x.op, x.n),
                        ));
                    }
                    Err(e) => checks.push(Check::fail(
                        &name,
                        format!("table not found in the restored database ({})", pg_err(&e)),
                    )),
                }
            }
            Some(n) if x.holds(n) => checks.push(Check::pass(
                &name,
                format!("{n} rows, expected {}{}", x.op, x.n),
            )),
            Some(n) => checks.push(Check::fail(
                &name,
                format!("{n} rows, expected {}{}", x.op, x.n),
            )),
        }
    }
    for (i, sql) in opts.check_sql.iter().enumerate() {
        let name = format!("check-sql:{}", i + 1);
        match client.simple_query(sql).await {
            Err(e) => checks.push(Check::fail(
                &name,
                format!("{}: {}", short(sql), pg_err(&e)),
            )),
            Ok(msgs) => {
                let first = msgs.iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some(r.get(0).map(str::to_string))
                    }
                    _ => None,
                });
                match first {
                    Some(Some(v)) if v == "t" || v.eq_ignore_ascii_case("true") => {
                        checks.push(Check::pass(&name, format!("{} returned true", short(sql))))
                    }
                    Some(v) => checks.push(Check::fail(
                        &name,
                        format!(
                            "{} returned {} (must return true)",
                            short(sql),
                            v.unwrap_or_else(|| "NULL".into())
                        ),
                    )),
                    None => checks.push(Check::fail(
                        &name,
                        format!("{} returned no row (must return true)", short(sql)),
                    )),
                }
            }
        }
    }
}

/// The restore server from `--restore-to`, through the one connection layer (database
/// `postgres` when the URL names none; password from the URL, `PGPASSWORD` or `.pgpass`).
pub fn parse_url(url: &str) -> Result<Target, Error> {
    Target::parse_with_db(url, Some("postgres")).map_err(|e| Error::Server {
        message: format!(
            "--restore-to '{}': {e}; expected e.g. postgres://postgres@localhost:5432/",
            crate::redact::redact(url)
        ),
        code: e.code(),
    })
}

/// Restore `path` into a fresh scratch database and run the checks; the database is dropped on
/// every way out unless `keep`. `Err` only when the tool could not do its job (server
/// unreachable: exit 3; interrupted: exit 4); a restore that fails is a failed check.
///
/// `source`, when given, is the decoded dump as the verification pass reads it (a plain dump is
/// then inflated once for both); otherwise the file is read again.
pub async fn run(
    path: &Path,
    kind: DumpKind,
    opts: &RestoreOptions,
    source: Option<TapReader>,
    cancel: &CancellationToken,
) -> Result<(RestoreReport, Vec<Check>), Error> {
    let admin_cfg = parse_url(&opts.url)?;
    let shown = admin_cfg.shown().to_string();
    let admin = tokio::select! {
        c = connect(&admin_cfg) => c.map_err(|e| {
            let what = if e.is_auth() { "the restore server refused the login (authentication failed)" } else { "cannot reach the restore server" };
            Error::server(format_args!("{what} {shown}"), &e)
        })?,
        _ = cancel.cancelled() => return Err(Error::Interrupted("interrupted while connecting to the restore server".into())),
    };
    let mut rep = RestoreReport {
        kept: opts.keep,
        ..Default::default()
    };
    // A generated name; CREATE DATABASE refuses an existing one, so we never reuse one.
    let mut created = None;
    for _ in 0..5 {
        let name = format!(
            "drillkit_verify_{}_{:08x}",
            chrono::Utc::now().format("%Y%m%d%H%M%S"),
            rand::random::<u32>()
        );
        match admin
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .await
        {
            Ok(()) => {
                created = Some(name);
                break;
            }
            Err(e) if pg::sqlstate(&e) == Some(pg::sqlstate::DUPLICATE_DATABASE) => continue,
            Err(e) => {
                return Err(Error::Environment(format!(
                    "cannot create a scratch database on {shown}: {}",
                    pg_err(&e)
                )))
            }
        }
    }
    let Some(db) = created else {
        return Err(Error::Environment(format!(
            "could not find a free scratch database name on {shown}"
        )));
    };
    rep.database = db.clone();
    let scratch_cfg = admin_cfg.with_dbname(&db);
    let started = Instant::now();
    let mut checks = Vec::new();

    let work = async {
        let mut rep = RestoreReport {
            database: db.clone(),
            kept: opts.keep,
            ..Default::default()
        };
        let mut checks = Vec::new();
        let client = connect(&scratch_cfg)
            .await
            .map_err(|e| Error::server("cannot connect to the scratch database", &e))?;
        let restored = match kind {
            DumpKind::Plain => {
                rep.method = if opts.jobs > 1 {
                    format!("statements and COPY FROM STDIN through the protocol, big COPY blocks over up to {} sessions", opts.jobs)
                } else {
                    "statements and COPY FROM STDIN through the protocol".into()
                };
                restore_plain(
                    &client,
                    &scratch_cfg,
                    opts.jobs,
                    path,
                    source,
                    opts.zstd_window_log,
                    &mut rep,
                )
                .await
                .map_err(Error::Restore)
            }
            DumpKind::Custom | DumpKind::Directory => {
                restore_custom(&scratch_cfg, path, kind, opts, &mut rep).await
            }
        };
        rep.seconds = started.elapsed().as_secs_f64();
        match restored {
            Ok(()) => {
                checks.push(Check::pass(
                    "restore",
                    format!(
                        "restored into scratch database {db} in {} ({}{} statements, {} COPY rows){}",
                        crate::units::fmt_duration(rep.seconds),
                        if kind == DumpKind::Plain { "" } else { "pg_restore; " },
                        rep.statements,
                        rep.copy_rows,
                        if rep.warnings.is_empty() { String::new() } else { format!(", {} warning(s)", rep.warnings.len()) }
                    ),
                ));
                // A fresh session: the dump's SETs (search_path = '') stay behind.
                drop(client);
                match connect(&scratch_cfg).await {
                    Ok(fresh) => after_restore(&fresh, opts, &mut rep, &mut checks).await,
                    Err(e) => checks.push(Check::fail("rows", format!("cannot reconnect: {e}"))),
                }
            }
            Err(Error::Restore(why)) => {
                checks.push(Check::fail(
                    "restore",
                    format!(
                        "failed after {}: {why}",
                        crate::units::fmt_duration(rep.seconds),
                    ),
                ));
            }
            Err(e) => return Err(e),
        }
        Ok::<_, Error>((rep, checks))
    };
    let timeout = async {
        match opts.timeout {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    let outcome = tokio::select! {
        r = work => r,
        _ = timeout => Ok((RestoreReport::default(), vec![Check::fail("restore", format!(
            "did not finish within --restore-timeout {}", crate::units::fmt_duration(opts.timeout.map(|d| d.as_secs_f64()).unwrap_or(0.0))
        ))])),
        _ = cancel.cancelled() => Err(Error::Interrupted("interrupted during the restore".into())),
    };
    let outcome = outcome.map(|(r, c)| {
        if !r.database.is_empty() {
            rep = r;
        }
        checks = c;
    });
    // Every way out passes here.
    if opts.keep {
        rep.kept = true;
        checks.push(Check::warn(
            "cleanup",
            format!("scratch database {db} kept (--keep); drop it yourself"),
        ));
    } else {
        let drop_sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&db));
        let dropped = match admin.batch_execute(&drop_sql).await {
            Ok(()) => Ok(()),
            Err(e) if pg::sqlstate(&e) == Some(pg::sqlstate::SYNTAX_ERROR) => admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {}", quote_ident(&db)))
                .await
                .map_err(|e| pg_err(&e)),
            Err(e) => Err(pg_err(&e)),
        };
        match dropped {
            Ok(()) => {
                rep.dropped = true;
                checks.push(Check::pass(
                    "cleanup",
                    format!("scratch database {db} dropped"),
                ));
            }
            Err(e) => checks.push(Check::fail(
                "cleanup",
                format!("could not drop scratch database {db}: {e}"),
            )),
        }
    }
    outcome?;
    Ok((rep, checks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_cut_into_parts_stays_on_one_session() {
        // Pieces of 1 MiB; every third is a line cut in three parts, so session changes fall
        // both between whole pieces and right after a line's last part.
        let mut deal = Deal::default();
        let (jobs, mut sessions) = (8, 1);
        let mut line_session: Option<usize> = None;
        let mut used = std::collections::BTreeSet::new();
        for n in 0..200 {
            let parts = if n % 3 == 0 { 3 } else { 1 };
            for p in 0..parts {
                if deal.wants_session(sessions, jobs) {
                    assert!(line_session.is_none(), "a session joined inside a line");
                    sessions += 1;
                }
                let whole = p == parts - 1;
                let i = deal.route(sessions, 1 << 20, whole);
                assert!(i < sessions);
                if let Some(s) = line_session {
                    assert_eq!(i, s, "piece {n} part {p} went to another session");
                }
                line_session = if whole { None } else { Some(i) };
                used.insert(i);
            }
        }
        assert_eq!(sessions, jobs);
        assert_eq!(used.len(), jobs, "every session got pieces");
    }

    #[test]
    fn transaction_edges_only_for_plain_opens_and_closes() {
        for open in [
            "BEGIN;",
            "begin transaction isolation level serializable;",
            "START TRANSACTION;",
        ] {
            assert_eq!(transaction_edge(open), Some(true), "{open}");
        }
        for close in [
            "COMMIT;",
            "end;",
            "ROLLBACK WORK;",
            "abort transaction;",
            "COMMIT",
        ] {
            assert_eq!(transaction_edge(close), Some(false), "{close}");
        }
        for neither in [
            "ROLLBACK TO SAVEPOINT a;",
            "ROLLBACK TO a;",
            "COMMIT AND CHAIN;",
            "ROLLBACK AND CHAIN;",
            "COMMIT PREPARED 'x';",
            "PREPARE TRANSACTION 'x';",
            "ENDPOINT;",
            "CREATE TABLE begin (a int);",
        ] {
            assert_eq!(transaction_edge(neither), None, "{neither}");
        }
    }

    #[test]
    fn session_settings_are_told_from_other_sets() {
        for yes in [
            "SET client_encoding = 'UTF8';",
            "SELECT pg_catalog.set_config('search_path', '', false);",
            "select set_config('search_path', 's', false);",
            "RESET search_path;",
            "SET default_tablespace = '';",
        ] {
            assert!(is_session_setting(yes), "{yes}");
        }
        for no in [
            "SET LOCAL search_path = s;",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;",
            "SET CONSTRAINTS ALL DEFERRED;",
            "SELECT 1;",
            "CREATE TABLE t (a int);",
            "SÉLECT ééééééééééééééééééééééééééééééééééééééééééé",
        ] {
            assert!(!is_session_setting(no), "{no}");
        }
    }

    #[test]
    fn copy_targets_as_written() {
        assert_eq!(
            copy_target("COPY public.t (a, b) FROM stdin;"),
            Some("public.t")
        );
        assert_eq!(
            copy_target("COPY \"S\".\"T\" FROM stdin;"),
            Some("\"S\".\"T\"")
        );
        assert_eq!(copy_target("COPY t from stdin;"), Some("t"));
        assert_eq!(copy_target("COPY"), None);
    }
}
