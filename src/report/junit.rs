//! JUnit XML: one `<testsuite>` per drill, one `<testcase>` per step (each fault, the recovery
//! wait, each phase, each backup check) and per objective, failures giving target vs achieved.

use crate::measure::Measurement;
use crate::redact::redact;
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn case(name: String, classname: &str, failure: Option<String>, time: Option<f64>) -> TestCase {
    let status = match failure {
        None => TestCaseStatus::success(),
        Some(msg) => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(redact(&msg));
            s.set_type("drill");
            s
        }
    };
    let mut c = TestCase::new(redact(&name), status);
    c.set_classname(classname);
    if let Some(t) = time {
        c.set_time(secs(t));
    }
    c
}

/// The recovery (or verify) wait as a test case: failed when it timed out or did not finish.
fn wait_case(what: &str, r: &crate::measure::Recovery, class: &str) -> TestCase {
    let waited = r.finished_at.map(|f| f.since(r.started_at));
    let failure = match r.recovered {
        Some(true) => None,
        Some(false) => Some(format!(
            "{} within {}: {}",
            if what == "recovery" {
                "not recovered"
            } else {
                "verify did not pass"
            },
            crate::units::fmt_duration(r.timeout_s),
            r.failures
                .iter()
                .map(|(p, e)| format!("{p}: {e}"))
                .collect::<Vec<_>>()
                .join("; ")
        )),
        None => Some(format!("{what} wait did not finish")),
    };
    case(
        format!("{what}: {}", r.probes.join(", ")),
        class,
        failure,
        waited,
    )
}

