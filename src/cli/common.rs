//! What every binary shares: `--journal`, `--json`, logging, the exit-code mapping.

use crate::exit::{Code, Failure};
use clap::Args;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

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
}

impl Common {
    pub fn journal_path(&self) -> PathBuf {
        crate::journal::resolve_path(self.journal.as_deref())
    }
}

/// Run a binary's async body on a tokio runtime: set up logging and TLS, print the error chain
/// (redacted, prefixed with the binary's name) and map it to the exit-code table.
pub fn main<F, Fut>(bin: &'static str, verbose: u8, body: F) -> ExitCode
where
    F: FnOnce() -> Fut,
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
    let result = runtime.block_on(body());
    // Do not wait for stray blocking tasks (a probe stuck in a syscall) on the way out.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(f) => {
            let msg = crate::redact::redact(&format!("{:#}", f.error));
            eprintln!("{bin}: error: {msg}");
            crate::actions::error_annotation(&format!("{bin}: {msg}"));
            ExitCode::from(f.code as u8)
        }
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("DRILL_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,drillkit={default}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
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
