//! `ssh://` engines, spoken the way the docker CLI speaks them: one
//! `ssh [-F CONFIG] -o ConnectTimeout=30 -T [-l USER] [-p PORT] -- HOST docker system dial-stdio`
//! per connection, so the user's ssh config, keys and agent apply. bollard talks to a unix socket
//! in a private temporary directory; each connection to it is piped to a new ssh. bollard opens a
//! connection per API call, so the ssh processes share one authenticated connection
//! (`ControlMaster=auto`, its socket in the same directory, `ControlPersist=30s`). The directory,
//! the listener, every ssh and the shared connection (`ssh -O exit`) die with the [`Proxy`] (on
//! every exit path that unwinds; after a SIGKILL the shared connection ends 30s after its last
//! use).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::net::UnixListener;
use tokio::process::Command;
use tokio::task::{JoinHandle, JoinSet};

/// The local end of an ssh engine.
#[derive(Debug)]
pub struct Proxy {
    dir: PathBuf,
    socket: PathBuf,
    /// `ssh … -O exit HOST`: closes the shared connection.
    exit: Vec<String>,
    accept: JoinHandle<()>,
    /// The last thing an ssh said on stderr (for "cannot reach" errors).
    last_error: Arc<Mutex<String>>,
}

impl Proxy {
    /// Listen on a fresh socket; each connection runs the docker CLI's ssh command for
    /// `[user@]host[:port]`.
    pub fn start(
        user: Option<&str>,
        host: &str,
        port: Option<u16>,
        config: Option<&Path>,
    ) -> std::io::Result<Proxy> {
        let dir = std::env::temp_dir().join(format!("drillkit-ssh-{:016x}", rand::random::<u64>()));
        let control = dir.join("cm");
        let argv = argv(user, host, port, config, Some(&control));
        let mut exit = argv[..argv.len() - 5].to_vec();
        exit.extend(["-O".to_string(), "exit".into(), host.to_string()]);
        std::fs::create_dir(&dir)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let socket = dir.join("docker.sock");
        let listener = match UnixListener::bind(&socket) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let last_error = Arc::new(Mutex::new(String::new()));
        let errors = last_error.clone();
        let accept = tokio::spawn(async move {
            // Dropped (with every connection task, each killing its ssh) when the proxy is.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { break };
                        conns.spawn(pipe(stream, argv.clone(), errors.clone()));
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(Proxy {
            dir,
            socket,
            exit,
            accept,
            last_error,
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// What the last ssh wrote on stderr, trimmed.
    pub fn last_error(&self) -> String {
        self.last_error
            .lock()
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        if self.dir.join("cm").exists() {
            if let Some((prog, args)) = self.exit.split_first() {
                let _ = std::process::Command::new(prog)
                    .args(args)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One connection: a new ssh, stdin/stdout piped to the socket both ways.
async fn pipe(mut stream: tokio::net::UnixStream, argv: Vec<String>, errors: Arc<Mutex<String>>) {
    let Some((prog, args)) = argv.split_first() else {
        return;
    };
    let child = Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            if let Ok(mut s) = errors.lock() {
                *s = format!("cannot run {prog}: {e}");
            }
            return;
        }
    };
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return;
    };
    let errs = errors.clone();
    let err_task = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf).await;
        let text = String::from_utf8_lossy(&buf).trim().to_string();
        if !text.is_empty() {
            if let Ok(mut s) = errs.lock() {
                *s = text;
            }
        }
    });
    let (mut rd, mut wr) = stream.split();
    let up = async {
        let _ = tokio::io::copy(&mut rd, &mut stdin).await;
        drop(stdin);
    };
    let down = async {
        use tokio::io::AsyncWriteExt;
        let _ = tokio::io::copy(&mut stdout, &mut wr).await;
        let _ = wr.shutdown().await;
    };
    // Both directions to their end: the client's end closes ssh's stdin, ssh's end (it exits or
    // closes stdout) closes the client's read side.
    tokio::join!(up, down);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), child.wait()).await;
    let _ = child.start_kill();
    let _ = err_task.await;
}

/// The ssh command line the docker CLI uses for `ssh://[user@]host[:port]` (with `control`: the
/// shared connection's socket).
pub fn argv(
    user: Option<&str>,
    host: &str,
    port: Option<u16>,
    config: Option<&Path>,
    control: Option<&Path>,
) -> Vec<String> {
    let mut v = vec!["ssh".to_string()];
    if let Some(c) = config {
        v.push("-F".into());
        v.push(c.display().to_string());
    }
    v.extend(["-o", "ConnectTimeout=30", "-o", "BatchMode=yes", "-T"].map(String::from));
    if let Some(c) = control {
        v.extend([
            "-o".to_string(),
            "ControlMaster=auto".into(),
            "-o".into(),
            format!("ControlPath={}", c.display()),
            "-o".into(),
            "ControlPersist=30s".into(),
        ]);
    }
    if let Some(u) = user {
        v.push("-l".into());
        v.push(u.into());
    }
    if let Some(p) = port {
        v.push("-p".into());
        v.push(p.to_string());
    }
    v.extend(["--", host, "docker", "system", "dial-stdio"].map(String::from));
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn argv_is_the_docker_clis() {
        assert_eq!(
            super::argv(Some("root"), "127.0.0.1", Some(2222), None, None).join(" "),
            "ssh -o ConnectTimeout=30 -o BatchMode=yes -T -l root -p 2222 -- 127.0.0.1 docker system dial-stdio"
        );
    }
}
