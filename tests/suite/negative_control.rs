//! Negative controls (issue 15): `drill run --negative-control scenarios/demo.yaml` plants a
//! defect the drill must catch (its recovery probes pointed at a port nothing answers) and exits
//! 0 only because the drill failed with the expected finding; every report says which defect and
//! how it was caught.

use crate::support::cmd::Bin;
use std::path::Path;

/// The demo scenario as shipped, on a port of its own (tests run at once; the README's test runs
/// it on 18080) and with a 5 s recovery timeout instead of 30 s (what catches the defect).
fn demo_scenario(dir: &Path) -> u16 {
    let port = crate::support::docker::free_port();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/demo.yaml"))
        .expect("demo.yaml");
    assert!(text.contains("127.0.0.1:18080") && text.contains("timeout: 30s"));
    let text = text
        .replace("127.0.0.1:18080", &format!("127.0.0.1:{port}"))
        .replace("timeout: 30s", "timeout: 5s");
    std::fs::create_dir_all(dir.join("scenarios")).expect("mkdir");
    std::fs::write(dir.join("scenarios/demo.yaml"), text).expect("write");
    port
}

#[test]
fn the_demo_drill_catches_its_planted_defect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = demo_scenario(dir.path());
    let r = Bin::new("drill")
        .args(["run", "--negative-control", "scenarios/demo.yaml"])
        .current_dir(dir.path())
        .succeeds();
    r.stderr_has("CAUGHT");
    r.stderr_has("this drill can fail: last proven");

    let out = dir.path().join(".drill");
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("summary.json")).expect("summary.json"),
    )
    .expect("json");
    assert_eq!(m["verdict"], "caught", "{m:#}");
    assert_eq!(m["passed"], true, "{m:#}");
    let nc = &m["negative_control"];
    let defect = nc["defect"].as_str().unwrap_or_default();
    assert!(
        defect.starts_with("recovery probes pointed at 127.0.0.1:")
            && defect.contains(&format!("http://127.0.0.1:{port}/health →")),
        "{nc:#}"
    );
    let findings: Vec<&str> = nc["findings"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str()).collect())
        .unwrap_or_default();
    assert!(
        findings
            .iter()
            .any(|f| f.starts_with("not recovered within 5")),
        "caught by the recovery timeout: {nc:#}"
    );
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(nc["proven_on"], today.as_str(), "{nc:#}");

    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(md.contains("## Negative Control"), "{md}");
    assert!(md.contains(&format!("- Planted defect: {defect}")), "{md}");
    assert!(md.contains("- Caught: yes"), "{md}");
    assert!(
        md.contains(&format!("This drill can fail: last proven {today}.")),
        "{md}"
    );
    let junit = std::fs::read_to_string(out.join("junit.xml")).expect("junit.xml");
    assert!(
        junit.contains("name=\"negative control: recovery probes pointed at"),
        "{junit}"
    );
    assert!(!junit.contains("<failure"), "{junit}");
    // The real service was left alone: only the probes moved; the fault was reverted.
    assert_no_open_faults(&out.join("journal.jsonl"));
}

fn assert_no_open_faults(journal: &Path) {
    let r = Bin::new("inject-fault")
        .args(["--json", "list"])
        .journal(journal)
        .succeeds();
    assert_eq!(r.stdout.trim(), "[]", "{}", r.stdout);
}

#[test]
fn a_scenario_without_recovery_probes_has_no_negative_control() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("s.yaml");
    std::fs::write(&file, "name: nothing-to-plant\n").expect("write");
    let r = Bin::new("drill")
        .args(["run", "--negative-control"])
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("out"))
        .code(2);
    r.stderr_has("no negative control for this scenario");
    assert!(
        !dir.path().join("out/journal.jsonl").exists(),
        "nothing ran"
    );
}

fn run_drill(
    dir: &Path,
    file: &Path,
    out: &str,
    negative: Option<&str>,
) -> crate::support::cmd::Run {
    let mut b = Bin::new("drill").arg("run");
    if let Some(n) = negative {
        b = b.arg(n);
    }
    b.arg(file)
        .arg("--out")
        .arg(dir.join(out))
        .current_dir(dir)
        .run()
}

