//! Command probe: a shell command (`sh -c`) that exits 0. Its output is kept for the report.

use super::Outcome;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct CommandProbe {
    command: String,
}

impl CommandProbe {
    pub fn new(command: &str) -> Result<CommandProbe, String> {
        if command.trim().is_empty() {
            return Err("command probe is empty".into());
        }
        Ok(CommandProbe {
            command: command.to_string(),
        })
    }

    pub fn describe(&self) -> String {
        format!("command {:?}", self.command)
    }

    pub async fn check(&self, timeout: Duration) -> Outcome {
        let start = Instant::now();
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(timeout, child).await {
            Ok(Ok(out)) if out.status.success() => Outcome::pass("exit 0", start.elapsed()),
            Ok(Ok(out)) => {
                let err = String::from_utf8_lossy(&out.stderr);
                let last = err.lines().last().unwrap_or("").trim();
                let code = out
                    .status
                    .code()
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "signal".into());
                Outcome::fail(
                    if last.is_empty() {
                        format!("exit {code}")
                    } else {
                        format!("exit {code}: {last}")
                    },
                    start.elapsed(),
                )
            }
            Ok(Err(e)) => Outcome::fail(format!("cannot run sh: {e}"), start.elapsed()),
            Err(_) => Outcome::fail(
                format!("still running after {}", crate::units::Dur(timeout)),
                start.elapsed(),
            ),
        }
    }
}
