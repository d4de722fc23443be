//! `report`: the journal as JUnit XML, the runbook's post-drill report in Markdown, the Actions
//! step summary and outputs — and, after all of that is written locally, the GitHub side: one
//! comment per drill on a tracking issue, an issue on failure, one issue per action item.
//! `report tabletop SCENARIO` renders a tabletop exercise (runbook §1). Read-only on the journal.

use super::common::{self, say, Common};
use crate::exit::{Code, Failure};
use crate::journal;
use crate::measure::Measurement;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "Examples:
  report --junit .drill/junit.xml --markdown .drill/report.md
  report --github-summary                  # append to the Actions step summary
  report --github-issue 42                 # comment on issue 42 (updated when the drill reports again)
  report --github-issue-title 'DR drills' --open-issue-on-failure --file-action-items
  report --merge-junit smoke.xml --junit .drill/junit.xml   # fold pytest/nextest results in
  report --history artifacts/ --markdown .drill/report.md   # RTO/RPO trend per scenario
  report tabletop scenarios/tabletop-database-corruption.yaml --open-issue
  report                                   # Markdown on stdout";

#[derive(Parser, Debug)]
#[command(name = "report", version, about = "Turn the drill journal into JUnit XML, a post-drill report and GitHub comments.", after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub args: ReportArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Render a tabletop exercise (runbook §1) as Markdown or as a GitHub issue.
    Tabletop(TabletopArgs),
}

#[derive(Args, Debug, Default)]
pub struct ReportArgs {
    /// Write JUnit XML here (one <testsuite> per drill, plus merged suites).
    #[arg(long, value_name = "FILE", env = "DRILL_JUNIT")]
    pub junit: Option<PathBuf>,
    /// Write the Markdown report here.
    #[arg(long, value_name = "FILE", env = "DRILL_MARKDOWN")]
    pub markdown: Option<PathBuf>,
    /// Write the measurements as JSON here (for trends).
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
    /// Append the report to $GITHUB_STEP_SUMMARY.
    #[arg(long)]
    pub github_summary: bool,
    /// Report this drill (default: the journal's current one).
    #[arg(long, env = "DRILL_ID", conflicts_with = "all")]
    pub drill: Option<String>,
    /// Report every drill in the journal.
    #[arg(long)]
    pub all: bool,
    /// Fold this JUnit file (pytest, nextest…) into the JUnit and the report; repeatable.
    #[arg(long, value_name = "FILE")]
    pub merge_junit: Vec<PathBuf>,
    /// Folder of earlier drills' summary.json files (e.g. downloaded artifacts): add trends.
    #[arg(long, value_name = "DIR")]
    pub history: Option<PathBuf>,
    /// Comment the report on this issue; a later report of the same drill updates that comment.
    #[arg(
        long,
        value_name = "N",
        env = "DRILL_GITHUB_ISSUE",
        help_heading = "GitHub",
        conflicts_with = "github_issue_title"
    )]
    pub github_issue: Option<u64>,
    /// Comment on the open issue with this title (created with label dr-drill when missing).
    #[arg(
        long,
        value_name = "TITLE",
        env = "DRILL_GITHUB_ISSUE_TITLE",
        help_heading = "GitHub"
    )]
    pub github_issue_title: Option<String>,
    /// When the drill failed, open (or reuse) the issue "DR drill failed: SCENARIO" and comment there.
    #[arg(long, help_heading = "GitHub")]
    pub open_issue_on_failure: bool,
    /// Open one issue per action item (never twice for the same item).
    #[arg(long, help_heading = "GitHub")]
    pub file_action_items: bool,
}

#[derive(Args, Debug)]
pub struct TabletopArgs {
    /// The scenario file with a `tabletop:` block.
    pub scenario: PathBuf,
    /// Write the Markdown here (default: stdout, unless --open-issue).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Open the exercise as a GitHub issue (reused when one with the title is open).
    #[arg(long)]
    pub open_issue: bool,
    /// The issue title and heading (default: "DR tabletop exercise YYYY-Qn: NAME").
    #[arg(long, value_name = "TITLE")]
    pub title: Option<String>,
    /// The date the quarter is taken from (default: today, UTC).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<String>,
}

pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let v = cli.common.verbose;
    common::main("report", v, |_cancel| run(cli))
}

async fn run(cli: Cli) -> Result<Code, Failure> {
    // The token must not reach any file we write, even if it somehow sits in the journal.
    if let Ok(t) = std::env::var("GITHUB_TOKEN") {
        crate::cli::actions::add_mask(t.trim());
    }
    match cli.command {
        Some(Command::Tabletop(t)) => tabletop(&cli.common, t).await,
        None => report(&cli.common, cli.args).await,
    }
}

fn wants_github(a: &ReportArgs) -> Option<&'static str> {
    if a.github_issue.is_some() {
        Some("--github-issue")
    } else if a.github_issue_title.is_some() {
        Some("--github-issue-title")
    } else if a.open_issue_on_failure {
        Some("--open-issue-on-failure")
    } else if a.file_action_items {
        Some("--file-action-items")
    } else {
        None
    }
}

async fn report(common: &Common, a: ReportArgs) -> Result<Code, Failure> {
    let path = common.journal_path();
    let contents = journal::read(&path)?;
    journal::warn_damage(&path, &contents);
    let ids: Vec<String> = if a.all {
        contents.drill_ids()
    } else {
        match a.drill.clone().or_else(|| contents.current_drill()) {
            Some(d) => vec![d],
            None => vec![],
        }
    };
    if ids.is_empty() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "{}: the journal has no drill (give --journal)",
            path.display()
        )));
    }
    if let Some(t) = &a.github_issue_title {
        if t.trim().is_empty() {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "--github-issue-title must not be empty"
            )));
        }
    }
    // Inputs are checked before anything is written.
    let mut merged = Vec::new();
    for f in &a.merge_junit {
        merged.push(crate::report::merge::read(f).map_err(|e| {
            Failure::bad_input(anyhow::anyhow!("--merge-junit {}: {e}", f.display()))
        })?);
    }
    let history = match &a.history {
        None => None,
        Some(dir) => {
            let (points, warnings) = crate::trends::load(dir).map_err(|e| {
                Failure::bad_input(anyhow::anyhow!("--history {}: {e}", dir.display()))
            })?;
            for w in warnings {
                say(&format!("--history: {w}"));
            }
            Some(points)
        }
    };

    let mut measurements: Vec<Measurement> = ids
        .iter()
        .map(|id| crate::measure::measure(id, &contents.drill(id), &Default::default()))
        .collect();
    if measurements.iter().any(|m| m.started_at.is_none()) {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "a requested drill is not in {}",
            path.display()
        )));
    }
    // Failing smoke tests are problems of the drill being reported (the last one).
    let smoke_problems = crate::report::merge::problems(&merged);
    if let Some(m) = measurements.last_mut() {
        if !smoke_problems.is_empty() {
            m.problems.extend(smoke_problems.iter().cloned());
            m.passed = false;
        }
    }

    let run_url = crate::github::run_url_from_env();
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
    if let Some(u) = &run_url {
        markdown.push_str(&format!("\n---\n[Workflow run]({u})\n"));
    }
    let markdown = crate::redact::redact(&markdown);

    // 1. Local evidence first: nothing below may lose it.
    let mut wrote = false;
    if let Some(f) = &a.junit {
        let extra: Vec<_> = merged.iter().flat_map(|m| m.suites.clone()).collect();
        let xml = crate::report::junit::report(&measurements, extra)
            .to_string()
            .map_err(|e| Failure::env(anyhow::anyhow!("cannot serialize JUnit: {e}")))?;
        write(f, &crate::redact::redact(&xml))?;
        say(&format!("JUnit written to {}", f.display()));
        wrote = true;
    }
    if let Some(f) = &a.markdown {
        write(f, &markdown)?;
        say(&format!("report written to {}", f.display()));
        wrote = true;
    }
    if let Some(f) = &a.summary_json {
        let v = serde_json::to_string_pretty(&measurements)
            .map_err(|e| Failure::env(anyhow::anyhow!("{e}")))?;
        write(f, &crate::redact::redact(&v))?;
        wrote = true;
    }
    if a.github_summary {
        if crate::cli::actions::append_summary(&markdown)? {
            say("report appended to the step summary");
        } else {
            say("--github-summary: GITHUB_STEP_SUMMARY is not set (not running under GitHub Actions); skipped");
        }
        wrote = true;
    }
    let passed = measurements.iter().all(|m| m.passed);
    for m in &measurements {
        for p in &m.problems {
            crate::cli::actions::error_annotation(&format!("{}: {p}", m.name));
        }
    }
    for r in &regressions {
        crate::cli::actions::warning_annotation(&format!(
            "{} regression: {} now, median {}",
            r.metric,
            crate::units::fmt_duration(r.current),
            crate::units::fmt_duration(r.median)
        ));
    }
    let last = measurements.last();
    let num = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
    let problems: Vec<String> = measurements
        .iter()
        .flat_map(|m| m.problems.clone())
        .collect();
    crate::cli::actions::set_outputs(&[
        (
            "result",
            if passed { "passed" } else { "failed" }.to_string(),
        ),
        ("rto-seconds", num(last.and_then(|m| m.rto_seconds))),
        (
            "rpo-seconds",
            num(last.and_then(|m| m.rpo.as_ref().map(|r| r.rpo_seconds))),
        ),
        (
            "report-path",
            a.markdown
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        ("problems", crate::redact::redact(&problems.join("\n"))),
    ])?;

    // 2. GitHub, after the local files exist.
    let mut github = serde_json::Value::Null;
    if let Some(flag) = wants_github(&a) {
        github = publish(&a, flag, &measurements, &markdown, passed).await?;
    }

    if common.json {
        let mut v = serde_json::to_value(&measurements)
            .map_err(|e| Failure::env(anyhow::anyhow!("{e}")))?;
        if !github.is_null() {
            v = serde_json::json!({ "measurements": v, "github": github });
        }
        common::print_json(&v);
    } else if !wrote && github.is_null() {
        use std::io::Write;
        let _ = std::io::stdout().write_all(markdown.as_bytes());
    }
    Ok(Code::Ok)
}

