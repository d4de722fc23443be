//! `report`: the journal as JUnit XML, the runbook's post-drill report in Markdown, the Actions
//! step summary and outputs — and, after all of that is written locally, the GitHub side: one
//! comment per drill on a tracking issue, an issue on failure, one issue per action item.
//! `report tabletop SCENARIO` renders a tabletop exercise (runbook §1). Read-only on the journal.

use super::common::{self, say, Common};
use crate::exit::{Code, Failure};
use crate::journal;
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
#[command(name = "report", version = super::common::version(), about = "Turn the drill journal into JUnit XML, a post-drill report and GitHub comments.", after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
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
    /// The drill could not run (or stopped) with this error: report it as an error — a JUnit
    /// <error> test case, the step summary, the comment — even when the journal has no drill.
    #[arg(long, value_name = "MESSAGE", help_heading = "Errors")]
    pub could_not_run: Option<String>,
    /// The scenario that could not run (names the report when the journal has no drill).
    #[arg(long, value_name = "FILE", help_heading = "Errors")]
    pub scenario: Option<PathBuf>,
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

impl ReportArgs {
    fn targets(&self) -> crate::report::publish::Targets {
        crate::report::publish::Targets {
            issue: self.github_issue,
            issue_title: self.github_issue_title.clone(),
            open_issue_on_failure: self.open_issue_on_failure,
            file_action_items: self.file_action_items,
        }
    }
}

async fn report(common: &Common, a: ReportArgs) -> Result<Code, Failure> {
    use crate::report::compose::{compose, Drills, Inputs};
    let path = common.journal_path();
    let contents = journal::read(&path)?;
    journal::warn_damage(&path, &contents);
    if let Some(t) = &a.github_issue_title {
        if t.trim().is_empty() {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "--github-issue-title must not be empty"
            )));
        }
    }
    let inputs = Inputs {
        drills: match (&a.drill, a.all) {
            (_, true) => Drills::All,
            (Some(d), false) => Drills::One(d.clone()),
            (None, false) => Drills::Current,
        },
        merge_junit: a.merge_junit.clone(),
        history: a.history.clone(),
        run_url: crate::github::run_url_from_env(),
        error: a.could_not_run.clone().filter(|e| !e.trim().is_empty()),
        scenario: a.scenario.clone(),
    };
    // Inputs are checked before anything is written.
    let r = compose(&contents, &path, &inputs)?;
    for w in &r.warnings {
        say(&format!("--history: {w}"));
    }

    // 1. Local evidence first: nothing below may lose it.
    let mut wrote = false;
    if let Some(f) = &a.junit {
        write(f, &r.junit_xml()?)?;
        say(&format!("JUnit written to {}", f.display()));
        wrote = true;
    }
    if let Some(f) = &a.markdown {
        write(f, &r.markdown)?;
        say(&format!("report written to {}", f.display()));
        wrote = true;
    }
    if let Some(f) = &a.summary_json {
        write(f, &r.summary_json()?)?;
        wrote = true;
    }
    if a.github_summary {
        if crate::cli::actions::append_summary(&r.markdown)? {
            say("report appended to the step summary");
        } else {
            say("--github-summary: GITHUB_STEP_SUMMARY is not set (not running under GitHub Actions); skipped");
        }
        wrote = true;
    }
    for m in &r.measurements {
        for p in &m.problems {
            crate::cli::actions::error_annotation(&format!("{}: {p}", m.name));
        }
    }
    for g in &r.regressions {
        crate::cli::actions::warning_annotation(&format!(
            "{} regression: {} now, median {}",
            g.metric,
            crate::units::fmt_duration(g.current),
            crate::units::fmt_duration(g.median)
        ));
    }
    let last = r.measurements.last();
    let num = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
    crate::cli::actions::set_outputs(&[
        ("result", r.result().to_string()),
        (
            "drill-id",
            last.map(|m| m.drill.clone()).unwrap_or_default(),
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
        ("problems", crate::redact::redact(&r.problems().join("\n"))),
    ])?;

    // 2. GitHub, after the local files exist.
    let targets = a.targets();
    let mut github = None;
    if let Some(flag) = targets.flag() {
        let client = crate::github::Client::new(crate::github::Env::from_env(flag)?)?
            .with_observer(common::printer());
        let p = crate::report::publish::publish(&client, &targets, &r).await?;
        tell_published(&p, &targets);
        if let Some(c) = &p.comment {
            set_output("comment-url", c.url.clone().unwrap_or_default())?;
        }
        github = Some(p);
    }

    if common.json {
        let mut v = serde_json::to_value(&r.measurements)
            .map_err(|e| Failure::env(anyhow::anyhow!("{e}")))?;
        if let Some(p) = &github {
            v = serde_json::json!({ "measurements": v, "github": p });
        }
        common::print_json(&v);
    } else if !wrote && github.is_none() {
        use std::io::Write;
        let _ = std::io::stdout().write_all(r.markdown.as_bytes());
    }
    Ok(Code::Ok)
}

/// One line per thing done on GitHub.
fn tell_published(p: &crate::report::publish::Published, t: &crate::report::publish::Targets) {
    if let (Some(i), Some(title)) = (&p.issue, &t.issue_title) {
        say(&format!(
            "issue #{} {} ({title})",
            i.number,
            if i.created { "created" } else { "found" }
        ));
    }
    if let Some(c) = &p.comment {
        say(&format!(
            "report comment {} on issue #{}{}",
            c.action,
            c.issue,
            c.url.as_ref().map(|u| format!(": {u}")).unwrap_or_default()
        ));
    }
    if let Some(i) = &p.failure_issue {
        say(&format!(
            "failure issue #{} {}",
            i.number,
            if i.created { "opened" } else { "found" }
        ));
    }
    for f in &p.action_items {
        say(&format!(
            "action item #{} {}: {}",
            f.issue.number,
            if f.issue.created {
                "filed"
            } else {
                "already filed"
            },
            f.item
        ));
    }
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
        let client = crate::github::Client::new(crate::github::Env::from_env("--open-issue")?)?
            .with_observer(common::printer());
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
