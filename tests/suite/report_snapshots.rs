//! Every output format has a snapshot: the Markdown post-drill report, the JUnit XML and the
//! measurements JSON, from a journal with fixed timestamps, so a change in the output is a
//! reviewed diff (`cargo insta review`).

use crate::support::cmd::Bin;
use drillkit::faults::Undo;
use drillkit::journal::{Event, Kind, Latency, Objectives, ProbeFailure, Sample, Ts};

fn at(s: f64) -> Ts {
    Ts(chrono::DateTime::from_timestamp(1_795_000_000, 0).expect("time")).plus_secs(s)
}

fn ev(s: f64, kind: Kind) -> Event {
    Event {
        ts: at(s),
        drill: "20261118T000000Z-0001".into(),
        by: "drill".into(),
        kind,
    }
}

/// A drill that recovered in time but lost the error-rate objective, with a password in a URL.
fn journal(recovered: bool) -> Vec<Event> {
    let mut samples = Vec::new();
    for i in 0..60 {
        let t = i as f64 * 0.1;
        let up = !(1.0..3.0).contains(&t);
        samples.push(Sample {
            t: at(t),
            ok: up,
            ms: 1.0 + (i % 7) as f64,
            err: (!up).then(|| "connect failed: Connection refused".into()),
        });
    }
    let mut v = vec![
        ev(
            0.0,
            Kind::DrillStarted {
                name: "api-service-failure".into(),
                scenario: Some("scenarios/api-service-failure.yaml".into()),
                environment: Some("staging".into()),
                objectives: Objectives {
                    rto_s: Some(5.0),
                    rpo_s: None,
                    max_error_rate: Some(0.1),
                    max_latency_s: Some(1.0),
                },
                roles: vec![
                    ("incident_commander".into(), "@alice".into()),
                    ("application_lead".into(), "@bob".into()),
                ],
            },
        ),
        ev(
            0.9,
            Kind::FaultPlanned {
                id: "f-00000001".into(),
                action: "crash".into(),
                target: "container api (0123456789ab)".into(),
                undo: Undo::DockerStart {
                    id: "0123456789abcdef".into(),
                    name: "api".into(),
                },
                duration_s: None,
                deadline: None,
                engine: None,
            },
        ),
        ev(
            0.95,
            Kind::FaultApplied {
                id: "f-00000001".into(),
                before: None,
            },
        ),
        ev(
            1.0,
            Kind::RecoveryStarted {
                probes: vec!["http http://app:s3cret@api:8000/health".into()],
                consecutive: 3,
                timeout_s: 30.0,
                verify: false,
            },
        ),
        ev(
            1.1,
            Kind::ProbeChanged {
                probe: "http http://app:s3cret@api:8000/health".into(),
                ok: false,
                detail: "connect failed".into(),
                ms: 0.4,
            },
        ),
        ev(
            3.2,
            Kind::PhaseStarted {
                name: "page the on-call".into(),
            },
        ),
        ev(
            3.5,
            Kind::PhaseFinished {
                name: "page the on-call".into(),
                ok: true,
                detail: None,
            },
        ),
        ev(
            6.0,
            Kind::Samples {
                source: "http http://app:s3cret@api:8000/health".into(),
                samples,
            },
        ),
    ];
    if recovered {
        v.push(ev(3.6, Kind::RecoveryFirstSuccess {}));
        v.push(ev(
            4.2,
            Kind::RecoveryStable {
                recovered_at: at(3.1),
                uncertainty_s: 0.125,
                latency: Latency {
                    count: 12,
                    p50: 1.5,
                    p95: 4.0,
                    p99: 6.0,
                    max: 6.0,
                },
            },
        ));
    } else {
        v.push(ev(
            31.0,
            Kind::RecoveryTimeout {
                failures: vec![ProbeFailure {
                    probe: "http http://app:s3cret@api:8000/health".into(),
                    error: "connect failed".into(),
                }],
                latency: Latency::default(),
            },
        ));
    }
    v.push(ev(
        6.1,
        Kind::FaultReverted {
            id: "f-00000001".into(),
            how: "api already running".into(),
        },
    ));
    v.push(ev(
        6.2,
        Kind::DrillFinished {
            outcome: "finished".into(),
        },
    ));
    v
}

fn measure(recovered: bool) -> drillkit::measure::Measurement {
    let events = journal(recovered);
    let refs: Vec<&Event> = events.iter().collect();
    drillkit::measure::measure("20261118T000000Z-0001", &refs, &Objectives::default())
}

#[test]
fn markdown_report_of_a_recovered_drill() {
    let md = drillkit::report::markdown::render(&measure(true));
    assert!(!md.contains("s3cret"), "password leaked into the report");
    insta::assert_snapshot!(md);
}

#[test]
fn markdown_report_of_a_drill_that_did_not_recover() {
    insta::assert_snapshot!(drillkit::report::markdown::render(&measure(false)));
}

#[test]
fn junit_of_a_recovered_drill() {
    let xml = drillkit::report::junit::report(&[measure(true)], vec![])
        .to_string()
        .expect("junit");
    assert!(!xml.contains("s3cret"));
    insta::assert_snapshot!(xml);
}

#[test]
fn measure_rto_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.jsonl");
    let lines: String = journal(true)
        .iter()
        .map(|e| serde_json::to_string(e).expect("json") + "\n")
        .collect();
    std::fs::write(&path, lines).expect("write journal");
    let r = Bin::new("measure-rto").arg("--json").journal(&path).code(1);
    assert!(!r.stdout.contains("s3cret") && !r.stderr.contains("s3cret"));
    insta::assert_json_snapshot!(r.json());
}
