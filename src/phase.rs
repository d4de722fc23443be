//! Timed phases: any step of a drill (a failover command, a restore script, a deploy) timed
//! into the journal, so the report shows how long each took.

use crate::journal::{Journal, Kind};
use crate::progress::{Observer, Progress};
use crate::units::fmt_duration;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a phase runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// A scenario's `run:` line, through `sh -c` (it is written as shell).
    Shell(String),
    /// A program and its arguments, run as given: no shell parses them.
    Argv(Vec<String>),
}

impl Command {
    /// The command as a person would type it.
    pub fn describe(&self) -> String {
        match self {
            Command::Shell(line) => line.clone(),
            Command::Argv(argv) => crate::faults::netns::shell(argv),
        }
    }
}

/// A dry run's phase: recorded as planned; nothing is run.
pub fn plan(journal: &Journal, name: &str, command: &Command) -> std::io::Result<()> {
    journal.append(Kind::PhasePlanned {
        name: name.to_string(),
        command: command.describe(),
    })?;
    Ok(())
}

/// How a command phase ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Ended {
    Ok,
    Failed(String),
    Interrupted,
}

/// Run a command as a phase. Output goes to our stderr; the phase fails on a non-zero exit or
/// after `timeout`, and the child is killed if we are interrupted.
pub async fn run(
    journal: &Journal,
    name: &str,
    command: &Command,
    timeout: Option<Duration>,
    cancel: &CancellationToken,
    obs: &dyn Observer,
) -> std::io::Result<Ended> {
    run_env(journal, name, command, &[], timeout, cancel, obs).await
}

/// [`run`] with variables added to the command's environment (a restore step's
/// `DRILL_BACKUP`, `DRILL_JOURNAL`, `DRILL_ID`).
pub async fn run_env(
    journal: &Journal,
    name: &str,
    command: &Command,
    env: &[(String, String)],
    timeout: Option<Duration>,
    cancel: &CancellationToken,
    obs: &dyn Observer,
) -> std::io::Result<Ended> {
    journal.append(Kind::PhaseStarted {
        name: name.to_string(),
    })?;
    let started = std::time::Instant::now();
    let (mut cmd, program) = match command {
        Command::Shell(line) => {
            let mut c = tokio::process::Command::new("sh");
            c.arg("-c").arg(line);
            (c, "sh")
        }
        Command::Argv(argv) => match argv.as_slice() {
            [prog, args @ ..] => {
                let mut c = tokio::process::Command::new(prog);
                c.args(args);
                (c, prog.as_str())
            }
            [] => {
                let ended = Ended::Failed("empty command".into());
                finish(journal, name, &ended)?;
                return Ok(ended);
            }
        },
    };
    // Child output goes to our stderr so stdout stays machine-readable.
    let stderr = std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned()?;
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    // Its own process group: a step's children (a restore's pg_restore, a script's sleep) are
    // stopped with it on a timeout or a signal, not left running after the drill.
    cmd.stdin(std::process::Stdio::null())
        .stdout(stderr)
        .process_group(0)
        .kill_on_drop(true);
    let ended = match cmd.spawn() {
        Err(e) => Ended::Failed(format!("cannot start {program}: {e}")),
        Ok(mut child) => {
            let group = Group::of(&child);
            let limit = timeout.unwrap_or(Duration::from_secs(24 * 3600));
            tokio::select! {
                status = child.wait() => {
                    // Ended by itself: what it left running in the background (a daemon it
                    // started) is the step's business.
                    group.disarm();
                    match status {
                        Ok(s) if s.success() => Ended::Ok,
                        Ok(s) => Ended::Failed(match s.code() { Some(c) => format!("exit {c}"), None => "killed by a signal".into() }),
                        Err(e) => Ended::Failed(format!("wait failed: {e}")),
                    }
                }
                _ = tokio::time::sleep(limit) => {
                    group.stop(&mut child).await;
                    Ended::Failed(format!("timed out after {}", fmt_duration(limit.as_secs_f64())))
                }
                _ = cancel.cancelled() => {
                    group.stop(&mut child).await;
                    Ended::Interrupted
                }
            }
        }
    };
    finish(journal, name, &ended)?;
    obs.progress(Progress::PhaseEnded {
        name: name.to_string(),
        took_s: started.elapsed().as_secs_f64(),
        ok: ended == Ended::Ok,
        interrupted: ended == Ended::Interrupted,
        detail: match &ended {
            Ended::Failed(e) => Some(e.clone()),
            _ => None,
        },
    });
    Ok(ended)
}

/// How long a step's process group has to stop after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A step's process group while the step runs: SIGKILLed when dropped before the step ended (a
/// panic, or the step's future dropped, still stops the step's children, not only its shell).
struct Group(Option<nix::unistd::Pid>);

impl Group {
    fn of(child: &tokio::process::Child) -> Group {
        Group(
            child
                .id()
                .and_then(|p| i32::try_from(p).ok())
                .map(nix::unistd::Pid::from_raw),
        )
    }

    /// Whether any member is left (zombies waiting for init count a moment longer).
    fn alive(&self) -> bool {
        self.0
            .is_some_and(|g| nix::sys::signal::killpg(g, None).is_ok())
    }

    fn disarm(mut self) {
        self.0 = None;
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(g) = self.0 {
            let _ = nix::sys::signal::killpg(g, sig);
        }
    }

    /// Stop the step and everything it started: SIGTERM (and SIGCONT, for members that are
    /// stopped) to the group; every member gets [`STOP_GRACE`] to exit, the step's own process
    /// and its children alike; SIGKILL for what is left.
    async fn stop(mut self, child: &mut tokio::process::Child) {
        use nix::sys::signal::Signal;
        self.signal(Signal::SIGTERM);
        self.signal(Signal::SIGCONT);
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        let _ = tokio::time::timeout_at(deadline, child.wait()).await;
        while self.alive() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.signal(Signal::SIGKILL);
        let _ = child.wait().await;
        self.0 = None;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
    }
}

fn finish(journal: &Journal, name: &str, ended: &Ended) -> std::io::Result<()> {
    let (ok, detail) = match ended {
        Ended::Ok => (true, None),
        Ended::Failed(e) => (false, Some(e.clone())),
        Ended::Interrupted => (false, Some("interrupted".to_string())),
    };
    journal.append(Kind::PhaseFinished {
        name: name.to_string(),
        ok,
        detail,
    })?;
    Ok(())
}
