//! `inject-fault`: apply one fault to one or more targets; revert it after `--duration`, on a
//! signal, or later with `inject-fault revert`; `doctor` finds and removes whatever drillkit left.

use super::common::{self, say, Common};
use crate::exit::{Code, Failure};
use crate::faults::target::TargetSpec;
use crate::faults::{self, degrade, fill, partition, safety, Fault, Injector};
use crate::journal::{self, Journal};
use crate::progress::Observer;
use crate::units::Dur;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

const EXAMPLES: &str = "Examples:
  inject-fault crash --container corporate-intel-api           # restart policy brings it back
  inject-fault stop --container db-primary --timeout 10s --duration 60s
  inject-fault pause --label app=api --max-targets 2 --dry-run
  inject-fault stop --pidfile /var/lib/postgresql/data/postmaster.pid
  inject-fault partition --container api --network backend --duration 60s
  inject-fault partition --netns app --to 10.0.2.0/24          # the runbook's iptables DROP, tagged
  inject-fault degrade --container api --delay 200ms --jitter 50ms --loss 10% --rate 1mbit --to db:5432
  inject-fault fill-disk --container db --mount /var/lib/postgresql/data --leave 0
  inject-fault list                                             # faults not yet reverted
  inject-fault revert                                           # undo them (also after SIGKILL)
  inject-fault doctor --journal .drill/journal.jsonl --fix      # any leftover, in an if: always() step
  inject-fault guard --http http://shop/health --failing-for 20s --error-rate 5% --window 10s \
    --halt-file /run/drills/HALT --halt-env DR_DRILLS_PAUSED &  # stop conditions, in the background";

#[derive(Parser, Debug)]
#[command(name = "inject-fault", version = super::common::version(), about = "Apply a fault to containers or processes; revert it by time, signal or `revert`.", after_help = EXAMPLES)]
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
    /// Cut a container from its Docker networks, or a namespace/the host from --to (iptables).
    Partition(PartitionCmd),
    /// Delay, jitter, loss and rate on a container's or a namespace's traffic.
    Degrade(DegradeCmd),
    /// Fill the filesystem holding --path or a container's --mount; revert deletes the file.
    FillDisk(FillCmd),
    /// Undo every fault the journal shows as not yet undone.
    Revert(RevertArgs),
    /// List the faults not yet undone.
    List,
    /// Find drillkit's leftovers on this host (rules, qdiscs, proxies, fill files, open faults of
    /// the given journals); remove them with --fix. Exit 1 when some are found without --fix.
    Doctor(DoctorArgs),
    /// Stop conditions for a composed drill, run in the background next to the other steps: when
    /// one trips, every open fault of the drill is reverted at once, `drill_aborted` is written
    /// and the guard exits 1 (the report's verdict is then `aborted`). Stopped by a signal: exit 0.
    Guard(GuardArgs),
    /// The delay proxy (started by `degrade` inside the target's namespace).
    #[command(name = "__degrade-proxy", hide = true)]
    DegradeProxy(ProxyArgs),
    /// The dead-man's switch of one fault (started detached by the injector).
    #[command(name = "__reap", hide = true)]
    Reap(ReapArgs),
}

#[derive(Args, Debug)]
pub struct PartitionCmd {
    #[command(flatten)]
    pub apply: ApplyArgs,
    /// Docker: only this network (repeatable; default every network the container is on).
    #[arg(long, value_name = "NAME", help_heading = "Partition")]
    pub network: Vec<String>,
    /// iptables: cut from this CIDR, address or HOST:PORT (repeatable).
    #[arg(long, value_name = "CIDR|HOST:PORT", help_heading = "Partition")]
    pub to: Vec<String>,
    /// docker (disconnect), iptables (DROP rules), auto: docker for a container without --to.
    #[arg(long, default_value = "auto", help_heading = "Partition",
          value_parser = PossibleValuesParser::new(partition::Method::NAMES).try_map(|s| s.parse::<partition::Method>()))]
    pub method: partition::Method,
    #[command(flatten)]
    pub helper: HelperImageArg,
}

#[derive(Args, Debug)]
pub struct HelperImageArg {
    /// For a container on an engine elsewhere: the image whose helper container runs ip, tc and
    /// iptables in the container's network namespace (it must be on that engine; drillkit never
    /// pulls). Default: drillkit-nettools of this version, published with each release.
    #[arg(
        long,
        value_name = "IMAGE",
        env = "DRILL_HELPER_IMAGE",
        help_heading = "Remote engines"
    )]
    pub helper_image: Option<String>,
}

