//! What every binary shares: `--journal`, `--json`, logging, the exit-code mapping.

use crate::exit::{Code, Failure};
use crate::progress::{Observer, Progress, Sink};
use crate::units::fmt_duration;
use clap::Args;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Flags every binary takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// The drill journal (JSON Lines) shared by all drillkit binaries.
    #[arg(
        long,
        global = true,
        env = "DRILL_JOURNAL",
        value_name = "PATH",
        help_heading = "Common"
    )]
    pub journal: Option<PathBuf>,

    /// Machine-readable JSON on stdout (human lines still go to stderr).
    #[arg(long, global = true, help_heading = "Common")]
    pub json: bool,

    /// More detail on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Common")]
    pub verbose: u8,

    /// The Docker engine: unix:///PATH, tcp://HOST:PORT (TLS with DOCKER_TLS_VERIFY and
    /// DOCKER_CERT_PATH) or ssh://[USER@]HOST[:PORT]. Default: DOCKER_HOST, else the docker CLI's
    /// context (DOCKER_CONTEXT, then its current context), else the local socket.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        help_heading = "Docker engine"
    )]
    pub docker_host: Option<String>,

    /// A context of the docker CLI's store (`docker context ls`); beats DOCKER_HOST, as in the
    /// docker CLI.
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        help_heading = "Docker engine"
    )]
    pub docker_context: Option<String>,
}

impl Common {
    pub fn journal_path(&self) -> PathBuf {
        crate::journal::resolve_path(self.journal.as_deref())
    }

    /// The Docker engine these flags and the environment select, the docker CLI's way; exit 2
    /// for contradicting flags, 3 for a context or TLS files that are not there.
    pub fn engine(&self) -> Result<crate::docker::Engine, Failure> {
        let sel = crate::docker::engine::Selection {
            host: self.docker_host.clone().filter(|h| !h.is_empty()),
            context: self.docker_context.clone().filter(|c| !c.is_empty()),
        };
        crate::docker::engine::resolve(&sel, &crate::docker::engine::process_env)
            .map_err(|e| crate::docker::Error::from(e).into())
    }
}

impl Common {
    /// The engine when something will talk to Docker; otherwise the local default, which is then
    /// never connected to (a broken `DOCKER_*` setting does not stop work that has no use for it).
    pub fn engine_if(&self, needed: bool) -> Result<crate::docker::Engine, Failure> {
        if needed {
            self.engine()
        } else {
            Ok(crate::docker::Engine::local())
        }
    }
}

/// When this executable was started as a helper container's entrypoint (`__drillkit-helper …`,
/// see `docker::helper`), do that work and return its exit code; `None` otherwise.
pub fn helper_mode() -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some(crate::docker::helper::ARG) {
        return None;
    }
    if args.get(1).map(String::as_str) == Some(crate::faults::reaper::HELPER_COMMAND) {
        return Some(reaper_container(
            args.get(2).map(String::as_str).unwrap_or_default(),
        ));
    }
    let out = |line: &str| {
        use std::io::Write;
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{line}");
        let _ = o.flush();
    };
    Some(match crate::docker::helper::run_helper(&args[1..], &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drillkit helper: {e}");
            ExitCode::from(Code::Environment as u8)
        }
    })
}

/// A reaper container's main (`__drillkit-helper reap ORDERS`): say it is armed, wait for the
/// deadline, undo, say what it did (one JSON line each: the container's logs).
fn reaper_container(orders: &str) -> ExitCode {
    let co: crate::faults::reaper::ContainerOrders = match serde_json::from_str(orders) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("drillkit reaper: bad orders: {e}");
            return ExitCode::from(Code::BadInput as u8);
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("drillkit reaper: {e}");
            return ExitCode::from(Code::Environment as u8);
        }
    };
    let docker = match rt.block_on(crate::faults::reaper::reaper_engine(&co)) {
        Ok(d) => d,
        Err(e) => {
            println!(
                "{}",
                serde_json::json!({"not_armed": co.orders.fault, "error": e})
            );
            return ExitCode::from(Code::Environment as u8);
        }
    };
    // The first key is what the injector waits for (`docker::helper::ARMED_LINE`).
    println!(
        "{{\"armed\":{},\"action\":{},\"target\":{},\"deadline\":{},\"in_seconds\":{}}}",
        serde_json::json!(co.orders.fault),
        serde_json::json!(co.orders.action),
        serde_json::json!(co.orders.target),
        serde_json::json!(co.orders.deadline),
        co.after_s
    );
    let r = rt.block_on(crate::faults::reaper::reap_in_container(co, docker));
    println!("{}", serde_json::to_string(&r).unwrap_or_default());
    if r.outcome == "reverted" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(Code::Environment as u8)
    }
}

