//! The runbook's Post-Drill Report Template, filled from the journal: Executive Summary, Metrics
//! (targets vs achieved), a Mermaid timeline with a table beside it, What Went Well, Issues
//! Encountered, Action Items, Recommendations, Next Steps.

use crate::journal::Ts;
use crate::measure::Measurement;
use crate::redact::redact;
use crate::units::{fmt_duration, Ratio};
use std::fmt::Write;

/// Hidden marker so a later report of the same drill finds (and updates) its own GitHub comment.
/// One comment per drill: the drill id identifies it, the scenario is there for humans.
pub fn marker(m: &Measurement) -> String {
    format!(
        "{}scenario={} -->",
        marker_key(m),
        m.scenario.clone().unwrap_or_else(|| m.name.clone())
    )
}

/// The part of [`marker`] that is searched for: the drill id.
pub fn marker_key(m: &Measurement) -> String {
    format!("<!-- drillkit:drill={} ", m.drill)
}

/// The runbook §3 "Metrics to Track" keys, the words that map a timed phase onto each, and the
/// runbook's planned time in minutes.
const DR_METRICS: [(&str, &[&str], u32); 6] = [
    ("detection_time", &["detect"], 5),
    ("assessment_time", &["assess"], 30),
    (
        "infrastructure_provisioning",
        &["provision", "infrastructure"],
        60,
    ),
    ("database_recovery", &["database", "restore"], 90),
    ("application_deployment", &["deploy", "application"], 90),
    ("verification", &["verif", "smoke"], 90),
];

/// Phase seconds per runbook metric (phases whose name contains one of its words; each phase
/// counts once, for the first metric it matches).
pub fn dr_metrics(m: &Measurement) -> Vec<(&'static str, u32, Option<f64>)> {
    let mut used = vec![false; m.phases.len()];
    DR_METRICS
        .iter()
        .map(|(key, words, planned)| {
            let mut total: Option<f64> = None;
            for (i, p) in m.phases.iter().enumerate() {
                let n = p.name.to_lowercase();
                if !used[i] && words.iter().any(|w| n.contains(w)) {
                    used[i] = true;
                    total = Some(total.unwrap_or(0.0) + p.seconds.unwrap_or(0.0));
                }
            }
            if *key == "detection_time" && total.is_none() {
                total = m.detect_seconds;
            }
            (*key, *planned, total)
        })
        .collect()
}

fn dr_metrics_block(o: &mut String, m: &Measurement) {
    let rows = dr_metrics(m);
    // Only for drills timed like the runbook's full DR test (two or more of its phases).
    if rows.iter().skip(1).filter(|r| r.2.is_some()).count() < 2 {
        return;
    }
    let _ = writeln!(o, "\n## DR Metrics (runbook §3)\n");
    let _ = writeln!(o, "| Metric | Runbook plan | Actual |");
    let _ = writeln!(o, "|---|---|---|");
    let mut yaml = String::from("dr_metrics:\n");
    for (key, planned, actual) in &rows {
        let _ = writeln!(
            o,
            "| {key} | {} | {} |",
            fmt_duration(*planned as f64 * 60.0),
            opt_secs(*actual)
        );
        let _ = writeln!(yaml, "  {key}: \"{}\"", opt_secs(*actual));
    }
    let phases_total: f64 = m.phases.iter().filter_map(|p| p.seconds).sum();
    let total = m.rto_seconds.unwrap_or(phases_total);
    let planned: u32 = rows.iter().map(|r| r.1).sum();
    let _ = writeln!(
        o,
        "| total_rto | {} | {} |",
        fmt_duration(planned as f64 * 60.0),
        fmt_duration(total)
    );
    let _ = writeln!(yaml, "  total_rto: \"{}\"", fmt_duration(total));
    let rpo = m
        .rpo
        .as_ref()
        .map(|r| {
            format!(
                "{} ({} writes lost)",
                fmt_duration(r.rpo_seconds),
                r.lost_writes
            )
        })
        .unwrap_or_else(|| "not measured".into());
    let _ = writeln!(o, "| rpo | 0 minutes (no data loss) | {rpo} |");
    let _ = writeln!(yaml, "  rpo: \"{rpo}\"");
    let _ = writeln!(o, "\n```yaml\n{yaml}```");
}

fn negative_control(o: &mut String, nc: &crate::measure::NegativeControl) {
    let _ = writeln!(o, "\n## Negative Control\n");
    let _ = writeln!(o, "- Planted defect: {}", redact(&nc.defect));
    let _ = writeln!(o, "- Expected finding: {}", redact(&nc.expected));
    if nc.caught {
        let _ = writeln!(o, "- Caught: yes, by the drill's own checks:");
    } else {
        let _ = writeln!(o, "- Caught: **no**:");
    }
    for f in &nc.findings {
        let _ = writeln!(o, "  - {}", redact(f));
    }
    if let Some(d) = &nc.proven_on {
        let _ = writeln!(o, "\n**This drill can fail: last proven {d}.**");
    }
}