#[derive(Args, Debug)]
pub struct DegradeCmd {
    #[command(flatten)]
    pub apply: ApplyArgs,
    /// Added latency, e.g. 200ms.
    #[arg(long, help_heading = "Degrade")]
    pub delay: Option<Dur>,
    /// Latency varies by up to this much around --delay.
    #[arg(long, help_heading = "Degrade")]
    pub jitter: Option<Dur>,
    /// Packets dropped, e.g. 10%.
    #[arg(long, help_heading = "Degrade")]
    pub loss: Option<crate::units::Ratio>,
    /// Bandwidth, a tc rate: 500kbit, 1mbit, 10mbit.
    #[arg(long, help_heading = "Degrade")]
    pub rate: Option<String>,
    /// auto (netem if the kernel has it), netem, iptables (loss+rate), proxy (delay+loss+rate).
    #[arg(long, default_value = "auto", help_heading = "Degrade",
          value_parser = PossibleValuesParser::new(degrade::Method::NAMES).try_map(|s| s.parse::<degrade::Method>()))]
    pub method: degrade::Method,
    /// Only traffic to this CIDR or HOST:PORT (the proxy needs exactly one HOST:PORT).
    #[arg(long, value_name = "CIDR|HOST:PORT", help_heading = "Degrade")]
    pub to: Vec<String>,
    /// Interface (repeatable; default every non-loopback one of the namespace).
    #[arg(long, value_name = "DEV", help_heading = "Degrade")]
    pub dev: Vec<String>,
    #[command(flatten)]
    pub helper: HelperImageArg,
}

#[derive(Args, Debug)]
pub struct FillCmd {
    #[command(flatten)]
    pub apply: ApplyArgs,
    /// With --container: its mount point (a volume or bind mount) to fill.
    #[arg(long, value_name = "PATH", help_heading = "Fill")]
    pub mount: Option<String>,
    /// Stop when this much is left free (default 0: full, so writes get ENOSPC).
    #[arg(
        long,
        value_name = "SIZE",
        conflicts_with = "to",
        help_heading = "Fill"
    )]
    pub leave: Option<crate::units::Size>,
    /// Stop when this much of the filesystem is used, e.g. 95%.
    #[arg(long, value_name = "PERCENT", help_heading = "Fill")]
    pub to: Option<crate::units::Ratio>,
    /// Allow filling the root filesystem.
    #[arg(long, help_heading = "Safety")]
    pub allow_root_fs: bool,
    /// Allow filling the filesystem that holds the journal.
    #[arg(long, help_heading = "Safety")]
    pub allow_journal_fs: bool,
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Remove what is found (leftovers a live injector holds are never touched).
    #[arg(long)]
    pub fix: bool,
    /// Also these journals' open faults (repeatable; --journal / DRILL_JOURNAL is always read
    /// when it exists).
    #[arg(long = "also-journal", value_name = "PATH")]
    pub journals: Vec<PathBuf>,
    /// Also search this directory for fill files (repeatable; mount roots are always searched).
    #[arg(long, value_name = "DIR")]
    pub dir: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct GuardArgs {
    /// Trip when this URL fails for --failing-for (repeatable; any 2xx passes).
    #[arg(long, value_name = "URL", help_heading = "Stop conditions")]
    pub http: Vec<String>,
    /// How long an --http probe may fail without a pass before it trips (default 0: at once).
    #[arg(
        long,
        value_name = "D",
        requires = "http",
        help_heading = "Stop conditions"
    )]
    pub failing_for: Option<Dur>,
    /// Trip when more than this share of the watch samplers' requests failed over --window.
    #[arg(long, value_name = "P", help_heading = "Stop conditions")]
    pub error_rate: Option<crate::units::Ratio>,
    /// The error-rate window.
    #[arg(
        long,
        value_name = "D",
        requires = "error_rate",
        help_heading = "Stop conditions"
    )]
    pub window: Option<Dur>,
    /// A kill switch: trip when this file exists.
    #[arg(
        long,
        value_name = "PATH",
        env = "DRILL_HALT_FILE",
        help_heading = "Stop conditions"
    )]
    pub halt_file: Option<PathBuf>,
    /// Trip when this environment variable is true (1, true, yes, on), e.g. from a repository
    /// variable.
    #[arg(long, value_name = "VAR", help_heading = "Stop conditions")]
    pub halt_env: Option<String>,
    /// How often the conditions are asked.
    #[arg(long, default_value_t = Dur(crate::guard::DEFAULT_INTERVAL))]
    pub interval: Dur,
}

