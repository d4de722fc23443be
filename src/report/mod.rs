//! Reports: the journal turned into evidence — JUnit XML for CI, the runbook's post-drill report
//! in Markdown, and action items from everything that failed. Read-only: reports never write to
//! the journal. Every string is redacted on the way out.

pub mod compose;
pub mod junit;
pub mod markdown;
pub mod merge;
pub mod publish;

use crate::measure::Measurement;

/// An action item from a failed objective or check (the runbook's Action Items table).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ActionItem {
    /// Stable identity of the problem across runs (scenario + what failed, without the numbers),
    /// so `--file-action-items` never files the same item twice.
    pub key: String,
    pub item: String,
    pub owner: String,
    pub due: String,
    pub priority: &'static str,
}

/// One action item per problem; the owner comes from the scenario's roles.
pub fn action_items(m: &Measurement) -> Vec<ActionItem> {
    let start = m.started_at.map(|t| t.0).unwrap_or_else(chrono::Utc::now);
    let role = |keys: &[&str]| -> String {
        for k in keys {
            if let Some((_, who)) = m.roles.iter().find(|(r, _)| r == k) {
                return who.clone();
            }
        }
        m.roles
            .iter()
            .find(|(r, _)| r == "incident_commander")
            .map(|(_, w)| w.clone())
            .unwrap_or_else(|| "unassigned".into())
    };
    m.problems
        .iter()
        .map(|p| {
            let lower = p.to_lowercase();
            let (owner, priority, days) = if lower.starts_with("rpo") || lower.starts_with("backup")
            {
                (role(&["database_lead"]), "H", 14)
            } else if lower.starts_with("rto") || lower.starts_with("not recovered") {
                (role(&["application_lead", "infrastructure_lead"]), "H", 14)
            } else if lower.starts_with("fault") {
                (role(&["infrastructure_lead"]), "H", 7)
            } else if lower.starts_with("smoke test") {
                (role(&["application_lead"]), "H", 7)
            } else if lower.starts_with("error rate") {
                (role(&["application_lead"]), "M", 30)
            } else {
                (role(&["documentation_lead"]), "M", 30)
            };
            ActionItem {
                key: format!(
                    "{}|{}",
                    m.scenario.as_deref().unwrap_or(&m.name),
                    problem_key(p)
                ),
                item: crate::redact::redact(&format!("Investigate: {p}")),
                owner,
                due: (start + chrono::Duration::days(days))
                    .format("%Y-%m-%d")
                    .to_string(),
                priority,
            }
        })
        .collect()
}

/// What failed, without the measured numbers: "RTO ≤ 5m missed: 6m 12s" → "RTO ≤ 5m missed",
/// "not recovered within 5m (probe: …)" → "not recovered within 5m".
pub fn problem_key(p: &str) -> String {
    let cut = [": ", " ("]
        .iter()
        .filter_map(|sep| p.find(sep))
        .min()
        .unwrap_or(p.len());
    p[..cut].trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::problem_key;

    #[test]
    fn problem_keys_drop_the_numbers() {
        assert_eq!(
            problem_key("RTO ≤ 5m 00s missed: 6m 12s"),
            "RTO ≤ 5m 00s missed"
        );
        assert_eq!(
            problem_key("not recovered within 5m (http: refused)"),
            "not recovered within 5m"
        );
        assert_eq!(problem_key("drill interrupted"), "drill interrupted");
    }
}
