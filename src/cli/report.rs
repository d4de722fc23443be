//! `report`: the journal as JUnit XML, the runbook's post-drill report in Markdown, the Actions
//! step summary. Read-only.

use super::common::{self, say, Common};
use crate::exit::{Code, Failure};
use crate::journal;
use crate::measure::Measurement;
use clap::Parser;
use std::path::PathBuf;

const EXAMPLES: &str = "Examples:
  report --junit .drill/junit.xml --markdown .drill/report.md
  report --github-summary                  # append to the Actions step summary
  report                                   # Markdown on stdout";

#[derive(Parser, Debug)]
#[command(name = "report", version, about = "Turn the drill journal into JUnit XML and a post-drill report.", after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    /// Write JUnit XML here (one <testsuite> per drill).
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
}

pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let v = cli.common.verbose;
    common::main("report", v, || run(cli))
}

async fn run(cli: Cli) -> Result<Code, Failure> {
    let path = cli.common.journal_path();
    let contents = journal::read(&path)?;
    journal::warn_damage(&path, &contents);
    let ids: Vec<String> = if cli.all {
        contents.drill_ids()
    } else {
        match cli.drill.clone().or_else(|| contents.current_drill()) {
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
    let measurements: Vec<Measurement> = ids
        .iter()
        .map(|id| crate::measure::measure(id, &contents.drill(id), &Default::default()))
        .collect();
    if measurements.iter().any(|m| m.started_at.is_none()) {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "a requested drill is not in {}",
            path.display()
        )));
    }
    let markdown: String = measurements
        .iter()
        .map(crate::report::markdown::render)
        .collect::<Vec<_>>()
        .join("\n---\n\n");
    let mut wrote = false;
    if let Some(f) = &cli.junit {
        let xml = crate::report::junit::report(&measurements, vec![])
            .to_string()
            .map_err(|e| Failure::env(anyhow::anyhow!("cannot serialize JUnit: {e}")))?;
        write(f, &xml)?;
        say(&format!("JUnit written to {}", f.display()));
        wrote = true;
    }
    if let Some(f) = &cli.markdown {
        write(f, &markdown)?;
        say(&format!("report written to {}", f.display()));
        wrote = true;
    }
    if let Some(f) = &cli.summary_json {
        let v = serde_json::to_string_pretty(&measurements)
            .map_err(|e| Failure::env(anyhow::anyhow!("{e}")))?;
        write(f, &crate::redact::redact(&v))?;
        wrote = true;
    }
    if cli.github_summary {
        if crate::actions::append_summary(&markdown)? {
            say("report appended to the step summary");
        } else {
            say("--github-summary: GITHUB_STEP_SUMMARY is not set (not running under GitHub Actions); skipped");
        }
        wrote = true;
    }
    if cli.common.json {
        common::print_json(
            &serde_json::to_value(&measurements)
                .map_err(|e| Failure::env(anyhow::anyhow!("{e}")))?,
        );
    } else if !wrote {
        use std::io::Write;
        let _ = std::io::stdout().write_all(markdown.as_bytes());
    }
    Ok(Code::Ok)
}

fn write(path: &std::path::Path, text: &str) -> Result<(), Failure> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d)
            .map_err(|e| Failure::env(anyhow::anyhow!("cannot create {}: {e}", d.display())))?;
    }
    std::fs::write(path, text)
        .map_err(|e| Failure::env(anyhow::anyhow!("cannot write {}: {e}", path.display())))
}
