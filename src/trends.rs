//! Trends across drills: earlier drills' `summary.json` files (downloaded artifacts) read back,
//! per scenario an RTO/RPO table and a Mermaid chart, and a regression flag when this drill's
//! RTO is clearly worse than the median of the last runs.
//!
//! Regression rule (documented in docs/github.md): the current RTO is more than 25 % above the
//! median RTO of the last [`WINDOW`] earlier runs of the same scenario *and* more than one second
//! above it (so a 0.2 s → 0.3 s wobble is not a regression). Same rule for RPO.

use crate::measure::Measurement;
use crate::units::fmt_duration;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// How many earlier runs the median is taken over.
pub const WINDOW: usize = 5;

/// One earlier (or the current) drill, reduced to what a trend needs.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Point {
    pub scenario: String,
    pub drill: String,
    pub started_at: Option<String>,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    pub passed: Option<bool>,
}

impl Point {
    pub fn of(m: &Measurement) -> Point {
        Point {
            scenario: m.scenario.clone().unwrap_or_else(|| m.name.clone()),
            drill: m.drill.clone(),
            started_at: m.started_at.map(|t| t.to_rfc3339()),
            rto_seconds: m.rto_seconds,
            rpo_seconds: m.rpo.as_ref().map(|r| r.rpo_seconds),
            passed: Some(m.passed),
        }
    }

    fn from_json(v: &serde_json::Value) -> Option<Point> {
        let drill = v.get("drill")?.as_str()?.to_string();
        let name = v.get("name").and_then(|n| n.as_str()).unwrap_or(&drill);
        let scenario = v
            .get("scenario")
            .and_then(|s| s.as_str())
            .unwrap_or(name)
            .to_string();
        Some(Point {
            scenario,
            drill,
            started_at: v
                .get("started_at")
                .and_then(|s| s.as_str())
                .map(String::from),
            rto_seconds: v.get("rto_seconds").and_then(|x| x.as_f64()),
            rpo_seconds: v
                .get("rpo")
                .and_then(|r| r.get("rpo_seconds"))
                .and_then(|x| x.as_f64())
                .or_else(|| v.get("rpo_seconds").and_then(|x| x.as_f64())),
            passed: v.get("passed").and_then(|p| p.as_bool()),
        })
    }
}

/// Every `summary.json` under `dir` (any depth: one folder per downloaded artifact). A file
/// holds one measurement (`drill run`) or an array of them (`report --summary-json`). Files
/// that do not parse are skipped with a warning; the same drill found twice counts once.
pub fn load(dir: &Path) -> std::io::Result<(Vec<Point>, Vec<String>)> {
    let mut files = Vec::new();
    walk(dir, &mut files, 0)?;
    files.sort();
    let mut points: Vec<Point> = Vec::new();
    let mut warnings = Vec::new();
    for f in files {
        let parsed = std::fs::read_to_string(&f)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(serde_json::Value::Array(items)) => {
                points.extend(items.iter().filter_map(Point::from_json))
            }
            Ok(v) => match Point::from_json(&v) {
                Some(p) => points.push(p),
                None => warnings.push(format!("{}: not a drillkit summary; skipped", f.display())),
            },
            Err(e) => warnings.push(format!("{}: {e}; skipped", f.display())),
        }
    }
    let mut seen = std::collections::HashSet::new();
    points.retain(|p| seen.insert(p.drill.clone()));
    points.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    Ok((points, warnings))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> std::io::Result<()> {
    if depth > 6 {
        return Ok(());
    }
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(&p, out, depth + 1)?;
        } else if p.file_name().and_then(|n| n.to_str()) == Some("summary.json") {
            out.push(p);
        }
    }
    Ok(())
}

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// A regression of `current` against earlier values (oldest first).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Regression {
    pub metric: &'static str,
    pub current: f64,
    pub median: f64,
}

pub fn regression(
    metric: &'static str,
    current: Option<f64>,
    earlier: &[f64],
) -> Option<Regression> {
    let current = current?;
    let last: Vec<f64> = earlier.iter().rev().take(WINDOW).copied().collect();
    let median = median(&last)?;
    (current > median * 1.25 && current - median > 1.0).then_some(Regression {
        metric,
        current,
        median,
    })
}

