//! Run a GitHub Actions workflow for real, under act (nektos/act) in host mode and offline,
//! through `../shared/gha/act-run`, and read what the run did from act's JSON log: the job's
//! exit status, every step's result and time, the outputs steps set, the step summary.
//!
//! ```ignore
//! let run = Act::new("workflow_dispatch", "tests/workflows/action-install.yml")
//!     .input("download-url", &url)
//!     .env("DRILLKIT_INSTALL_DIR", dir.path())
//!     .run();
//! run.assert_success();
//! assert_eq!(run.output("drillkit", "result").as_deref(), Some("passed"));
//! ```
//!
//! Steps are named by their id path as act logs them: a top-level step `"demo"`, a step inside
//! a composite action `"demo/release"`; a step without an id by its position (`"0"`).
//! Host mode: the job runs on this machine in a fresh copy of `dir` (the checkout step copies
//! it), so it sees the Docker engine and the loopback services the test started.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The act-run script: `DRILLKIT_ACT_RUN`, else the one in the offline runner kit
/// ([`super::gha_dir`]).
pub fn act_run() -> PathBuf {
    std::env::var_os("DRILLKIT_ACT_RUN")
        .map(PathBuf::from)
        .or_else(|| super::gha_dir().map(|d| d.join("act-run")))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/gha/act-run"))
}

/// Whether act can be run here (the act-run script exists; it installs act itself).
pub fn available() -> bool {
    super::has(super::Fixture::Act)
}

/// One act invocation, built up and then `run`.
pub struct Act {
    dir: PathBuf,
    event: String,
    workflow: PathBuf,
    args: Vec<OsString>,
    process_env: Vec<(OsString, OsString)>,
    line: String,
}

impl Act {
    /// Run `workflow` (a path relative to the repository) for `event` (`push`,
    /// `workflow_dispatch`, ...) in this repository.
    pub fn new(event: &str, workflow: impl AsRef<Path>) -> Act {
        let workflow = workflow.as_ref().to_path_buf();
        Act {
            dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            line: format!("act-run {event} -W {}", workflow.display()),
            event: event.to_string(),
            workflow,
            args: Vec::new(),
            process_env: Vec::new(),
        }
    }

    /// The repository to run in (default: this crate's).
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Act {
        self.dir = dir.as_ref().to_path_buf();
        self
    }

