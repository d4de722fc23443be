//! Tabletop exercises (runbook §1): nothing is injected; the team walks through a scenario. A
//! scenario file's optional `tabletop:` block holds the runbook's scenario block, the agenda with
//! durations and the questions of each stage; `report tabletop` renders it as the Markdown the
//! facilitator uses (and as the quarter's GitHub issue). Anything left out falls back to the
//! runbook's own text.

use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tabletop {
    /// e.g. "2-4 hours".
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub participants: Vec<String>,
    /// The runbook's scenario block (type, severity, affected_systems, business_impact, …).
    #[serde(default)]
    pub scenario: BTreeMap<String, serde_yaml_ng::Value>,
    /// Materials to gather (default: the runbook's list).
    #[serde(default)]
    pub materials: Vec<String>,
    /// The stages (default: preparation 30 min, walkthrough 90 min, review 60 min).
    #[serde(default)]
    pub agenda: Vec<Stage>,
    /// The exercise's success criteria (default: the runbook's checklist).
    #[serde(default)]
    pub success_criteria: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub name: String,
    pub minutes: u32,
    #[serde(default)]
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    #[serde(default)]
    pub minutes: Option<u32>,
    /// Questions to answer (walkthrough) or things to do (preparation, review).
    #[serde(default)]
    pub questions: Vec<String>,
}

fn step(name: &str, minutes: Option<u32>, qs: &[&str]) -> Step {
    Step {
        name: name.into(),
        minutes,
        questions: qs.iter().map(|s| s.to_string()).collect(),
    }
}

/// The runbook's agenda (§1 Procedure).
pub fn default_agenda() -> Vec<Stage> {
    vec![
        Stage {
            name: "Preparation".into(),
            minutes: 30,
            steps: vec![
                step(
                    "Schedule Session",
                    None,
                    &[
                        "Book conference room",
                        "Send calendar invites",
                        "Distribute materials in advance",
                    ],
                ),
                step(
                    "Prepare Scenario",
                    None,
                    &["Share the scenario block below"],
                ),
                step(
                    "Gather Materials",
                    None,
                    &[
                        "Current DR runbooks",
                        "System architecture diagrams",
                        "Contact lists",
                        "Backup inventory",
                        "RTO/RPO documentation",
                    ],
                ),
            ],
        },
        Stage {
            name: "Scenario Walkthrough".into(),
            minutes: 90,
            steps: vec![
                step(
                    "Initial Detection",
                    Some(15),
                    &[
                        "Who receives the alert?",
                        "What is the escalation path?",
                        "How do we assess severity?",
                    ],
                ),
                step(
                    "Assessment",
                    Some(30),
                    &[
                        "What data do we need?",
                        "How do we access systems?",
                        "What is the impact assessment?",
                    ],
                ),
                step(
                    "Recovery Steps",
                    Some(30),
                    &[
                        "What is the recovery procedure?",
                        "Who performs each step?",
                        "What are the dependencies?",
                        "What are the verification steps?",
                    ],
                ),
                step(
                    "Communication",
                    Some(15),
                    &[
                        "Who needs to be notified?",
                        "What is the communication template?",
                        "When do we notify customers?",
                    ],
                ),
            ],
        },
        Stage {
            name: "Review and Improve".into(),
            minutes: 60,
            steps: vec![
                step(
                    "Identify Gaps",
                    None,
                    &[
                        "Document unclear procedures",
                        "Note missing information",
                        "Identify training needs",
                    ],
                ),
                step(
                    "Action Items",
                    None,
                    &[
                        "Assign owners",
                        "Set deadlines",
                        "Track in project management tool",
                    ],
                ),
                step(
                    "Update Documentation",
                    None,
                    &[
                        "Revise runbooks",
                        "Update contact lists",
                        "Improve procedures",
                    ],
                ),
            ],
        },
    ]
}

