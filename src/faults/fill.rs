//! fill-disk: fill the filesystem holding a directory (a path, or a container's volume or bind
//! mount) until `--leave SIZE` is left or `--to PERCENT` is used, with one file drillkit names
//! after the fault, so the service under test meets a real ENOSPC. Revert deletes that file.
//! The root filesystem and the one holding the journal are refused unless allowed: filling them
//! would break the host or the drill's own evidence.

use super::{Error, Result};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Fill files are named `.drillkit-fill-<fault id>` so revert and `doctor` know them.
pub const FILE_PREFIX: &str = ".drillkit-fill-";

/// How full to make the filesystem.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Goal {
    /// Leave this many bytes free (0: completely full, for root too).
    Leave(u64),
    /// Use this fraction of the filesystem.
    Percent(f64),
}

impl Goal {
    pub fn describe(&self) -> String {
        match self {
            Goal::Leave(b) => format!("until {} is left", crate::units::Size(*b)),
            Goal::Percent(p) => format!("until {}% is used", (p * 1000.0).round() / 10.0),
        }
    }
}

/// A fill-disk as asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// How full (default: leave nothing).
    pub goal: Goal,
    /// On a container: its mount point (volume or bind mount).
    pub mount: Option<String>,
    pub allow_root_fs: bool,
    pub allow_journal_fs: bool,
    /// The drill's journal, whose filesystem is refused unless allowed.
    pub journal: Option<PathBuf>,
}

/// Space on the filesystem holding `dir`, as root sees it (reserved blocks count as free).
#[derive(Clone, Copy, Debug)]
pub struct Space {
    pub total: u64,
    pub free: u64,
}

pub fn space(dir: &Path) -> Result<Space> {
    let s = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| Error::io(format!("statvfs {}", dir.display()), e.into()))?;
    let f = s.fragment_size() as u64;
    Ok(Space {
        total: s.blocks() as u64 * f,
        free: s.blocks_free() as u64 * f,
    })
}

/// Bytes to allocate to reach the goal.
pub fn bytes_needed(sp: Space, goal: Goal) -> u64 {
    match goal {
        Goal::Leave(l) => sp.free.saturating_sub(l),
        Goal::Percent(p) => {
            let used = sp.total.saturating_sub(sp.free);
            ((sp.total as f64 * p) as u64).saturating_sub(used)
        }
    }
}

/// Check the directory and the guards; returns the fill file's path and the bytes it would take
/// now. Touches nothing.
pub fn plan(dir: &Path, fault: &str, o: &Options) -> Result<(PathBuf, u64)> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| Error::io(format!("fill-disk: cannot read {}", dir.display()), e))?;
    if !meta.is_dir() {
        return Err(Error::Invalid(format!(
            "fill-disk --path {} is not a directory",
            dir.display()
        )));
    }
    let root_dev = std::fs::metadata("/").map(|m| m.dev()).ok();
    if root_dev == Some(meta.dev()) && !o.allow_root_fs {
        return Err(Error::Invalid(format!(
            "fill-disk: {} is on the root filesystem; filling it would hurt the host itself. \
             Point it at the service's own volume, or pass --allow-root-fs (nothing was touched)",
            dir.display()
        )));
    }
    if let Some(j) = &o.journal {
        if !o.allow_journal_fs {
            if let Some(jdev) = existing_ancestor(j)
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| m.dev())
            {
                if jdev == meta.dev() {
                    return Err(Error::Invalid(format!(
                        "fill-disk: {} is on the filesystem holding the journal {}; a full disk would \
                         stop the drill recording (and reverting). Move the journal (--journal) or pass \
                         --allow-journal-fs (nothing was touched)",
                        dir.display(),
                        j.display()
                    )));
                }
            }
        }
    }
    let file = dir.join(format!("{FILE_PREFIX}{fault}"));
    let bytes = bytes_needed(space(dir)?, o.goal);
    Ok((file, bytes))
}

