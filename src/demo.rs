//! The demo service, so a complete drill runs on a machine with no Docker and no database: a
//! supervisor (playing Docker's restart policy) that keeps one HTTP worker alive, restarting it
//! `restart_delay` after it dies. The drill crashes the worker and measures the recovery.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Run the supervisor until `cancel` (SIGINT/SIGTERM): start the worker, restart it after it
/// dies.
pub async fn supervise(
    exe: &Path,
    listen: &str,
    pidfile: &Path,
    restart_delay: Duration,
    cancel: &tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    loop {
        let mut child = tokio::process::Command::new(exe)
            .args(["demo-service", "--worker", "--listen", listen, "--pidfile"])
            .arg(pidfile)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        tokio::select! {
            status = child.wait() => {
                tracing::info!("demo worker exited ({}); restarting in {}", status.map(|s| s.to_string()).unwrap_or_default(), crate::units::Dur(restart_delay));
            }
            _ = cancel.cancelled() => {
                let _ = child.kill().await;
                let _ = std::fs::remove_file(pidfile);
                return Ok(());
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(restart_delay) => {}
            _ = cancel.cancelled() => {
                let _ = std::fs::remove_file(pidfile);
                return Ok(());
            }
        }
    }
}

/// The worker: write the pidfile, answer every HTTP request with `200 ok`.
pub async fn worker(listen: &str, pidfile: &Path) -> std::io::Result<()> {
    let listener = bind_retrying(listen).await?;
    write_pidfile(pidfile)?;
    loop {
        let (mut sock, _) = listener.accept().await?;
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let mut seen = Vec::new();
            // Read the request head (up to the blank line), then answer.
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 16 * 1024 {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let body = "ok\n";
            let resp = format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// A restarted worker may find the port in TIME_WAIT for a moment; tokio sets SO_REUSEADDR.
async fn bind_retrying(listen: &str) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = None;
    for _ in 0..50 {
        match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("bind failed")))
}

fn write_pidfile(pidfile: &Path) -> std::io::Result<()> {
    if let Some(dir) = pidfile.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp: PathBuf = pidfile.with_extension("tmp");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
    std::fs::rename(tmp, pidfile)
}
