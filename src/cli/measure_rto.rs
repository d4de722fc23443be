//! `measure-rto`: the numbers from the journal (RTO, RPO, downtime, error rate) against the
//! objectives; also the background samplers (`watch`, `canary`) and phase timers.

use super::common::{self, say, Common};
use super::probes::ProbeFlags;
use crate::exit::{Code, Failure};
use crate::journal::{self, Journal, Kind, Objectives};
use crate::units::{fmt_duration, Dur, Ratio};
use clap::{Args, Parser, Subcommand};

const EXAMPLES: &str = "Examples:
  measure-rto --rto-target 5m --rpo-target 0s --json
  measure-rto watch --http http://staging:8000/api/v1/health/database &   # until SIGINT/SIGTERM
  measure-rto canary --postgres 'postgres://app@db1,db2/app?target_session_attrs=read-write' &
  measure-rto phase 'database recovery' -- ./scripts/restore.sh
  measure-rto phase start assessment ... measure-rto phase end assessment";

#[derive(Parser, Debug)]
#[command(name = "measure-rto", version, about = "Measure RTO, RPO, downtime and error rate from the drill journal.", after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
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

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Sample probes in the background until SIGINT/SIGTERM (or --duration).
    Watch(Box<WatchArgs>),
    /// Write sequence-numbered rows for a measured RPO, until SIGINT/SIGTERM.
    Canary(super::canary::CanaryArgs),
    /// Time a step: `phase NAME -- CMD...`, or `phase start NAME` … `phase end NAME`.
    Phase(PhaseArgs),
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub probes: ProbeFlags,
    /// Time between samples.
    #[arg(long, default_value = "50ms", env = "DRILL_WATCH_INTERVAL")]
    pub interval: Dur,
    /// Timeout of each request.
    #[arg(long, default_value = "1s")]
    pub timeout: Dur,
    /// Stop by itself after this long.
    #[arg(long)]
    pub duration: Option<Dur>,
}

#[derive(Args, Debug)]
pub struct PhaseArgs {
    /// `NAME`, `start NAME` or `end NAME`.
    #[arg(required = true, num_args = 1..=2, value_name = "WORDS")]
    pub words: Vec<String>,
    /// With `end`: the phase failed.
    #[arg(long)]
    pub failed: bool,
    /// Fail the phase (and kill the command) after this long.
    #[arg(long)]
    pub timeout: Option<Dur>,
    /// The command to time.
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let v = cli.common.verbose;
    common::main("measure-rto", v, || run(cli))
}

async fn run(cli: Cli) -> Result<Code, Failure> {
    match cli.command {
        None => measure(&cli.common, &cli.targets),
        Some(Command::Watch(w)) => watch(&cli.common, *w).await,
        Some(Command::Canary(c)) => super::canary::run(c, &cli.common).await,
        Some(Command::Phase(p)) => phase(&cli.common, p).await,
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
    let overrides = Objectives {
        rto_s: t.rto_target.map(|d| d.as_secs_f64()),
        rpo_s: t.rpo_target.map(|d| d.as_secs_f64()),
        max_error_rate: t.max_error_rate.map(|r| r.0),
        max_latency_s: t.max_latency.map(|d| d.as_secs_f64()),
    };
    let m = crate::measure::measure(&drill, &events, &overrides);
    let json = serde_json::json!({
        "drill": m.drill,
        "name": m.name,
        "rto_seconds": m.rto_seconds,
        "rto_source": m.rto_source,
        "detect_seconds": m.detect_seconds,
        "downtime_seconds": m.downtime_seconds,
        "availability": m.availability,
        "error_rate": m.error_rate,
        "samples": m.samples,
        "latency_ms": m.latency,
        "rpo_seconds": m.rpo.as_ref().map(|r| r.rpo_seconds),
        "rpo_lost_writes": m.rpo.as_ref().map(|r| r.lost_writes),
        "write_outage_seconds": m.rpo.as_ref().and_then(|r| r.write_outage_seconds),
        "phases": m.phases.iter().map(|p| serde_json::json!({"name": p.name, "seconds": p.seconds, "ok": p.ok})).collect::<Vec<_>>(),
        "objectives": m.objectives,
        "problems": m.problems,
        "passed": m.passed,
    });
    if common.json {
        common::print_json(&json);
    }
    let num = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
    crate::actions::set_outputs(&[
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
            crate::actions::error_annotation(&format!(
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

async fn watch(common: &Common, w: WatchArgs) -> Result<Code, Failure> {
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
    let probes = crate::probe::build_all(&specs).await?;
    let journal = Journal::attach(&common.journal_path(), "measure-rto", "drill")?;
    let cancel = crate::signal::shutdown_token();
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
        set.spawn(async move { crate::watch::watch(p, interval, timeout, &j, &c).await });
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

async fn phase(common: &Common, p: PhaseArgs) -> Result<Code, Failure> {
    let journal = Journal::attach(&common.journal_path(), "measure-rto", "drill")?;
    let words: Vec<&str> = p.words.iter().map(|s| s.as_str()).collect();
    if !p.cmd.is_empty() {
        let name = match words.as_slice() {
            ["run", name] => *name,
            [name] => *name,
            _ => {
                return Err(Failure::bad_input(anyhow::anyhow!(
                    "usage: measure-rto phase NAME -- CMD..."
                )))
            }
        };
        let cancel = crate::signal::shutdown_token();
        return Ok(
            match crate::phase::run(&journal, name, &p.cmd, p.timeout.map(|d| d.0), &cancel).await?
            {
                crate::phase::Ended::Ok => Code::Ok,
                crate::phase::Ended::Failed(_) => Code::DrillFailed,
                crate::phase::Ended::Interrupted => Code::Interrupted,
            },
        );
    }
    match words.as_slice() {
        ["start", name] => {
            journal.append(Kind::PhaseStarted { name: name.to_string() })?;
            say(&format!("phase {name} started"));
        }
        ["end", name] => {
            let contents = journal::read(journal.path())?;
            let open = contents.drill(journal.drill_id()).iter().rev().find_map(|e| match &e.kind {
                Kind::PhaseStarted { name: n } if n == name => Some(Some(e.ts)),
                Kind::PhaseFinished { name: n, .. } if n == name => Some(None),
                _ => None,
            });
            let Some(Some(started)) = open else {
                return Err(Failure::bad_input(anyhow::anyhow!("phase '{name}' was not started (run `measure-rto phase start {name}` first)")));
            };
            let e = journal.append(Kind::PhaseFinished { name: name.to_string(), ok: !p.failed, detail: p.failed.then(|| "marked failed".into()) })?;
            say(&format!("phase {name} {} after {}", if p.failed { "FAILED" } else { "done" }, fmt_duration(e.ts.since(started))));
        }
        _ => {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "usage: measure-rto phase start NAME | phase end NAME [--failed] | phase NAME -- CMD..."
            )))
        }
    }
    Ok(Code::Ok)
}