/// A drill across engines: one row per region (what hit it, when it was cut, restored and
/// serving again) and the error rate users saw during each switch.
fn regions(o: &mut String, m: &Measurement) {
    if m.regions.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n## Regions\n");
    let _ = writeln!(
        o,
        "| Region | Engine | Steps | Cut | Restored | Serving again | Recovery | Role |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
    let at = |t: Option<Ts>| {
        t.map(|t| t.0.format("%H:%M:%S%.3f").to_string())
            .unwrap_or_else(|| "–".into())
    };
    for r in &m.regions {
        let _ = writeln!(
            o,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} |",
            r.name,
            redact(&r.engine),
            redact(&r.steps.join("<br>")).replace('|', "\\|"),
            at(r.cut_at),
            at(r.restored_at),
            at(r.serving_at),
            opt_secs(r.recovery_seconds),
            r.role
        );
    }
    if m.switches.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\n| Switch | Window | Requests | Failed | Error rate | Downtime |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|");
    for w in &m.switches {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            w.name,
            fmt_duration(w.seconds),
            w.samples,
            w.failed_samples,
            w.error_rate
                .map(|r| Ratio(r).to_string())
                .unwrap_or_else(|| "– (no samples)".into()),
            fmt_duration(w.downtime_seconds)
        );
    }
}

fn opt_secs(v: Option<f64>) -> String {
    v.map(fmt_duration).unwrap_or_else(|| "–".into())
}

fn result(passed: bool) -> &'static str {
    if passed {
        "✅ met"
    } else {
        "❌ missed"
    }
}

