//! Bad scenario files fail `drill validate` (and `drill run`) with exit 2 and
//! `file:line:column: what was expected`, before anything is touched.

use crate::support::cmd::Bin;

/// (name, file text, expected "line:column", expected words in the message)
const CASES: &[(&str, &str, &str, &str)] = &[
    (
        "unknown_top_key",
        "name: x\nfualts: []\n",
        "2:1",
        "unknown field `fualts`",
    ),
    (
        "unknown_fault_key",
        "name: x\nfaults:\n  - action: stop\n    target: { container: a }\n    durration: 5s\n",
        "5:5",
        "unknown field `durration`",
    ),
    (
        "bad_duration",
        "name: x\nrecovery:\n  timeout: 5 parsecs\n  probes: [{ tcp: 'a:1' }]\n",
        "3:12",
        "invalid duration",
    ),
    (
        "bad_action",
        "name: x\nfaults:\n  - action: explode\n    target: { container: a }\n",
        "3:13",
        "unknown variant `explode`",
    ),
    (
        "undefined_target",
        "name: x\ntargets:\n  db: { container: pg }\nfaults:\n  - action: stop\n    target: api\n",
        "6:5",
        "undefined target 'api'",
    ),
    (
        "wrong_type",
        "name: x\nrecovery:\n  consecutive: three\n  probes: [{ tcp: 'a:1' }]\n",
        "3:16",
        "invalid type",
    ),
    (
        "missing_name",
        "faults: []\n",
        "1:1",
        "missing field `name`",
    ),
    (
        "probe_two_kinds",
        "name: x\nrecovery:\n  probes:\n    - http: http://a/\n      tcp: a:1\n",
        "4:13",
        "exactly one kind",
    ),
    (
        "probe_no_kind",
        "name: x\nrecovery:\n  probes:\n    - status: 200\n",
        "3:3",
        "needs one of",
    ),
    (
        "bad_label_selector",
        "name: x\nfaults:\n  - action: stop\n    target: { label: novalue }\n",
        "4:13",
        "key=value",
    ),
    (
        "two_selectors",
        "name: x\nfaults:\n  - action: stop\n    target: { container: a, pid: 42 }\n",
        "4:13",
        "one kind of selector",
    ),
    (
        "unset_variable",
        "name: x\nenvironment: ${DRILL_TEST_SURELY_UNSET}\n",
        "2:14",
        "DRILL_TEST_SURELY_UNSET is not set",
    ),
    ("bad_yaml", "name: x\nfaults: [\n", "3:1", ""),
    (
        "signal_on_stop",
        "name: x\nfaults:\n  - action: stop\n    target: { container: a }\n    signal: KILL\n",
        "5:5",
        "signal applies to action: kill",
    ),
    (
        "zero_consecutive",
        "name: x\nrecovery:\n  consecutive: 0\n  probes: [{ tcp: 'a:1' }]\n",
        "3:3",
        "at least 1",
    ),
    (
        "bad_error_rate",
        "name: x\nobjectives:\n  max_error_rate: 140%\n",
        "3:19",
        "outside 0%..100%",
    ),
    (
        "misplaced_modifier",
        "name: x\nrecovery:\n  probes:\n    - tcp: a:1\n      status: 200\n",
        "4:12",
        "belongs to a http probe",
    ),
];

#[test]
fn every_kind_of_bad_scenario_names_file_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(CASES.len() >= 10);
    for (name, text, pos, words) in CASES {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, text).expect("write scenario");
        let r = Bin::new("drill").arg("validate").arg(&file).code(2);
        let want = format!("{}:{pos}:", file.display());
        assert!(
            r.stderr.contains(&want),
            "{name}: expected {want:?} in:\n{}",
            r.stderr
        );
        assert!(
            r.stderr.contains(words),
            "{name}: expected {words:?} in:\n{}",
            r.stderr
        );
    }
}

#[test]
fn run_refuses_a_bad_file_before_touching_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "name: x\nfaults:\n  - action: stop\n    target: nowhere\n",
    )
    .expect("write");
    let out = dir.path().join("out");
    let r = Bin::new("drill")
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .code(2);
    assert!(
        r.stderr.contains(":4:5: undefined target 'nowhere'"),
        "{}",
        r.stderr
    );
    assert!(!out.exists(), "a refused drill must not write anything");
}

#[test]
fn production_is_refused_without_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("prod.yaml");
    std::fs::write(&file, "name: prod-drill\nenvironment: production\nfaults:\n  - action: stop\n    target: { pid: 999999 }\n").expect("write");
    let out = dir.path().join("out");
    let r = Bin::new("drill")
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .code(2);
    assert!(r.stderr.contains("--allow-production"), "{}", r.stderr);
    assert!(!out.exists());
}

#[test]
fn shipped_scenarios_validate() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("scenarios/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    // `drill validate scenarios/*.yaml` meets the schedule too, and checks it as a schedule.
    let r = Bin::new("drill").arg("validate").args(&files).succeeds();
    assert_eq!(
        r.stderr.matches(": ok (").count(),
        files.len(),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("schedule.yaml: ok (schedule: ") && r.stderr.contains("all present)"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_broken_schedule_fails_validate_and_a_missing_scenario_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("schedule.yaml");
    std::fs::write(&bad, "monthly:\n  week9: x.yaml\n").expect("write");
    let r = Bin::new("drill").arg("validate").arg(&bad).code(2);
    assert!(r.stderr.contains("unknown key 'week9'"), "{}", r.stderr);
    let ok = dir.path().join("calendar.yaml");
    std::fs::write(&ok, "monthly:\n  week1: [here.yaml, gone.yaml]\n").expect("write");
    std::fs::write(dir.path().join("here.yaml"), "name: x\n").expect("write");
    let r = Bin::new("drill").arg("validate").arg(&ok).succeeds();
    assert!(
        r.stderr.contains("2 scenario file(s) named; missing") && r.stderr.contains("gone.yaml"),
        "{}",
        r.stderr
    );
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let r = Bin::new("wait-recovery")
        .args(["--http", "http://127.0.0.1:1/", "--timeout", "soon"])
        .code(2);
    assert!(r.stderr.contains("--timeout"), "{}", r.stderr);
    let r = Bin::new("inject-fault").args(["stop"]).code(2);
    assert!(r.stderr.contains("--container"), "{}", r.stderr);
    let r = Bin::new("inject-fault")
        .args(["kill", "--pid", "999999", "--signal", "SIGNOPE"])
        .code(2);
    assert!(r.stderr.contains("SIGNOPE"), "{}", r.stderr);
    let r = Bin::new("wait-recovery")
        .args(["--status", "200", "--tcp", "127.0.0.1:1"])
        .code(2);
    assert!(r.stderr.contains("--status needs --http"), "{}", r.stderr);
    let r = Bin::new("measure-rto")
        .args(["--rto-target", "fast"])
        .code(2);
    assert!(r.stderr.contains("--rto-target"), "{}", r.stderr);
}