#[derive(Args, Debug)]
pub struct ReapArgs {
    /// What to undo and when, as JSON (`faults::reaper::Orders`).
    #[arg(long)]
    pub orders: String,
}

/// Run a reaper (`__reap`), for `inject-fault` and `drill` alike.
pub async fn reap(r: ReapArgs, cancel: &CancellationToken) -> Result<Code, Failure> {
    let orders: faults::reaper::Orders = serde_json::from_str(&r.orders)
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("--orders: {e}")))?;
    faults::reaper::run(orders, cancel).await?;
    Ok(Code::Ok)
}

#[derive(Args, Debug)]
pub struct ProxyArgs {
    #[arg(long)]
    pub fault: String,
    #[arg(long)]
    pub listen: String,
    #[arg(long)]
    pub to: String,
    #[arg(long, default_value = "0ms")]
    pub delay: Dur,
    #[arg(long, default_value = "0ms")]
    pub jitter: Dur,
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
    /// A named network namespace (`ip netns list`): partition, degrade.
    #[arg(long, value_name = "NAME", help_heading = "Targets")]
    pub netns: Option<String>,
    /// The host's own network namespace: partition, degrade.
    #[arg(long, help_heading = "Targets")]
    pub host: bool,
    /// A directory whose filesystem fill-disk fills.
    #[arg(long, value_name = "DIR", help_heading = "Targets")]
    pub path: Option<PathBuf>,
    /// Where this runs; production (or prod) is refused without --allow-production.
    #[arg(
        long,
        value_name = "NAME",
        env = "DRILL_ENVIRONMENT",
        help_heading = "Safety"
    )]
    pub environment: Option<String>,
    /// Allow --environment / DRILL_ENVIRONMENT production.
    #[arg(long, env = "DRILL_ALLOW_PRODUCTION", help_heading = "Safety")]
    pub allow_production: bool,
    /// Only containers carrying this label may be targeted (repeatable, ANDed).
    #[arg(
        long,
        value_name = "KEY=VALUE",
        env = "DRILL_REQUIRE_LABEL",
        value_delimiter = ',',
        help_heading = "Safety"
    )]
    pub require_label: Vec<String>,
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
    #[arg(long, default_value_t = Dur(faults::DEFAULT_STOP_TIMEOUT))]
    pub timeout: Dur,
    /// Hold the fault this long, then revert it (SIGINT/SIGTERM revert at once, exit 4).
    #[arg(long)]
    pub duration: Option<Dur>,
    /// The dead-man's switch: a detached reaper undoes the fault this long after it is applied
    /// unless it was undone before (survives a SIGKILL and a lost journal). Default:
    /// --duration + 60s, else 1h.
    #[arg(long, env = "DRILL_DEADLINE", help_heading = "Safety")]
    pub deadline: Option<Dur>,
    /// Container faults get their reaper as a container on the target's engine, with the
    /// engine's socket mounted: this is that socket's path on the engine's host (default: the
    /// engine's own socket when it is local, else /var/run/docker.sock). Recorded in the journal.
    #[arg(
        long,
        value_name = "PATH",
        env = "DRILL_REAPER_SOCKET",
        help_heading = "Safety"
    )]
    pub reaper_socket: Option<PathBuf>,
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
    if let Some(code) = common::helper_mode() {
        return code;
    }
    let cli = Cli::parse();
    let v = cli.common.verbose;
    common::main("inject-fault", v, |cancel| run(cli, cancel))
}

