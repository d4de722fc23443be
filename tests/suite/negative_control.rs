//! Negative controls (issue 15): `drill run --negative-control scenarios/demo.yaml` plants a
//! defect the drill must catch (its recovery probes pointed at a port nothing answers) and exits
//! 0 only because the drill failed with the expected finding; every report says which defect and
//! how it was caught.

use crate::support::cmd::Bin;
use std::path::Path;

#[test]
fn the_demo_drill_catches_its_planted_defect() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("scenarios")).expect("mkdir");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/demo.yaml"),
        dir.path().join("scenarios/demo.yaml"),
    )
    .expect("copy");
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
            && defect.contains("http://127.0.0.1:18080/health →"),
        "{nc:#}"
    );
    let findings: Vec<&str> = nc["findings"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str()).collect())
        .unwrap_or_default();
    assert!(
        findings
            .iter()
            .any(|f| f.starts_with("not recovered within 30")),
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
