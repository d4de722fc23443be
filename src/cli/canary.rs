//! `measure-rto canary`: the flags of the background canary writer and its thin `run`.
//!
//! It runs until SIGINT/SIGTERM (the normal way a workflow step stops a background process) or
//! `--duration`, verifies which acknowledged writes survived, and exits 0; whether the RPO
//! objective was met is judged later by `measure-rto --rpo-target` from the journal.

use crate::canary::{run_canary, CanaryConfig, CanarySummary};
use crate::cli::common::{print_json, say, Common};
use crate::exit::{Code, Failure};
use crate::units::{fmt_duration, Dur};

/// Write sequence-numbered rows to PostgreSQL through a failover, then read back which
/// acknowledged writes survived (for a measured RPO).
///
/// Examples:
///   measure-rto canary --postgres 'postgres://app@db1,db2/app?target_session_attrs=read-write' &
///   measure-rto canary --postgres "$DB_URL" --interval 20ms --duration 2m --json
#[derive(clap::Args, Debug)]
pub struct CanaryArgs {
    /// PostgreSQL URL of the primary. Use several hosts with target_session_attrs=read-write to
    /// follow a failover. Password from the URL, PGPASSWORD or ~/.pgpass; TLS per sslmode.
    #[arg(
        long,
        env = "DRILL_CANARY_POSTGRES",
        value_name = "URL",
        help_heading = "Canary"
    )]
    pub postgres: String,

    /// Time between writes: the resolution of the measured RPO.
    #[arg(
        long,
        default_value = "50ms",
        value_name = "D",
        help_heading = "Canary"
    )]
    pub interval: Dur,

    /// Table the canary creates (refuses one it did not create) and drops at the end.
    #[arg(long, default_value = crate::canary::DEFAULT_TABLE, value_name = "NAME", help_heading = "Canary")]
    pub table: String,

    /// Keep the table after verification (for inspection).
    #[arg(long, help_heading = "Canary")]
    pub keep: bool,

    /// Stop by itself after this long (default: run until SIGINT/SIGTERM).
    #[arg(long, value_name = "D", help_heading = "Canary")]
    pub duration: Option<Dur>,

    /// How long the read-back after the stop keeps trying to reach a primary (a standby is
    /// read only when no primary answers in this time).
    #[arg(long, default_value = "30s", value_name = "D", help_heading = "Canary")]
    pub read_back_timeout: Dur,
}

impl CanaryArgs {
    /// Resolve the flags into the library's configuration (validation lives in `run_canary`).
    pub fn config(&self) -> CanaryConfig {
        let mut cfg = CanaryConfig::new(self.postgres.clone());
        cfg.interval = self.interval.0;
        cfg.table = self.table.clone();
        cfg.keep = self.keep;
        cfg.duration = self.duration.map(|d| d.0);
        cfg.verify_timeout = self.read_back_timeout.0;
        cfg
    }
}

pub async fn run(
    args: CanaryArgs,
    common: &Common,
    token: tokio_util::sync::CancellationToken,
) -> Result<Code, Failure> {
    if args.interval.0.is_zero() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--interval must be greater than 0"
        )));
    }
    let journal = crate::journal::Journal::attach(
        &common.journal_path(),
        "measure-rto",
        "measure-rto canary",
    )?;
    let summary = run_canary(&args.config(), &journal, token).await?;
    report(&summary);
    if common.json {
        print_json(&serde_json::to_value(&summary).map_err(|e| Failure::env(anyhow::anyhow!(e)))?);
    }
    Ok(Code::Ok)
}

fn report(s: &CanarySummary) {
    say(&format!(
        "canary stopped ({}): {} of {} writes acknowledged in {} ({:.1}/s), longest gap {}",
        s.stopped_by,
        s.acknowledged,
        s.attempted,
        fmt_duration(s.seconds),
        s.write_rate,
        fmt_duration(s.longest_gap_seconds)
    ));
    if s.verified {
        let lost = if s.lost_writes == 0 {
            "no acknowledged write lost".to_string()
        } else {
            let ranges: Vec<String> = s
                .lost
                .iter()
                .map(|r| {
                    if r[0] == r[1] {
                        r[0].to_string()
                    } else {
                        format!("{}-{}", r[0], r[1])
                    }
                })
                .collect();
            format!(
                "{} acknowledged writes LOST (seq {}), RPO {}",
                s.lost_writes,
                ranges.join(", "),
                fmt_duration(s.rpo_seconds)
            )
        };
        say(&format!(
            "read back on {}: {} survived; {lost}{}",
            s.verified_on.as_deref().unwrap_or("?"),
            s.survived,
            if s.table_dropped {
                "; table dropped"
            } else {
                "; table kept"
            }
        ));
    } else {
        say(&format!(
            "read-back failed, lost writes unknown: {}",
            s.verify_error.as_deref().unwrap_or("no primary reachable")
        ));
    }
}