async fn run(cli: Cli, cancel: CancellationToken) -> Result<Code, Failure> {
    let path = cli.common.journal_path();
    let common = &cli.common;
    match cli.command {
        Command::Crash(a) => apply(Fault::Crash, a, common, &cancel).await,
        Command::Stop(a) => {
            let timeout = a.timeout.0;
            apply(Fault::Stop { timeout }, a, common, &cancel).await
        }
        Command::Kill(a) => {
            let signal = a.signal.unwrap_or(nix::sys::signal::Signal::SIGKILL);
            apply(Fault::Kill { signal }, a, common, &cancel).await
        }
        Command::Pause(a) => apply(Fault::Pause, a, common, &cancel).await,
        Command::Restart(a) => {
            let timeout = a.timeout.0;
            apply(Fault::Restart { timeout }, a, common, &cancel).await
        }
        Command::Partition(p) => {
            let fault = Fault::Partition(partition::Options {
                networks: p.network,
                to: p.to,
                method: p.method,
                helper_image: p.helper.helper_image,
            });
            apply(fault, p.apply, common, &cancel).await
        }
        Command::Degrade(d) => {
            let fault = Fault::Degrade(degrade::Options {
                to: d.to,
                method: d.method,
                delay: d.delay.map(|x| x.0),
                jitter: d.jitter.map(|x| x.0),
                loss: d.loss.map(|x| x.0),
                rate: d.rate,
                devs: d.dev,
                helper_image: d.helper.helper_image,
            });
            apply(fault, d.apply, common, &cancel).await
        }
        Command::FillDisk(f) => {
            let goal = match (f.leave, f.to) {
                (_, Some(p)) => fill::Goal::Percent(p.0),
                (Some(l), None) => fill::Goal::Leave(l.0),
                (None, None) => fill::Goal::Leave(0),
            };
            let fault = Fault::FillDisk(fill::Options {
                goal,
                mount: f.mount,
                allow_root_fs: f.allow_root_fs,
                allow_journal_fs: f.allow_journal_fs,
                journal: Some(path.clone()),
            });
            apply(fault, f.apply, common, &cancel).await
        }
        Command::Doctor(d) => doctor(d, common).await,
        Command::Guard(g) => guard(g, common, &cancel).await,
        Command::Reap(r) => reap(r, &cancel).await,
        Command::DegradeProxy(p) => {
            degrade::run_proxy(&p.listen, &p.to, p.delay.0, p.jitter.0, || {
                // start_proxy waits for this line on our stdout.
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "ready {}", p.listen);
                let _ = out.flush();
            })
            .await?;
            Ok(Code::Ok)
        }
        Command::List => {
            let contents = journal::read(&path)?;
            journal::warn_damage(&path, &contents);
            let open = contents.open_faults();
            if common.json {
                let list: Vec<serde_json::Value> = open
                    .iter()
                    .map(|f| serde_json::json!({"id": f.id, "drill": f.drill, "action": f.action, "target": f.target, "applied": f.applied, "planned_at": f.planned_at, "undo": f.undo, "engine": f.engine}))
                    .collect();
                common::print_json(&serde_json::Value::Array(list));
            } else if open.is_empty() {
                say("no open faults");
            }
            for f in &open {
                let on = f
                    .engine
                    .as_ref()
                    .map(|e| format!(" on {}", e.describe()))
                    .unwrap_or_default();
                say(&format!(
                    "{} {} {} {}{on} (undo: {})",
                    f.id,
                    f.drill,
                    f.action,
                    f.target,
                    f.undo.describe()
                ));
            }
            Ok(Code::Ok)
        }
        Command::Revert(r) => {
            let j = Journal::attach(&path, "inject-fault", "drill")?;
            let drill = (!r.all && r.id.is_none()).then(|| j.drill_id().to_string());
            let ids = r.id.map(|i| vec![i]);
            // Each fault goes back to the engine its record names; the flags and environment
            // only choose the engine of faults recorded without one.
            let mut engines = faults::Engines::new(None, common.engine().ok());
            let reverted =
                faults::revert_open(&j, &mut engines, drill.as_deref(), ids.as_deref()).await?;
            crate::drill::tell_reverted(&reverted, &common::Printer);
            let n = reverted.done.len();
            let errors = reverted.errors();
            if common.json {
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

async fn apply(
    fault: Fault,
    a: ApplyArgs,
    common: &Common,
    cancel: &CancellationToken,
) -> Result<Code, Failure> {
    safety::guard_production(
        &[(
            "--environment / DRILL_ENVIRONMENT",
            a.environment.as_deref(),
        )],
        a.allow_production,
    )?;
    let required = safety::parse_labels(&a.require_label, "--require-label")?;
    safety::check_max_targets(a.max_targets)?;
    let spec = TargetSpec {
        container: a.container,
        label: a.label,
        compose_service: a.compose_service,
        pid: a.pid,
        pidfile: a.pidfile,
        process_name: a.process_name,
        netns: a.netns,
        host: a.host,
        path: a.path,
        engine: None,
    };
    spec.validate().map_err(|e| {
        Failure::bad_input(anyhow::anyhow!(
            "{e} (use --container, --label, --compose-service, --pid, --pidfile, --process-name, --netns, --host or --path)"
        ))
    })?;
    if a.signal.is_some() && !matches!(fault, Fault::Kill { .. }) {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--signal applies to kill"
        )));
    }
    let engine = common.engine()?;
    spec.check_engine(&engine)?;
    let docker = if spec.is_docker() {
        Some(crate::docker::connect(&engine).await?)
    } else {
        None
    };
    let targets = spec.resolve(docker.as_ref(), a.max_targets).await?;
    safety::check_required_labels(&targets, docker.as_ref(), &required).await?;
    let steps = faults::plan(&targets, &fault, docker.as_ref()).await?;
    if a.dry_run {
        if let Some(d) = &docker {
            say(&format!("engine: {}", d.engine().describe()));
        }
        for s in &steps {
            say(&format!("would {}", s.describe()));
        }
        if common.json {
            let v: Vec<serde_json::Value> = steps.iter().map(|s| serde_json::json!({"target": s.target.describe(), "action": s.action(), "call": s.call, "ops": s.ops.iter().map(|o| o.describe()).collect::<Vec<_>>(), "undo": s.undo})).collect();
            common::print_json(
                &serde_json::json!({"dry_run": true, "engine": docker.as_ref().map(|d| d.engine()), "steps": v}),
            );
        }
        return Ok(Code::Ok);
    }
    let path = common.journal_path();
    let j = Journal::attach(&path, "inject-fault", "drill")?;
    let hold = a.duration.map(|d| d.0);
    let deadline = faults::reaper::deadline_for(a.deadline.map(|d| d.0), hold);
    if deadline.is_zero() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--deadline must be more than 0"
        )));
    }
    // Signals during the apply or the hold revert what was applied.
    let injector = Injector {
        journal: &j,
        docker: docker.as_ref(),
        reaper_socket: a.reaper_socket.as_deref(),
    };
    let mut ids = Vec::new();
    for s in &steps {
        if cancel.is_cancelled() {
            break;
        }
        match injector.apply(s, hold, deadline).await {
            Ok(id) => {
                say(&format!("{id}: {}", s.describe()));
                ids.push(id);
            }
            Err(e) => {
                // Never leave the first targets faulted when a later one fails.
                revert_ids(&j, docker.as_ref(), &ids).await;
                return Err(e.into());
            }
        }
    }
    if common.json {
        common::print_json(
            &serde_json::json!({"drill": j.drill_id(), "faults": ids, "journal": path}),
        );
    }
    let Some(hold) = hold else {
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
        _ = tokio::time::sleep(hold) => false,
        _ = cancel.cancelled() => true,
    };
    revert_ids(&j, docker.as_ref(), &ids).await;
    Ok(if interrupted {
        Code::Interrupted
    } else {
        Code::Ok
    })
}

