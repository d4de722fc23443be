//! `drill`: run, validate or plan a whole scenario file.

use super::common::{self, say, Common};
use crate::exit::{Code, Failure};
use crate::units::Dur;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

const EXAMPLES: &str = "Examples:
  drill run scenarios/demo.yaml                 # a complete drill, no Docker needed
  drill run --negative-control scenarios/demo.yaml  # prove the drill can fail (a planted defect)
  drill validate scenarios/*.yaml               # file:line:column for every mistake
  drill plan scenarios/api-service-failure.yaml # the steps, touching nothing";

#[derive(Parser, Debug)]
#[command(name = "drill", version = super::common::version(), about = "Run a disaster-recovery drill from a scenario file.", after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the scenario: preflight, faults, recovery, restore, measure, report into --out.
    Run {
        scenario: PathBuf,
        /// Where report.md, junit.xml and summary.json go (the journal too, unless --journal).
        #[arg(long, default_value = ".drill", env = "DRILL_OUT")]
        out: PathBuf,
        /// Where this runs, besides the scenario's `environment:`; production (or prod) is
        /// refused without --allow-production.
        #[arg(long, value_name = "NAME", env = "DRILL_ENVIRONMENT")]
        environment: Option<String>,
        /// Allow `environment: production`.
        #[arg(long, env = "DRILL_ALLOW_PRODUCTION")]
        allow_production: bool,
        /// Only targets carrying this label may be touched, KEY=VALUE (repeatable, or
        /// comma-separated; added to the scenario's `safety.require_label`).
        #[arg(
            long,
            value_name = "KEY=VALUE",
            env = "DRILL_REQUIRE_LABEL",
            value_delimiter = ','
        )]
        require_label: Vec<String>,
        /// Run with one planted defect the drill must catch; exit 0 only if the drill failed
        /// with the expected finding. KIND: dead-port (recovery probes pointed at a port nothing
        /// answers), unreverted-fault (the drill's own reverts skipped), flipped-byte (a restore
        /// step's `backup:` replaced by a copy with one flipped byte); default: the one that fits.
        #[arg(
            long,
            value_name = "KIND",
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "auto",
            value_parser = parse_negative,
            env = "DRILL_NEGATIVE_CONTROL"
        )]
        negative_control: Option<Negative>,
        /// The socket path on a Docker engine's host that reaper containers (the dead-man's
        /// switch of container faults) mount (default: a local engine's own socket, else
        /// /var/run/docker.sock).
        #[arg(long, value_name = "PATH", env = "DRILL_REAPER_SOCKET")]
        reaper_socket: Option<PathBuf>,
    },
    /// Check scenario files; exit 2 with file:line:column on the first mistake in each.
    Validate {
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Print the steps a run would take; touch nothing.
    Plan { scenario: PathBuf },
    /// Which scenario the runbook's monthly schedule runs in the week of a date (prints its
    /// path; sets the `scenario` output under Actions).
    Schedule {
        /// The date (default: today, UTC).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
        /// The schedule file.
        #[arg(
            long,
            default_value = "scenarios/schedule.yaml",
            env = "DRILL_SCHEDULE"
        )]
        file: PathBuf,
    },
    /// A tiny HTTP service under a supervisor that restarts it after it dies (like a restart
    /// policy), to try drillkit on a machine with no Docker. Used by scenarios/demo.yaml.
    DemoService {
        /// Address to serve on.
        #[arg(long)]
        listen: String,
        /// Where the worker writes its pid (the target of `inject-fault crash --pidfile`).
        #[arg(long)]
        pidfile: PathBuf,
        /// How long the supervisor waits before restarting a dead worker.
        #[arg(long, default_value = "1s")]
        restart_delay: Dur,
        /// Run as the worker itself (the supervisor starts it this way).
        #[arg(long, hide = true)]
        worker: bool,
    },
    /// The dead-man's switch of one fault (started detached by the runner).
    #[command(name = "__reap", hide = true)]
    Reap(super::inject_fault::ReapArgs),
}

pub fn main() -> std::process::ExitCode {
    if let Some(code) = common::helper_mode() {
        return code;
    }
    let cli = Cli::parse();
    let v = cli.common.verbose;
    common::main("drill", v, |cancel| run(cli, cancel))
}

async fn run(cli: Cli, cancel: CancellationToken) -> Result<Code, Failure> {
    match cli.command {
        Command::Run {
            scenario,
            out,
            environment,
            allow_production,
            require_label,
            negative_control,
            reaper_socket,
        } => {
            let s = crate::scenario::load(&scenario)?;
            let engines = engines(&cli.common, &s)?;
            let journal = cli
                .common
                .journal
                .clone()
                .unwrap_or_else(|| out.join("journal.jsonl"));
            let finished = crate::drill::run(
                s,
                &scenario,
                crate::drill::RunOptions {
                    out_dir: out,
                    journal,
                    allow_production,
                    environment,
                    require_label: require_label
                        .into_iter()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| l.trim().to_string())
                        .collect(),
                    negative_control: matches!(negative_control, Some(Negative::On(_))),
                    negative_defect: match negative_control {
                        Some(Negative::On(d)) => d,
                        _ => None,
                    },
                    reaper_socket,
                    engines,
                },
                &cancel,
                common::printer(),
            )
            .await?;
            print_summary(&finished.measurement, &finished.outputs);
            Ok(finished.code)
        }
        Command::Validate { scenarios } => {
            let mut bad = 0;
            for f in &scenarios {
                // `drill validate scenarios/*.yaml` also meets the schedule: check it as one.
                let text = std::fs::read_to_string(f).unwrap_or_default();
                if crate::schedule::looks_like_schedule(&text) {
                    match crate::schedule::load(f) {
                        Ok(sched) => say(&schedule_line(f, &sched)),
                        Err(e) => {
                            bad += 1;
                            say(&e);
                        }
                    }
                    continue;
                }
                match crate::scenario::load(f) {
                    Ok(s) => say(&format!(
                        "{}: ok ({}: {} fault(s), {} recovery probe(s))",
                        f.display(),
                        s.name,
                        s.faults.len(),
                        s.recovery.as_ref().map(|r| r.probes.len()).unwrap_or(0)
                    )),
                    Err(e) => {
                        bad += 1;
                        say(&format!("{:#}", e.error));
                    }
                }
            }
            if bad > 0 {
                return Err(Failure::bad_input(anyhow::anyhow!(
                    "{bad} of {} scenario file(s) are invalid",
                    scenarios.len()
                )));
            }
            Ok(Code::Ok)
        }
        Command::Plan { scenario } => {
            let s = crate::scenario::load(&scenario)?;
            let lines = crate::drill::plan_lines(&s, &engines(&cli.common, &s)?);
            if cli.common.json {
                common::print_json(&serde_json::json!({"scenario": s.name, "steps": lines}));
            } else {
                println!("plan for {} ({}):", s.name, scenario.display());
                for (i, l) in lines.iter().enumerate() {
                    println!("{:>3}. {}", i + 1, crate::redact::redact(l));
                }
            }
            Ok(Code::Ok)
        }
        Command::Schedule { date, file } => schedule(&cli.common, date, &file),
        Command::Reap(r) => super::inject_fault::reap(r, &cancel).await,
        Command::DemoService {
            listen,
            pidfile,
            restart_delay,
            worker,
        } => {
            let r = if worker {
                crate::demo::worker(&listen, &pidfile).await
            } else {
                let exe = std::env::current_exe()?;
                crate::demo::supervise(&exe, &listen, &pidfile, restart_delay.0, &cancel).await
            };
            r.map_err(|e| Failure::env(anyhow::anyhow!("demo service on {listen}: {e}")))?;
            Ok(Code::Ok)
        }
    }
}

/// `--negative-control[=KIND]` (also `DRILL_NEGATIVE_CONTROL=true|false|KIND`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Negative {
    Off,
    /// The defect asked for, or None: the one that fits the scenario.
    On(Option<crate::negative::Defect>),
}

fn parse_negative(s: &str) -> Result<Negative, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "auto" | "true" | "1" | "yes" | "on" => Ok(Negative::On(None)),
        "false" | "0" | "no" | "off" => Ok(Negative::Off),
        other => crate::negative::Defect::parse(other)
            .map(|d| Negative::On(Some(d)))
            .ok_or_else(|| {
                format!(
                    "'{other}': expected one of auto, {}",
                    crate::negative::Defect::ALL.map(|d| d.as_str()).join(", ")
                )
            }),
    }
}

fn schedule(
    common: &Common,
    date: Option<String>,
    file: &std::path::Path,
) -> Result<Code, Failure> {
    let date = match &date {
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|e| {
            Failure::bad_input(anyhow::anyhow!("--date {d}: expected YYYY-MM-DD ({e})"))
        })?,
        None => chrono::Utc::now().date_naive(),
    };
    let sched = crate::schedule::load(file)
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("--file: {e}")))?;
    let base = file.parent().unwrap_or(std::path::Path::new(""));
    let pick = sched
        .pick(date, base)
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("{}: {e}", file.display())))?;
    say(&format!(
        "{}: week {} of the month → {} ({})",
        pick.date, pick.week, pick.name, pick.scenario
    ));
    if !pick.exists {
        say(&format!(
            "warning: {} does not exist (yet); the drill cannot run until it does",
            pick.scenario
        ));
        crate::cli::actions::warning_annotation(&format!(
            "scheduled scenario {} does not exist",
            pick.scenario
        ));
    }
    crate::cli::actions::set_outputs(&[
        ("scenario", pick.scenario.clone()),
        ("name", pick.name.clone()),
        ("week", pick.week.to_string()),
        ("exists", pick.exists.to_string()),
    ])?;
    if common.json {
        common::print_json(
            &serde_json::to_value(&pick).map_err(|e| Failure::env(anyhow::anyhow!("{e}")))?,
        );
    } else {
        println!("{}", pick.scenario);
    }
    Ok(Code::Ok)
}

/// `drill validate`'s line for a schedule file: what it names, and which of those are missing.
fn schedule_line(f: &Path, sched: &crate::schedule::Schedule) -> String {
    let base = f.parent().unwrap_or(Path::new("."));
    let files = sched.files();
    let missing: Vec<&str> = files
        .iter()
        .copied()
        .filter(|n| !base.join(n).exists())
        .collect();
    let mut line = format!(
        "{}: ok (schedule: {} scenario file(s) named",
        f.display(),
        files.len()
    );
    if missing.is_empty() {
        line.push_str(", all present)");
    } else {
        line.push_str(&format!(
            "; missing, `drill schedule` will warn when it picks them: {})",
            missing.join(", ")
        ));
    }
    line
}

/// The end of `drill run`: the verdict, the runbook's own recovery line with a measured
/// number, the objectives and problems, and where the evidence is.
fn print_summary(m: &crate::measure::Measurement, out: &crate::drill::Outputs) {
    say(&format!("drill {} {}", m.name, m.verdict.to_uppercase()));
    if let Some(a) = &m.aborted {
        say(&format!(
            "  aborted by stop condition '{}': {}",
            a.condition, a.value
        ));
    }
    if let Some(nc) = &m.negative_control {
        say(&format!(
            "  negative control, planted defect: {}",
            nc.defect
        ));
        say(&format!(
            "  {}: {}",
            if nc.caught { "caught by" } else { "NOT caught" },
            nc.findings.join("; ")
        ));
        if let Some(d) = &nc.proven_on {
            say(&format!("  this drill can fail: last proven {d}"));
        }
    }
    if let Some(r) = m.rto_seconds {
        say(&format!("Recovery completed in {r:.3} seconds"));
    }
    for o in &m.objectives {
        say(&format!(
            "  {} {}: {}",
            if o.passed { "✓" } else { "✗" },
            o.name,
            o.achieved
        ));
    }
    for p in &m.problems {
        say(&format!("  problem: {p}"));
    }
    say(&format!(
        "evidence: {}, {}, {}, {}",
        out.report.display(),
        out.junit.display(),
        out.summary.display(),
        out.journal.display()
    ));
}

/// The run's engines: the default one (flags, environment, docker context) when the scenario
/// talks to Docker, and the scenario's `engines:`; a context or TLS file that is not there is
/// exit 3 naming the engine.
fn engines(
    common: &Common,
    s: &crate::scenario::Scenario,
) -> Result<crate::docker::engine::EngineSet, Failure> {
    let mut set =
        crate::docker::engine::EngineSet::one(common.engine_if(crate::drill::uses_docker(s))?);
    for (name, spec) in &s.engines {
        let e = spec
            .resolve(&crate::docker::engine::process_env)
            .map_err(|e| Failure::env(anyhow::anyhow!("engine '{name}': {e}")))?;
        set.named.insert(name.clone(), e);
    }
    Ok(set)
}
