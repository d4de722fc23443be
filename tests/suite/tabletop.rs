//! `report tabletop SCENARIO` (runbook §1): the exercise as Markdown — scenario block, agenda
//! with durations, the questions of each stage, roles, success-criteria checklist. (The GitHub
//! issue form is tested against the mock API in tests/github_report.rs.)

use crate::support::cmd::Bin;

const SCENARIO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/scenarios/tabletop-database-corruption.yaml"
);

#[test]
fn renders_the_runbooks_exercise() {
    let r = Bin::new("report")
        .args(["tabletop", SCENARIO, "--date", "2025-02-10"])
        .env("DATABASE_LEAD", "@dana")
        .succeeds();
    let md = r.stdout;
    for needle in [
        "<!-- drillkit:tabletop=tabletop-database-corruption -->",
        "# DR tabletop exercise 2025-Q1: tabletop-database-corruption",
        "- **Duration**: 2-4 hours (agenda: 3 h)",
        "```yaml\nscenario:\n",
        "  type: database_corruption",
        "  severity: critical",
        "  - PostgreSQL primary",
        "  business_impact: complete_outage",
        "| 1 | Preparation | 30 min |",
        "| 2 | Scenario Walkthrough | 1 h 30 min |",
        "| 3 | Review and Improve | 1 h |",
        "### Phase 2: Scenario Walkthrough (1 h 30 min)",
        "1. **Initial Detection** (15 min)",
        "   - [ ] Who receives the alert?",
        "2. **Assessment** (30 min)",
        "3. **Recovery Steps** (30 min)",
        "   - [ ] Who performs each step?",
        "4. **Communication** (15 min)",
        "   - [ ] When do we notify customers?",
        "   - [ ] Backup inventory",
        "| Database Lead | @dana |",
        "| Incident Commander | unassigned |",
        "- [ ] All participants understand their roles",
        "- [ ] Documentation is updated",
        "- [ ] The last known-good backup and its restore time are known",
        "| Item | Owner | Due Date | Priority |",
    ] {
        assert!(md.contains(needle), "missing {needle:?} in:\n{md}");
    }
}

#[test]
fn writes_a_file_and_json_and_defaults_to_the_runbook_agenda() {
    let dir = tempfile::tempdir().expect("tmp");
    let plain = dir.path().join("plain.yaml");
    std::fs::write(
        &plain,
        "name: plain\ntabletop:\n  scenario: { type: redis_outage }\n",
    )
    .expect("write");
    let out = dir.path().join("t.md");
    let r = Bin::new("report")
        .args(["tabletop", "--json", "--title", "Q3 exercise", "--markdown"])
        .arg(&out)
        .arg(&plain)
        .succeeds();
    let v = r.json();
    assert_eq!(v["title"], "Q3 exercise");
    let md = std::fs::read_to_string(&out).expect("md");
    assert_eq!(v["markdown"].as_str(), Some(md.as_str()));
    assert!(md.contains("# Q3 exercise"));
    assert!(
        md.contains("| 2 | Scenario Walkthrough | 1 h 30 min |"),
        "{md}"
    );
    assert!(md.contains("   - [ ] What is the escalation path?"), "{md}");
}

#[test]
fn tabletop_scenarios_validate_and_bad_ones_point_at_the_line() {
    Bin::new("drill").args(["validate", SCENARIO]).succeeds();
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: bad\ntabletop:\n  agenda:\n    - name: Prep\n      minuets: 30\n",
    )
    .expect("write");
    Bin::new("report")
        .args(["tabletop"])
        .arg(&bad)
        .code(2)
        .stderr_has("bad.yaml:5:");
}
