//! Composing a report: the drills of a journal measured, a smoke-test suite's JUnit folded in,
//! trends against earlier drills, and the Markdown / JUnit / JSON that every output shares.
//! Pure given its inputs: writing files and talking to GitHub are the caller's.

use crate::exit::Failure;
use crate::journal::Contents;
use crate::measure::Measurement;
use crate::report::merge::Merged;
use crate::trends::Regression;
use std::path::{Path, PathBuf};

/// Which drills of the journal to report.
#[derive(Clone, Debug, Default)]
pub enum Drills {
    /// The journal's current drill, or the one named.
    #[default]
    Current,
    One(String),
    All,
}

/// What goes into a report besides the journal.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub drills: Drills,
    /// JUnit files (pytest, nextest…) folded into the report of the last drill.
    pub merge_junit: Vec<PathBuf>,
    /// A folder of earlier `summary.json` files, for trends.
    pub history: Option<PathBuf>,
    /// The workflow run, linked at the end.
    pub run_url: Option<String>,
    /// The tool could not run (or finish) the drill: this message is reported as an error —
    /// on the journal's drill, or, when the journal has none, on a drill that could not run.
    pub error: Option<String>,
    /// The name (and scenario file) of a drill that could not run, for the report's title.
    pub scenario: Option<PathBuf>,
}

/// A composed report.
#[derive(Debug)]
pub struct Report {
    pub measurements: Vec<Measurement>,
    pub merged: Vec<Merged>,
    /// The Markdown report (redacted), the same for the file, the step summary and comments.
    pub markdown: String,
    pub regressions: Vec<Regression>,
    /// What was skipped while reading `history` (unreadable files), one line each.
    pub warnings: Vec<String>,
}

/// Measure and render. Every input is checked before anything is returned: a bad merge file or
/// history folder is bad input (exit 2), and nothing has been written.
pub fn compose(contents: &Contents, journal: &Path, inputs: &Inputs) -> Result<Report, Failure> {
    let bad = |msg: String| Failure::bad_input(anyhow::anyhow!(msg));
    let ids: Vec<String> = match &inputs.drills {
        Drills::All => contents.drill_ids(),
        Drills::One(id) => vec![id.clone()],
        Drills::Current => contents.current_drill().into_iter().collect(),
    };
    if ids.is_empty() && inputs.error.is_none() {
        return Err(bad(format!(
            "{}: the journal has no drill (give --journal)",
            journal.display()
        )));
    }
    let mut merged = Vec::new();
    for f in &inputs.merge_junit {
        merged.push(
            crate::report::merge::read(f)
                .map_err(|e| bad(format!("--merge-junit {}: {e}", f.display())))?,
        );
    }
    let (history, warnings) = match &inputs.history {
        None => (None, vec![]),
        Some(dir) => {
            let (points, warnings) = crate::trends::load(dir)
                .map_err(|e| bad(format!("--history {}: {e}", dir.display())))?;
            (Some(points), warnings)
        }
    };

    let mut measurements: Vec<Measurement> = ids
        .iter()
        .map(|id| crate::measure::measure(id, &contents.drill(id), &Default::default()))
        .collect();
    if measurements.iter().any(|m| m.started_at.is_none()) {
        return Err(bad(format!(
            "a requested drill is not in {}",
            journal.display()
        )));
    }
    if let Some(e) = &inputs.error {
        let e = crate::redact::redact(e);
        match measurements.last_mut() {
            Some(m) if m.error.is_none() => {
                m.problems.push(format!("drill stopped: {e}"));
                m.error = Some(e);
                m.passed = false;
            }
            Some(_) => {}
            None => measurements.push(could_not_run(inputs.scenario.as_deref(), &e)),
        }
    }
    // Failing smoke tests are problems of the drill being reported (the last one).
    let smoke_problems = crate::report::merge::problems(&merged);
    if let Some(m) = measurements.last_mut() {
        if !smoke_problems.is_empty() {
            m.problems.extend(smoke_problems);
            m.passed = false;
            if m.verdict == "passed" {
                m.verdict = "failed".into();
            }
        }
    }

    let (trend_md, regressions) = match &history {
        Some(h) => crate::trends::section(&measurements, h),
        None => (String::new(), vec![]),
    };
    let mut parts = Vec::new();
    for (i, m) in measurements.iter().enumerate() {
        let mut md = crate::report::markdown::render(m);
        if i + 1 == measurements.len() {
            md.push_str(&crate::report::merge::section(&merged));
        }
        parts.push(md);
    }
    let mut markdown = parts.join("\n---\n\n");
    markdown.push_str(&trend_md);
    if let Some(u) = &inputs.run_url {
        markdown.push_str(&format!("\n---\n[Workflow run]({u})\n"));
    }
    Ok(Report {
        markdown: crate::redact::redact(&markdown),
        measurements,
        merged,
        regressions,
        warnings,
    })
}

impl Report {
    /// Every drill passed (and every merged suite).
    pub fn passed(&self) -> bool {
        self.measurements.iter().all(|m| m.passed)
    }

    /// `passed`, `failed`, or `error` when the tool could not run (or finish) a drill.
    pub fn result(&self) -> &'static str {
        if self.measurements.iter().any(|m| m.error.is_some()) {
            "error"
        } else if self.passed() {
            "passed"
        } else {
            "failed"
        }
    }

    /// Every problem of every drill, in order.
    pub fn problems(&self) -> Vec<String> {
        self.measurements
            .iter()
            .flat_map(|m| m.problems.iter().cloned())
            .collect()
    }

    /// The JUnit XML: one suite per drill, then the merged suites (redacted).
    pub fn junit_xml(&self) -> Result<String, Failure> {
        let extra: Vec<_> = self.merged.iter().flat_map(|m| m.suites.clone()).collect();
        let xml = crate::report::junit::report(&self.measurements, extra)
            .to_string()
            .map_err(|e| Failure::env(anyhow::anyhow!("cannot serialize JUnit: {e}")))?;
        Ok(crate::redact::redact(&xml))
    }

    /// The measurements as JSON (the `summary.json` that `--history` reads back), redacted.
    pub fn summary_json(&self) -> Result<String, Failure> {
        let v = serde_json::to_string_pretty(&self.measurements)
            .map_err(|e| Failure::env(anyhow::anyhow!("{e}")))?;
        Ok(crate::redact::redact(&v))
    }
}

/// The measurement of a drill that could not run: named after its scenario (its `name:` when
/// the file reads, else the file's stem), or "drill".
fn could_not_run(scenario: Option<&Path>, error: &str) -> Measurement {
    let name = scenario
        .map(|f| {
            crate::scenario::load(f)
                .map(|s| s.name)
                .unwrap_or_else(|_| {
                    f.file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "drill".into())
                })
        })
        .unwrap_or_else(|| "drill".into());
    Measurement::could_not_run(
        &crate::journal::new_drill_id(),
        &name,
        scenario.map(|f| f.display().to_string()),
        error,
    )
}
