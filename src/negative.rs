//! Negative controls (`drill run --negative-control[=KIND]`): a drill that has only ever been
//! seen green is no evidence, so the scenario is run once with a planted defect it must catch.
//! Three defects, one per way a drill can go blind:
//!
//! - `dead-port`: the recovery probes point at a port nothing answers, so the service can never be
//!   seen to recover and the wait must time out (`recovery_timeout`);
//! - `unreverted-fault`: the drill's own reverts (a fault's `duration`, `revert: all`, the revert
//!   before `verify`) are skipped, so the fault stays in place and the verify (or recovery) wait
//!   must give up while it is still open (`fault_left_open`); the runner's safety net reverts it
//!   at the end as on every exit path;
//! - `flipped-byte` (restore scenarios, a step with `backup:`): the step reads a copy of the
//!   backup with one byte flipped, and its verification must report the copy damaged
//!   (`backup_damaged`: a checksum, CRC or manifest mismatch). The copy lives in a temporary
//!   folder removed when the [`Planted`] is dropped, on every exit path of the run.
//!
//! The journal records the defect and the finding expected (`negative_control`); `measure`
//! passes the run only if the drill failed with that finding.

use crate::probe::ProbeSpec;
use crate::scenario::Scenario;
use std::path::{Path, PathBuf};

/// The finding that proves a dead recovery probe was caught (see `measure`).
pub const RECOVERY_TIMEOUT: &str = "recovery_timeout";
/// The finding that proves a fault left in place was caught.
pub const FAULT_LEFT_OPEN: &str = "fault_left_open";
/// The finding that proves a damaged backup copy was caught.
pub const BACKUP_DAMAGED: &str = "backup_damaged";

/// Which defect to plant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defect {
    DeadPort,
    UnrevertedFault,
    FlippedByte,
}

impl Defect {
    pub const ALL: [Defect; 3] = [
        Defect::DeadPort,
        Defect::UnrevertedFault,
        Defect::FlippedByte,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Defect::DeadPort => "dead-port",
            Defect::UnrevertedFault => "unreverted-fault",
            Defect::FlippedByte => "flipped-byte",
        }
    }

    pub fn parse(s: &str) -> Option<Defect> {
        Defect::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// The defect that fits a scenario: a damaged backup for a restore scenario, a fault left
    /// in place for one that reverts a fault and verifies afterwards, else dead recovery probes.
    pub fn pick(s: &Scenario) -> Defect {
        if backup_step(s).is_some() {
            Defect::FlippedByte
        } else if unreverted_fits(s) {
            Defect::UnrevertedFault
        } else {
            Defect::DeadPort
        }
    }
}

/// What was planted and what must catch it.
#[derive(Debug)]
pub struct Planted {
    pub kind: Defect,
    pub defect: String,
    pub expected: String,
    pub catch: &'static str,
    /// `unreverted-fault`: the drill's own reverts are skipped (the safety net still runs).
    pub skip_reverts: bool,
    /// `flipped-byte`: the damaged copy the steps with `backup:` read instead.
    pub backup: Option<BackupCopy>,
}

/// A temporary folder, removed with everything in it when dropped.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let p = std::env::temp_dir().join(format!(
            "drillkit-negative-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir(&p)?;
        Ok(TempDir(p))
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A damaged copy of a backup in a temporary folder, removed when dropped.
#[derive(Debug)]
pub struct BackupCopy {
    dir: TempDir,
    pub original: PathBuf,
    /// The copy (same file name as the original, so its checksum sidecars still name it).
    pub copy: PathBuf,
    /// The file whose byte was flipped (the copy itself, or a file in a copied folder).
    pub flipped: PathBuf,
    pub offset: u64,
}