/// Comment, open issues, file action items. Exit 3 on any GitHub failure (the local files are
/// already written).
async fn publish(
    a: &ReportArgs,
    flag: &str,
    measurements: &[Measurement],
    markdown: &str,
    passed: bool,
) -> Result<serde_json::Value, Failure> {
    let env = crate::github::Env::from_env(flag)?;
    let client = crate::github::Client::new(env)?;
    let Some(first) = measurements.first() else {
        return Ok(serde_json::Value::Null);
    };
    let scenario = first.scenario.clone().unwrap_or_else(|| first.name.clone());
    let key = crate::report::markdown::marker_key(first);
    let mut out = serde_json::Map::new();
    let mut commented_on = None;

    let target = if let Some(n) = a.github_issue {
        Some(n)
    } else if let Some(t) = &a.github_issue_title {
        let body = format!(
            "Tracking issue for disaster-recovery drills. drillkit comments each drill's report here (one comment per drill).\n\nFirst drill: `{scenario}`."
        );
        let i = client.find_or_create_issue(t, &body, &[]).await?;
        say(&format!(
            "issue #{} {} ({t})",
            i.number,
            if i.created { "created" } else { "found" }
        ));
        out.insert("issue".into(), serde_json::to_value(&i).unwrap_or_default());
        Some(i.number)
    } else {
        None
    };
    if let Some(n) = target {
        let c = client.upsert_comment(n, &key, markdown).await?;
        say(&format!(
            "report comment {} on issue #{n}{}",
            c.action,
            c.url.as_ref().map(|u| format!(": {u}")).unwrap_or_default()
        ));
        set_output("comment-url", c.url.clone().unwrap_or_default())?;
        out.insert(
            "comment".into(),
            serde_json::to_value(&c).unwrap_or_default(),
        );
        commented_on = Some(n);
    }
    if a.open_issue_on_failure && !passed {
        let title = format!("DR drill failed: {scenario}");
        let summary: Vec<String> = measurements
            .iter()
            .flat_map(|m| m.problems.iter().map(|p| format!("- {p}")))
            .collect();
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
        say(&format!(
            "failure issue #{} {}",
            i.number,
            if i.created { "opened" } else { "found" }
        ));
        if commented_on != Some(i.number) {
            client.upsert_comment(i.number, &key, markdown).await?;
        }
        out.insert(
            "failure_issue".into(),
            serde_json::to_value(&i).unwrap_or_default(),
        );
    }
    if a.file_action_items {
        let mut filed = Vec::new();
        for m in measurements {
            for item in crate::report::action_items(m) {
                let marker = action_item_marker(&item.key);
                let title = format!(
                    "DR action item: {}",
                    crate::report::problem_key(item.item.trim_start_matches("Investigate: "))
                );
                let title = format!("{title} ({})", m.scenario.as_deref().unwrap_or(&m.name));
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
                say(&format!(
                    "action item #{} {}: {}",
                    i.number,
                    if i.created { "filed" } else { "already filed" },
                    item.item
                ));
                filed.push(serde_json::to_value(&i).unwrap_or_default());
            }
        }
        out.insert("action_items".into(), serde_json::Value::Array(filed));
    }
    Ok(serde_json::Value::Object(out))
}

