//! `measure-rto`: the numbers from the journal (RTO, RPO, downtime, error rate) against the
//! objectives; also the background samplers (`watch`, `canary`) and phase timers.

use super::common::{self, say, Common};
use super::probes::ProbeFlags;
use crate::exit::{Code, Failure};
use crate::journal::{self, Journal, Kind, Objectives};
use crate::units::{fmt_duration, Dur, Ratio};
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

const EXAMPLES: &str = "Examples:
  measure-rto --rto-target 5m --rpo-target 0s --json
  measure-rto watch --http http://staging:8000/api/v1/health/database &   # until SIGINT/SIGTERM
  measure-rto canary --postgres 'postgres://app@db1,db2/app?target_session_attrs=read-write' &
  measure-rto phase 'database recovery' -- ./scripts/restore.sh
  measure-rto phase provision --dry-run -- terraform apply   # recorded as planned, nothing runs
  measure-rto phase start assessment ... measure-rto phase end assessment";

#[derive(Parser, Debug)]
#[command(name = "measure-rto", version = super::common::version(), about = "Measure RTO, RPO, downtime and error rate from the drill journal.", after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub targets: TargetFlags,
}

#[derive(Args, Debug, Default)]
pub struct TargetFlags {
    /// Fail (exit 1) when RTO is above this.
    #[arg(long, env = "DRILL_RTO_TARGET", help_heading = "Objectives")]
    pub rto_target: Option<Dur>,
    /// Fail when RPO is above this (needs a canary).
    #[arg(long, env = "DRILL_RPO_TARGET", help_heading = "Objectives")]
    pub rpo_target: Option<Dur>,
    /// Fail when the error rate seen by `watch` is above this, e.g. 0.1%.
    #[arg(long, env = "DRILL_MAX_ERROR_RATE", help_heading = "Objectives")]
    pub max_error_rate: Option<Ratio>,
    /// Fail when the p99 latency seen by `watch` is above this, e.g. 1s.
    #[arg(long, env = "DRILL_MAX_LATENCY", help_heading = "Objectives")]
    pub max_latency: Option<Dur>,
    /// Measure this drill (default: the journal's current one).
    #[arg(long, env = "DRILL_ID")]
    pub drill: Option<String>,
}

impl TargetFlags {
    fn objectives(&self) -> Objectives {
        Objectives {
            rto_s: self.rto_target.map(|d| d.as_secs_f64()),
            rpo_s: self.rpo_target.map(|d| d.as_secs_f64()),
            max_error_rate: self.max_error_rate.map(|r| r.0),
            max_latency_s: self.max_latency.map(|d| d.as_secs_f64()),
        }
    }
}