impl BackupCopy {
    /// The temporary folder holding the copy.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Plant a defect (the one that fits when `kind` is None). Errors say why this scenario has no
/// such control.
pub fn plant(s: &mut Scenario, kind: Option<Defect>) -> Result<Planted, String> {
    match kind.unwrap_or_else(|| Defect::pick(s)) {
        Defect::DeadPort => dead_port_probes(s),
        Defect::UnrevertedFault => unreverted(s),
        Defect::FlippedByte => flipped_byte(s),
    }
}

/// The first restore (or recovery) step that names a backup.
fn backup_step(s: &Scenario) -> Option<&Path> {
    s.restore
        .iter()
        .chain(s.recovery.iter().flat_map(|r| &r.actions))
        .find_map(|st| st.backup.as_deref())
}

/// A fault that must be reverted (not a crash, which its restart policy undoes) and a check
/// after the revert point (`verify:`) or a revert the recovery depends on (`revert: all`).
fn unreverted_fits(s: &Scenario) -> bool {
    let revertable = s.faults.iter().any(|f| f.action.as_str() != "crash");
    let reverts = s.restore.iter().any(|st| st.revert.is_some())
        || s.recovery
            .iter()
            .flat_map(|r| &r.actions)
            .any(|st| st.revert.is_some())
        || s.faults.iter().any(|f| f.duration.is_some());
    revertable && reverts && (s.verify.is_some() || s.recovery.is_some())
}

fn unreverted(s: &mut Scenario) -> Result<Planted, String> {
    if s.faults.is_empty() {
        return Err("the scenario has no fault to leave in place".into());
    }
    if !unreverted_fits(s) {
        return Err("no fault here is reverted by the drill before a check (a fault other than crash, reverted by `revert: all` or its `duration`, with `verify:` or `recovery:` after it)".into());
    }
    let wait = s
        .verify
        .as_ref()
        .map(|v| ("verify", v.timeout))
        .or_else(|| s.recovery.as_ref().map(|r| ("recovery", r.timeout)));
    let (which, timeout) = wait.ok_or("the scenario has no verify or recovery wait")?;
    let faults: Vec<String> = s
        .faults
        .iter()
        .map(|f| {
            let t = s.target_of(f).map(|t| t.describe()).unwrap_or_default();
            format!("{} {t}", f.action.as_str())
        })
        .collect();
    Ok(Planted {
        kind: Defect::UnrevertedFault,
        defect: format!(
            "a fault that is not reverted: the drill's own reverts are skipped ({}); only the runner's safety net undoes it after the checks",
            faults.join(", ")
        ),
        expected: format!(
            "the {which} wait gives up after {} while the fault is still in place",
            humantime::format_duration(timeout.0)
        ),
        catch: FAULT_LEFT_OPEN,
        skip_reverts: true,
        backup: None,
    })
}

fn flipped_byte(s: &mut Scenario) -> Result<Planted, String> {
    let original = backup_step(s)
        .ok_or("no restore step names its `backup:` (the file or folder a negative control copies with one flipped byte)")?
        .to_path_buf();
    let copy = damaged_copy(&original)
        .map_err(|e| format!("cannot make a damaged copy of {}: {e}", original.display()))?;
    Ok(Planted {
        kind: Defect::FlippedByte,
        defect: format!(
            "a copy of the backup {} with one flipped byte (byte {} of {})",
            original.display(),
            copy.offset,
            copy.flipped
                .strip_prefix(copy.dir())
                .unwrap_or(&copy.flipped)
                .display()
        ),
        expected: "the backup's verification reports the copy damaged (a checksum, CRC or manifest mismatch)".into(),
        catch: BACKUP_DAMAGED,
        skip_reverts: false,
        backup: Some(copy),
    })
}

/// Copy a backup (a file with its sidecars, or a folder) into a temporary folder and flip one
/// byte in the middle of the file (of a folder: its largest file other than the manifest).
pub fn damaged_copy(original: &Path) -> std::io::Result<BackupCopy> {
    let dir = TempDir::new()?;
    let name = original.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file")
    })?;
    let copy = dir.path().join(name);
    let flipped = if original.is_dir() {
        copy_dir(original, &copy)?;
        largest_file(&copy)?.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the folder holds no data file",
            )
        })?
    } else {
        std::fs::copy(original, &copy)?;
        // Checksum sidecars (FILE.sha256, …) come along, so the copy is checked against them.
        if let (Some(parent), Some(n)) = (original.parent(), name.to_str()) {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            for e in std::fs::read_dir(parent)?.flatten() {
                let f = e.file_name();
                let f = f.to_string_lossy();
                if f.len() > n.len() && f.starts_with(n) && f.as_bytes()[n.len()] == b'.' {
                    std::fs::copy(e.path(), dir.path().join(&*f))?;
                }
            }
        }
        copy.clone()
    };
    let offset = flip_middle(&flipped)?;
    Ok(BackupCopy {
        dir,
        original: original.to_path_buf(),
        copy,
        flipped,
        offset,
    })
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)?.flatten() {
        let t = e.file_type()?;
        let dest = to.join(e.file_name());
        if t.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else if t.is_file() {
            std::fs::copy(e.path(), &dest)?;
        }
    }
    Ok(())
}

/// The largest regular file under a folder, `backup_manifest` aside (a flipped byte there is
/// a different finding: the manifest's own checksum).
fn largest_file(dir: &Path) -> std::io::Result<Option<PathBuf>> {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() && e.file_name() != "backup_manifest" {
                let len = e.metadata()?.len();
                if len > 0 && best.as_ref().is_none_or(|(l, _)| len > *l) {
                    best = Some((len, e.path()));
                }
            }
        }
    }
    Ok(best.map(|(_, p)| p))
}