fn existing_ancestor(p: &Path) -> Option<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(p)
    };
    abs.ancestors().find(|a| a.exists()).map(Path::to_path_buf)
}

/// Create the fill file (never an existing one) and grow it to the goal: fallocate in chunks,
/// falling back to writes where the filesystem cannot preallocate; with nothing to leave, the
/// last blocks are written until the kernel says ENOSPC. Returns the bytes taken.
pub fn fill(file: &Path, goal: Goal) -> Result<u64> {
    let dir = file
        .parent()
        .ok_or_else(|| Error::Invalid(format!("bad fill path {}", file.display())))?;
    let target = bytes_needed(space(dir)?, goal);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
        .map_err(|e| Error::io(format!("fill-disk: create {}", file.display()), e))?;
    const CHUNK: u64 = 64 << 20;
    let mut done: u64 = 0;
    let mut can_fallocate = true;
    while done < target {
        let n = (target - done).min(CHUNK);
        if can_fallocate {
            match nix::fcntl::fallocate(
                &f,
                nix::fcntl::FallocateFlags::empty(),
                done as i64,
                n as i64,
            ) {
                Ok(()) => {
                    done += n;
                    continue;
                }
                Err(nix::errno::Errno::EOPNOTSUPP) => can_fallocate = false,
                Err(nix::errno::Errno::ENOSPC) => break,
                Err(e) => {
                    return Err(Error::io(
                        format!("fill-disk: fallocate {}", file.display()),
                        e.into(),
                    ))
                }
            }
        }
        match write_zeros(&mut f, n) {
            Ok(w) => done += w,
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
            Err(e) => return Err(Error::io(format!("fill-disk: write {}", file.display()), e)),
        }
    }
    if matches!(goal, Goal::Leave(0)) {
        // Metadata and rounding leave a few blocks; take them so the next write fails.
        use std::io::Seek;
        let _ = f.seek(std::io::SeekFrom::End(0));
        loop {
            match f.write(&[0u8; 4096]) {
                Ok(0) => break,
                Ok(w) => done += w as u64,
                Err(_) => break,
            }
        }
    }
    let _ = f.sync_all();
    Ok(done)
}

fn write_zeros(f: &mut std::fs::File, n: u64) -> std::io::Result<u64> {
    use std::io::Seek;
    f.seek(std::io::SeekFrom::End(0))?;
    let buf = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..k])?;
        left -= k as u64;
    }
    Ok(n)
}

/// Undo: delete the fill file; already gone is fine.
pub fn remove(path: &str) -> Result<String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(format!("deleted {path}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(format!("{path} already gone")),
        Err(e) => Err(Error::io(format!("cannot delete {path}"), e)),
    }
}

/// The host directory behind a container's mount point (a volume or a bind mount), on the
/// engine's host (a path here only when the engine is local).
pub async fn container_mount(
    docker: &crate::docker::Docker,
    id: &str,
    name: &str,
    dest: &str,
) -> Result<PathBuf> {
    let c = docker
        .inspect_container(id, None)
        .await
        .map_err(crate::docker::Error::api(format!(
            "cannot inspect container {name}"
        )))?;
    let mounts = c.mounts.unwrap_or_default();
    let want = dest.trim_end_matches('/');
    let m = mounts
        .iter()
        .find(|m| m.destination.as_deref().map(|d| d.trim_end_matches('/')) == Some(want))
        .ok_or_else(|| {
            let have: Vec<String> = mounts
                .iter()
                .filter_map(|m| m.destination.clone())
                .collect();
            Error::Invalid(format!(
                "container {name} has no volume or bind mount at {dest} (mounts: {})",
                if have.is_empty() {
                    "none".into()
                } else {
                    have.join(", ")
                }
            ))
        })?;
    let src = m.source.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
        Error::Target(format!("mount {dest} of {name} has no host source (tmpfs mounts cannot be filled from the host)"))
    })?;
    Ok(PathBuf::from(src))
}