/// Record the objectives given on the command line (or in `DRILL_RTO_TARGET`…) as an
/// `objectives_set` event of the drill; nothing when none is given.
fn record_objectives(
    journal: &Journal,
    t: &TargetFlags,
) -> Result<Option<journal::Event>, Failure> {
    let objectives = t.objectives();
    if objectives.is_empty() {
        return Ok(None);
    }
    Ok(Some(journal.append(Kind::ObjectivesSet { objectives })?))
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Sample probes in the background until SIGINT/SIGTERM (or --duration).
    Watch(Box<WatchArgs>),
    /// Write sequence-numbered rows for a measured RPO, until SIGINT/SIGTERM.
    Canary(super::canary::CanaryArgs),
    /// Time a step: `phase NAME -- CMD...`, or `phase start NAME` … `phase end NAME`.
    Phase(Box<PhaseArgs>),
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub probes: ProbeFlags,
    /// Time between samples.
    #[arg(long, default_value_t = Dur(crate::watch::DEFAULT_INTERVAL), env = "DRILL_WATCH_INTERVAL")]
    pub interval: Dur,
    /// Timeout of each request.
    #[arg(long, default_value_t = Dur(crate::watch::DEFAULT_TIMEOUT))]
    pub timeout: Dur,
    /// Stop by itself after this long.
    #[arg(long)]
    pub duration: Option<Dur>,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PhaseArgs {
    #[command(subcommand)]
    pub mark: Option<PhaseMark>,
    /// The phase's name, as the report shows it.
    #[arg(required = true, value_name = "NAME")]
    pub name: Option<String>,
    /// Fail the phase (and kill the command) after this long.
    #[arg(long)]
    pub timeout: Option<Dur>,
    /// Record the phase as planned and run nothing (a dry run of a runbook).
    #[arg(long, env = "DRILL_DRY_RUN")]
    pub dry_run: bool,
    /// The command to time: several words run as given; one word is a shell line (`sh -c`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

/// A phase whose start and end are marked by separate steps (a manual one, say).
#[derive(Subcommand, Debug)]
pub enum PhaseMark {
    /// Mark the start of a phase.
    Start {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Mark its end (`--failed` when it failed).
    End {
        #[arg(value_name = "NAME")]
        name: String,
        /// The phase failed.
        #[arg(long)]
        failed: bool,
    },
}

pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let v = cli.common.verbose;
    common::main("measure-rto", v, |cancel| run(cli, cancel))
}

async fn run(cli: Cli, cancel: CancellationToken) -> Result<Code, Failure> {
    match cli.command {
        None => measure(&cli.common, &cli.targets),
        Some(command) => {
            // Objectives given to any form (DRILL_RTO_TARGET in a step's env) reach the journal.
            if !cli.targets.objectives().is_empty() {
                let j = Journal::attach(&cli.common.journal_path(), "measure-rto", "drill")?;
                record_objectives(&j, &cli.targets)?;
            }
            match command {
                Command::Watch(w) => watch(&cli.common, *w, cancel).await,
                Command::Canary(c) => super::canary::run(c, &cli.common, cancel).await,
                Command::Phase(p) => phase(&cli.common, *p, &cancel).await,
            }
        }
    }
}

fn measure(common: &Common, t: &TargetFlags) -> Result<Code, Failure> {
    let path = common.journal_path();
    let contents = journal::read(&path)?;
    journal::warn_damage(&path, &contents);
    let drill = match t.drill.clone().or_else(|| contents.current_drill()) {
        Some(d) => d,
        None => {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "{}: the journal has no drill (give --journal)",
                path.display()
            )))
        }
    };
    let events = contents.drill(&drill);
    if events.is_empty() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "drill {drill} is not in {}",
            path.display()
        )));
    }
    let overrides = t.objectives();
    // The objectives go to the journal, so `report` (a later step) judges the same ones.
    let recorded = record_objectives(&Journal::for_drill(&path, "measure-rto", &drill), t)?;
    let mut events = events;
    if let Some(e) = &recorded {
        events.push(e);
    }
    let m = crate::measure::measure(&drill, &events, &overrides);
    if common.json {
        let brief =
            serde_json::to_value(m.brief()).map_err(|e| Failure::env(anyhow::anyhow!("{e}")))?;
        common::print_json(&brief);
    }
    let num = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
    crate::cli::actions::set_outputs(&[
        ("rto-seconds", num(m.rto_seconds)),
        ("downtime-seconds", num(m.downtime_seconds)),
        (
            "error-rate",
            m.error_rate.map(|x| format!("{x:.6}")).unwrap_or_default(),
        ),
        ("rpo-seconds", num(m.rpo.as_ref().map(|r| r.rpo_seconds))),
        ("passed", m.passed.to_string()),
    ])?;
    let line = |name: &str, v: Option<f64>| {
        say(&format!(
            "{name:<22} {}",
            v.map(fmt_duration).unwrap_or_else(|| "–".into())
        ))
    };
    say(&format!("drill {} ({})", m.name, m.drill));
    line("RTO", m.rto_seconds);
    line("time to detect", m.detect_seconds);
    line("downtime seen by users", m.downtime_seconds);
    if let Some(r) = m.error_rate {
        say(&format!(
            "{:<22} {} of {} samples ({})",
            "error rate",
            m.failed_samples,
            m.samples,
            Ratio(r)
        ));
    }
    if let Some(r) = &m.rpo {
        say(&format!(
            "{:<22} {} ({} of {} acknowledged writes lost)",
            "RPO",
            fmt_duration(r.rpo_seconds),
            r.lost_writes,
            r.acknowledged
        ));
    }
    for o in &m.objectives {
        say(&format!(
            "{} {}: {}",
            if o.passed { "✓" } else { "✗" },
            o.name,
            o.achieved
        ));
        if !o.passed {
            crate::cli::actions::error_annotation(&format!(
                "{} missed: target {}, achieved {}",
                o.name, o.target, o.achieved
            ));
        }
    }
    Ok(if m.passed {
        Code::Ok
    } else {
        Code::DrillFailed
    })
}