/// Flip every bit of the byte in the middle of a file; its offset.
fn flip_middle(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is empty", path.display()),
        ));
    }
    let at = len / 2;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at)?;
    b[0] ^= 0xff;
    f.write_all_at(&b, at)?;
    f.sync_all()?;
    Ok(at)
}

/// Plant the dead port: every recovery probe that names an address (http, tcp, postgres,
/// redis) is pointed at `127.0.0.1:<port>` where nothing listens.
fn dead_port_probes(s: &mut Scenario) -> Result<Planted, String> {
    let Some(r) = s.recovery.as_mut() else {
        return Err("the scenario has no recovery section: a negative control points its recovery probes at a dead port".into());
    };
    let port = dead_port().map_err(|e| format!("cannot find a free port: {e}"))?;
    let mut moved = Vec::new();
    for p in r.probes.iter_mut() {
        if let Some((from, to)) = repoint(p, port) {
            moved.push(format!("{from} → {to}"));
        }
    }
    if moved.is_empty() {
        return Err("no recovery probe names an address (http, tcp, postgres, redis) that a negative control could point at a dead port".into());
    }
    Ok(Planted {
        kind: Defect::DeadPort,
        defect: format!(
            "recovery probes pointed at 127.0.0.1:{port}, where nothing answers ({})",
            crate::redact::redact(&moved.join(", "))
        ),
        expected: format!(
            "the recovery wait times out after {} instead of seeing the service recover",
            humantime::format_duration(r.timeout.0)
        ),
        catch: RECOVERY_TIMEOUT,
        skip_reverts: false,
        backup: None,
    })
}

/// A loopback port nothing listens on: bound by the kernel's choice, then released.
fn dead_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Point one probe at 127.0.0.1:port; (old, new) when it was moved.
fn repoint(p: &mut ProbeSpec, port: u16) -> Option<(String, String)> {
    if let Some(t) = p.tcp.as_mut() {
        let old = t.clone();
        *t = format!("127.0.0.1:{port}");
        return Some((old, t.clone()));
    }
    let u = [p.http.as_mut(), p.postgres.as_mut(), p.redis.as_mut()]
        .into_iter()
        .flatten()
        .next()?;
    let old = u.clone();
    let mut parsed = url::Url::parse(u).ok()?;
    parsed.set_host(Some("127.0.0.1")).ok()?;
    parsed.set_port(Some(port)).ok()?;
    *u = parsed.to_string();
    Some((old, u.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_probes_are_pointed_at_a_dead_port() {
        // http probes build a client, which needs the process's one crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut s = crate::scenario::parse(
            "s.yaml",
            "name: x\nrecovery:\n  timeout: 5s\n  probes:\n    - http: http://shop:8080/health\n    - tcp: db:5432\n    - command: true\n",
        )
        .expect("scenario");
        assert_eq!(Defect::pick(&s), Defect::DeadPort);
        let p = plant(&mut s, None).expect("planted");
        let probes = &s.recovery.as_ref().expect("recovery").probes;
        let http = probes[0].http.clone().unwrap_or_default();
        assert!(http.starts_with("http://127.0.0.1:"), "{http}");
        assert!(http.ends_with("/health"), "{http}");
        assert!(probes[1]
            .tcp
            .as_deref()
            .is_some_and(|t| t.starts_with("127.0.0.1:")));
        assert_eq!(probes[2].command.as_deref(), Some("true"));
        assert!(
            p.defect.contains("http://shop:8080/health →"),
            "{}",
            p.defect
        );
        assert!(p.expected.contains("5s"), "{}", p.expected);
        let mut none = crate::scenario::parse("s.yaml", "name: x\n").expect("scenario");
        assert!(plant(&mut none, None).is_err());
        assert!(plant(&mut none, Some(Defect::FlippedByte)).is_err());
        assert!(plant(&mut none, Some(Defect::UnrevertedFault)).is_err());
    }

    #[test]
    fn a_damaged_copy_differs_by_one_byte_and_is_removed_with_its_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("b.sql.gz");
        std::fs::write(&f, b"0123456789").expect("write");
        std::fs::write(dir.path().join("b.sql.gz.sha256"), b"x").expect("write");
        let c = damaged_copy(&f).expect("copy");
        let got = std::fs::read(&c.copy).expect("read");
        assert_eq!(c.offset, 5);
        assert_eq!(got[5], b'5' ^ 0xff);
        assert_eq!(&got[..5], b"01234");
        assert!(c.dir().join("b.sql.gz.sha256").exists());
        assert_eq!(std::fs::read(&f).expect("original"), b"0123456789");
        let tmp = c.dir().to_path_buf();
        drop(c);
        assert!(!tmp.exists(), "the copy is removed with its folder");
    }
}
