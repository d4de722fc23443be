//! `report --merge-junit FILE`: a smoke-test suite's JUnit (pytest, cargo nextest, anything that
//! writes JUnit) folded into the drill's JUnit and report, so one file tells CI whether the system
//! came back *and* works. Failing test cases become problems (and action items) of the drill.

use crate::units::fmt_duration;
use quick_junit::{Report, TestCaseStatus, TestSuite};
use std::fmt::Write;
use std::path::Path;

/// Suites read from one file.
#[derive(Debug)]
pub struct Merged {
    pub file: String,
    pub suites: Vec<TestSuite>,
}

/// Read a JUnit file. Accepts a `<testsuites>` or a bare `<testsuite>` root and timestamps
/// without a UTC offset (pytest writes local naive times).
pub fn read(path: &Path) -> Result<Merged, String> {
    let xml = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let report = parse(&xml)?;
    Ok(Merged {
        file: path.display().to_string(),
        suites: report.test_suites,
    })
}

pub fn parse(xml: &str) -> Result<Report, String> {
    let first = match Report::deserialize_from_str(xml) {
        Ok(r) => return Ok(r),
        Err(e) => e.to_string(),
    };
    let body = strip_prolog(xml);
    let wrapped = if body.starts_with("<testsuite") && !body.starts_with("<testsuites") {
        format!("<testsuites>{body}</testsuites>")
    } else {
        body.to_string()
    };
    if let Ok(r) = Report::deserialize_from_str(&wrapped) {
        return Ok(r);
    }
    Report::deserialize_from_str(&strip_attr(&wrapped, "timestamp"))
        .map_err(|e| format!("not JUnit XML: {first} ({e})"))
}

fn strip_prolog(xml: &str) -> &str {
    let mut s = xml.trim_start_matches('\u{feff}').trim_start();
    while s.starts_with("<?") || s.starts_with("<!--") {
        let end = if s.starts_with("<?") { "?>" } else { "-->" };
        match s.find(end) {
            Some(i) => s = s[i + end.len()..].trim_start(),
            None => break,
        }
    }
    s
}

/// Remove every ` NAME="…"` attribute.
fn strip_attr(xml: &str, name: &str) -> String {
    let needle = format!(" {name}=\"");
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(i) = rest.find(&needle) {
        out.push_str(&rest[..i]);
        let after = &rest[i + needle.len()..];
        match after.find('"') {
            Some(j) => rest = &after[j + 1..],
            None => {
                rest = after;
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One problem line per failing or erroring test case.
pub fn problems(merged: &[Merged]) -> Vec<String> {
    let mut out = Vec::new();
    for m in merged {
        for s in &m.suites {
            for c in &s.test_cases {
                if let TestCaseStatus::NonSuccess { message, .. } = &c.status {
                    let name = match &c.classname {
                        Some(cl) => format!("{}::{}", cl.as_str(), c.name.as_str()),
                        None => c.name.as_str().to_string(),
                    };
                    let msg = message
                        .as_ref()
                        .map(|m| m.as_str().lines().next().unwrap_or("").to_string())
                        .unwrap_or_else(|| "failed".into());
                    out.push(format!("smoke test {name} failed: {msg}"));
                }
            }
        }
    }
    out
}

/// Counts of one suite: tests, failures, errors, skipped (from the cases, not the attributes).
pub fn counts(s: &TestSuite) -> (usize, usize, usize, usize) {
    let (mut f, mut e, mut sk) = (0, 0, 0);
    for c in &s.test_cases {
        match &c.status {
            TestCaseStatus::NonSuccess { kind, .. } => match kind {
                quick_junit::NonSuccessKind::Failure => f += 1,
                quick_junit::NonSuccessKind::Error => e += 1,
            },
            TestCaseStatus::Skipped { .. } => sk += 1,
            TestCaseStatus::Success { .. } => {}
        }
    }
    (s.test_cases.len(), f, e, sk)
}

/// The report's section for merged suites.
pub fn section(merged: &[Merged]) -> String {
    let mut o = String::new();
    if merged.is_empty() {
        return o;
    }
    let _ = writeln!(o, "\n## Smoke Tests (merged JUnit)\n");
    let _ = writeln!(
        o,
        "| File | Suite | Tests | Failed | Errors | Skipped | Time |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|");
    for m in merged {
        for s in &m.suites {
            let (t, f, e, sk) = counts(s);
            let _ = writeln!(
                o,
                "| `{}` | {} | {t} | {f} | {e} | {sk} | {} |",
                m.file,
                s.name.as_str(),
                s.time
                    .map(|d| fmt_duration(d.as_secs_f64()))
                    .unwrap_or_else(|| "–".into())
            );
        }
    }
    let failing = problems(merged);
    if !failing.is_empty() {
        let _ = writeln!(o);
        for p in failing {
            let _ = writeln!(o, "- ❌ {}", p.replace('|', "\\|"));
        }
    }
    crate::redact::redact(&o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytest_style_junit_is_read() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuite name="pytest" errors="0" failures="1" skipped="0" tests="2" time="0.5" timestamp="2025-10-25T10:00:00.123456" hostname="h"><testcase classname="tests.test_smoke" name="test_health" time="0.1" /><testcase classname="tests.test_smoke" name="test_login" time="0.2"><failure message="assert 500 == 200">trace</failure></testcase></testsuite>"#;
        let r = parse(xml).expect("parse");
        assert_eq!(r.test_suites.len(), 1);
        let m = vec![Merged {
            file: "smoke.xml".into(),
            suites: r.test_suites,
        }];
        assert_eq!(
            problems(&m),
            ["smoke test tests.test_smoke::test_login failed: assert 500 == 200"]
        );
    }
}
