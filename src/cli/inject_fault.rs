//! `inject-fault`: apply one fault to one or more targets; revert it after `--duration`, on a
//! signal, or later with `inject-fault revert`.

use super::common::{self, say, Common};
use crate::exit::{Code, Failure};
use crate::fault::{self, Action, Injector, Options};
use crate::journal::{self, Journal};
use crate::target::TargetSpec;
use crate::units::Dur;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const EXAMPLES: &str = "Examples:
  inject-fault crash --container corporate-intel-api           # restart policy brings it back
  inject-fault stop --container db-primary --timeout 10s --duration 60s
  inject-fault pause --label app=api --max-targets 2 --dry-run
  inject-fault stop --pidfile /var/lib/postgresql/data/postmaster.pid
  inject-fault list                                             # faults not yet reverted
  inject-fault revert                                           # undo them (also after SIGKILL)";

#[derive(Parser, Debug)]
#[command(name = "inject-fault", version, about = "Apply a fault to containers or processes; revert it by time, signal or `revert`.", after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Kill the main process from outside so the restart policy applies, as a real crash does.
    Crash(ApplyArgs),
    /// Graceful stop (SIGTERM, SIGKILL after --timeout); revert starts it again.
    Stop(ApplyArgs),
    /// Send a signal (default SIGKILL); revert starts it again.
    Kill(ApplyArgs),
    /// Freeze it; revert unpauses.
    Pause(ApplyArgs),
    /// Restart the container.
    Restart(ApplyArgs),
    /// Undo every fault the journal shows as not yet undone.
    Revert(RevertArgs),
    /// List the faults not yet undone.
    List,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Container name or id (repeatable).
    #[arg(long, value_name = "NAME|ID", help_heading = "Targets")]
    pub container: Vec<String>,
    /// Containers with this label, KEY=VALUE (repeatable, ANDed).
    #[arg(long, value_name = "KEY=VALUE", help_heading = "Targets")]
    pub label: Vec<String>,
    /// Containers of a Docker Compose service.
    #[arg(long, value_name = "[PROJECT/]SERVICE", help_heading = "Targets")]
    pub compose_service: Option<String>,
    /// A process id on this host.
    #[arg(long, help_heading = "Targets")]
    pub pid: Option<i32>,
    /// A pidfile (first line is the pid), e.g. PostgreSQL's postmaster.pid.
    #[arg(long, value_name = "PATH", help_heading = "Targets")]
    pub pidfile: Option<PathBuf>,
    /// The one process with this name (comm).
    #[arg(long, value_name = "NAME", help_heading = "Targets")]
    pub process_name: Option<String>,
    /// Refuse (exit 2, nothing touched) when the selector matches more targets than this.
    #[arg(
        long,
        default_value_t = 1,
        env = "DRILL_MAX_TARGETS",
        help_heading = "Safety"
    )]
    pub max_targets: usize,
    /// Print the exact calls and their undo; touch nothing.
    #[arg(long, help_heading = "Safety")]
    pub dry_run: bool,
    /// For kill: the signal (default SIGKILL).
    #[arg(long, value_parser = parse_signal)]
    pub signal: Option<nix::sys::signal::Signal>,
    /// For stop/restart: grace period before SIGKILL.
    #[arg(long, default_value = "10s")]
    pub timeout: Dur,
    /// Hold the fault this long, then revert it (SIGINT/SIGTERM revert at once, exit 4).
    #[arg(long)]
    pub duration: Option<Dur>,
}

fn parse_signal(s: &str) -> Result<nix::sys::signal::Signal, String> {
    crate::process::parse_signal(s)
}

#[derive(Args, Debug)]
pub struct RevertArgs {
    /// Every open fault in the journal, of every drill (default: the current drill's).
    #[arg(long, conflicts_with = "id")]
    pub all: bool,
    /// Only this fault.
    #[arg(long)]
    pub id: Option<String>,
}

pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let v = cli.common.verbose;
    common::main("inject-fault", v, || run(cli))
}