fn summary_of(dir: &Path, out: &str) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(dir.join(out).join("summary.json")).expect("summary.json"),
    )
    .expect("summary JSON")
}

/// A fault the drill reverts before it verifies (a paused demo worker, `revert: all`, then
/// `verify:`): the same scenario passes as written, and its negative control — the drill's own
/// reverts skipped — is caught because the verify wait gives up while the fault is in place.
/// The runner's safety net still reverts it.
#[test]
fn a_fault_that_is_not_reverted_is_caught_by_the_verify_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = crate::support::docker::free_port();
    let file = dir.path().join("pause.yaml");
    std::fs::write(
        &file,
        format!(
            "name: demo-pause
services:
  - name: demo-api
    demo:
      listen: 127.0.0.1:{port}
      pidfile: .drill/demo.pid
      restart_delay: 1s
    ready:
      http: http://127.0.0.1:{port}/health
faults:
  - action: pause
    target:
      pidfile: .drill/demo.pid
restore:
  - revert: all
verify:
  timeout: 3s
  probes:
    - http: http://127.0.0.1:{port}/health
"
        ),
    )
    .expect("scenario");
    let plain = run_drill(dir.path(), &file, "plain", None);
    assert_eq!(
        plain.code, 0,
        "as written the drill passes: {}",
        plain.stderr
    );

    let r = run_drill(dir.path(), &file, "nc", Some("--negative-control"));
    assert_eq!(r.code, 0, "the planted defect was caught: {}", r.stderr);
    r.stderr_has("CAUGHT");
    let m = summary_of(dir.path(), "nc");
    assert_eq!(m["verdict"], "caught", "{m:#}");
    let nc = &m["negative_control"];
    assert!(
        nc["defect"]
            .as_str()
            .unwrap_or_default()
            .starts_with("a fault that is not reverted"),
        "{nc:#}"
    );
    let findings: Vec<&str> = nc["findings"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str()).collect())
        .unwrap_or_default();
    assert!(
        findings
            .iter()
            .any(|f| f.starts_with("verify did not pass within 3"))
            && findings.iter().any(|f| f.contains("(pause ")
                && f.ends_with("was still in place when the wait gave up")),
        "{nc:#}"
    );
    let md = std::fs::read_to_string(dir.path().join("nc/report.md")).expect("report.md");
    assert!(
        md.contains("- Planted defect: a fault that is not reverted"),
        "{md}"
    );
    assert!(md.contains("This drill can fail: last proven"), "{md}");
    // The safety net reverted it after the checks.
    assert_no_open_faults(&dir.path().join("nc/journal.jsonl"));
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// A restore scenario (a step with `backup:` that runs verify-backup): as written it passes;
/// its negative control hands the step a copy with one flipped byte, and passes because the
/// verification reports the copy damaged. The copy is gone after the run, also after a SIGTERM.
#[test]
fn a_backup_with_a_flipped_byte_is_caught_by_its_verification() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dump = String::from(
        "--\n-- PostgreSQL database dump\n--\n\nCREATE TABLE public.t (\n    id integer\n);\n\nCOPY public.t (id) FROM stdin;\n",
    );
    for i in 0..2000 {
        dump.push_str(&format!("{i}\n"));
    }
    dump.push_str("\\.\n\n\n--\n-- PostgreSQL database dump complete\n--\n\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(dump.as_bytes()).expect("gzip");
    let gz = gz.finish().expect("gzip");
    std::fs::write(dir.path().join("nightly.sql.gz"), &gz).expect("write");
    std::fs::write(
        dir.path().join("nightly.sql.gz.sha256"),
        format!("{}  nightly.sql.gz\n", sha256_hex(&gz)),
    )
    .expect("sidecar");
    let file = dir.path().join("restore.yaml");
    std::fs::write(
        &file,
        format!(
            "name: nightly-backup
restore:
  - name: verify the nightly dump
    backup: nightly.sql.gz
    run: echo \"$DRILL_BACKUP\" >> seen.txt; {vb} \"$DRILL_BACKUP\"; rc=$?; sleep \"${{HOLD:-0}}\" & echo $! >> held.txt; wait $!; exit $rc
",
            vb = env!("CARGO_BIN_EXE_verify-backup")
        ),
    )
    .expect("scenario");
    let plain = run_drill(dir.path(), &file, "plain", None);
    assert_eq!(plain.code, 0, "the backup is good: {}", plain.stderr);

    let r = run_drill(dir.path(), &file, "nc", Some("--negative-control"));
    assert_eq!(r.code, 0, "the planted defect was caught: {}", r.stderr);
    let m = summary_of(dir.path(), "nc");
    assert_eq!(m["verdict"], "caught", "{m:#}");
    let nc = &m["negative_control"];
    let defect = nc["defect"].as_str().unwrap_or_default();
    assert!(
        defect.starts_with("a copy of the backup nightly.sql.gz with one flipped byte (byte "),
        "{nc:#}"
    );
    let findings: Vec<&str> = nc["findings"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str()).collect())
        .unwrap_or_default();
    assert!(
        findings
            .iter()
            .any(|f| f.starts_with("verify-backup checksum:sha256 check failed")),
        "the sidecar's checksum caught it: {nc:#}"
    );
    let md = std::fs::read_to_string(dir.path().join("nc/report.md")).expect("report.md");
    assert!(md.contains("- Caught: yes"), "{md}");
    // The step read the copy, not the original, and the copy is gone.
    let seen = std::fs::read_to_string(dir.path().join("seen.txt")).expect("seen");
    let seen: Vec<&str> = seen.lines().collect();
    assert_eq!(
        seen[0], "nightly.sql.gz",
        "the plain run read the backup itself"
    );
    assert!(seen[1].contains("drillkit-negative-"), "{seen:?}");
    assert!(!Path::new(seen[1]).exists(), "the damaged copy was removed");
    assert_eq!(
        std::fs::read(dir.path().join("nightly.sql.gz")).expect("original"),
        gz,
        "the original is untouched"
    );

    // SIGTERM while the step holds the copy: it is removed all the same.
    let child = Bin::new("drill")
        .args(["run", "--negative-control"])
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("term"))
        .current_dir(dir.path())
        .env("HOLD", "30")
        .spawn();
    // Until the step holds the copy in its `sleep 30` (the third run's line in held.txt).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (copy, sleep) = loop {
        let seen = std::fs::read_to_string(dir.path().join("seen.txt")).unwrap_or_default();
        let held = std::fs::read_to_string(dir.path().join("held.txt")).unwrap_or_default();
        if let (Some(c), Some(p)) = (seen.lines().nth(2), held.lines().nth(2)) {
            break (
                c.to_string(),
                p.trim().parse::<u32>().expect("the sleep's pid"),
            );
        }
        assert!(std::time::Instant::now() < deadline, "the step never ran");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(Path::new(&copy).exists(), "held while the step runs");
    let signalled = std::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let t = crate::support::docker::wait_child(child, std::time::Duration::from_secs(20), "drill");
    assert_eq!(t.code, 4, "interrupted: {}", t.stderr);
    assert!(
        !Path::new(&copy).exists(),
        "the damaged copy was removed on SIGTERM"
    );
    // The step's children went with it: the `sleep 30` the step's shell started is not left
    // running after the drill (a member killed a moment ago may linger as a zombie until init
    // reaps it, which counts as gone).
    let state = crate::support::proc_state(sleep);
    assert!(
        matches!(state, None | Some('Z')),
        "the step's sleep {sleep} is still running ({state:?})"
    );
    assert!(
        signalled.elapsed() < std::time::Duration::from_secs(15),
        "SIGTERM waited for the step's 30 s sleep: {:?}",
        signalled.elapsed()
    );
}