/// The commit this binary was built from, handed over by its `main` ([`built_from`]).
static COMMIT: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Called first by each binary's `main` (bins/*.rs) with `option_env!("DRILLKIT_COMMIT")`:
/// read there, a new commit recompiles those six small crates and not the library (with its
/// unit tests and the suite, ~200 s of a CI run on two cores).
pub fn built_from(commit: Option<&'static str>) {
    let _ = COMMIT.set(commit.filter(|c| !c.is_empty()).unwrap_or("unknown"));
}

/// What `--version` prints after the binary's name: the crate version and the commit the binary
/// was built from, e.g. `0.1.0 (commit 3f2a…)`. The commit comes from `DRILLKIT_COMMIT` at build
/// time (scripts/package.sh and the action's source build set it; cargo rebuilds the binaries
/// when it changes, [`built_from`]), `unknown` otherwise. The action's install script compares
/// both before it reuses an installed copy.
pub fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        let commit = COMMIT.get().copied().unwrap_or("unknown");
        format!("{} (commit {commit})", env!("CARGO_PKG_VERSION"))
    })
}

/// Run a binary's async body on a tokio runtime: set up logging and TLS, create the one
/// cancellation token (SIGINT/SIGTERM) the whole binary listens to, print the error chain
/// (redacted, prefixed with the binary's name) and map it to the exit-code table.
pub fn main<F, Fut>(bin: &'static str, verbose: u8, body: F) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<Code, Failure>>,
{
    init_logging(verbose);
    // One crypto provider for the whole binary (ring); an error only means one is installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{bin}: cannot start the async runtime: {e}");
            return ExitCode::from(Code::Environment as u8);
        }
    };
    let result = runtime.block_on(async {
        let cancel = crate::signal::shutdown_token();
        body(cancel).await
    });
    // Do not wait for stray blocking tasks (a probe stuck in a syscall) on the way out.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(f) => {
            let msg = crate::redact::redact(&format!("{:#}", f.error));
            eprintln!("{bin}: error: {msg}");
            crate::cli::actions::error_annotation(&format!("{bin}: {msg}"));
            ExitCode::from(f.code as u8)
        }
    }
}

/// Log lines go to stderr: `drillkit`'s at info (`-v` debug, `-vv` trace), others' at warn.
/// `DRILL_LOG` replaces that with `target=level` directives (`debug`, `drillkit=trace,bollard=debug`);
/// an empty value, or one that does not parse, keeps the default.
fn init_logging(verbose: u8) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match verbose {
        0 => LevelFilter::INFO,
        1 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    // Spaces around a directive and empty ones (`error,`, an unset workflow input) are dropped:
    // `Targets` would read them as a target named "" or " drillkit".
    let filter = std::env::var("DRILL_LOG")
        .ok()
        .map(|d| {
            d.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|d| !d.is_empty())
        .and_then(|d| d.parse::<Targets>().ok())
        .unwrap_or_else(|| {
            Targets::new()
                .with_default(LevelFilter::WARN)
                .with_target("drillkit", level)
        });
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time();
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(filter)
        .try_init();
}

/// Print a JSON value on stdout, redacted; a closed pipe (`| head`) is not an error.
pub fn print_json(value: &serde_json::Value) {
    use std::io::Write;
    let value = crate::redact::redact_json(value.clone());
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, &value)
        .and_then(|_| out.write_all(b"\n").map_err(serde_json::Error::io));
}

