//! The physical restore test (`--restore-base`, runbook §3 phase 2 for base backups): the base
//! backup and its WAL are copied or unpacked into a private temporary folder, a scratch
//! PostgreSQL of the backup's major version (binaries from `PG_VERSION`:
//! `/usr/lib/postgresql/N/bin`, `pg_config --bindir`, `PATH`) starts on it on a free loopback
//! port — as the `postgres` user when run as root — and recovers to consistency; then the same
//! `--expect-rows` / `--check-sql` as the logical restore run against it. Recovery is a timed
//! phase in the journal (it is part of the RTO). The server is stopped and the folder deleted
//! on every way out: success, failure, timeout, SIGINT/SIGTERM (the binary's one cancellation
//! token) and panic (a guard kills and deletes on drop).

use super::restore::{after_restore, RestoreOptions, RestoreReport};
use super::Check;
use super::Error;
use crate::journal::{Journal, Kind};
use crate::pg::Target;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long recovery may take when `--restore-timeout` does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Are we root? (`/proc/self` belongs to the effective user.)
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The server binaries for `major`.
pub fn find_bin(major: u32) -> Option<PathBuf> {
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    if debian.join("postgres").is_file() {
        return Some(debian);
    }
    if let Ok(out) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("postgres").is_file() && version_of(&dir) == Some(major) {
            return Some(dir);
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|d| d.join("postgres").is_file() && version_of(d) == Some(major))
    })
}

fn version_of(bin: &Path) -> Option<u32> {
    let out = std::process::Command::new(bin.join("postgres"))
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    v.split('.').next()?.parse().ok()
}

/// The scratch server and its folder; dropping it kills the server and deletes the folder.
struct Scratch {
    dir: PathBuf,
    child: Option<std::process::Child>,
}

impl Scratch {
    /// Fast shutdown (SIGINT to the postmaster), then SIGKILL after 30 s.
    fn stop(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("the scratch server did not stop within 30s: killed".into());
                }
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Immediate shutdown (SIGQUIT): the postmaster takes its backends down with it;
            // SIGKILL only if it does not go within 5 s.
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn major_of(text: &str) -> Option<u32> {
    text.trim().split('.').next()?.parse().ok()
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(to)?;
    let mut n = 0;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let ft = e.file_type()?;
        let dest = to.join(e.file_name());
        if ft.is_dir() {
            n += copy_tree(&e.path(), &dest)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path())?, &dest)?;
        } else {
            n += std::fs::copy(e.path(), &dest)?;
        }
    }
    Ok(n)
}

/// Unpack one (possibly compressed) tar archive into `to`.
fn untar(archive: &Path, to: &Path) -> std::io::Result<u64> {
    let mut f = BufReader::with_capacity(1 << 20, std::fs::File::open(archive)?);
    let head = f.fill_buf()?.to_vec();
    let r: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(f))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(f)?)
    } else if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        Box::new(lz4_flex::frame::FrameDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut tar = super::tar::TarReader::new(r);
    let mut n = 0;
    while let Some(m) = tar.next_member()? {
        if m.path.split('/').any(|c| c == "..") || m.path.starts_with('/') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: unsafe path {}", archive.display(), m.path),
            ));
        }
        let dest = to.join(&m.path);
        match m.kind {
            super::tar::Kind::Dir => std::fs::create_dir_all(&dest)?,
            super::tar::Kind::File => {
                if let Some(p) = dest.parent() {
                    std::fs::create_dir_all(p)?;
                }
                let mut out = std::fs::File::create(&dest)?;
                n += std::io::copy(&mut tar, &mut out)?;
            }
            _ => {}
        }
    }
    Ok(n)
}

/// The `recovery` phase ended without consistency: journal it and fail the restore check.
fn recovery_failed(journal: &Journal, checks: &mut Vec<Check>, detail: String) {
    let _ = journal.append(Kind::PhaseFinished {
        name: "recovery".into(),
        ok: false,
        detail: Some(detail.clone()),
    });
    checks.push(Check::fail("restore", detail));
}