/// The trend section of the report for the drills being reported.
pub fn section(current: &[Measurement], history: &[Point]) -> (String, Vec<Regression>) {
    let mut o = String::new();
    let mut regressions = Vec::new();
    let _ = writeln!(o, "\n## Trends\n");
    for m in current {
        let now = Point::of(m);
        let earlier: Vec<&Point> = history
            .iter()
            .filter(|p| p.scenario == now.scenario && p.drill != now.drill)
            .collect();
        let _ = writeln!(o, "### {}\n", now.scenario);
        if earlier.is_empty() {
            let _ = writeln!(o, "No earlier runs of this scenario in the history.\n");
            continue;
        }
        let rtos: Vec<f64> = earlier.iter().filter_map(|p| p.rto_seconds).collect();
        let rpos: Vec<f64> = earlier.iter().filter_map(|p| p.rpo_seconds).collect();
        let mut flags = Vec::new();
        for r in [
            regression("RTO", now.rto_seconds, &rtos),
            regression("RPO", now.rpo_seconds, &rpos),
        ]
        .into_iter()
        .flatten()
        {
            flags.push(format!(
                "⚠️ **{} regression**: {} now, median of the last {} runs {}",
                r.metric,
                fmt_duration(r.current),
                WINDOW.min(if r.metric == "RTO" {
                    rtos.len()
                } else {
                    rpos.len()
                }),
                fmt_duration(r.median)
            ));
            regressions.push(r);
        }
        for f in &flags {
            let _ = writeln!(o, "{f}\n");
        }
        let _ = writeln!(o, "| Run | Drill | RTO | RPO | Result |");
        let _ = writeln!(o, "|---|---|---|---|---|");
        let rows: Vec<(&Point, bool)> = earlier
            .iter()
            .rev()
            .take(12)
            .rev()
            .map(|p| (*p, false))
            .chain(std::iter::once((&now, true)))
            .collect();
        let opt = |v: Option<f64>| v.map(fmt_duration).unwrap_or_else(|| "–".into());
        for (p, is_now) in &rows {
            let date = p
                .started_at
                .as_deref()
                .map(|s| s.get(..10).unwrap_or(s))
                .unwrap_or("–");
            let res = match p.passed {
                Some(true) => "✅",
                Some(false) => "❌",
                None => "–",
            };
            let _ = writeln!(
                o,
                "| {date}{} | `{}` | {} | {} | {res} |",
                if *is_now { " (this run)" } else { "" },
                p.drill,
                opt(p.rto_seconds),
                opt(p.rpo_seconds)
            );
        }
        let chart: Vec<(&Point, f64)> = rows
            .iter()
            .filter_map(|(p, _)| p.rto_seconds.map(|r| (*p, r)))
            .collect();
        if chart.len() >= 2 {
            let labels: Vec<String> = chart
                .iter()
                .enumerate()
                .map(|(i, (p, _))| {
                    let d = p
                        .started_at
                        .as_deref()
                        .and_then(|s| s.get(5..10))
                        .unwrap_or("?");
                    format!(
                        "\"{}{}\"",
                        d,
                        if i + 1 == chart.len() { " now" } else { "" }
                    )
                })
                .collect();
            let values: Vec<String> = chart.iter().map(|(_, r)| format!("{r:.1}")).collect();
            let max = chart.iter().map(|(_, r)| *r).fold(0.0, f64::max);
            let _ = writeln!(
                o,
                "\n```mermaid\nxychart-beta\n    title \"RTO of {} (seconds)\"\n    x-axis [{}]\n    y-axis \"RTO (s)\" 0 --> {:.0}\n    line [{}]\n```\n",
                now.scenario.replace('"', "'"),
                labels.join(", "),
                (max * 1.2).ceil().max(1.0),
                values.join(", ")
            );
        }
    }
    (crate::redact::redact(&o), regressions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_needs_a_clear_margin() {
        let earlier = [10.0, 11.0, 9.0, 10.0, 12.0, 100.0];
        // The median is over the last five earlier runs: 11, 9, 10, 12, 100.
        assert_eq!(median(&[11.0, 9.0, 10.0, 12.0, 100.0]), Some(11.0));
        assert!(regression("RTO", Some(20.0), &earlier).is_some());
        assert!(regression("RTO", Some(12.0), &earlier).is_none());
        assert!(regression("RTO", Some(0.3), &[0.2, 0.2]).is_none());
        assert!(regression("RTO", None, &earlier).is_none());
    }
}