/// A human line on stderr, with secrets redacted.
pub fn say(line: &str) {
    eprintln!("{}", crate::redact::redact(line));
}

/// Renders the library's progress as lines on stderr (redacted), and its sections as
/// collapsible groups under GitHub Actions.
pub struct Printer;

/// The printer, as a sink the library can share with background tasks.
pub fn printer() -> Sink {
    Arc::new(Printer)
}

impl Observer for Printer {
    fn progress(&self, p: Progress) {
        match p {
            Progress::Section(title) => super::actions::group_start(&title),
            Progress::SectionEnd => super::actions::group_end(),
            Progress::DrillStarted { name, id, journal } => {
                say(&format!("drill {name} ({id}) started; journal {journal}"))
            }
            Progress::ServiceStarted(name) => say(&format!("service {name} started")),
            Progress::PreflightPassed { probe, detail } => {
                say(&format!("preflight ✓ {probe}: {detail}"))
            }
            Progress::Injected { id, step } => say(&format!("injected {id}: {step}")),
            Progress::Reverted {
                id,
                action,
                target,
                how,
            } => say(&format!("reverted {id} {action} {target}: {how}")),
            Progress::SelfHealed {
                id,
                action,
                target,
                how,
            } => say(&format!("closed {id} {action} {target}: {how}")),
            Progress::RevertFailed(line) => say(&format!("REVERT FAILED: {line}")),
            Progress::ProbeChanged {
                elapsed_s,
                ok,
                probe,
                detail,
                latency_s,
            } => say(&format!(
                "[+{}] {} {probe}: {detail} ({})",
                fmt_duration(elapsed_s),
                if ok { "✓" } else { "✗" },
                fmt_duration(latency_s)
            )),
            Progress::WaitEnded {
                what,
                recovered: true,
                seconds,
            } => say(&format!(
                "{what}: all probes pass; recovered {} after the wait began",
                fmt_duration(seconds)
            )),
            Progress::WaitEnded {
                what,
                recovered: false,
                seconds,
            } => say(&format!(
                "{what}: NOT recovered within {}",
                fmt_duration(seconds)
            )),
            Progress::WatchChanged {
                elapsed_s,
                source,
                up,
                error,
            } => say(&format!(
                "[+{}] {source} {}",
                fmt_duration(elapsed_s),
                if up {
                    "up".to_string()
                } else {
                    format!("down: {}", error.unwrap_or_default())
                }
            )),
            Progress::PhaseEnded {
                name,
                took_s,
                ok,
                interrupted,
                detail,
            } => {
                let took = fmt_duration(took_s);
                say(&if ok {
                    format!("phase {name}: done in {took}")
                } else if interrupted {
                    format!("phase {name}: interrupted after {took}")
                } else {
                    format!(
                        "phase {name}: FAILED after {took}: {}",
                        detail.unwrap_or_default()
                    )
                })
            }
            Progress::DrillStopped(why) => say(&format!("drill: {why}")),
            Progress::Aborted { condition, value } => {
                let line = format!(
                    "drill ABORTED: stop condition '{condition}' tripped ({value}); every open fault is reverted"
                );
                say(&line);
                crate::cli::actions::error_annotation(&line);
            }
            Progress::BackupFile(path) => say(&path),
            Progress::BackupChecked { file, check: c } => {
                let tag = match (c.ok, c.warning) {
                    (false, _) => "FAIL",
                    (true, true) => "warn",
                    (true, false) => "ok",
                };
                say(&format!("  {tag:<4}  {:<16} {}", c.check, c.detail));
                let line = || crate::redact::redact(&format!("{file}: {}: {}", c.check, c.detail));
                if !c.ok {
                    crate::cli::actions::error_annotation(&line());
                } else if c.warning {
                    crate::cli::actions::warning_annotation(&line());
                }
            }
            Progress::GitHubRetry {
                why,
                delay_s,
                attempt,
                attempts,
            } => say(&format!(
                "GitHub: {why}; retrying in {} (attempt {attempt} of {attempts})",
                fmt_duration(delay_s)
            )),
        }
    }
}