    fn pair(mut self, flag: &str, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Act {
        let mut kv = OsString::from(format!("{k}="));
        kv.push(v.as_ref());
        self.line
            .push_str(&format!(" {flag} {}", kv.to_string_lossy()));
        self.args.push(flag.into());
        self.args.push(kv);
        self
    }

    /// Only this job.
    pub fn job(mut self, job: &str) -> Act {
        self.line.push_str(&format!(" -j {job}"));
        self.args.extend(["-j".into(), job.into()]);
        self
    }

    /// A `workflow_dispatch` input (`inputs.NAME`).
    pub fn input(self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Act {
        self.pair("--input", k, v)
    }

    /// A repository variable (`vars.NAME`).
    pub fn var(self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Act {
        self.pair("--var", k, v)
    }

    /// An environment variable of every job (`env.NAME`, and in every step's environment).
    pub fn env(self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Act {
        self.pair("--env", k, v)
    }

    /// A secret (`secrets.NAME`); its value is masked in act's log.
    pub fn secret(self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Act {
        self.pair("-s", k, v)
    }

    /// The event payload (`github.event`) from a JSON file.
    pub fn event_file(mut self, path: impl AsRef<Path>) -> Act {
        self.args.push("-e".into());
        self.args.push(path.as_ref().into());
        self
    }

    /// Any other act argument.
    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Act {
        self.args.push(a.as_ref().into());
        self
    }

    /// An environment variable of act itself (not of the jobs).
    pub fn process_env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Act {
        self.process_env.push((k.into(), v.as_ref().into()));
        self
    }

    /// Run act to the end and collect its log.
    pub fn run(self) -> ActRun {
        let started = Instant::now();
        let mut cmd = Command::new("bash");
        cmd.arg(act_run())
            .arg(&self.event)
            .arg("-W")
            .arg(&self.workflow)
            .args(&self.args)
            .arg("--json")
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        for (k, v) in &self.process_env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run act-run");
        let elapsed = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let events = stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .collect();
        ActRun {
            code: out.status.code(),
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            events,
            elapsed,
            line: self.line,
        }
    }
}

/// What an act run left.
pub struct ActRun {
    /// act's exit status: 0 when every job succeeded.
    pub code: Option<i32>,
    /// act's raw JSON log (one object a line).
    pub stdout: String,
    pub stderr: String,
    pub events: Vec<serde_json::Value>,
    /// Wall time of the whole act run.
    pub elapsed: Duration,
    pub line: String,
}

fn step_path(e: &serde_json::Value) -> Option<String> {
    let ids = e.get("stepID").or_else(|| e.get("stepid"))?.as_array()?;
    Some(
        ids.iter()
            .filter_map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("/"),
    )
}

impl ActRun {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The log as a person reads it: each line's message, prefixed with its step path.
    pub fn log(&self) -> String {
        let mut s = String::new();
        for e in &self.events {
            let msg = e["msg"].as_str().unwrap_or("");
            let step = step_path(e).unwrap_or_default();
            for l in msg.trim_end_matches('\n').lines() {
                s.push_str(&format!("[{step}] {l}\n"));
            }
        }
        if !self.stderr.trim().is_empty() {
            s.push_str("--- act stderr ---\n");
            s.push_str(&self.stderr);
        }
        s
    }

    /// Panic with the log unless every job succeeded.
    pub fn assert_success(&self) -> &ActRun {
        assert!(
            self.success(),
            "{} failed ({:?}):\n{}",
            self.line,
            self.code,
            self.log()
        );
        self
    }

    /// Everything the step at `step` set with `$GITHUB_OUTPUT` (for a composite action: its
    /// outputs), the last value of each name.
    pub fn outputs(&self, step: &str) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for e in &self.events {
            if e["command"].as_str() == Some("set-output") && step_path(e).as_deref() == Some(step)
            {
                if let (Some(k), Some(v)) = (e["name"].as_str(), e["arg"].as_str()) {
                    m.insert(k.to_string(), v.to_string());
                }
            }
        }
        m
    }

    /// One output of one step.
    pub fn output(&self, step: &str, name: &str) -> Option<String> {
        self.outputs(step).remove(name)
    }

    /// `success`, `failure` or `skipped`, as act reports the step; None when it never ran.
    pub fn step_result(&self, step: &str) -> Option<String> {
        self.events
            .iter()
            .rev()
            .filter(|e| step_path(e).as_deref() == Some(step))
            .find_map(|e| e["stepResult"].as_str())
            .map(str::to_string)
    }

    /// How long the step took (act's own measure).
    pub fn step_time(&self, step: &str) -> Option<Duration> {
        self.events
            .iter()
            .rev()
            .filter(|e| step_path(e).as_deref() == Some(step))
            .find_map(|e| e["executionTime"].as_u64())
            .map(Duration::from_nanos)
    }

    /// What the step printed, in order: its output lines, and the workflow commands it gave
    /// (`::error::…`, `::warning::…`) as act shows them.
    pub fn step_log(&self, step: &str) -> String {
        self.events
            .iter()
            .filter(|e| step_path(e).as_deref() == Some(step))
            .filter(|e| e["raw_output"].as_bool() == Some(true) || e["command"].is_string())
            .filter_map(|e| e["msg"].as_str())
            .map(|m| format!("{}\n", m.trim_end_matches('\n')))
            .collect()
    }

    /// Annotations of one level (`error`, `warning`, `notice`) as (step path, message), each
    /// once (a composite action's are logged for its inner step only).
    pub fn annotations(&self, level: &str) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter(|e| e["command"].as_str() == Some(level))
            .filter_map(|e| Some((step_path(e)?, e["arg"].as_str()?.to_string())))
            .collect()
    }

    /// The job summary: what the steps wrote to `$GITHUB_STEP_SUMMARY`, in order. act may log
    /// a composite action's summary for its inner step and again for the action; the copy is
    /// left out.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let mut last: Option<(String, &str)> = None;
        for e in &self.events {
            if e["command"].as_str() != Some("summary") {
                continue;
            }
            let (Some(path), Some(content)) = (step_path(e), e["content"].as_str()) else {
                continue;
            };
            let repeat = last
                .as_ref()
                .is_some_and(|(p, c)| *c == content && p.starts_with(&format!("{path}/")));
            if !repeat {
                out.push_str(content);
            }
            last = Some((path, content));
        }
        out
    }
}