async fn watch(common: &Common, w: WatchArgs, cancel: CancellationToken) -> Result<Code, Failure> {
    w.probes
        .check_modifiers()
        .map_err(|e| Failure::bad_input(anyhow::anyhow!(e)))?;
    let specs = w.probes.specs();
    if specs.is_empty() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "watch needs a probe: --http, --tcp, --postgres, --redis, --docker or --command"
        )));
    }
    if w.interval.0.is_zero() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--interval must be more than 0"
        )));
    }
    let probes = crate::probe::build_all(
        &specs,
        &crate::docker::engine::EngineSet::one(
            common.engine_if(crate::probe::any_docker(specs.iter()))?,
        ),
    )
    .await?;
    let journal = Journal::attach(&common.journal_path(), "measure-rto", "drill")?;
    if let Some(d) = w.duration {
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d.0).await;
            c.cancel();
        });
    }
    let mut set = tokio::task::JoinSet::new();
    for p in probes {
        let (j, c) = (journal.clone(), cancel.clone());
        let (interval, timeout) = (w.interval.0, w.timeout.0);
        set.spawn(async move {
            crate::watch::watch(p, interval, timeout, &j, &c, &common::Printer).await
        });
    }
    let (mut samples, mut failed) = (0, 0);
    while let Some(r) = set.join_next().await {
        let s = r.map_err(|e| Failure::env(anyhow::anyhow!("sampler failed: {e}")))??;
        samples += s.samples;
        failed += s.failed;
    }
    say(&format!(
        "watch stopped: {samples} samples, {failed} failed"
    ));
    if common.json {
        common::print_json(&serde_json::json!({"samples": samples, "failed": failed}));
    }
    // Being stopped by a signal is how a background sampler is meant to end.
    Ok(Code::Ok)
}

async fn phase(common: &Common, p: PhaseArgs, cancel: &CancellationToken) -> Result<Code, Failure> {
    let journal = Journal::attach(&common.journal_path(), "measure-rto", "drill")?;
    match p.mark {
        Some(PhaseMark::Start { name }) => {
            journal.append(Kind::PhaseStarted { name: name.clone() })?;
            say(&format!("phase {name} started"));
        }
        Some(PhaseMark::End { name, failed }) => {
            let contents = journal::read(journal.path())?;
            let open = contents
                .drill(journal.drill_id())
                .iter()
                .rev()
                .find_map(|e| match &e.kind {
                    Kind::PhaseStarted { name: n } if *n == name => Some(Some(e.ts)),
                    Kind::PhaseFinished { name: n, .. } if *n == name => Some(None),
                    _ => None,
                });
            let Some(Some(started)) = open else {
                return Err(Failure::bad_input(anyhow::anyhow!(
                    "phase '{name}' was not started (run `measure-rto phase start {name}` first)"
                )));
            };
            let e = journal.append(Kind::PhaseFinished {
                name: name.clone(),
                ok: !failed,
                detail: failed.then(|| "marked failed".into()),
            })?;
            say(&format!(
                "phase {name} {} after {}",
                if failed { "FAILED" } else { "done" },
                fmt_duration(e.ts.since(started))
            ));
        }
        None => {
            let name = p.name.unwrap_or_default();
            let command = match <[String; 1]>::try_from(p.cmd) {
                Ok([line]) => crate::phase::Command::Shell(line),
                Err(argv) => crate::phase::Command::Argv(argv),
            };
            if p.dry_run {
                crate::phase::plan(&journal, &name, &command)?;
                say(&format!(
                    "phase {name}: dry run, planned and not run: {}",
                    command.describe()
                ));
                return Ok(Code::Ok);
            }
            let timeout = p.timeout.map(|d| d.0);
            let ended =
                crate::phase::run(&journal, &name, &command, timeout, cancel, &common::Printer)
                    .await?;
            return Ok(match ended {
                crate::phase::Ended::Ok => Code::Ok,
                crate::phase::Ended::Failed(_) => Code::DrillFailed,
                crate::phase::Ended::Interrupted => Code::Interrupted,
            });
        }
    }
    Ok(Code::Ok)
}