/// Hidden marker of an action item's issue: a hash of its stable key.
pub fn action_item_marker(key: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(key.as_bytes());
    format!("<!-- drillkit:action-item={} -->", &hex::encode(h)[..16])
}

fn set_output(name: &str, value: String) -> Result<(), Failure> {
    crate::cli::actions::set_outputs(&[(name, value)])?;
    Ok(())
}

async fn tabletop(common: &Common, t: TabletopArgs) -> Result<Code, Failure> {
    let s = crate::scenario::load(&t.scenario)?;
    let date = match &t.date {
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|e| {
            Failure::bad_input(anyhow::anyhow!("--date {d}: expected YYYY-MM-DD ({e})"))
        })?,
        None => chrono::Utc::now().date_naive(),
    };
    if s.tabletop.is_none() {
        say(&format!(
            "{}: no `tabletop:` block; rendering the runbook's default agenda",
            t.scenario.display()
        ));
    }
    let title = t
        .title
        .clone()
        .unwrap_or_else(|| crate::tabletop::title(&s, date));
    let md = crate::tabletop::render(&s, &title);
    if let Some(f) = &t.markdown {
        write(f, &md)?;
        say(&format!("tabletop exercise written to {}", f.display()));
    }
    let mut issue = None;
    if t.open_issue {
        let env = crate::github::Env::from_env("--open-issue")?;
        let client = crate::github::Client::new(env)?;
        let i = client
            .find_or_create_issue(&title, &md, &["dr-tabletop"])
            .await?;
        say(&format!(
            "tabletop issue #{} {}{}",
            i.number,
            if i.created { "opened" } else { "already open" },
            i.url.as_ref().map(|u| format!(": {u}")).unwrap_or_default()
        ));
        set_output("issue-number", i.number.to_string())?;
        issue = Some(i);
    }
    if common.json {
        common::print_json(&serde_json::json!({
            "title": title,
            "markdown": md,
            "issue": issue,
        }));
    } else if t.markdown.is_none() && !t.open_issue {
        use std::io::Write;
        let _ = std::io::stdout().write_all(md.as_bytes());
    }
    Ok(Code::Ok)
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d)
            .map_err(|e| Failure::env(anyhow::anyhow!("cannot create {}: {e}", d.display())))?;
    }
    std::fs::write(path, text)
        .map_err(|e| Failure::env(anyhow::anyhow!("cannot write {}: {e}", path.display())))
}
