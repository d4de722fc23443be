//! `wait-recovery`: poll probes until all pass N times in a row, or time out (exit 1).

use super::common::{self, say, Common};
use super::probes::ProbeFlags;
use crate::exit::{Code, Failure};
use crate::journal::Journal;
use crate::units::{fmt_duration, Dur};
use clap::Parser;
use std::path::PathBuf;

const EXAMPLES: &str = "Examples:
  wait-recovery --http http://staging:8000/api/v1/health/ping --timeout 2m
  wait-recovery --docker corporate-intel-api --healthy --consecutive 5
  wait-recovery --postgres postgres://postgres@replica/postgres --query 'SELECT pg_is_in_recovery()' --expect f
  wait-recovery --redis redis://cache:6379 --min-keys 1000      # cache warm again
  wait-recovery --scenario scenarios/api-service-failure.yaml   # the scenario's recovery probes";

#[derive(Parser, Debug)]
#[command(name = "wait-recovery", version = super::common::version(), about = "Wait until every probe passes N times in a row, or time out.", after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub probes: ProbeFlags,
    /// Use the recovery section (probes, timeout, interval, consecutive) of this scenario.
    #[arg(long, value_name = "FILE", env = "DRILL_SCENARIO")]
    pub scenario: Option<PathBuf>,
    /// Give up after this long (exit 1).
    #[arg(long, env = "DRILL_TIMEOUT")]
    pub timeout: Option<Dur>,
    /// Time between rounds of probes.
    #[arg(long, env = "DRILL_INTERVAL")]
    pub interval: Option<Dur>,
    /// Passes in a row that count as recovered.
    #[arg(long, env = "DRILL_CONSECUTIVE")]
    pub consecutive: Option<u32>,
    /// Timeout of each probe request.
    #[arg(long, default_value_t = Dur(crate::wait::DEFAULT_REQUEST_TIMEOUT), env = "DRILL_REQUEST_TIMEOUT")]
    pub request_timeout: Dur,
}

pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let v = cli.common.verbose;
    common::main("wait-recovery", v, |cancel| run(cli, cancel))
}

async fn run(cli: Cli, cancel: tokio_util::sync::CancellationToken) -> Result<Code, Failure> {
    cli.probes
        .check_modifiers()
        .map_err(|e| Failure::bad_input(anyhow::anyhow!(e)))?;
    let mut specs = cli.probes.specs();
    use crate::wait::{DEFAULT_CONSECUTIVE, DEFAULT_INTERVAL, DEFAULT_TIMEOUT};
    let (mut timeout, mut interval, mut consecutive) = (
        Dur(DEFAULT_TIMEOUT),
        Dur(DEFAULT_INTERVAL),
        DEFAULT_CONSECUTIVE,
    );
    if let Some(file) = &cli.scenario {
        let s = crate::scenario::load(file)?;
        let r = s.recovery.ok_or_else(|| {
            Failure::bad_input(anyhow::anyhow!(
                "{}: has no recovery section",
                file.display()
            ))
        })?;
        specs.extend(r.probes);
        (timeout, interval, consecutive) = (r.timeout, r.interval, r.consecutive);
    }
    if specs.is_empty() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "no probes: give --http, --tcp, --docker, --postgres, --redis, --command or --scenario"
        )));
    }
    let timeout = cli.timeout.unwrap_or(timeout);
    let interval = cli.interval.unwrap_or(interval);
    let consecutive = cli.consecutive.unwrap_or(consecutive);
    if consecutive == 0 {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--consecutive must be at least 1"
        )));
    }
    if interval.0.is_zero() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--interval must be more than 0"
        )));
    }
    let probes = crate::probe::build_all(
        &specs,
        &crate::docker::engine::EngineSet::one(
            cli.common
                .engine_if(crate::probe::any_docker(specs.iter()))?,
        ),
    )
    .await?;
    let journal = Journal::attach(&cli.common.journal_path(), "wait-recovery", "drill")?;
    let cfg = crate::wait::Config {
        timeout: timeout.0,
        interval: interval.0,
        consecutive,
        request_timeout: cli.request_timeout.0,
        verify: false,
    };
    say(&format!(
        "waiting up to {timeout} for {} probe(s) to pass {consecutive} times in a row",
        probes.len()
    ));
    let outcome = crate::wait::wait(&probes, &cfg, &journal, &cancel, &common::Printer).await?;
    let (code, json) = match &outcome {
        crate::wait::Outcome::Recovered {
            recovered_at,
            waited_s,
        } => {
            say(&format!(
                "recovered: all probes pass (recovery at +{} into the wait)",
                fmt_duration(*waited_s)
            ));
            (
                Code::Ok,
                serde_json::json!({"recovered": true, "recovered_at": recovered_at, "waited_seconds": waited_s}),
            )
        }
        crate::wait::Outcome::TimedOut { failures } => {
            for f in failures {
                say(&format!("still failing: {}: {}", f.probe, f.error));
            }
            say(&format!("NOT recovered within {timeout}"));
            crate::cli::actions::error_annotation(&format!("not recovered within {timeout}"));
            (
                Code::DrillFailed,
                serde_json::json!({"recovered": false, "failures": failures.iter().map(|f| serde_json::json!({"probe": f.probe, "error": f.error})).collect::<Vec<_>>()}),
            )
        }
        crate::wait::Outcome::Aborted(t) => {
            say(&format!(
                "aborted by stop condition '{}': {} (the drill's faults are reverted)",
                t.condition, t.value
            ));
            crate::cli::actions::error_annotation(&format!(
                "drill aborted by stop condition '{}': {}",
                t.condition, t.value
            ));
            (
                Code::DrillFailed,
                serde_json::json!({"recovered": false, "verdict": "aborted", "aborted": {"condition": t.condition, "value": t.value}}),
            )
        }
        crate::wait::Outcome::Interrupted => (
            Code::Interrupted,
            serde_json::json!({"recovered": false, "interrupted": true}),
        ),
    };
    if cli.common.json {
        common::print_json(&crate::redact::redact_json(json));
    }
    Ok(code)
}
