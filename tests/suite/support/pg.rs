//! Real PostgreSQL 15 clusters for integration tests: `initdb` in a temp dir on a free loopback
//! port, a primary with a streaming replica (`pg_basebackup -R`), optionally synchronous, and the
//! failover manager's part (promote the replica once the primary is down).
//!
//! Server-side commands run as the `postgres` OS user (initdb refuses root). Every cluster is
//! stopped with `pg_ctl stop -m immediate` when dropped, so a failing test never leaks a server.
//! Authentication: trust on 127.0.0.1 for `postgres` and replication, scram for the role `app`
//! (password [`APP_PASSWORD`]) so wrong-password errors can be tested.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = "/usr/lib/postgresql/15/bin";
pub const APP_PASSWORD: &str = "app-s3cret";

/// A port nobody listens on right now (bind port 0, read it, close).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Are we root? (`/proc/self` belongs to the effective user.)
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn tool(name: &str) -> String {
    format!("{BIN}/{name}")
}

/// Run a command as the postgres OS user when we are root (as ourselves otherwise).
fn as_postgres(program: &str, args: &[&str]) -> Output {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args).stdin(Stdio::null());
    cmd.output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

fn must(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn chown_postgres(path: &Path) {
    if is_root() {
        let out = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .output()
            .expect("chown");
        must(out, "chown");
    }
}

/// One PostgreSQL cluster (data directory + server) in a temp dir.
pub struct Cluster {
    pub name: String,
    pub port: u16,
    root: tempfile::TempDir,
}

impl Cluster {
    fn empty(name: &str) -> Cluster {
        let root = tempfile::Builder::new()
            .prefix("drillkit-pg-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(root.path().join("sock")).expect("sock dir");
        chown_postgres(root.path());
        Cluster {
            name: name.into(),
            port: free_port(),
            root,
        }
    }

    pub fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }
    pub fn log(&self) -> PathBuf {
        self.root.path().join("server.log")
    }
    pub fn dir(&self) -> &Path {
        self.root.path()
    }

    /// `initdb` a new primary (not started): WAL for streaming, trust for postgres and
    /// replication, scram for `app`.
    pub fn init(name: &str) -> Cluster {
        let c = Cluster::empty(name);
        let data = c.data();
        let data_s = data.to_string_lossy().into_owned();
        must(
            as_postgres(
                &tool("initdb"),
                &[
                    "-D",
                    &data_s,
                    "-U",
                    "postgres",
                    "-N",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
            ),
            "initdb",
        );
        c.write_conf(&format!(
            "listen_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nwal_level = replica\n\
             max_wal_senders = 5\nhot_standby = on\nfsync = off\nshared_buffers = 16MB\n\
             max_connections = 40\nwal_keep_size = 64MB\nlog_timezone = 'UTC'\n\
             password_encryption = 'scram-sha-256'\nlog_line_prefix = '%m [%p] '\n",
            c.dir().join("sock").display()
        ));
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             host all app 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 trust\n\
             host replication all 127.0.0.1/32 trust\n",
        )
        .expect("pg_hba.conf");
        c
    }

    fn write_conf(&self, extra: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data().join("postgresql.conf"))
            .expect("open postgresql.conf");
        f.write_all(extra.as_bytes())
            .expect("write postgresql.conf");
        f.write_all(format!("port = {}\n", self.port).as_bytes())
            .expect("write port");
    }

    /// Append settings to postgresql.conf (take effect on the next start or reload).
    pub fn conf(&self, extra: &str) {
        self.write_conf(&format!("{extra}\n"));
    }

    pub fn start(&self) {
        let data = self.data().to_string_lossy().into_owned();
        let log = self.log().to_string_lossy().into_owned();
        let out = as_postgres(
            &tool("pg_ctl"),
            &["start", "-w", "-t", "60", "-D", &data, "-l", &log],
        );
        if !out.status.success() {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            panic!(
                "pg_ctl start {} failed: {}\n{log}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Stop with a pg_ctl mode: "smart", "fast" or "immediate" (a crash).
    pub fn stop(&self, mode: &str) {
        let data = self.data().to_string_lossy().into_owned();
        must(
            as_postgres(
                &tool("pg_ctl"),
                &["stop", "-w", "-t", "60", "-m", mode, "-D", &data],
            ),
            "pg_ctl stop",
        );
    }

    /// Server-side time (from the log, millisecond precision) of the last line containing `needle`,
    /// e.g. "database system is ready to accept connections" after a promotion.
    pub fn log_time(&self, needle: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let log = std::fs::read_to_string(self.log()).ok()?;
        let line = log.lines().rev().find(|l| l.contains(needle))?;
        let stamp = line.get(..23)?;
        chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.3f")
            .ok()
            .map(|t| t.and_utc())
    }

    pub fn running(&self) -> bool {
        let data = self.data().to_string_lossy().into_owned();
        as_postgres(&tool("pg_ctl"), &["status", "-D", &data])
            .status
            .success()
    }

    /// Promote a standby and wait until it accepts writes.
    pub fn promote(&self) {
        let data = self.data().to_string_lossy().into_owned();
        must(
            as_postgres(&tool("pg_ctl"), &["promote", "-w", "-t", "60", "-D", &data]),
            "pg_ctl promote",
        );
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres` (trust).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The scram role: `postgres://app:PASSWORD@127.0.0.1:PORT/app`. Call [`Cluster::create_app`] first.
    pub fn app_url(&self, password: &str) -> String {
        format!("postgres://app:{password}@127.0.0.1:{}/app", self.port)
    }

    /// Create the `app` role (scram password) and its database.
    pub fn create_app(&self) {
        self.sql(&format!("CREATE ROLE app LOGIN PASSWORD '{APP_PASSWORD}'"));
        self.sql("CREATE DATABASE app OWNER app");
    }

    /// Run SQL as postgres with psql; returns unaligned tuples-only output, trimmed. Panics on error.
    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|e| panic!("psql on {}: {e}\nSQL: {sql}", self.name))
    }

    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        self.try_sql_db("postgres", sql)
    }

    pub fn try_sql_db(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(tool("psql"))
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                db,
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// Wait until `sql` returns `want` (or panic after `timeout`).
    pub fn wait_for(&self, sql: &str, want: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let got = self.try_sql(sql);
            if got.as_deref() == Ok(want) {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "{}: `{sql}` never returned {want:?} (last: {got:?})",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        if data.join("postmaster.pid").exists() {
            let data = data.to_string_lossy().into_owned();
            let _ = as_postgres(
                &tool("pg_ctl"),
                &["stop", "-w", "-t", "30", "-m", "immediate", "-D", &data],
            );
        }
    }
}

/// A primary and a streaming replica (both started).
pub struct Pair {
    pub primary: Cluster,
    pub replica: Cluster,
}

impl Pair {
    /// `synchronous`: the primary waits for the replica's flush before acknowledging a commit
    /// (`synchronous_standby_names = 'replica'`).
    pub fn new(synchronous: bool) -> Pair {
        let primary = Cluster::init("primary");
        if synchronous {
            primary.conf("synchronous_standby_names = 'replica'\nsynchronous_commit = on");
        }
        primary.start();
        let replica = Cluster::empty("replica");
        let data = replica.data().to_string_lossy().into_owned();
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres application_name=replica",
            primary.port
        );
        must(
            as_postgres(
                &tool("pg_basebackup"),
                &[
                    "-D",
                    &data,
                    "-d",
                    &conninfo,
                    "-R",
                    "-X",
                    "stream",
                    "--checkpoint=fast",
                    "--no-sync",
                ],
            ),
            "pg_basebackup",
        );
        // The copied config has the primary's port and socket dir; later lines win.
        replica.conf(&format!(
            "unix_socket_directories = '{}'\nsynchronous_standby_names = ''",
            replica.dir().join("sock").display()
        ));
        replica.start();
        primary.wait_for(
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'replica' AND state = 'streaming'",
            "1",
            Duration::from_secs(30),
        );
        Pair { primary, replica }
    }

    /// A multi-host URL that follows the writable server: primary first, then the replica.
    pub fn failover_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
            self.primary.port, self.replica.port
        )
    }

    /// Wait until the replica has replayed everything the primary has written so far.
    pub fn wait_caught_up(&self) {
        let lsn = self.primary.sql("SELECT pg_current_wal_lsn()");
        self.replica.wait_for(
            &format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"),
            "t",
            Duration::from_secs(30),
        );
    }
}
