//! `drill schedule`: the runbook's monthly schedule (week 1 database primary, 2 Redis, 3 API
//! service, 4 network partition or disk full alternating by month, 5 the other one) read from
//! scenarios/schedule.yaml, for dates in every week of a month.

use crate::support::cmd::Bin;

const SCHEDULE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/schedule.yaml");

fn pick(date: &str) -> serde_json::Value {
    Bin::new("drill")
        .args(["schedule", "--json", "--file", SCHEDULE, "--date", date])
        .succeeds()
        .json()
}

#[test]
fn each_week_of_the_month_runs_the_runbooks_scenario() {
    for (date, week, name) in [
        ("2025-03-01", 1, "database-primary-failure"),
        ("2025-03-07", 1, "database-primary-failure"),
        ("2025-03-08", 2, "redis-cache-failure"),
        ("2025-03-14", 2, "redis-cache-failure"),
        ("2025-03-15", 3, "api-service-failure"),
        ("2025-03-21", 3, "api-service-failure"),
        ("2025-03-22", 4, "network-partition"), // March: odd month
        ("2025-04-22", 4, "disk-full"),         // April: even month
        ("2025-03-29", 5, "disk-full"),         // week 5: the other one of the pair
        ("2025-04-30", 5, "network-partition"),
        ("2025-12-31", 5, "network-partition"),
    ] {
        let v = pick(date);
        assert_eq!(v["week"], week, "{date}: {v}");
        assert_eq!(v["name"], name, "{date}: {v}");
        let scenario = v["scenario"].as_str().expect("scenario");
        assert!(
            scenario.ends_with(&format!("scenarios/{name}.yaml")),
            "{date}: {scenario}"
        );
        let exists = std::path::Path::new(scenario).is_file();
        assert_eq!(v["exists"], exists, "{date}: {v}");
    }
}

#[test]
fn prints_the_path_warns_when_missing_and_sets_outputs() {
    let dir = tempfile::tempdir().expect("tmp");
    let sched = dir.path().join("schedule.yaml");
    std::fs::write(
        &sched,
        "monthly:\n  week1: here.yaml\n  week2: [a.yaml, b.yaml]\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("here.yaml"), "name: here\n").expect("write");
    let out = dir.path().join("out");
    let r = Bin::new("drill")
        .args(["schedule", "--date", "2025-02-10", "--file"])
        .arg(&sched)
        .env("GITHUB_OUTPUT", &out)
        .succeeds();
    assert_eq!(
        r.stdout.trim(),
        dir.path().join("b.yaml").display().to_string()
    );
    r.stderr_has("week 2 of the month")
        .stderr_has("does not exist");
    let o = std::fs::read_to_string(&out).expect("outputs");
    assert!(
        o.contains(&format!(
            "scenario={}\n",
            dir.path().join("b.yaml").display()
        )),
        "{o}"
    );
    assert!(o.contains("exists=false\n"), "{o}");
    let r = Bin::new("drill")
        .args(["schedule", "--date", "2025-02-03", "--file"])
        .arg(&sched)
        .succeeds();
    assert!(!r.stderr.contains("does not exist"), "{}", r.stderr);
}

#[test]
fn bad_input_names_the_flag() {
    Bin::new("drill")
        .args(["schedule", "--date", "2025-13-01", "--file", SCHEDULE])
        .code(2)
        .stderr_has("--date");
    Bin::new("drill")
        .args(["schedule", "--file", "/nonexistent/schedule.yaml"])
        .code(2)
        .stderr_has("--file");
    let dir = tempfile::tempdir().expect("tmp");
    let sched = dir.path().join("s.yaml");
    std::fs::write(&sched, "monthly:\n  week1: a.yaml\n").expect("write");
    Bin::new("drill")
        .args(["schedule", "--date", "2025-02-20", "--file"])
        .arg(&sched)
        .code(2)
        .stderr_has("no entry for week3");
}