/// Revert the faults this run applied, newest first, saying what happened to each.
async fn revert_ids(j: &Journal, docker: Option<&crate::docker::Docker>, ids: &[String]) {
    let mut engines = faults::Engines::new(docker, None);
    match faults::revert_open(j, &mut engines, None, Some(ids)).await {
        Ok(r) => crate::drill::tell_reverted(&r, &common::Printer),
        Err(e) => common::Printer.progress(crate::progress::Progress::RevertFailed(format!(
            "{}: {e}",
            ids.join(", ")
        ))),
    }
}

/// The stop conditions as flags → the same entries a scenario's `stop_if:` holds.
fn guard_specs(g: &GuardArgs) -> Result<Vec<crate::guard::StopIfSpec>, Failure> {
    use crate::guard::StopIfSpec;
    let mut specs: Vec<StopIfSpec> = g
        .http
        .iter()
        .map(|u| StopIfSpec {
            failing_for: g.failing_for,
            probe: crate::probe::ProbeSpec {
                http: Some(u.clone()),
                ..Default::default()
            },
            ..Default::default()
        })
        .collect();
    if let Some(r) = g.error_rate {
        specs.push(StopIfSpec {
            error_rate: Some(r),
            window: g.window,
            ..Default::default()
        });
    }
    if let Some(f) = &g.halt_file {
        specs.push(StopIfSpec {
            file: Some(f.clone()),
            ..Default::default()
        });
    }
    if let Some(v) = &g.halt_env {
        specs.push(StopIfSpec {
            env: Some(v.clone()),
            ..Default::default()
        });
    }
    if specs.is_empty() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "guard needs a condition: --http, --error-rate, --halt-file or --halt-env"
        )));
    }
    for s in &specs {
        s.validate().map_err(|m| {
            let flag = m.split(':').next().unwrap_or("").replace('_', "-");
            Failure::bad_input(anyhow::anyhow!("--{flag}: {m}"))
        })?;
    }
    if g.interval.0.is_zero() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--interval must be more than 0"
        )));
    }
    Ok(specs)
}