pub fn render(m: &Measurement) -> String {
    let mut o = String::new();
    let date = m
        .started_at
        .map(|t| t.0.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let overall = if let Some(nc) = &m.negative_control {
        if nc.caught {
            "✅ Negative control passed: the planted defect was caught".to_string()
        } else {
            "❌ Negative control failed: the planted defect was NOT caught".to_string()
        }
    } else if let Some(e) = &m.error {
        if m.outcome.as_deref() == Some("could not run") {
            format!("❌ Error: the drill could not run ({e})")
        } else {
            format!("❌ Error: the drill stopped ({e})")
        }
    } else if m.aborted.is_some() {
        "🛑 Aborted (a stop condition tripped)".to_string()
    } else if m.passed {
        "✅ Success".to_string()
    } else if m.recovery.as_ref().and_then(|r| r.recovered) == Some(true) {
        "⚠️ Partial (recovered, but not every objective was met)".to_string()
    } else {
        "❌ Failed".to_string()
    };
    let _ = writeln!(o, "{}", marker(m));
    let _ = writeln!(o, "# DR Drill Report - {date}: {}\n", m.name);
    let _ = writeln!(o, "## Executive Summary");
    let _ = writeln!(
        o,
        "- Drill Type: {}",
        m.scenario.as_deref().unwrap_or(&m.name)
    );
    if let Some(env) = &m.environment {
        let _ = writeln!(o, "- Environment: {env}");
    }
    let _ = writeln!(o, "- Drill id: `{}`", m.drill);
    let _ = writeln!(o, "- Duration: {}", opt_secs(m.duration_seconds));
    let _ = writeln!(o, "- Overall Result: {overall}");
    if let Some(outcome) = &m.outcome {
        let _ = writeln!(o, "- Ended: {outcome}");
    }
    if let Some(a) = &m.aborted {
        let _ = writeln!(
            o,
            "- Aborted by stop condition: `{}` — seen: {} (at {}); every open fault was reverted at once",
            redact(&a.condition),
            redact(&a.value),
            a.at.to_rfc3339()
        );
    }
    if let Some(nc) = &m.negative_control {
        negative_control(&mut o, nc);
    }

    let _ = writeln!(o, "\n## Metrics\n");
    let _ = writeln!(o, "| Metric | Target | Achieved | Result |");
    let _ = writeln!(o, "|---|---|---|---|");
    for obj in &m.objectives {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            obj.name,
            obj.target,
            obj.achieved,
            result(obj.passed)
        );
    }
    let rto_note = m
        .rto_source
        .as_deref()
        .map(|s| format!(" (from {s})"))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "| RTO achieved | – | {}{rto_note} | – |",
        opt_secs(m.rto_seconds)
    );
    let _ = writeln!(
        o,
        "| Time to detect | – | {} | – |",
        opt_secs(m.detect_seconds)
    );
    if m.samples > 0 {
        let _ = writeln!(
            o,
            "| Downtime seen by users | – | {} | – |",
            opt_secs(m.downtime_seconds)
        );
        if let Some(a) = m.availability {
            let _ = writeln!(o, "| Availability during drill | – | {} | – |", Ratio(a));
        }
        if let Some(r) = m.error_rate {
            let _ = writeln!(
                o,
                "| Error rate | – | {} ({} of {} requests) | – |",
                Ratio(r),
                m.failed_samples,
                m.samples
            );
        }
    }
    if let Some(r) = &m.rpo {
        let _ = writeln!(
            o,
            "| RPO achieved | – | {} | – |",
            fmt_duration(r.rpo_seconds)
        );
        let lost = match (r.first_lost, r.last_lost) {
            (Some(a), Some(b)) => format!("{} (seq {a}–{b})", r.lost_writes),
            _ => r.lost_writes.to_string(),
        };
        let _ = writeln!(
            o,
            "| Acknowledged writes lost | 0 | {lost} of {} | {} |",
            r.acknowledged,
            result(r.lost_writes == 0)
        );
        if let Some(w) = r.write_outage_seconds {
            let _ = writeln!(o, "| Write outage | – | {} | – |", fmt_duration(w));
        }
    }
    if let Some(l) = m.latency.filter(|l| l.count > 0) {
        let _ = writeln!(
            o,
            "| Probe latency p50 / p95 / p99 | – | {:.1} / {:.1} / {:.1} ms | – |",
            l.p50, l.p95, l.p99
        );
    }

    timeline(&mut o, m);
    regions(&mut o, m);

    if !m.phases.is_empty() {
        let _ = writeln!(o, "\n## Phases\n");
        let _ = writeln!(o, "| Phase | Duration | Result |");
        let _ = writeln!(o, "|---|---|---|");
        for p in &m.phases {
            let r = match p.ok {
                None if p.planned => format!(
                    "⏭ dry run, not run: `{}`",
                    p.detail.clone().unwrap_or_default()
                ),
                Some(true) => "✅".to_string(),
                Some(false) => format!("❌ {}", p.detail.clone().unwrap_or_default()),
                None => "⏳ did not finish".into(),
            };
            let _ = writeln!(o, "| {} | {} | {} |", p.name, opt_secs(p.seconds), r);
        }
        let total: f64 = m.phases.iter().filter_map(|p| p.seconds).sum();
        let _ = writeln!(o, "| **total** | **{}** | |", fmt_duration(total));
        dr_metrics_block(&mut o, m);
    }

    if !m.backups.is_empty() {
        let _ = writeln!(o, "\n## Backup Checks\n");
        let _ = writeln!(o, "| File | Check | Result | Evidence |");
        let _ = writeln!(o, "|---|---|---|---|");
        for b in &m.backups {
            let r = if b.ok {
                "✅"
            } else if b.warning {
                "⚠️"
            } else {
                "❌"
            };
            let _ = writeln!(
                o,
                "| `{}` | {} | {r} | {} |",
                b.file,
                b.check,
                b.detail.replace('|', "\\|")
            );
        }
    }

    let _ = writeln!(o, "\n## What Went Well\n");
    let mut good = Vec::new();
    for obj in m.objectives.iter().filter(|x| x.passed) {
        good.push(format!("{}: achieved {}", obj.name, obj.achieved));
    }
    if let Some(r) = m.recovery.as_ref().filter(|r| r.recovered == Some(true)) {
        good.push(format!("All {} recovery probes passed", r.probes.len()));
    }
    let reverted = m
        .faults
        .iter()
        .filter(|f| f.reverted_at.is_some() && f.error.is_none() && !f.recovered_by_itself)
        .count();
    if reverted > 0 {
        good.push(format!(
            "{reverted} of {} faults were reverted cleanly",
            m.faults.len()
        ));
    }
    for f in m.faults.iter().filter(|f| f.recovered_by_itself) {
        good.push(format!(
            "{} {}: {}",
            f.action,
            f.target,
            f.revert.as_deref().unwrap_or("recovered by itself")
        ));
    }
    list(&mut o, &good, "Nothing recorded.");

    let _ = writeln!(o, "\n## Issues Encountered\n");
    if m.problems.is_empty() {
        let _ = writeln!(o, "None.");
    }
    let items = super::action_items(m);
    for (i, (p, a)) in m.problems.iter().zip(&items).enumerate() {
        let impact = if a.priority == "H" { "High" } else { "Medium" };
        let _ = writeln!(o, "{}. {p}\n   - Impact: {impact}\n   - Resolution: to be determined by the owner\n   - Action item: {}", i + 1, a.item);
    }

    let _ = writeln!(o, "\n## Action Items\n");
    let _ = writeln!(o, "| Item | Owner | Due Date | Priority |");
    let _ = writeln!(o, "|------|-------|----------|----------|");
    for a in &items {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            a.item, a.owner, a.due, a.priority
        );
    }
    if items.is_empty() {
        let _ = writeln!(o, "| – | – | – | – |");
    }

    let _ = writeln!(o, "\n## Recommendations\n");
    let mut recs = Vec::new();
    if let (Some(d), Some(r)) = (m.detect_seconds, m.rto_seconds) {
        if r > 0.0 && d / r > 0.5 {
            recs.push(format!(
                "Detection took {} of the {} RTO: tighten health checks and alerting.",
                fmt_duration(d),
                fmt_duration(r)
            ));
        }
    }
    if m.objectives
        .iter()
        .any(|x| x.name.starts_with("RTO") && !x.passed)
    {
        recs.push("Automate the recovery steps that took longest (see the timeline).".into());
    }
    if m.rpo.as_ref().is_some_and(|r| r.lost_writes > 0) {
        recs.push(
            "Acknowledged writes were lost: consider synchronous replication for this data.".into(),
        );
    }
    if m.faults.iter().any(|f| f.manual_undo) {
        recs.push(
            "Some faults could only be undone by a restore step: keep those steps in the scenario."
                .into(),
        );
    }
    if m.samples == 0 {
        recs.push(
            "Add a `watch` probe to measure the downtime users see, not only recovery.".into(),
        );
    }
    list(&mut o, &recs, "Keep running this drill on its schedule.");

    let _ = writeln!(o, "\n## Next Steps\n");
    let _ = writeln!(o, "- [ ] Update runbooks");
    let _ = writeln!(o, "- [ ] Schedule training");
    let _ = writeln!(
        o,
        "- [ ] Implement improvements{}",
        if items.is_empty() {
            ""
        } else {
            " (see Action Items)"
        }
    );
    redact(&o)
}