pub fn suite(m: &Measurement) -> TestSuite {
    let class = format!("drill.{}", m.name);
    let mut s = TestSuite::new(redact(&m.name));
    if let Some(t) = m.started_at {
        s.set_timestamp(t.0.fixed_offset());
    }
    if let Some(d) = m.duration_seconds {
        s.set_time(secs(d));
    }
    let mut props = vec![Property::new("drill.id", m.drill.as_str())];
    for (k, v) in [
        ("drill.scenario", m.scenario.clone()),
        ("drill.environment", m.environment.clone()),
        ("drill.outcome", m.outcome.clone()),
        ("rto_seconds", m.rto_seconds.map(|v| format!("{v:.3}"))),
        (
            "downtime_seconds",
            m.downtime_seconds.map(|v| format!("{v:.3}")),
        ),
        ("error_rate", m.error_rate.map(|v| format!("{v:.6}"))),
        (
            "rpo_seconds",
            m.rpo.as_ref().map(|r| format!("{:.3}", r.rpo_seconds)),
        ),
        (
            "rpo_lost_writes",
            m.rpo.as_ref().map(|r| r.lost_writes.to_string()),
        ),
    ] {
        if let Some(v) = v {
            props.push(Property::new(k, redact(&v)));
        }
    }
    for r in &m.regions {
        props.push(Property::new(
            format!("region.{}.engine", r.name),
            redact(&r.engine),
        ));
        if let Some(v) = r.recovery_seconds {
            props.push(Property::new(
                format!("region.{}.recovery_seconds", r.name),
                format!("{v:.3}"),
            ));
        }
    }
    for w in &m.switches {
        if let Some(v) = w.error_rate {
            props.push(Property::new(
                format!("switch.{}.error_rate", w.name),
                format!("{v:.6}"),
            ));
        }
        props.push(Property::new(
            format!("switch.{}.seconds", w.name),
            format!("{:.3}", w.seconds),
        ));
    }
    props.push(Property::new("drill.verdict", m.verdict.as_str()));
    s.add_properties(props);

    if let Some(a) = &m.aborted {
        s.add_test_case(case(
            format!("stop_if: {}", a.condition),
            &class,
            Some(format!("aborted: tripped ({})", a.value)),
            None,
        ));
    }
    if let Some(nc) = &m.negative_control {
        // The planted defect's own verdict; the failures it caused are the expected findings.
        let mut c = case(
            format!("negative control: {}", nc.defect),
            &class,
            (!nc.caught).then(|| nc.findings.join("; ")),
            m.duration_seconds,
        );
        c.set_system_out(redact(&format!(
            "expected: {}\nfindings:\n{}",
            nc.expected,
            nc.findings.join("\n")
        )));
        s.add_test_case(c);
        return s;
    }

    for f in &m.faults {
        let held = match (f.applied_at, f.reverted_at) {
            (Some(a), Some(r)) => Some(r.since(a)),
            _ => None,
        };
        let failure = match (&f.error, f.applied_at, f.reverted_at) {
            (Some(e), _, _) => Some(e.clone()),
            (None, None, _) => Some("fault was planned but never applied".into()),
            (None, Some(_), None) => Some(
                "fault still open: not reverted and not seen recovered (run `inject-fault revert`)"
                    .into(),
            ),
            _ => None,
        };
        let mut c = case(
            format!("fault: {} {}", f.action, f.target),
            &class,
            failure,
            held,
        );
        if let (Some(how), None) = (&f.revert, &f.error) {
            c.set_system_out(redact(how));
        }
        s.add_test_case(c);
    }
    for p in &m.phases {
        if p.planned {
            let mut status = TestCaseStatus::skipped();
            status.set_message(redact(&format!(
                "dry run: planned, not run: {}",
                p.detail.clone().unwrap_or_default()
            )));
            let mut c = TestCase::new(redact(&format!("phase: {}", p.name)), status);
            c.set_classname(&class);
            s.add_test_case(c);
            continue;
        }
        let failure = match p.ok {
            Some(true) => None,
            Some(false) => Some(p.detail.clone().unwrap_or_else(|| "failed".into())),
            None => Some("did not finish".into()),
        };
        s.add_test_case(case(
            format!("phase: {}", p.name),
            &class,
            failure,
            p.seconds,
        ));
    }
    for (what, w) in [("recovery", &m.recovery), ("verify", &m.verify)] {
        if let Some(w) = w {
            s.add_test_case(wait_case(what, w, &class));
        }
    }
    for r in &m.regions {
        // A region that was cut and never restored is already a failed fault case.
        let mut c = case(
            format!("region {}: {}", r.name, r.role),
            &class,
            None,
            r.recovery_seconds,
        );
        c.set_system_out(redact(&format!(
            "engine {}\n{}",
            r.engine,
            r.steps.join("\n")
        )));
        s.add_test_case(c);
    }
    for w in &m.switches {
        let mut c = case(format!("switch: {}", w.name), &class, None, Some(w.seconds));
        c.set_system_out(format!(
            "{} of {} requests failed{}",
            w.failed_samples,
            w.samples,
            w.error_rate
                .map(|r| format!(" ({})", crate::units::Ratio(r)))
                .unwrap_or_default()
        ));
        s.add_test_case(c);
    }
    for b in &m.backups {
        let failure = (!b.ok && !b.warning).then(|| b.detail.clone());
        let mut c = case(
            format!("backup {}: {}", b.file, b.check),
            &class,
            failure,
            None,
        );
        if b.ok || b.warning {
            c.set_system_out(redact(&b.detail));
        }
        s.add_test_case(c);
    }
    if let Some(e) = &m.error {
        // The tool could not run (or finish) the drill: an error, not a failed check.
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
        status.set_message(redact(e));
        status.set_type("drillkit");
        let what = if m.outcome.as_deref() == Some("could not run") {
            "drill could not run"
        } else {
            "drill stopped with an error"
        };
        let mut c = TestCase::new(what, status);
        c.set_classname(&class);
        s.add_test_case(c);
    }
    for o in &m.objectives {
        let failure = (!o.passed).then(|| format!("target {}, achieved {}", o.target, o.achieved));
        let mut c = case(format!("objective: {}", o.name), &class, failure, None);
        c.set_system_out(redact(&format!(
            "target {}, achieved {}",
            o.target, o.achieved
        )));
        s.add_test_case(c);
    }
    s
}

/// A JUnit report of several drills (and suites merged from other tools).
pub fn report(measurements: &[Measurement], extra: Vec<TestSuite>) -> Report {
    let mut r = Report::new("drillkit");
    for m in measurements {
        r.add_test_suite(suite(m));
    }
    r.add_test_suites(extra);
    r
}
