//! Run a real drillkit binary in a clean environment and check what it did.
//!
//! `Bin::new("inject-fault").args(["crash", "--container", c]).journal(&j).succeeds()`

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn exe(name: &str) -> PathBuf {
    let var = format!("CARGO_BIN_EXE_{name}");
    match std::env::var_os(&var) {
        Some(p) => PathBuf::from(p),
        None => {
            // Integration tests get CARGO_BIN_EXE_* at compile time; fall back to the target dir.
            let mut p = std::env::current_exe().expect("current exe");
            p.pop();
            if p.ends_with("deps") {
                p.pop();
            }
            p.join(name)
        }
    }
}

pub struct Bin {
    cmd: Command,
    line: String,
}

/// What a finished run left: exit code, stdout, stderr.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub line: String,
}

impl Bin {
    pub fn new(name: &str) -> Bin {
        let mut cmd = Command::new(exe(name));
        // A clean environment: nothing from the developer's shell or the CI runner leaks in;
        // DRILL_RUN_DIR is the test run's own folder of fault locks and reapers.
        cmd.env_clear();
        for keep in ["PATH", "HOME", "DOCKER_HOST", "TMPDIR", "DRILL_RUN_DIR"] {
            if let Some(v) = std::env::var_os(keep) {
                cmd.env(keep, v);
            }
        }
        cmd.env("DRILL_LOG", "info");
        cmd.stdin(Stdio::null());
        Bin {
            cmd,
            line: name.to_string(),
        }
    }

    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Bin {
        self.line.push(' ');
        self.line.push_str(&a.as_ref().to_string_lossy());
        self.cmd.arg(a);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Bin
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    pub fn journal(self, path: &Path) -> Bin {
        self.env("DRILL_JOURNAL", path)
    }

    pub fn env(mut self, k: impl AsRef<std::ffi::OsStr>, v: impl AsRef<std::ffi::OsStr>) -> Bin {
        self.cmd.env(k, v);
        self
    }

    pub fn env_remove(mut self, k: impl AsRef<std::ffi::OsStr>) -> Bin {
        self.cmd.env_remove(k);
        self
    }

    /// Run with no Docker engine variable at all (what a later step of another job sees).
    pub fn no_docker_env(mut self) -> Bin {
        for k in [
            "DOCKER_HOST",
            "DOCKER_TLS_VERIFY",
            "DOCKER_CERT_PATH",
            "DOCKER_CONTEXT",
            "DOCKER_CONFIG",
            "DRILLKIT_SSH_CONFIG",
        ] {
            self.cmd.env_remove(k);
        }
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Bin {
        self.cmd.current_dir(dir);
        self
    }

    /// Spawn without waiting (for signal tests); stdout/stderr are piped.
    pub fn spawn(mut self) -> std::process::Child {
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        self.cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.line))
    }

    pub fn run(mut self) -> Run {
        let out: Output = self
            .cmd
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.line));
        Run::from_output(out, self.line)
    }

    /// Run and expect exit 0.
    pub fn succeeds(self) -> Run {
        self.code(0)
    }

    /// Run and expect this exit code.
    pub fn code(self, expected: i32) -> Run {
        let r = self.run();
        assert_eq!(
            r.code, expected,
            "`{}` exited {} (expected {expected})\n--- stdout\n{}\n--- stderr\n{}",
            r.line, r.code, r.stdout, r.stderr
        );
        r
    }
}

impl Run {
    pub fn from_output(out: Output, line: String) -> Run {
        use std::os::unix::process::ExitStatusExt;
        let code = out
            .status
            .code()
            .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
        Run {
            code,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            line,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("`{}` stdout is not JSON ({e}):\n{}", self.line, self.stdout)
        })
    }

    pub fn stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "`{}` stderr lacks {needle:?}:\n{}",
            self.line,
            self.stderr
        );
        self
    }
}
