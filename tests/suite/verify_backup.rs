//! verify-backup against real dumps made by a real PostgreSQL (plain, gzip'd, zstd'd, custom,
//! a base backup with manifest), a real Redis RDB, and their corruptions; and restore tests
//! against a real server, including a dump that fails halfway (the scratch database must go).

mod pg;

use crate::support::cmd::{Bin, Run};
use pg::Pg;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const ORDERS: u64 = 20_000;

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().expect("sh");
    assert!(st.success(), "{cmd}");
}

fn make_rdb(dir: &Path) {
    let port = pg::free_port().to_string();
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .args(["--dbfilename", "dump.rdb"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    let cli = |args: &[&str]| {
        Command::new("redis-cli")
            .args(["-p", &port])
            .args(args)
            .output()
            .map(|o| o.status.success() && !o.stdout.starts_with(b"ERR"))
            .unwrap_or(false)
    };
    let mut up = false;
    for _ in 0..100 {
        if cli(&["ping"]) {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(up, "redis did not come up");
    for i in 0..200 {
        assert!(cli(&["set", &format!("key:{i}"), &format!("value {i}")]));
    }
    assert!(cli(&["rpush", "list", "a", "b", "c"]));
    assert!(cli(&["save"]));
    let _ = redis.kill();
    let _ = redis.wait();
}

/// Dumps made once per test run from a generated dataset, kept under the target dir.
fn fx() -> &'static Path {
    static FX: OnceLock<PathBuf> = OnceLock::new();
    FX.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = root.join(format!("verify_backup_fx_{}", std::process::id()));
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with("verify_backup_fx_")
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let pg = Pg::start();
        pg.psql("postgres", pg::DATASET);
        let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
        pg.client("pg_dump", &["-d", "postgres", "-f", &p("plain.sql")]);
        pg.client(
            "pg_dump",
            &["-d", "postgres", "-Fc", "-f", &p("custom.dump")],
        );
        pg.client("pg_dump", &["-d", "postgres", "-Fd", "-f", &p("dir.dump")]);
        pg.client(
            "pg_basebackup",
            &["-D", &p("base"), "--wal-method=stream", "-c", "fast"],
        );
        for (dir, compress) in [
            ("tar_gz", "gzip"),
            ("tar", "none"),
            ("tar_zst", "zstd"),
            ("tar_lz4", "lz4"),
        ] {
            pg.client(
                "pg_basebackup",
                &[
                    "-D",
                    &p(dir),
                    "-Ft",
                    "-Z",
                    compress,
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                ],
            );
        }
        drop(pg);
        let d = dir.display();
        sh(&format!("gzip -c {d}/plain.sql > {d}/plain.sql.gz"));
        sh(&format!(
            "cd {d} && sha256sum plain.sql.gz > plain.sql.gz.sha256"
        ));
        sh(&format!(
            "zstd -q --check {d}/plain.sql -o {d}/plain.sql.zst"
        ));
        sh(&format!(
            "zstd -q --no-check {d}/plain.sql -o {d}/nocheck.sql.zst"
        ));
        make_rdb(&dir);
        dir
    })
}

struct T {
    dir: tempfile::TempDir,
}

impl T {
    fn new() -> T {
        T {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn bin(&self) -> Bin {
        Bin::new("verify-backup").journal(&self.path("journal.jsonl"))
    }
    /// Write `bytes` as a new file in this test's folder.
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).expect("write");
        p
    }
    fn journal(&self) -> Vec<Value> {
        std::fs::read_to_string(self.path("journal.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fx().join(name)).expect("fixture")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// The named check of the first file in a --json document.
fn check<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let checks = doc["files"][0]["checks"].as_array().expect("checks");
    checks
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| {
            panic!(
                "no check {name} in {}",
                serde_json::to_string_pretty(checks).unwrap_or_default()
            )
        })
}

/// Run on one file, expect exit 1 and `name` failed (with `needle` in its detail).
fn fails(t: &T, file: &Path, extra: &[&str], name: &str, needle: &str) -> Run {
    let r = t.bin().arg(file).args(extra).arg("--json").code(1);
    let doc = r.json();
    let c = check(&doc, name);
    assert_eq!(c["ok"], false, "{name} should fail:\n{}", r.stderr);
    let detail = c["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains(needle),
        "{name} detail lacks {needle:?}: {detail}"
    );
    r
}

/// A restore into `url` that fails with `needle` and still drops its scratch database.
fn restore_fails_and_drops(t: &T, pg: &Pg, file: &Path, url: &str, needle: &str) -> Run {
    let r = fails(t, file, &["--restore-to", url], "restore", needle);
    assert_eq!(check(&r.json(), "cleanup")["ok"], true);
    assert!(pg.databases_like("drillkit_verify_").is_empty());
    r
}

#[test]
fn intact_backups_pass_every_check() {
    let t = T::new();
    let files = [
        "plain.sql",
        "plain.sql.gz",
        "plain.sql.zst",
        "custom.dump",
        "base",
        "dump.rdb",
    ];
    let mut b = t
        .bin()
        .args(["--max-age", "1h", "--min-size", "1KiB", "--json"]);
    for f in files {
        b = b.arg(fx().join(f));
    }
    let r = b.succeeds();
    let doc = r.json();
    let reports = doc["files"].as_array().expect("files");
    assert_eq!(reports.len(), files.len());
    let kinds: Vec<&str> = reports
        .iter()
        .map(|f| f["format"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        [
            "pg-plain",
            "pg-plain",
            "pg-plain",
            "pg-custom",
            "pg-basebackup",
            "redis-rdb"
        ]
    );
    for f in reports {
        assert_eq!(f["ok"], true, "{f}");
    }
    for i in [0, 1, 2, 3] {
        assert_eq!(
            reports[i]["tables"]["public.orders"], ORDERS,
            "{}",
            reports[i]["file"]
        );
        assert_eq!(reports[i]["tables"]["public.customers"], 2000);
    }
    // The sidecar was found by itself, and gzip was checked member by member.
    let gz = &reports[1]["checks"];
    let names: Vec<&str> = gz
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["check"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "exists",
            "age",
            "size",
            "readable",
            "checksum:sha256",
            "gzip",
            "format"
        ]
    );
    r.stderr_has("sidecar").stderr_has("trailer present");
    // One journal event per check per file, ready for `report`.
    let events: Vec<Value> = t
        .journal()
        .into_iter()
        .filter(|e| e["event"] == "backup_check")
        .collect();
    let total: usize = reports
        .iter()
        .map(|f| f["checks"].as_array().map_or(0, |c| c.len()))
        .sum();
    assert_eq!(events.len(), total);
}

#[test]
fn gzip_corruptions_fail_the_gzip_check() {
    let t = T::new();
    let gz = read("plain.sql.gz");
    let truncated = t.file("truncated.sql.gz", &gz[..gz.len() / 2]);
    fails(&t, &truncated, &[], "gzip", "truncated");
    let mut flipped = gz.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    let flipped = t.file("flipped.sql.gz", &flipped);
    fails(&t, &flipped, &[], "gzip", "member 1");
    let mut garbage = gz.clone();
    garbage.extend_from_slice(b"\0\0garbage after the member");
    let garbage = t.file("garbage.sql.gz", &garbage);
    fails(&t, &garbage, &[], "gzip", "trailing garbage");
    // Two members (e.g. `cat a.gz b.gz`) are one valid stream.
    let text = read("plain.sql");
    let cut = text.len() / 2;
    let mut two = gzip(&text[..cut]);
    two.extend(gzip(&text[cut..]));
    let two = t.file("two.sql.gz", &two);
    let doc = t.bin().arg(&two).arg("--json").succeeds().json();
    assert!(check(&doc, "gzip")["detail"]
        .as_str()
        .unwrap_or("")
        .contains("2 member(s)"));
}

#[test]
fn dump_content_damage_fails_the_format_check_even_in_a_valid_gzip() {
    let t = T::new();
    let text = String::from_utf8(read("plain.sql")).expect("utf8");
    // Cut mid-COPY, then compressed correctly: gzip passes, the dump does not.
    let at = text.find("COPY public.orders").expect("copy") + 200_000;
    let cut = t.file("cut.sql.gz", &gzip(&text.as_bytes()[..at]));
    let r = fails(&t, &cut, &[], "format", "not terminated");
    assert_eq!(check(&r.json(), "gzip")["ok"], true);
    let no_trailer = text.replace("-- PostgreSQL database dump complete", "-- the end");
    let no_trailer = t.file("notrailer.sql.gz", &gzip(no_trailer.as_bytes()));
    fails(&t, &no_trailer, &[], "format", "trailer");
    // Drop the `\.` of the customers block.
    let start = text.find("COPY public.customers").expect("copy");
    let end = start + text[start..].find("\n\\.\n").expect("terminator");
    let unterminated = format!("{}\n{}", &text[..end], &text[end + 4..]);
    let unterminated = t.file("unterminated.sql", unterminated.as_bytes());
    fails(&t, &unterminated, &[], "format", "public.customers");
    let empty = t.file("empty.sql.gz", b"");
    let r = fails(&t, &empty, &[], "size", "empty");
    assert_eq!(check(&r.json(), "format")["ok"], false);
    let custom = read("custom.dump");
    let custom = t.file("cut.dump", &custom[..custom.len() * 2 / 3]);
    fails(&t, &custom, &[], "format", "truncated");
}

#[test]
fn checksums_from_sidecars_lists_and_flags() {
    let t = T::new();
    let gz = read("plain.sql.gz");
    let f = t.file("db.sql.gz", &gz);
    let good = String::from_utf8(read("plain.sql.gz.sha256")).expect("sidecar");
    let hex = good.split_whitespace().next().expect("hex").to_string();
    // A wrong sidecar.
    std::fs::write(
        t.path("db.sql.gz.sha256"),
        format!("{}  db.sql.gz\n", "0".repeat(64)),
    )
    .expect("write");
    fails(&t, &f, &[], "checksum:sha256", "does not match sidecar");
    std::fs::remove_file(t.path("db.sql.gz.sha256")).expect("rm");
    // GNU and BSD lists, md5 and sha256, and the flags.
    let md5 = Command::new("md5sum")
        .arg(&f)
        .output()
        .expect("md5sum")
        .stdout;
    let md5 = String::from_utf8_lossy(&md5)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    let gnu = t.file(
        "SHA256SUMS",
        format!("{hex} *db.sql.gz\n{}  other.gz\n", "1".repeat(64)).as_bytes(),
    );
    let bsd = t.file("MD5SUMS", format!("MD5 (db.sql.gz) = {md5}\n").as_bytes());
    let r = t
        .bin()
        .arg(&f)
        .arg("--checksum-file")
        .arg(&gnu)
        .arg("--checksum-file")
        .arg(&bsd)
        .arg("--json")
        .succeeds();
    let doc = r.json();
    assert_eq!(check(&doc, "checksum:sha256")["ok"], true);
    assert_eq!(check(&doc, "checksum:md5")["ok"], true);
    t.bin().arg(&f).args(["--sha256", &hex]).succeeds();
    fails(
        &t,
        &f,
        &["--md5", &"a".repeat(32)],
        "checksum:md5",
        "does not match --md5",
    );
    let other = t.file("SHA512SUMS", b"");
    std::fs::write(&other, format!("{}  unrelated\n", "2".repeat(128))).expect("write");
    fails(
        &t,
        &f,
        &["--checksum-file", &other.to_string_lossy()],
        "checksum",
        "has no line",
    );
    // A malformed digest on the command line is bad input, named.
    t.bin()
        .arg(&f)
        .args(["--sha256", "xyz"])
        .code(2)
        .stderr_has("--sha256");
}

#[test]
fn zstd_rdb_and_base_backup_damage() {
    let t = T::new();
    let r = t
        .bin()
        .arg(fx().join("nocheck.sql.zst"))
        .arg("--json")
        .succeeds();
    let c = check(&r.json(), "zstd").clone();
    assert_eq!(
        (c["ok"].as_bool(), c["warning"].as_bool()),
        (Some(true), Some(true)),
        "{c}"
    );
    assert!(c["detail"]
        .as_str()
        .unwrap_or("")
        .contains("cannot be detected"));
    fails(
        &t,
        &fx().join("nocheck.sql.zst"),
        &["--strict"],
        "zstd",
        "no content checksum",
    );
    let mut z = read("plain.sql.zst");
    let n = z.len();
    z[n - 2] ^= 0x40;
    let z = t.file("bad.sql.zst", &z);
    fails(&t, &z, &[], "zstd", "frame");

    // Through a pipe, `zstd --long=28` declares a 256 MiB window whatever the size: refused by
    // default (as `zstd -d` refuses it), decoded when allowed.
    let long = t.path("long.sql.zst");
    sh(&format!(
        "zstd -q --long=28 -c < {} > {}",
        fx().join("plain.sql").display(),
        long.display()
    ));
    fails(
        &t,
        &long,
        &[],
        "zstd",
        "needs a 256.0 MiB window, over the 128.0 MiB allowed",
    );
    let r = t
        .bin()
        .arg(&long)
        .args(["--zstd-max-window", "200MiB", "--json"])
        .succeeds();
    assert_eq!(check(&r.json(), "format")["ok"], true);
    let r = t
        .bin()
        .arg(&long)
        .args(["--zstd-max-window", "3GiB"])
        .code(2);
    r.stderr_has("--zstd-max-window");

    let mut rdb = read("dump.rdb");
    let mid = rdb.len() / 2;
    rdb[mid] ^= 0x01;
    let rdb = t.file("bad.rdb", &rdb);
    fails(&t, &rdb, &[], "format", "CRC-64 mismatch");

    let base = t.path("base");
    sh(&format!(
        "cp -a {} {}",
        fx().join("base").display(),
        base.display()
    ));
    t.bin().arg(&base).succeeds();
    std::fs::remove_file(base.join("PG_VERSION")).expect("rm");
    fails(&t, &base, &[], "files", "PG_VERSION: missing");
    std::fs::write(base.join("PG_VERSION"), b"14\n").expect("alter");
    fails(&t, &base, &[], "files", "PG_VERSION: CRC32C checksum");
    std::fs::copy(fx().join("base/PG_VERSION"), base.join("PG_VERSION")).expect("restore");
    std::fs::write(base.join("stray.conf"), b"x").expect("stray");
    fails(&t, &base, &[], "files", "not in the manifest");
    std::fs::remove_file(base.join("stray.conf")).expect("rm");
    let m = std::fs::read_to_string(base.join("backup_manifest")).expect("manifest");
    std::fs::write(
        base.join("backup_manifest"),
        m.replacen("\"Size\": ", "\"Size\":  ", 1),
    )
    .expect("alter");
    fails(&t, &base, &[], "manifest", "checksum mismatch");
}

#[test]
fn age_latest_and_missing() {
    let t = T::new();
    let dir = t.path("backups");
    std::fs::create_dir(&dir).expect("dir");
    let out = t.bin().arg(&dir).arg("--latest").arg("--json").code(1);
    assert_eq!(check(&out.json(), "latest")["ok"], false);
    let gz = read("plain.sql.gz");
    for (name, age) in [
        ("db-1.sql.gz", "3 days ago"),
        ("db-2.sql.gz", "2 days ago"),
        ("db-3.sql.gz", "1 hour ago"),
    ] {
        std::fs::write(dir.join(name), &gz).expect("write");
        sh(&format!("touch -d '{age}' {}", dir.join(name).display()));
    }
    // A sidecar written after the backup is not a backup: it must not be picked.
    let sidecar = String::from_utf8(read("plain.sql.gz.sha256")).expect("sidecar");
    let sidecar = sidecar.replace("plain.sql.gz", "db-3.sql.gz");
    std::fs::write(dir.join("db-3.sql.gz.sha256"), sidecar).expect("sidecar");
    let r = t.bin().arg(&dir).arg("--latest").arg("--json").succeeds();
    let doc = r.json();
    assert!(doc["files"][0]["file"]
        .as_str()
        .unwrap_or("")
        .ends_with("db-3.sql.gz"));
    assert_eq!(check(&doc, "checksum:sha256")["ok"], true);
    std::fs::remove_file(dir.join("db-3.sql.gz")).expect("rm");
    std::fs::remove_file(dir.join("db-3.sql.gz.sha256")).expect("rm");
    let r = fails(&t, &dir, &["--latest"], "age", "older than --max-age");
    assert!(r.json()["files"][0]["file"]
        .as_str()
        .unwrap_or("")
        .ends_with("db-2.sql.gz"));
    fails(&t, &dir.join("nope.sql.gz"), &[], "exists", "no such file");
    t.bin().arg(&dir).code(2).stderr_has("--latest");
    t.bin()
        .arg(dir.join("db-1.sql.gz"))
        .args(["--max-age", "soon"])
        .code(2)
        .stderr_has("--max-age");
    t.bin()
        .arg(dir.join("db-1.sql.gz"))
        .args(["--expect-rows", "t>=1"])
        .code(2)
        .stderr_has("--restore-to");
}

#[test]
fn baseline_catches_a_shrunken_backup() {
    let t = T::new();
    let full = t.file("db.sql", &read("plain.sql"));
    let summary = t.path("summary.json");
    t.bin().arg(&full).arg("--summary").arg(&summary).succeeds();
    // The same dump with most orders gone.
    let text = String::from_utf8(read("plain.sql")).expect("utf8");
    let start = text.find("COPY public.orders").expect("copy");
    let body = start + text[start..].find('\n').expect("nl") + 1;
    let end = start + text[start..].find("\n\\.\n").expect("end") + 1;
    let rows: Vec<&str> = text[body..end].lines().take(100).collect();
    let small = format!("{}{}\n{}", &text[..body], rows.join("\n"), &text[end..]);
    std::fs::write(&full, small).expect("write");
    fails(
        &t,
        &full,
        &["--baseline", &summary.to_string_lossy()],
        "shrink",
        "public.orders: 100 rows, 20000 before",
    );
    t.bin()
        .arg(&full)
        .args(["--baseline", "/nonexistent.json"])
        .code(2)
        .stderr_has("--baseline");
}

#[test]
fn restore_plain_and_custom_dumps_and_always_drop_the_scratch_database() {
    let pg = Pg::start();
    let t = T::new();
    let url = pg.url();
    let r = t
        .bin()
        .arg(fx().join("plain.sql.gz"))
        .args([
            "--restore-to",
            &url,
            "--expect-rows",
            "public.orders>=20000",
            "--expect-rows",
            "customers=2000",
        ])
        .args(["--check-sql", "SELECT order_total(1) > 0", "--json"])
        .succeeds();
    let doc = r.json();
    assert_eq!(
        doc["files"][0]["restore"]["tables"]["public.orders"],
        ORDERS
    );
    assert_eq!(check(&doc, "rows:public.orders")["ok"], true);
    assert_eq!(check(&doc, "check-sql:1")["ok"], true);
    assert_eq!(check(&doc, "cleanup")["ok"], true);
    assert!(pg.databases_like("drillkit_verify_").is_empty());
    // The restored data is byte-for-byte the dataset (awkward text survived COPY).
    let r = t
        .bin()
        .arg(fx().join("custom.dump"))
        .args([
            "--restore-to",
            &url,
            "--expect-rows",
            "public.orders>=20001",
            "--keep",
            "--json",
        ])
        .code(1);
    let doc = r.json();
    assert_eq!(check(&doc, "restore")["ok"], true);
    assert_eq!(check(&doc, "rows:public.orders")["ok"], false);
    let kept = pg.databases_like("drillkit_verify_");
    assert_eq!(kept.len(), 1, "--keep keeps it");
    let sum = pg.psql(
        &kept[0],
        "SELECT count(*) FROM public.orders WHERE note LIKE E'tab\\t%back\\\\\\\\slash%'",
    );
    assert_eq!(sum.trim(), "4000");
    pg.psql("postgres", &format!("DROP DATABASE \"{}\"", kept[0]));
    // A dump that fails halfway: the restore fails and the scratch database is still dropped.
    let text = String::from_utf8(read("plain.sql")).expect("utf8");
    let at = text.find("COPY public.orders").expect("copy");
    let bad = format!("{}SELECT 1/0;\n{}", &text[..at], &text[at..]);
    let bad = t.file("bad.sql", bad.as_bytes());
    restore_fails_and_drops(&t, &pg, &bad, &url, "division by zero");
    let r = t
        .bin()
        .arg(fx().join("plain.sql"))
        .args(["--restore-to", &url, "--check-sql", "SELECT false"])
        .code(1);
    r.stderr_has("must return true");
    assert!(pg.databases_like("drillkit_verify_").is_empty());
    // A server that cannot be reached is the environment's problem: exit 3, password redacted.
    let port = pg::free_port();
    let r = t
        .bin()
        .arg(fx().join("plain.sql"))
        .arg("--restore-to")
        .arg(format!("postgres://u:s3cret@127.0.0.1:{port}/"))
        .code(3);
    assert!(!r.stderr.contains("s3cret"), "{}", r.stderr);
}

/// A plain dump whose one COPY block (~12 MB) is big enough to be split over helper sessions.
/// Its data is Latin-1 under a schema search path, so a helper that did not replay the dump's
/// `SET client_encoding` and `set_config('search_path', …)` would fail or load the wrong table.
fn big_latin1_dump(rows: u64, in_transaction: bool) -> Vec<u8> {
    let mut d = b"--\n-- PostgreSQL database dump\n--\n\nSET client_encoding = 'LATIN1';\n\
CREATE SCHEMA s;\nSELECT pg_catalog.set_config('search_path', 's', false);\n\
CREATE TABLE t (id bigint, note text);\n"
        .to_vec();
    if in_transaction {
        d.extend_from_slice(b"BEGIN;\n");
    }
    d.extend_from_slice(b"COPY t (id, note) FROM stdin;\n");
    for i in 1..=rows {
        d.extend_from_slice(format!("{i}\t").as_bytes());
        if i % 10 == 0 {
            d.push(0xe9); // é in Latin-1: invalid on its own in UTF-8
        } else {
            d.extend_from_slice(b"padding padding padding padding padding padding padding padding");
        }
        d.push(b'\n');
    }
    d.extend_from_slice(b"\\.\n");
    if in_transaction {
        d.extend_from_slice(b"COMMIT;\n");
    }
    d.extend_from_slice(b"\n--\n-- PostgreSQL database dump complete\n--\n\n");
    d
}

#[test]
fn big_copy_blocks_load_over_several_sessions_with_the_dumps_settings() {
    let pg = Pg::start();
    let t = T::new();
    let url = pg.url();
    let rows = 150_000u64;
    let dump = t.file("big.sql.gz", &gzip(&big_latin1_dump(rows, false)));
    let r = t
        .bin()
        .arg(&dump)
        .args([
            "--restore-to",
            &url,
            "--restore-jobs",
            "3",
            "--keep",
            "--json",
        ])
        .args(["--expect-rows", &format!("s.t={rows}")])
        .succeeds();
    let doc = r.json();
    let restore = &doc["files"][0]["restore"];
    assert_eq!(restore["copy_sessions"], 3, "{restore}");
    assert_eq!(restore["copy_rows"], rows);
    let db = restore["database"].as_str().expect("database").to_string();
    // Every row once, and the Latin-1 bytes arrived as é whichever session carried them.
    let got = pg.psql(
        &db,
        "SELECT count(*), count(DISTINCT id), sum(id), count(*) FILTER (WHERE note = 'é') FROM s.t",
    );
    let want = format!("{rows}|{rows}|{}|{}", rows * (rows + 1) / 2, rows / 10);
    assert_eq!(got.trim(), want);
    pg.psql("postgres", &format!("DROP DATABASE \"{db}\""));

    // How many sessions loaded the block, every row arriving either way.
    let copy_sessions = |dump: &Path, jobs: &str| {
        t.bin()
            .arg(dump)
            .args(["--restore-to", &url, "--restore-jobs", jobs, "--json"])
            .args(["--expect-rows", &format!("s.t={rows}")])
            .succeeds()
            .json()["files"][0]["restore"]["copy_sessions"]
            .clone()
    };
    // Inside BEGIN … COMMIT the block stays on the dump's own session.
    let dump = t.file("txn.sql", &big_latin1_dump(rows, true));
    assert_eq!(copy_sessions(&dump, "3"), 1);
    // A table with a unique index while it loads stays on one session: two sessions inserting
    // the same key would wait on each other through this client.
    let mut keyed = big_latin1_dump(rows, false);
    let at = keyed
        .windows(7)
        .position(|w| w == b"bigint,")
        .expect("column list");
    keyed.splice(at + 6..at + 6, b" PRIMARY KEY".iter().copied());
    let dump = t.file("keyed.sql", &keyed);
    assert_eq!(copy_sessions(&dump, "3"), 1);
    // --restore-jobs 1 loads like psql, over one session; the helpers never linger either way.
    assert_eq!(copy_sessions(&t.path("big.sql.gz"), "1"), 1);
    assert!(pg.databases_like("drillkit_verify_").is_empty());
    let r = t.bin().arg(&dump).args(["--restore-jobs", "2"]).code(2);
    r.stderr_has("--restore-jobs needs --restore-to");
    let r = t
        .bin()
        .arg(&dump)
        .args(["--restore-to", &url, "--restore-jobs", "0"])
        .code(2);
    r.stderr_has("--restore-jobs");
}

#[test]
fn rows_longer_than_a_piece_reach_one_session_whole() {
    // 1.5 MB values (a big text or bytea row) are sent in bounded parts; the block is still split
    // over sessions, but never inside a line.
    let pg = Pg::start();
    let t = T::new();
    let (rows, long_every, long_len) = (100_000u64, 20_000u64, 150_000usize);
    let mut d =
        b"--\n-- PostgreSQL database dump\n--\n\nCREATE TABLE public.t (id bigint, note text);\n\
COPY public.t (id, note) FROM stdin;\n"
            .to_vec();
    for i in 1..=rows {
        if i % long_every == 0 {
            d.extend_from_slice(format!("{i}\t{}{i}\n", "0123456789".repeat(long_len)).as_bytes());
        } else {
            d.extend_from_slice(
                format!("{i}\tpadding padding padding padding padding padding\n").as_bytes(),
            );
        }
    }
    d.extend_from_slice(b"\\.\n\n--\n-- PostgreSQL database dump complete\n--\n\n");
    let dump = t.file("long.sql.gz", &gzip(&d));
    let r = t
        .bin()
        .arg(&dump)
        .args([
            "--restore-to",
            &pg.url(),
            "--restore-jobs",
            "3",
            "--keep",
            "--json",
        ])
        .succeeds();
    let restore = &r.json()["files"][0]["restore"];
    assert_eq!(restore["copy_sessions"], 3, "{restore}");
    assert_eq!(restore["copy_rows"], rows);
    let db = restore["database"].as_str().expect("database").to_string();
    let got = pg.psql(
        &db,
        &format!(
            "SELECT count(*), sum(id), count(*) FILTER (WHERE note = repeat('0123456789', {long_len}) || id) FROM public.t"
        ),
    );
    assert_eq!(
        got.trim(),
        format!("{rows}|{}|{}", rows * (rows + 1) / 2, rows / long_every)
    );
    pg.psql("postgres", &format!("DROP DATABASE \"{db}\""));
}

#[test]
fn a_restore_read_from_the_pass_fails_when_the_pass_finds_damage() {
    let pg = Pg::start();
    let t = T::new();
    let url = pg.url();
    // The deflate data is intact (every statement and row inflates), only the CRC trailer is
    // wrong: the restore, which reads the pass's inflated bytes, must fail with it.
    let mut gz = read("plain.sql.gz");
    let n = gz.len();
    gz[n - 8] ^= 0xff;
    let bad = t.file("badcrc.sql.gz", &gz);
    let r = restore_fails_and_drops(&t, &pg, &bad, &url, "CRC-32 mismatch");
    assert_eq!(check(&r.json(), "gzip")["ok"], false);
    // Cut at a line boundary inside the data: a clean-looking end of text, but a truncated gzip.
    let text = read("plain.sql");
    let cut = text.len() * 2 / 3;
    let cut = cut + text[cut..].iter().position(|&b| b == b'\n').unwrap_or(0) + 1;
    let whole = gzip(&text[..cut]);
    let truncated = t.file("cut.sql.gz", &whole[..whole.len() - 8]);
    restore_fails_and_drops(&t, &pg, &truncated, &url, "truncated");
}

/// Issue 11: `--restore-to` connects through the one PostgreSQL layer, so a server that needs a
/// password (scram) is reached with it from `PGPASSWORD`, from `~/.pgpass` or `PGPASSFILE`
/// (plain dumps through the protocol, custom dumps through `pg_restore`), a wrong one is exit 3
/// naming the authentication failure, and no password reaches any output.
#[test]
fn restore_to_a_password_server_takes_pgpassword_and_pgpass() {
    require!(Postgres);
    let server = crate::support::pg::Cluster::init("scram");
    server.start();
    server.create_app();
    server.sql("ALTER ROLE app CREATEDB");
    let pw = crate::support::pg::APP_PASSWORD;
    let url = format!("postgres://app@127.0.0.1:{}/postgres", server.port);
    let t = T::new();
    let no_secret = |r: &Run, secret: &str| {
        for (what, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            assert!(!text.contains(secret), "{what} holds the password:\n{text}");
        }
        let journal = std::fs::read_to_string(t.path("journal.jsonl")).unwrap_or_default();
        assert!(!journal.contains(secret), "the journal holds the password");
    };
    let scratch =
        || server.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'drillkit_verify_%'");

    let r = t
        .bin()
        .arg(fx().join("plain.sql.gz"))
        .args([
            "--restore-to",
            &url,
            "--expect-rows",
            "public.orders>=20000",
        ])
        .arg("--json")
        .env("PGPASSWORD", pw)
        .succeeds();
    assert_eq!(check(&r.json(), "rows:public.orders")["ok"], true);
    no_secret(&r, pw);
    assert_eq!(scratch(), "0");

    // ~/.pgpass in a temporary HOME (mode 0600, as libpq demands), for both dump kinds.
    let home = t.path("home");
    std::fs::create_dir(&home).expect("home");
    let pgpass = home.join(".pgpass");
    std::fs::write(&pgpass, format!("127.0.0.1:{}:*:app:{pw}\n", server.port)).expect("pgpass");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    for dump in ["plain.sql", "custom.dump"] {
        let r = t
            .bin()
            .arg(fx().join(dump))
            .args(["--restore-to", &url, "--expect-rows", "customers=2000"])
            .arg("--json")
            .env("HOME", &home)
            .succeeds();
        assert_eq!(check(&r.json(), "rows:customers")["ok"], true, "{dump}");
        no_secret(&r, pw);
    }
    // PGPASSFILE names the file wherever it is.
    let elsewhere = t.path("passfile");
    std::fs::copy(&pgpass, &elsewhere).expect("copy pgpass");
    t.bin()
        .arg(fx().join("plain.sql"))
        .args(["--restore-to", &url])
        .env("PGPASSFILE", &elsewhere)
        .env("HOME", t.path("nowhere"))
        .succeeds();
    assert_eq!(scratch(), "0");

    // A wrong password: the server says so, exit 3, and neither password is shown.
    let wrong = "not-the-Passw0rd";
    let r = t
        .bin()
        .arg(fx().join("plain.sql"))
        .args(["--restore-to", &url])
        .env("PGPASSWORD", wrong)
        .code(3);
    r.stderr_has("password authentication failed for user \"app\"");
    no_secret(&r, wrong);
    no_secret(&r, pw);
    // The same in the URL: redacted wherever the URL is shown.
    let inline = format!("postgres://app:{wrong}@127.0.0.1:{}/postgres", server.port);
    let r = t
        .bin()
        .arg(fx().join("plain.sql"))
        .args(["--restore-to", &inline])
        .code(3);
    r.stderr_has("authentication failed");
    no_secret(&r, wrong);
    assert_eq!(scratch(), "0");
}

/// The manifest's first WAL range: (segment file name, offset of its start LSN in the segment).
fn wal_start(base: &Path) -> (String, usize) {
    let m: Value =
        serde_json::from_slice(&std::fs::read(base.join("backup_manifest")).expect("manifest"))
            .expect("manifest JSON");
    let r = &m["WAL-Ranges"][0];
    let (hi, lo) = r["Start-LSN"]
        .as_str()
        .and_then(|s| s.split_once('/'))
        .expect("Start-LSN");
    let lsn = (u64::from_str_radix(hi, 16).expect("hex") << 32)
        | u64::from_str_radix(lo, 16).expect("hex");
    let seg = 16u64 << 20;
    let tli = r["Timeline"].as_u64().expect("Timeline");
    let segno = lsn / seg;
    (
        format!("{tli:08X}{:08X}{:08X}", segno / 256, segno % 256),
        (lsn % seg) as usize,
    )
}

/// Issue 16: a data directory (PG_VERSION) without backup_manifest cannot be verified: a failed
/// check (exit 1), not bad input; a folder that is no backup at all stays exit 2.
#[test]
fn a_data_directory_without_a_manifest_is_a_failed_check() {
    let t = T::new();
    let base = t.path("base");
    sh(&format!(
        "cp -a {} {}",
        fx().join("base").display(),
        base.display()
    ));
    std::fs::remove_file(base.join("backup_manifest")).expect("rm manifest");
    fails(&t, &base, &[], "manifest", "cannot be verified without it");
    let empty = t.path("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    t.bin().arg(&empty).code(2).stderr_has("--latest");
}

/// Issue 16: a plain base backup whose WAL is gone cannot reach consistency: exit 1 naming the
/// segment; `--wal-dir` with the archived segment (gzip'd) makes it whole; a flipped byte in a
/// record of the range fails its CRC.
#[test]
fn base_backup_wal_must_cover_its_range() {
    let t = T::new();
    let base = t.path("base");
    sh(&format!(
        "cp -a {} {}",
        fx().join("base").display(),
        base.display()
    ));
    let (segment, offset) = wal_start(&base);
    let r = t.bin().arg(&base).arg("--json").succeeds();
    let doc = r.json();
    let wal = check(&doc, "wal");
    assert!(
        wal["detail"].as_str().unwrap_or("").contains(&segment),
        "{wal}"
    );
    let archive = t.path("archive");
    std::fs::create_dir(&archive).expect("mkdir");
    sh(&format!(
        "gzip -c {}/pg_wal/{segment} > {}/{segment}.gz && rm {}/pg_wal/0000*",
        base.display(),
        archive.display(),
        base.display()
    ));
    fails(
        &t,
        &base,
        &[],
        "wal",
        &format!("WAL segment {segment} is missing"),
    );
    let r = t
        .bin()
        .arg(&base)
        .arg("--wal-dir")
        .arg(&archive)
        .arg("--json")
        .succeeds();
    assert_eq!(check(&r.json(), "wal")["ok"], true);
    // One flipped bit inside the first record of the range.
    sh(&format!(
        "gunzip -c {0}/{segment}.gz > {0}/{segment} && rm {0}/{segment}.gz",
        archive.display()
    ));
    let seg_path = archive.join(&segment);
    let mut bytes = std::fs::read(&seg_path).expect("segment");
    bytes[offset + 40] ^= 0x10;
    std::fs::write(&seg_path, &bytes).expect("write");
    fails(
        &t,
        &base,
        &["--wal-dir", &archive.to_string_lossy()],
        "wal",
        "fails its CRC-32C",
    );
}

/// Issue 16: tar base backups (`-Ft`, gzip / zstd / lz4 / none, `-X stream`) verify clean in one
/// read of each archive, and every corruption inside `base.tar.gz` is exit 1 naming the file.
#[test]
fn tar_base_backups_verify_and_corruptions_name_the_file() {
    let t = T::new();
    for (dir, compression) in [
        ("tar_gz", "gzip"),
        ("tar", "none"),
        ("tar_zst", "zstd"),
        ("tar_lz4", "lz4"),
    ] {
        let r = t.bin().arg(fx().join(dir)).arg("--json").succeeds();
        let doc = r.json();
        assert_eq!(doc["files"][0]["format"], "pg-basebackup-tar", "{dir}");
        // pg_basebackup 15 compresses pg_wal.tar only with gzip: zstd and lz4 backups are
        // reported as e.g. "none+zstd".
        let found = doc["files"][0]["compression"].as_str().unwrap_or("");
        assert!(found.split('+').any(|c| c == compression), "{dir}: {found}");
        assert_eq!(check(&doc, "files")["ok"], true, "{dir}");
        assert_eq!(check(&doc, "wal")["ok"], true, "{dir}");
    }
    // Repack base.tar.gz after changing what it holds; the manifest stays the original.
    let repack = |name: &str, change: &dyn Fn(&Path)| -> PathBuf {
        let b = t.path(name);
        sh(&format!(
            "cp -a {} {}",
            fx().join("tar_gz").display(),
            b.display()
        ));
        let x = t.path(&format!("{name}.x"));
        std::fs::create_dir(&x).expect("mkdir");
        sh(&format!(
            "tar -xzf {}/base.tar.gz -C {}",
            b.display(),
            x.display()
        ));
        change(&x);
        sh(&format!(
            "tar -czf {}/base.tar.gz -C {} .",
            b.display(),
            x.display()
        ));
        b
    };
    let b = repack("missing", &|x| {
        std::fs::remove_file(x.join("PG_VERSION")).expect("rm")
    });
    fails(&t, &b, &[], "files", "PG_VERSION: missing");
    let b = repack("extra", &|x| {
        std::fs::write(x.join("stray.conf"), b"x").expect("write")
    });
    fails(
        &t,
        &b,
        &[],
        "files",
        "base.tar.gz: stray.conf: in the archive but not in the manifest",
    );
    let b = repack("appended", &|x| {
        sh(&format!("echo '# more' >> {}/postgresql.conf", x.display()))
    });
    fails(&t, &b, &[], "files", "postgresql.conf: size");
    let b = repack("truncated", &|x| {
        sh(&format!("truncate -s -10 {}/postgresql.conf", x.display()))
    });
    fails(&t, &b, &[], "files", "postgresql.conf: size");
    let b = repack("replaced", &|x| {
        std::fs::write(x.join("PG_VERSION"), b"14\n").expect("write")
    });
    fails(&t, &b, &[], "files", "PG_VERSION: CRC32C checksum");
    // One flipped byte in the compressed archive itself.
    let b = t.path("flipped");
    sh(&format!(
        "cp -a {} {}",
        fx().join("tar_gz").display(),
        b.display()
    ));
    let gz = b.join("base.tar.gz");
    let good = std::fs::read(&gz).expect("read");
    // A flip that damages what the archive holds: a few bits of a deflate stream change nothing
    // it decodes to (1.5 % of single-bit flips in a 17 MB pg_basebackup archive here; `gzip -t`
    // passes those too, and the data restored would be the same), so the byte is the first
    // from the middle on whose flip `gzip -t` itself refuses.
    let mut at = good.len() / 2;
    loop {
        let mut bytes = good.clone();
        bytes[at] ^= 0x01;
        std::fs::write(&gz, &bytes).expect("write");
        let damaged = !std::process::Command::new("gzip")
            .arg("-t")
            .arg(&gz)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("gzip -t")
            .success();
        if damaged {
            break;
        }
        at += 1;
        assert!(at < good.len() - 8, "no damaging flip found");
    }
    fails(&t, &b, &[], "files", "base.tar.gz: ");
    // A bad manifest.
    let b = t.path("badmanifest");
    sh(&format!(
        "cp -a {} {}",
        fx().join("tar_gz").display(),
        b.display()
    ));
    let m = std::fs::read_to_string(b.join("backup_manifest")).expect("manifest");
    std::fs::write(
        b.join("backup_manifest"),
        m.replacen("\"Size\": ", "\"Size\":  ", 1),
    )
    .expect("alter");
    fails(&t, &b, &[], "manifest", "checksum mismatch");
    // The WAL archive gone: the WAL check names the missing segment.
    let b = t.path("nowal");
    sh(&format!(
        "cp -a {} {}",
        fx().join("tar_gz").display(),
        b.display()
    ));
    std::fs::remove_file(b.join("pg_wal.tar.gz")).expect("rm");
    fails(&t, &b, &[], "wal", "is missing");
}

/// Issue 16, the peer suite: PostgreSQL's own corruption cases built from real `pg_basebackup`
/// output (plain format: `pg_verifybackup` 15 reads no tar), each run through both tools, which
/// must give the same verdict (exit 0 or 1).
#[test]
fn same_verdicts_as_pg_verifybackup_on_plain_base_backups() {
    let pgv = pg::pg_bin().join("pg_verifybackup");
    let t = T::new();
    let flip = |p: &Path| {
        let mut b = std::fs::read(p).expect("read");
        let mid = b.len() / 2;
        b[mid] ^= 0x01;
        std::fs::write(p, b).expect("write");
    };
    type Change<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Change)> = vec![
        ("intact", Box::new(|_| {})),
        (
            "extra file",
            Box::new(|b| std::fs::write(b.join("extra_file"), b"x").expect("write")),
        ),
        (
            "missing file",
            Box::new(|b| std::fs::remove_file(b.join("PG_VERSION")).expect("rm")),
        ),
        (
            "appended",
            Box::new(|b| sh(&format!("echo '# more' >> {}/postgresql.conf", b.display()))),
        ),
        (
            "truncated",
            Box::new(|b| sh(&format!("truncate -s -10 {}/postgresql.conf", b.display()))),
        ),
        (
            "replaced",
            Box::new(|b| std::fs::write(b.join("PG_VERSION"), b"14\n").expect("write")),
        ),
        (
            "flipped byte",
            Box::new(move |b| flip(&b.join("global/pg_control"))),
        ),
        (
            "bad manifest",
            Box::new(|b| {
                let m = std::fs::read_to_string(b.join("backup_manifest")).expect("manifest");
                std::fs::write(
                    b.join("backup_manifest"),
                    m.replacen("\"Size\": ", "\"Size\":  ", 1),
                )
                .expect("write")
            }),
        ),
        (
            "WAL removed",
            Box::new(|b| sh(&format!("rm {}/pg_wal/0000*", b.display()))),
        ),
        (
            "no manifest",
            Box::new(|b| std::fs::remove_file(b.join("backup_manifest")).expect("rm")),
        ),
    ];
    let mut failed = 0;
    for (i, (name, change)) in cases.iter().enumerate() {
        let b = t.path(&format!("case{i}"));
        sh(&format!(
            "cp -a {} {}",
            fx().join("base").display(),
            b.display()
        ));
        change(&b);
        let ours = t.bin().arg(&b).run();
        let theirs = Command::new(&pgv)
            .arg(&b)
            .output()
            .expect("pg_verifybackup runs");
        let theirs_code = theirs.status.code().unwrap_or(-1);
        assert_eq!(
            ours.code,
            theirs_code,
            "{name}: verify-backup exited {}, pg_verifybackup {theirs_code}\n--- verify-backup\n{}\n--- pg_verifybackup\n{}",
            ours.code,
            ours.stderr,
            String::from_utf8_lossy(&theirs.stderr)
        );
        if ours.code != 0 {
            failed += 1;
        }
    }
    assert_eq!(
        failed,
        cases.len() - 1,
        "every case but the intact one fails"
    );
}

/// Issue 16: `--record` appends one line per backup verified; `--require-restored-within` fails
/// until a restore test has proven a backup recently enough.
#[test]
fn record_of_proof_and_require_restored_within() {
    let pg = Pg::start();
    let t = T::new();
    let rec = t.path("proof.jsonl");
    let lines = || -> Vec<Value> {
        std::fs::read_to_string(&rec)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("record line is JSON"))
            .collect()
    };
    let gz = fx().join("plain.sql.gz");
    let r = t
        .bin()
        .arg(&gz)
        .arg("--record")
        .arg(&rec)
        .args(["--require-restored-within", "7d", "--json"])
        .code(1);
    let doc = r.json();
    let proof = &doc["files"][1]["checks"][0];
    assert_eq!(proof["check"], "restored-within");
    assert_eq!(proof["ok"], false);
    let l = lines();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["restored"], false);
    assert_eq!(l[0]["ok"], true);
    assert_eq!(l[0]["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(l[0]["checks"]["gzip"], true);

    t.bin()
        .arg(&gz)
        .args(["--restore-to", &pg.url(), "--record"])
        .arg(&rec)
        .args(["--require-restored-within", "7d"])
        .succeeds();
    let l = lines();
    assert_eq!(l.len(), 2);
    assert_eq!(l[1]["restored"], true);
    // Later runs without a restore still pass on that proof...
    t.bin()
        .arg(fx().join("base"))
        .arg("--record")
        .arg(&rec)
        .args(["--require-restored-within", "7d"])
        .succeeds()
        .stderr_has("newest backup proven restorable");
    assert_eq!(lines()[2]["format"], "pg-basebackup");
    // ...but not once the only proof is older than the limit.
    let old = t.path("old.jsonl");
    let mut stale = l[1].clone();
    stale["at"] = Value::from(
        (chrono::Utc::now() - chrono::Duration::days(8))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    std::fs::write(&old, format!("{stale}\n")).expect("write");
    let r = t
        .bin()
        .arg(&gz)
        .arg("--record")
        .arg(&old)
        .args(["--require-restored-within", "7d"])
        .code(1);
    r.stderr_has("restored-within").stderr_has("192h");
    t.bin()
        .arg(&gz)
        .args(["--require-restored-within", "7d"])
        .code(2)
        .stderr_has("--record");
}

/// Issue 16: a `pg_dump -Fd` folder: toc.dat and every data file it names, decoded, rows per
/// table; restored with `pg_restore -j` like a custom dump; a missing or damaged data file fails.
#[test]
fn directory_dumps_verify_and_restore_with_their_row_counts() {
    let t = T::new();
    let dir = fx().join("dir.dump");
    let r = t.bin().arg(&dir).arg("--json").succeeds();
    let doc = r.json();
    assert_eq!(doc["files"][0]["format"], "pg-directory");
    assert_eq!(doc["files"][0]["tables"]["public.orders"], ORDERS);
    assert_eq!(doc["files"][0]["tables"]["public.customers"], 2000);
    let pg = Pg::start();
    let r = t
        .bin()
        .arg(&dir)
        .args([
            "--restore-to",
            &pg.url(),
            "--restore-jobs",
            "2",
            "--expect-rows",
            "public.orders>=20000",
            "--json",
        ])
        .succeeds();
    let doc = r.json();
    assert_eq!(
        doc["files"][0]["restore"]["tables"]["public.orders"],
        ORDERS
    );
    assert!(doc["files"][0]["restore"]["method"]
        .as_str()
        .unwrap_or("")
        .contains("--jobs=2"));
    assert_eq!(check(&doc, "cleanup")["ok"], true);
    assert!(pg.databases_like("drillkit_verify_").is_empty());
    // The biggest data file (the orders) gone, then damaged.
    let copy = t.path("dir.dump");
    sh(&format!("cp -a {} {}", dir.display(), copy.display()));
    let biggest = std::fs::read_dir(&copy)
        .expect("list")
        .flatten()
        .filter(|e| e.file_name() != "toc.dat")
        .max_by_key(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .expect("a data file")
        .path();
    let bytes = std::fs::read(&biggest).expect("read");
    std::fs::remove_file(&biggest).expect("rm");
    fails(&t, &copy, &[], "format", "missing");
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    std::fs::write(&biggest, bad).expect("write");
    fails(&t, &copy, &[], "format", "does not decode");
}

/// Issue 16: `--restore-base` starts PostgreSQL on a copy of the base backup, checks the rows,
/// and leaves no process, folder or port behind — also when interrupted (SIGINT).
#[test]
fn restore_base_recovers_checks_rows_and_leaves_nothing_behind() {
    let pg = Pg::start();
    pg.psql(
        "postgres",
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g",
    );
    let t = T::new();
    let base = t.path("base");
    pg.client(
        "pg_basebackup",
        &[
            "-D",
            &base.to_string_lossy(),
            "-Ft",
            "-z",
            "-X",
            "stream",
            "-c",
            "fast",
        ],
    );
    drop(pg);
    let leftovers = || -> Vec<String> {
        std::fs::read_dir(std::env::temp_dir())
            .expect("tmp")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("drillkit-restore-base-"))
            .collect()
    };
    let before = leftovers();
    let r = t
        .bin()
        .arg(&base)
        .args(["--restore-base", "--expect-rows", "t>=50000", "--json"])
        .succeeds();
    let doc = r.json();
    assert_eq!(check(&doc, "restore")["ok"], true);
    assert_eq!(check(&doc, "rows:t")["ok"], true);
    assert_eq!(check(&doc, "cleanup")["ok"], true);
    assert_eq!(doc["files"][0]["restore"]["tables"]["public.t"], 50000);
    assert_eq!(leftovers(), before, "the scratch folder is deleted");
    let phases: Vec<Value> = t
        .journal()
        .into_iter()
        .filter(|e| e["event"] == "phase_finished" && e["name"] == "recovery")
        .collect();
    assert_eq!(phases.len(), 1, "recovery is a phase in the journal");
    assert_eq!(phases[0]["ok"], true);
    // The same, interrupted once the scratch server runs: exit 4, nothing left.
    let child = t
        .bin()
        .arg(&base)
        .args(["--restore-base", "--expect-rows", "t>=50000"])
        .spawn();
    let pid = child.id() as i32;
    let started = std::time::Instant::now();
    loop {
        let running = t
            .journal()
            .iter()
            .filter(|e| e["event"] == "phase_started" && e["name"] == "recovery")
            .count();
        if running == 2 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "recovery never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let out = child.wait_with_output().expect("wait");
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 4 || code == 0,
        "interrupted: exit {code}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        leftovers(),
        before,
        "the scratch folder is deleted when interrupted"
    );
    let ps = Command::new("sh")
        .arg("-c")
        .arg("ps -eo args | grep -c '[d]rillkit-restore-base' || true")
        .output()
        .expect("ps");
    assert_eq!(
        String::from_utf8_lossy(&ps.stdout).trim(),
        "0",
        "no scratch server left"
    );
}