async fn guard(g: GuardArgs, common: &Common, cancel: &CancellationToken) -> Result<Code, Failure> {
    let specs = guard_specs(&g)?;
    let j = Journal::attach(&common.journal_path(), "inject-fault", "drill")?;
    // Docker probes among the conditions use the engine the flags and environment choose.
    let engines = crate::docker::engine::EngineSet::one(
        common
            .engine()
            .unwrap_or_else(|_| crate::docker::engine::Engine::local()),
    );
    let mut guard = crate::guard::Guard::build(&specs, &j, &engines).await?;
    say(&format!(
        "guard of drill {}: stop if {}",
        j.drill_id(),
        guard.describe().join(", or ")
    ));
    let Some(trip) = guard.watch(g.interval.0, cancel).await else {
        say("guard stopped; no stop condition tripped");
        if common.json {
            common::print_json(&serde_json::json!({"drill": j.drill_id(), "tripped": false}));
        }
        return Ok(Code::Ok);
    };
    common::Printer.progress(crate::progress::Progress::Aborted {
        condition: trip.condition.clone(),
        value: trip.value.clone(),
    });
    let reverted = crate::guard::abort(&j, None, &trip).await?;
    crate::drill::tell_reverted(&reverted, &common::Printer);
    if common.json {
        common::print_json(&serde_json::json!({
            "drill": j.drill_id(), "tripped": true, "condition": trip.condition,
            "value": trip.value, "reverted": reverted.done.len(), "errors": reverted.errors()
        }));
    }
    if !reverted.failed.is_empty() {
        return Err(Failure::env(anyhow::anyhow!(
            "aborted, but {} fault(s) could not be reverted: {}",
            reverted.failed.len(),
            reverted.errors().join("; ")
        )));
    }
    Ok(Code::DrillFailed)
}

async fn doctor(d: DoctorArgs, common: &Common) -> Result<Code, Failure> {
    let mut journals = d.journals.clone();
    let main = common.journal_path();
    if main.exists() && !journals.contains(&main) {
        journals.insert(0, main);
    }
    let docker = match common.engine() {
        Ok(engine) => match tokio::time::timeout(
            std::time::Duration::from_secs(5),
            crate::docker::connect(&engine),
        )
        .await
        {
            Ok(Ok(d)) => Some(d),
            _ => None,
        },
        Err(_) => None,
    };
    let scope = crate::faults::doctor::Scope {
        journals,
        dirs: d.dir.clone(),
    };
    let mut found = crate::faults::doctor::scan(&scope, docker.as_ref()).await?;
    if d.fix {
        crate::faults::doctor::fix(&mut found, docker.as_ref()).await;
    }
    for f in &found {
        let state = if f.live && f.kind == "reaper" {
            "ARMED (undoes its fault at the deadline unless reverted first)".to_string()
        } else if f.live {
            "LIVE (held by a running injector; left alone)".to_string()
        } else if let Some(h) = &f.fixed {
            format!("fixed: {h}")
        } else if let Some(e) = &f.error {
            format!("NOT FIXED: {e}")
        } else {
            "leftover".to_string()
        };
        say(&format!("{:<13} {} — {state}", f.kind, f.what));
    }
    let leftovers = found.iter().filter(|f| !f.live).count();
    let failed = found.iter().filter(|f| f.error.is_some()).count();
    if common.json {
        common::print_json(
            &serde_json::json!({"findings": found, "leftovers": leftovers, "fixed": d.fix, "failed": failed}),
        );
    }
    if leftovers == 0 {
        say("doctor: no drillkit leftovers on this host");
        return Ok(Code::Ok);
    }
    if !d.fix {
        say(&format!(
            "doctor: {leftovers} leftover(s); remove them with --fix"
        ));
        return Ok(Code::DrillFailed);
    }
    if failed > 0 {
        return Err(Failure::env(anyhow::anyhow!(
            "{failed} of {leftovers} leftover(s) could not be removed"
        )));
    }
    say(&format!("doctor: removed {leftovers} leftover(s)"));
    Ok(Code::Ok)
}