fn list(o: &mut String, items: &[String], empty: &str) {
    if items.is_empty() {
        let _ = writeln!(o, "{empty}");
    }
    for (i, s) in items.iter().enumerate() {
        let _ = writeln!(o, "{}. {s}", i + 1);
    }
}

/// Mermaid gantt of faults, recovery, phases and outages, with the same rows as a table.
fn timeline(o: &mut String, m: &Measurement) {
    let Some(t0) = m.started_at else { return };
    let mut rows: Vec<(String, &str, Ts, Ts)> = Vec::new();
    let end = m.finished_at.unwrap_or(t0);
    for f in &m.faults {
        if let Some(a) = f.applied_at {
            rows.push((
                format!("{} {}", f.action, f.target),
                "fault",
                a,
                f.reverted_at.unwrap_or(end),
            ));
        }
    }
    if let Some(r) = &m.recovery {
        rows.push((
            "wait for recovery".into(),
            "recovery",
            r.started_at,
            r.finished_at.unwrap_or(end),
        ));
        if let Some(at) = r.recovered_at {
            rows.push(("recovered".into(), "milestone", at, at));
        }
    }
    for p in &m.phases {
        rows.push((
            p.name.clone(),
            "phase",
            p.started_at,
            p.finished_at.unwrap_or(end),
        ));
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n## Timeline\n");
    let _ = writeln!(
        o,
        "```mermaid\ngantt\n    title {}\n    dateFormat x\n    axisFormat %M:%S",
        mermaid_text(&m.name)
    );
    let mut section = "";
    for (i, (name, kind, a, b)) in rows.iter().enumerate() {
        if *kind != section {
            let _ = writeln!(o, "    section {kind}");
            section = kind;
        }
        let tag = match *kind {
            "fault" => "crit, ",
            "milestone" => "milestone, ",
            _ => "",
        };
        let (ms_a, ms_b) = (
            a.0.timestamp_millis(),
            b.0.timestamp_millis().max(a.0.timestamp_millis() + 1),
        );
        let _ = writeln!(o, "    {} :{tag}t{i}, {ms_a}, {ms_b}", mermaid_text(name));
    }
    let _ = writeln!(o, "```\n");
    let _ = writeln!(o, "| Step | Start | End | Duration |");
    let _ = writeln!(o, "|---|---|---|---|");
    for (name, kind, a, b) in &rows {
        let _ = writeln!(
            o,
            "| {kind}: {name} | +{} | +{} | {} |",
            fmt_duration(a.since(t0)),
            fmt_duration(b.since(t0)),
            fmt_duration(b.since(*a))
        );
    }
}

/// Mermaid gantt task names may not contain `:` or `#`, and `;` ends a statement.
fn mermaid_text(s: &str) -> String {
    s.replace([':', '#', ';'], " ")
}
