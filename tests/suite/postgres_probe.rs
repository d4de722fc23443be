//! The PostgreSQL probe against real PostgreSQL 15 clusters: a primary and a streaming replica
//! (recovery state, writability, replication lag, promotion), passwords (URL, `.pgpass`, wrong),
//! unreachable hosts, and TLS per `sslmode` with a real certificate chain.

use crate::support::pg;
use drillkit::probe::postgres::PostgresProbe;
use pg::{Cluster, Pair, APP_PASSWORD};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

fn probe(
    url: &str,
    query: Option<&str>,
    expect: Option<&str>,
    writable: bool,
    lag: Option<Duration>,
) -> PostgresProbe {
    PostgresProbe::new(
        url,
        query.map(String::from),
        expect.map(String::from),
        writable,
        lag,
    )
    .unwrap_or_else(|e| panic!("probe {url}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_state_writability_and_lag_follow_a_promotion() {
    require!(Postgres);
    let pair = Pair::new(false);
    let (p, r) = (pair.primary.url(), pair.replica.url());
    let not_in_recovery = |url: &str| {
        probe(
            url,
            Some("SELECT pg_is_in_recovery()"),
            Some("f"),
            false,
            None,
        )
    };

    let o = not_in_recovery(&p).check(T).await;
    assert!(o.ok, "primary: {o:?}");
    let o = not_in_recovery(&r).check(T).await;
    assert!(!o.ok, "replica must fail: {o:?}");
    assert!(o.detail.contains(r#"returned "t""#), "{}", o.detail);
    // "false" is accepted for psql's "f".
    assert!(
        probe(
            &p,
            Some("SELECT pg_is_in_recovery()"),
            Some("false"),
            false,
            None
        )
        .check(T)
        .await
        .ok
    );

    let o = probe(&p, None, None, true, None).check(T).await;
    assert!(o.ok, "primary writable: {o:?}");
    let o = probe(&r, None, None, true, None).check(T).await;
    assert!(!o.ok, "standby must not be writable: {o:?}");
    assert!(o.detail.contains("read-only transaction"), "{}", o.detail);
    // The write left nothing behind.
    assert_eq!(
        pair.primary
            .sql("SELECT count(*) FROM pg_class WHERE relname = 'drillkit_writable_probe'"),
        "0"
    );

    // A primary refusing writes by configuration fails the probe, as the application would.
    pair.primary
        .sql("ALTER DATABASE postgres SET default_transaction_read_only = on");
    let o = probe(&p, None, None, true, None).check(T).await;
    assert!(!o.ok, "read-only primary: {o:?}");
    pair.primary.sql(
        "BEGIN READ WRITE; ALTER DATABASE postgres RESET default_transaction_read_only; COMMIT",
    );

    pair.primary
        .sql("CREATE TABLE lagtest (x int); INSERT INTO lagtest VALUES (1)");
    pair.wait_caught_up();
    let o = probe(&r, None, None, false, Some(Duration::from_secs(5)))
        .check(T)
        .await;
    assert!(o.ok, "caught-up standby: {o:?}");
    assert!(o.detail.contains("replication lag"), "{}", o.detail);
    let o = probe(&p, None, None, false, Some(Duration::from_millis(1)))
        .check(T)
        .await;
    assert!(o.ok && o.detail.contains("not a standby"), "{o:?}");

    // Replay paused while the primary keeps writing: the lag grows past a small bound.
    pair.replica.sql("SELECT pg_wal_replay_pause()");
    pair.replica.wait_for(
        "SELECT pg_get_wal_replay_pause_state()",
        "paused",
        Duration::from_secs(10),
    );
    let lsn = pair
        .primary
        .sql("INSERT INTO lagtest VALUES (2); SELECT pg_current_wal_insert_lsn()");
    pair.replica.wait_for(
        &format!("SELECT pg_last_wal_receive_lsn() >= '{}'", lsn.trim()),
        "t",
        Duration::from_secs(10),
    );
    // Received, not replayed: the probe's lag grows with the clock until it passes 100ms.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let o = loop {
        let o = probe(&r, None, None, false, Some(Duration::from_millis(100)))
            .check(T)
            .await;
        if !o.ok || std::time::Instant::now() > deadline {
            break o;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!o.ok, "paused standby must exceed 100ms: {o:?}");
    assert!(o.detail.contains("exceeds"), "{}", o.detail);
    pair.replica.sql("SELECT pg_wal_replay_resume()");

    // The primary goes away: the standby's lag is unknown; after promotion it is the primary.
    pair.primary.stop("immediate");
    let o = probe(&p, None, None, false, None).check(T).await;
    assert!(!o.ok && o.detail.contains("refused"), "{o:?}");
    let o = probe(&r, None, None, false, Some(Duration::from_secs(5)))
        .check(T)
        .await;
    assert!(!o.ok && o.detail.contains("not streaming"), "{o:?}");
    pair.replica.promote();
    let o = not_in_recovery(&r).check(T).await;
    assert!(o.ok, "promoted: {o:?}");
    let o = probe(&r, None, None, true, None).check(T).await;
    assert!(o.ok, "promoted writable: {o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_come_from_the_url_or_pgpass_and_wrong_ones_are_the_servers_message() {
    require!(Postgres);
    let c = Cluster::init("auth");
    c.start();
    c.create_app();

    let o = probe(
        &c.app_url(APP_PASSWORD),
        Some("SELECT current_user"),
        Some("app"),
        false,
        None,
    )
    .check(T)
    .await;
    assert!(o.ok, "{o:?}");

    let o = probe(&c.app_url("wrong-password"), None, None, false, None)
        .check(T)
        .await;
    assert!(!o.ok, "{o:?}");
    assert!(
        o.detail
            .contains(r#"password authentication failed for user "app""#),
        "{}",
        o.detail
    );
    assert!(
        !o.detail.contains("wrong-password"),
        "password leaked: {}",
        o.detail
    );

    // ~/.pgpass format, through the `passfile` option (PGPASSFILE works the same way).
    let dir = tempfile::tempdir().expect("tempdir");
    let pgpass = dir.path().join("pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "# test\nother:1:*:*:nope\n127.0.0.1:{}:app:app:{APP_PASSWORD}\n",
            c.port
        ),
    )
    .expect("write pgpass");
    set_mode(&pgpass, 0o600);
    let url = format!(
        "postgres://app@127.0.0.1:{}/app?passfile={}",
        c.port,
        pgpass.display()
    );
    let o = probe(&url, None, None, true, None).check(T).await;
    assert!(o.ok, "pgpass: {o:?}");
    // A world-readable password file is ignored, as libpq does.
    set_mode(&pgpass, 0o644);
    let o = probe(&url, None, None, false, None).check(T).await;
    assert!(!o.ok, "world-readable pgpass must be ignored: {o:?}");

    // Key=value strings work too.
    let kv = format!(
        "host=127.0.0.1 port={} user=app dbname=app password='{APP_PASSWORD}'",
        c.port
    );
    assert!(probe(&kv, None, None, false, None).check(T).await.ok);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[tokio::test]
async fn unreachable_servers_fail_with_a_reason_within_the_timeout() {
    let port = pg::free_port();
    let o = probe(
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        None,
        None,
        false,
        None,
    )
    .check(T)
    .await;
    assert!(!o.ok);
    assert!(o.detail.contains("Connection refused"), "{}", o.detail);

    // A blackholed address (or whatever a sandbox answers there): never longer than the timeout.
    let o = probe(
        "postgres://postgres@10.255.255.1:5432/postgres",
        None,
        None,
        false,
        None,
    )
    .check(Duration::from_millis(300))
    .await;
    assert!(!o.ok);
    assert!(o.latency < Duration::from_secs(2), "{o:?}");

    let o = probe(
        "postgres://postgres@no-such-host.invalid/postgres",
        None,
        None,
        false,
        None,
    )
    .check(T)
    .await;
    assert!(!o.ok && !o.detail.is_empty(), "{o:?}");
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for `localhost` only (not for 127.0.0.1).
fn make_certs(dir: &Path) {
    for ca in ["ca", "otherca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
                "-days",
                "2",
                "-subj",
                &format!("/CN={ca}"),
            ],
        );
    }
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_follows_libpq_through_rustls() {
    require!(Postgres);
    require!(Openssl);
    let c = Cluster::init("tls");
    let data = c.data();
    make_certs(&data);
    let chown = Command::new("chown")
        .arg("postgres:postgres")
        .arg(data.join("server.key"))
        .arg(data.join("server.crt"))
        .status()
        .expect("chown runs");
    assert!(chown.success(), "chown of the server key: {chown}");
    set_mode(&data.join("server.key"), 0o600);
    c.conf("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'");
    c.start();

    let ca = data.join("ca.crt");
    let other = data.join("otherca.crt");
    let q = Some("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    let url =
        |host: &str, opts: &str| format!("postgres://postgres@{host}:{}/postgres?{opts}", c.port);

    let o = probe(
        &url("127.0.0.1", "sslmode=require"),
        q,
        Some("t"),
        false,
        None,
    )
    .check(T)
    .await;
    assert!(o.ok, "require encrypts without verifying: {o:?}");
    let o = probe(
        &url("127.0.0.1", "sslmode=prefer"),
        q,
        Some("t"),
        false,
        None,
    )
    .check(T)
    .await;
    assert!(o.ok, "prefer uses TLS when offered: {o:?}");
    let o = probe(
        &url("127.0.0.1", "sslmode=disable"),
        q,
        Some("f"),
        false,
        None,
    )
    .check(T)
    .await;
    assert!(o.ok, "disable: {o:?}");

    let rc = |p: &Path| format!("sslrootcert={}", p.display());
    let o = probe(
        &url("127.0.0.1", &format!("sslmode=verify-ca&{}", rc(&ca))),
        q,
        Some("t"),
        false,
        None,
    )
    .check(T)
    .await;
    assert!(o.ok, "verify-ca ignores the name: {o:?}");
    let o = probe(
        &url("127.0.0.1", &format!("sslmode=verify-full&{}", rc(&ca))),
        q,
        Some("t"),
        false,
        None,
    )
    .check(T)
    .await;
    assert!(!o.ok, "verify-full must check the name: {o:?}");
    let o = probe(
        &url("localhost", &format!("sslmode=verify-full&{}", rc(&ca))),
        q,
        Some("t"),
        false,
        None,
    )
    .check(T)
    .await;
    assert!(o.ok, "verify-full with the right name: {o:?}");
    let o = probe(
        &url("127.0.0.1", &format!("sslmode=verify-ca&{}", rc(&other))),
        q,
        Some("t"),
        false,
        None,
    )
    .check(T)
    .await;
    assert!(!o.ok, "verify-ca with a foreign CA: {o:?}");
    assert!(
        o.detail.contains("certificate") || o.detail.contains("TLS"),
        "{}",
        o.detail
    );

    assert!(PostgresProbe::new(
        &url(
            "localhost",
            "sslmode=verify-full&sslrootcert=/nonexistent.pem"
        ),
        None,
        None,
        false,
        None
    )
    .is_err());
}