pub fn default_criteria() -> Vec<String> {
    [
        "All participants understand their roles",
        "Recovery procedures are clear",
        "Communication plan is validated",
        "Gaps are documented",
        "Action items are assigned",
        "Documentation is updated",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

const DEFAULT_ROLES: [&str; 6] = [
    "incident_commander",
    "database_lead",
    "infrastructure_lead",
    "application_lead",
    "communications_lead",
    "documentation_lead",
];

fn role_title(r: &str) -> String {
    r.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Hidden marker of the exercise's issue.
pub fn marker(s: &Scenario) -> String {
    format!("<!-- drillkit:tabletop={} -->", s.name)
}

/// The default issue title: the quarter of `date` and the scenario's name.
pub fn title(s: &Scenario, date: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    format!(
        "DR tabletop exercise {}-Q{}: {}",
        date.year(),
        (date.month() - 1) / 3 + 1,
        s.name
    )
}

/// The exercise as Markdown: scenario block, agenda with durations, questions per stage, roles,
/// success-criteria checklist, an empty action-item table to fill in.
pub fn render(s: &Scenario, heading: &str) -> String {
    let t = s.tabletop.clone().unwrap_or_default();
    let agenda = if t.agenda.is_empty() {
        default_agenda()
    } else {
        t.agenda.clone()
    };
    let criteria = if t.success_criteria.is_empty() {
        default_criteria()
    } else {
        t.success_criteria.clone()
    };
    let total: u32 = agenda.iter().map(|a| a.minutes).sum();
    let mut o = String::new();
    let _ = writeln!(o, "{}", marker(s));
    let _ = writeln!(o, "# {heading}\n");
    if let Some(d) = &s.description {
        let _ = writeln!(o, "{d}\n");
    }
    let _ = writeln!(
        o,
        "- **Duration**: {} (agenda: {})",
        t.duration.as_deref().unwrap_or("2-4 hours"),
        fmt_minutes(total)
    );
    let participants = if t.participants.is_empty() {
        "DevOps, Engineering, Management, Support".to_string()
    } else {
        t.participants.join(", ")
    };
    let _ = writeln!(o, "- **Participants**: {participants}");
    let _ = writeln!(o, "- **Impact**: No production impact (discussion only)");
    let _ = writeln!(
        o,
        "- **Runbook**: {}",
        s.runbook.as_deref().unwrap_or("§1 Tabletop Exercise")
    );

    let _ = writeln!(o, "\n## Scenario\n");
    if t.scenario.is_empty() {
        let _ = writeln!(
            o,
            "_No scenario block in {}: add `tabletop.scenario`._",
            s.name
        );
    } else {
        let mut block = BTreeMap::new();
        block.insert("scenario".to_string(), &t.scenario);
        let yaml = serde_yaml_ng::to_string(&block).unwrap_or_default();
        let _ = writeln!(o, "```yaml\n{}```", yaml);
    }

    let _ = writeln!(o, "\n## Agenda\n");
    let _ = writeln!(o, "| # | Stage | Duration |");
    let _ = writeln!(o, "|---|---|---|");
    for (i, a) in agenda.iter().enumerate() {
        let _ = writeln!(o, "| {} | {} | {} |", i + 1, a.name, fmt_minutes(a.minutes));
    }
    let _ = writeln!(o, "| | **Total** | **{}** |", fmt_minutes(total));
    for (i, a) in agenda.iter().enumerate() {
        let _ = writeln!(
            o,
            "\n### Phase {}: {} ({})\n",
            i + 1,
            a.name,
            fmt_minutes(a.minutes)
        );
        for (j, st) in a.steps.iter().enumerate() {
            let mins = st
                .minutes
                .map(|m| format!(" ({})", fmt_minutes(m)))
                .unwrap_or_default();
            let _ = writeln!(o, "{}. **{}**{mins}", j + 1, st.name);
            let items: Vec<String> = if st.name == "Gather Materials" && !t.materials.is_empty() {
                t.materials.clone()
            } else {
                st.questions.clone()
            };
            for q in items {
                let _ = writeln!(o, "   - [ ] {q}");
            }
        }
    }

    let _ = writeln!(o, "\n## Roles\n");
    let _ = writeln!(o, "| Role | Person |");
    let _ = writeln!(o, "|---|---|");
    let mut roles: Vec<(String, String)> = s
        .roles
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for r in DEFAULT_ROLES {
        if !roles.iter().any(|(k, _)| k == r) {
            roles.push((r.to_string(), "unassigned".into()));
        }
    }
    for (k, v) in &roles {
        let _ = writeln!(o, "| {} | {v} |", role_title(k));
    }

    let _ = writeln!(o, "\n## Success Criteria\n");
    for c in criteria.iter().chain(s.criteria.iter()) {
        let _ = writeln!(o, "- [ ] {c}");
    }

    let _ = writeln!(o, "\n## Action Items\n");
    let _ = writeln!(o, "| Item | Owner | Due Date | Priority |");
    let _ = writeln!(o, "|------|-------|----------|----------|");
    let _ = writeln!(o, "| | | | |");
    crate::redact::redact(&o)
}

fn fmt_minutes(m: u32) -> String {
    match (m / 60, m % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runbook_agenda_is_three_hours() {
        let a = default_agenda();
        assert_eq!(
            a.iter().map(|s| s.minutes).collect::<Vec<_>>(),
            [30, 90, 60]
        );
        let walk: u32 = a[1].steps.iter().filter_map(|s| s.minutes).sum();
        assert_eq!(walk, 90);
        assert_eq!(fmt_minutes(180), "3 h");
        assert_eq!(fmt_minutes(90), "1 h 30 min");
    }
}
