//! The runbook's drill calendar as data (`scenarios/schedule.yaml`): which simulated failure runs
//! in which week of the month, the quarterly tabletop, the bi-annual full DR test. `drill
//! schedule --date` answers "what runs this week?" for the monthly workflow.
//!
//! Week of the month: days 1–7 are week 1, 8–14 week 2, 15–21 week 3, 22–28 week 4, 29–31
//! week 5. A week names one scenario, or a list that alternates by month (January takes the
//! first entry, February the second, …): the runbook's "week 4: network partition or disk
//! full" is `[network-partition.yaml, disk-full.yaml]`, and week 5 — which the runbook does not
//! plan — runs the other one of the pair, so months with a fifth week exercise both.

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// `week1` … `week5` → a scenario file (relative to this file) or a list alternating by month.
    pub monthly: BTreeMap<String, OneOrMany>,
    /// The quarterly tabletop exercise's scenario.
    #[serde(default)]
    pub quarterly_tabletop: Option<String>,
    /// The full DR test's scenario and the months it runs in (runbook: bi-annual).
    #[serde(default)]
    pub full_dr_test: Option<FullTest>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FullTest {
    pub scenario: String,
    #[serde(default)]
    pub months: Vec<u32>,
}

/// What runs on a date.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Pick {
    pub date: String,
    pub month: u32,
    pub week: u32,
    /// The scenario file, joined to the schedule file's folder.
    pub scenario: String,
    /// The scenario's name (the file stem), e.g. `redis-cache-failure`.
    pub name: String,
    pub exists: bool,
    pub tabletop_this_quarter: Option<String>,
    pub full_dr_test_this_month: bool,
}

pub fn week_of_month(d: NaiveDate) -> u32 {
    (d.day() - 1) / 7 + 1
}

pub fn parse(file: &str, text: &str) -> Result<Schedule, String> {
    let s: Schedule = serde_yaml_ng::from_str(text).map_err(|e| {
        let (l, c) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        format!("{file}:{l}:{c}: {e}")
    })?;
    for (k, v) in &s.monthly {
        let ok = matches!(k.as_str(), "week1" | "week2" | "week3" | "week4" | "week5");
        if !ok {
            return Err(format!(
                "{file}: monthly: unknown key '{k}' (expected week1 … week5)"
            ));
        }
        if let OneOrMany::Many(v) = v {
            if v.is_empty() {
                return Err(format!("{file}: monthly.{k}: the list is empty"));
            }
        }
    }
    Ok(s)
}

/// Whether `text` is a schedule rather than a scenario: its top level has a `monthly` key.
pub fn looks_like_schedule(text: &str) -> bool {
    serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)
        .ok()
        .and_then(|v| v.as_mapping().map(|m| m.contains_key("monthly")))
        .unwrap_or(false)
}

pub fn load(path: &Path) -> Result<Schedule, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read schedule: {e}", path.display()))?;
    parse(&path.display().to_string(), &text)
}

impl Schedule {
    /// Every scenario file the schedule names, once each: weeks in key order, then the tabletop
    /// and the full DR test.
    pub fn files(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let monthly = self.monthly.values().flat_map(|v| match v {
            OneOrMany::One(f) => std::slice::from_ref(f),
            OneOrMany::Many(fs) => fs.as_slice(),
        });
        let others = self
            .quarterly_tabletop
            .iter()
            .chain(self.full_dr_test.as_ref().map(|f| &f.scenario));
        for f in monthly.chain(others) {
            if !out.contains(&f.as_str()) {
                out.push(f);
            }
        }
        out
    }

    /// The scenario for `date`, relative to `base` (the schedule file's folder).
    pub fn pick(&self, date: NaiveDate, base: &Path) -> Result<Pick, String> {
        let week = week_of_month(date);
        let month = date.month();
        let key = format!("week{week}");
        let entry = self
            .monthly
            .get(&key)
            .ok_or_else(|| format!("the schedule has no entry for {key} (the week of {date})"))?;
        let file = match entry {
            OneOrMany::One(f) => f.clone(),
            OneOrMany::Many(list) => list[(month as usize - 1) % list.len()].clone(),
        };
        let path = join(base, &file);
        let name = Path::new(&file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(&file)
            .to_string();
        Ok(Pick {
            date: date.to_string(),
            month,
            week,
            exists: path.is_file(),
            scenario: path.display().to_string(),
            name,
            tabletop_this_quarter: self
                .quarterly_tabletop
                .as_ref()
                .map(|t| join(base, t).display().to_string()),
            full_dr_test_this_month: self
                .full_dr_test
                .as_ref()
                .is_some_and(|f| f.months.contains(&month)),
        })
    }
}

fn join(base: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() || base.as_os_str().is_empty() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_of_the_month() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        assert_eq!(week_of_month(d("2025-03-01")), 1);
        assert_eq!(week_of_month(d("2025-03-07")), 1);
        assert_eq!(week_of_month(d("2025-03-08")), 2);
        assert_eq!(week_of_month(d("2025-03-28")), 4);
        assert_eq!(week_of_month(d("2025-03-29")), 5);
        assert_eq!(week_of_month(d("2025-03-31")), 5);
    }
}