/// Restore the base backup `backup` (a folder, plain or tar) physically and run the checks.
/// `Err` only when the tool could not do its job (no binaries, cannot copy: exit 3;
/// interrupted: exit 4); a server that does not recover is a failed check.
pub async fn run(
    backup: &Path,
    wal_dir: Option<&Path>,
    opts: &RestoreOptions,
    journal: &Journal,
    cancel: &CancellationToken,
) -> Result<(RestoreReport, Vec<Check>), Error> {
    let env = Error::Environment;
    let dir = std::env::temp_dir().join(format!(
        "drillkit-restore-base-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir(&dir).map_err(|e| env(format!("cannot create {}: {e}", dir.display())))?;
    let mut scratch = Scratch {
        dir: dir.clone(),
        child: None,
    };
    let data = dir.join("data");
    let mut rep = RestoreReport {
        method: "physical: scratch PostgreSQL on a copy of the base backup".into(),
        ..Default::default()
    };
    let mut checks = Vec::new();
    // Copy or unpack (blocking work off the runtime).
    let (b, d) = (backup.to_path_buf(), data.clone());
    let copied = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let mut tars: Vec<PathBuf> = std::fs::read_dir(&b)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains(".tar"))
            .collect();
        tars.sort();
        if tars.is_empty() {
            return copy_tree(&b, &d);
        }
        let mut n = 0;
        for t in tars {
            let name = t
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with("base.") {
                n += untar(&t, &d)?;
            } else if name.starts_with("pg_wal.") {
                n += untar(&t, &d.join("pg_wal"))?;
            } else {
                return Err(std::io::Error::other(format!(
                    "{name}: tablespaces are not restored by --restore-base yet"
                )));
            }
        }
        Ok(n)
    })
    .await
    .map_err(|e| env(format!("copying the backup stopped: {e}")))?
    .map_err(|e| {
        env(format!(
            "cannot copy {} to {}: {e}",
            backup.display(),
            data.display()
        ))
    })?;
    let major = std::fs::read_to_string(data.join("PG_VERSION"))
        .ok()
        .and_then(|t| major_of(&t))
        .ok_or_else(|| env(format!("{}: no PG_VERSION in the backup", backup.display())))?;
    let bin = find_bin(major).ok_or_else(|| {
        env(format!(
            "PostgreSQL {major} server binaries not found (/usr/lib/postgresql/{major}/bin, pg_config, PATH): install postgresql-{major} to restore this backup"
        ))
    })?;
    // Our own settings win; our own hba lets us in over the private socket only.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| env(format!("no free loopback port: {e}")))?;
    let conf = format!(
        "\n# drillkit --restore-base\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{d}'\n\
         hba_file = '{d}/hba.conf'\nident_file = '{d}/ident.conf'\narchive_mode = off\nhot_standby = on\n\
         primary_conninfo = ''\nlogging_collector = off\nfsync = off\nmax_wal_senders = 0\nwal_level = replica\n{restore}",
        d = dir.display(),
        restore = match wal_dir {
            Some(w) => format!("restore_command = 'cp {}/%f %p'\n", w.display()),
            None => String::new(),
        }
    );
    let setup = || -> std::io::Result<()> {
        use std::io::Write;
        let conf_path = data.join("postgresql.conf");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(conf_path)?;
        f.write_all(conf.as_bytes())?;
        std::fs::write(dir.join("hba.conf"), "local all all trust\n")?;
        std::fs::write(dir.join("ident.conf"), "")?;
        let _ = std::fs::remove_file(data.join("postmaster.pid"));
        std::fs::create_dir_all(data.join("pg_wal/archive_status"))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
        if is_root() {
            let ok = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()?
                .success();
            if !ok {
                return Err(std::io::Error::other("chown -R postgres failed"));
            }
        }
        Ok(())
    };
    setup().map_err(|e| env(format!("preparing {}: {e}", data.display())))?;
    let log = std::fs::File::create(dir.join("server.log"))
        .map_err(|e| env(format!("server log: {e}")))?;
    let postgres = bin.join("postgres");
    let mut cmd = if is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--reuid",
            "postgres",
            "--regid",
            "postgres",
            "--init-groups",
            "--",
        ])
        .arg(&postgres);
        c
    } else {
        std::process::Command::new(&postgres)
    };
    cmd.arg("-D")
        .arg(&data)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    let _ = journal.append(Kind::PhaseStarted {
        name: "recovery".into(),
    });
    let started = Instant::now();
    scratch.child = Some(
        cmd.spawn()
            .map_err(|e| env(format!("cannot start {}: {e}", postgres.display())))?,
    );
    let target = Target::parse(&format!(
        "host={} port={port} user=postgres dbname=postgres sslmode=disable",
        dir.display()
    ))
    .map_err(|e| env(e.to_string()))?;
    let limit = opts.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let log_tail = |dir: &Path| {
        let text = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(3).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    };
    // Poll until the server accepts connections (consistency reached), exits, or time is up.
    let client = loop {
        if cancel.is_cancelled() {
            let _ = journal.append(Kind::PhaseFinished {
                name: "recovery".into(),
                ok: false,
                detail: Some("interrupted".into()),
            });
            // Returning drops the guard: the server is killed, the folder deleted.
            return Err(Error::Interrupted(
                "interrupted during the physical restore (scratch server stopped, folder deleted)"
                    .into(),
            ));
        }
        if let Some(Ok(Some(status))) = scratch.child.as_mut().map(|c| c.try_wait()) {
            let detail = format!(
                "the scratch server exited ({status}) before it was consistent: {}",
                log_tail(&dir)
            );
            recovery_failed(journal, &mut checks, detail);
            return Ok((rep, checks));
        }
        if started.elapsed() > limit {
            let detail = format!(
                "not consistent within {}: {}",
                crate::units::fmt_duration(limit.as_secs_f64()),
                log_tail(&dir)
            );
            recovery_failed(journal, &mut checks, detail);
            let _ = scratch.stop();
            return Ok((rep, checks));
        }
        tokio::select! {
            c = target.connect(Duration::from_secs(2)) => {
                if let Ok(c) = c { break c; }
            }
            _ = cancel.cancelled() => continue,
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = cancel.cancelled() => {}
        }
    };
    rep.seconds = started.elapsed().as_secs_f64();
    let _ = journal.append(Kind::PhaseFinished {
        name: "recovery".into(),
        ok: true,
        detail: Some(format!(
            "PostgreSQL {major} consistent on a copy of {} ({copied} bytes)",
            backup.display()
        )),
    });
    rep.database = format!("scratch cluster on 127.0.0.1:{port}");
    checks.push(Check::pass(
        "restore",
        format!(
            "PostgreSQL {major} ({}) recovered the backup to consistency in {} on 127.0.0.1:{port}",
            bin.display(),
            crate::units::fmt_duration(rep.seconds)
        ),
    ));
    tokio::select! {
        _ = after_restore(&client, opts, &mut rep, &mut checks) => {}
        _ = cancel.cancelled() => {
            return Err(Error::Interrupted(
                "interrupted during the physical restore's checks (scratch server stopped, folder deleted)"
                    .into(),
            ));
        }
    }
    drop(client);
    let stopped = tokio::task::spawn_blocking(move || {
        let r = scratch.stop();
        drop(scratch);
        r
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    rep.dropped = !dir.exists();
    match stopped {
        Ok(()) if rep.dropped => checks.push(Check::pass(
            "cleanup",
            format!("scratch server stopped, {} deleted", dir.display()),
        )),
        Ok(()) => checks.push(Check::fail(
            "cleanup",
            format!("{} could not be deleted", dir.display()),
        )),
        Err(e) => checks.push(Check::fail("cleanup", e)),
    }
    Ok((rep, checks))
}
