//! A throwaway PostgreSQL cluster for the verify-backup tests: `initdb` in a temp dir (as the
//! `postgres` OS user when run by root), a free loopback port, trust auth, stopped on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Pg {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub bin: PathBuf,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// The newest installed PostgreSQL's bin folder.
pub fn pg_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed under /usr/lib/postgresql")
        .flatten()
        .filter_map(|e| {
            Some((
                e.file_name().to_string_lossy().parse().ok()?,
                e.path().join("bin"),
            ))
        })
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL version").1
}

/// Run a server-side command, as `postgres` when we are root (initdb refuses root).
fn as_server(bin: &Path, args: &[&str]) {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    let out = cmd
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Pg {
    pub fn start() -> Pg {
        let bin = pg_bin();
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status();
            assert!(st.map(|s| s.success()).unwrap_or(false), "chown");
        }
        let data_s = data.to_string_lossy().into_owned();
        let sock = dir.path().to_string_lossy().into_owned();
        as_server(
            &bin.join("initdb"),
            &["-D", &data_s, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        let port = free_port();
        let opts = format!("-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off -c full_page_writes=off");
        let log = dir.path().join("log").to_string_lossy().into_owned();
        as_server(
            &bin.join("pg_ctl"),
            &["-D", &data_s, "-o", &opts, "-l", &log, "-w", "start"],
        );
        Pg { dir, port, bin }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/", self.port)
    }

    /// Run a client tool against the server (`psql`, `pg_dump`, ...) and return its stdout.
    pub fn client(&self, tool: &str, args: &[&str]) -> String {
        let out = Command::new(self.bin.join(tool))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.client(
            "psql",
            &[
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                db,
                "-c",
                sql,
            ],
        )
    }

    /// Databases whose name starts with `prefix`.
    pub fn databases_like(&self, prefix: &str) -> Vec<String> {
        self.psql(
            "postgres",
            &format!("SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%'"),
        )
        .lines()
        .map(str::to_string)
        .collect()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").to_string_lossy().into_owned();
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = cmd
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// A generated dataset: customers, orders with awkward text (tabs, backslashes, newlines,
/// quotes), a function whose body holds `;`, a view and an index.
pub const DATASET: &str = r#"
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text);
INSERT INTO customers SELECT g, 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 2000) g;
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int REFERENCES customers(id), amount numeric(12,2), created timestamptz, note text);
INSERT INTO orders SELECT g, 1 + g % 2000, (g * 7 % 10000) / 100.0, '2024-01-01'::timestamptz + g * interval '1 minute',
  CASE WHEN g % 5 = 0 THEN E'tab\there back\\slash new\nline ''quote'' ;' ELSE 'note ' || md5(g::text) END
  FROM generate_series(1, 20000) g;
CREATE INDEX orders_customer ON orders (customer_id);
CREATE FUNCTION order_total(c int) RETURNS numeric LANGUAGE plpgsql AS $body$
BEGIN
  RETURN (SELECT coalesce(sum(amount), 0) FROM orders WHERE customer_id = c);
END;
$body$;
CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 50;
CREATE TABLE empty_table (x int);
"#;
