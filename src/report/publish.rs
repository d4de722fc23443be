//! Publishing a composed report to GitHub, after the local evidence is written: one comment per
//! drill on a tracking issue (updated in place when the drill reports again), an issue when the
//! drill failed, one issue per action item (never twice for the same item).

use crate::github::{Client, CommentOutcome, Error, IssueRef};
use crate::report::compose::Report;

/// Where the report goes on GitHub.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    /// Comment on this issue.
    pub issue: Option<u64>,
    /// Comment on the open issue with this title (created when missing).
    pub issue_title: Option<String>,
    /// When the drill failed, open (or reuse) "DR drill failed: SCENARIO" and comment there.
    pub open_issue_on_failure: bool,
    /// One issue per action item.
    pub file_action_items: bool,
}

impl Targets {
    /// The flag that asked for GitHub, if any (for the error when the token is missing).
    pub fn flag(&self) -> Option<&'static str> {
        if self.issue.is_some() {
            Some("--github-issue")
        } else if self.issue_title.is_some() {
            Some("--github-issue-title")
        } else if self.open_issue_on_failure {
            Some("--open-issue-on-failure")
        } else if self.file_action_items {
            Some("--file-action-items")
        } else {
            None
        }
    }
}

/// What was done on GitHub.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Published {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue: Option<IssueRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<CommentOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_issue: Option<IssueRef>,
    /// Each action item's issue, with the item.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub action_items: Vec<FiledItem>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct FiledItem {
    #[serde(flatten)]
    pub issue: IssueRef,
    pub item: String,
}

/// Hidden marker of an action item's issue: a hash of its stable key.
pub fn action_item_marker(key: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(key.as_bytes());
    format!("<!-- drillkit:action-item={} -->", &hex::encode(h)[..16])
}

/// Comment, open issues, file action items. The first GitHub failure ends it (the local files
/// are already written).
pub async fn publish(client: &Client, t: &Targets, r: &Report) -> Result<Published, Error> {
    let mut out = Published::default();
    let Some(first) = r.measurements.first() else {
        return Ok(out);
    };
    let scenario = first.scenario.clone().unwrap_or_else(|| first.name.clone());
    let key = crate::report::markdown::marker_key(first);

    let target = if let Some(n) = t.issue {
        Some(n)
    } else if let Some(title) = &t.issue_title {
        let body = format!(
            "Tracking issue for disaster-recovery drills. drillkit comments each drill's report here (one comment per drill).\n\nFirst drill: `{scenario}`."
        );
        let i = client.find_or_create_issue(title, &body, &[]).await?;
        let n = i.number;
        out.issue = Some(i);
        Some(n)
    } else {
        None
    };
    if let Some(n) = target {
        out.comment = Some(client.upsert_comment(n, &key, &r.markdown).await?);
    }
    if t.open_issue_on_failure && !r.passed() {
        let title = format!("DR drill failed: {scenario}");
        let summary: Vec<String> = r.problems().iter().map(|p| format!("- {p}")).collect();
        let body = format!(
            "The drill `{scenario}` failed.\n\n{}\n\nThe full report is in the comments below{}.",
            summary.join("\n"),
            client
                .env()
                .run_url()
                .map(|u| format!(" and in [the workflow run]({u})"))
                .unwrap_or_default()
        );
        let i = client.find_or_create_issue(&title, &body, &[]).await?;
        if target != Some(i.number) {
            client.upsert_comment(i.number, &key, &r.markdown).await?;
        }
        out.failure_issue = Some(i);
    }
    if t.file_action_items {
        for m in &r.measurements {
            for item in crate::report::action_items(m) {
                let marker = action_item_marker(&item.key);
                let title = format!(
                    "DR action item: {} ({})",
                    crate::report::problem_key(item.item.trim_start_matches("Investigate: ")),
                    m.scenario.as_deref().unwrap_or(&m.name)
                );
                let body = format!(
                    "| Item | Owner | Due Date | Priority |\n|------|-------|----------|----------|\n| {} | {} | {} | {} |\n\nFrom drill `{}` ({}){}.",
                    item.item.replace('|', "\\|"),
                    item.owner,
                    item.due,
                    item.priority,
                    m.drill,
                    m.scenario.as_deref().unwrap_or(&m.name),
                    client
                        .env()
                        .run_url()
                        .map(|u| format!(", [workflow run]({u})"))
                        .unwrap_or_default()
                );
                let i = client
                    .file_action_item(&title, &marker, &crate::redact::redact(&body))
                    .await?;
                out.action_items.push(FiledItem {
                    issue: i,
                    item: item.item,
                });
            }
        }
    }
    Ok(out)
}