async fn run(cli: Cli) -> Result<Code, Failure> {
    let path = cli.common.journal_path();
    match cli.command {
        Command::Crash(a) => apply(Action::Crash, a, &cli.common).await,
        Command::Stop(a) => apply(Action::Stop, a, &cli.common).await,
        Command::Kill(a) => apply(Action::Kill, a, &cli.common).await,
        Command::Pause(a) => apply(Action::Pause, a, &cli.common).await,
        Command::Restart(a) => apply(Action::Restart, a, &cli.common).await,
        Command::List => {
            let contents = journal::read(&path)?;
            journal::warn_damage(&path, &contents);
            let open = contents.open_faults();
            if cli.common.json {
                let list: Vec<serde_json::Value> = open
                    .iter()
                    .map(|f| serde_json::json!({"id": f.id, "drill": f.drill, "action": f.action, "target": f.target, "applied": f.applied, "planned_at": f.planned_at, "undo": f.undo}))
                    .collect();
                common::print_json(&serde_json::Value::Array(list));
            } else if open.is_empty() {
                say("no open faults");
            }
            for f in &open {
                say(&format!(
                    "{} {} {} {} (undo: {})",
                    f.id,
                    f.drill,
                    f.action,
                    f.target,
                    fault::describe_undo(&f.undo)
                ));
            }
            Ok(Code::Ok)
        }
        Command::Revert(r) => {
            let j = Journal::attach(&path, "inject-fault", "drill")?;
            let drill = (!r.all && r.id.is_none()).then(|| j.drill_id().to_string());
            let (n, errors) = fault::revert_open(&j, drill.as_deref(), r.id.as_deref()).await?;
            if cli.common.json {
                common::print_json(&serde_json::json!({"reverted": n, "errors": errors}));
            }
            if errors.is_empty() {
                say(&format!("{n} fault(s) reverted"));
                Ok(Code::Ok)
            } else {
                Err(Failure::env(anyhow::anyhow!(
                    "{} fault(s) could not be reverted: {}",
                    errors.len(),
                    errors.join("; ")
                )))
            }
        }
    }
}

async fn apply(action: Action, a: ApplyArgs, common: &Common) -> Result<Code, Failure> {
    let spec = TargetSpec {
        container: a.container,
        label: a.label,
        compose_service: a.compose_service,
        pid: a.pid,
        pidfile: a.pidfile,
        process_name: a.process_name,
    };
    spec.validate().map_err(|e| {
        Failure::bad_input(anyhow::anyhow!(
            "{e} (use --container, --label, --compose-service, --pid, --pidfile or --process-name)"
        ))
    })?;
    if a.max_targets == 0 {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--max-targets must be at least 1"
        )));
    }
    if a.signal.is_some() && action != Action::Kill {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--signal applies to kill"
        )));
    }
    let opts = Options {
        action,
        signal: a.signal,
        stop_timeout: a.timeout.0,
        duration: a.duration.map(|d| d.0),
    };
    let docker = if spec.is_docker() {
        Some(crate::docker::connect().await?)
    } else {
        None
    };
    let targets = spec.resolve(docker.as_ref(), a.max_targets).await?;
    let steps = fault::plan(&targets, &opts)?;
    if a.dry_run {
        for s in &steps {
            say(&format!("would {}", s.describe()));
        }
        if common.json {
            let v: Vec<serde_json::Value> = steps.iter().map(|s| serde_json::json!({"target": s.target.describe(), "action": s.action, "call": s.call, "undo": s.undo})).collect();
            common::print_json(&serde_json::json!({"dry_run": true, "steps": v}));
        }
        return Ok(Code::Ok);
    }
    let path = common.journal_path();
    let j = Journal::attach(&path, "inject-fault", "drill")?;
    // Signals during the apply or the hold revert what was applied.
    let cancel = crate::signal::shutdown_token();
    let injector = Injector {
        journal: &j,
        docker: docker.as_ref(),
    };
    let mut ids = Vec::new();
    for s in &steps {
        if cancel.is_cancelled() {
            break;
        }
        match injector.apply(s, &opts).await {
            Ok(id) => {
                say(&format!("{id}: {}", s.describe()));
                ids.push(id);
            }
            Err(e) => {
                // Never leave the first targets faulted when a later one fails.
                for id in ids.iter().rev() {
                    let _ = fault::revert_open_with(&j, docker.as_ref(), Some(id)).await;
                }
                return Err(e);
            }
        }
    }
    if common.json {
        common::print_json(
            &serde_json::json!({"drill": j.drill_id(), "faults": ids, "journal": path}),
        );
    }
    let Some(hold) = a.duration else {
        if cancel.is_cancelled() {
            revert_ids(&j, docker.as_ref(), &ids).await;
            return Ok(Code::Interrupted);
        }
        say(&format!(
            "fault(s) left in place; undo with `inject-fault revert` (journal {})",
            path.display()
        ));
        return Ok(Code::Ok);
    };
    let interrupted = tokio::select! {
        _ = tokio::time::sleep(hold.0) => false,
        _ = cancel.cancelled() => true,
    };
    revert_ids(&j, docker.as_ref(), &ids).await;
    Ok(if interrupted {
        Code::Interrupted
    } else {
        Code::Ok
    })
}

async fn revert_ids(j: &Journal, docker: Option<&bollard::Docker>, ids: &[String]) {
    for id in ids.iter().rev() {
        if let Err(e) = fault::revert_open_with(j, docker, Some(id)).await {
            say(&format!("REVERT FAILED for {id}: {:#}", e.error));
        }
    }
}
