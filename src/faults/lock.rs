//! One lock file per held fault: the injector that applied a fault holds an exclusive `flock` on
//! `<lock dir>/<fault id>.lock` until it reverts the fault or dies (SIGKILL included: the kernel
//! drops the lock). `doctor` and `--fix` leave a fault whose lock is taken alone: a live drill
//! owns it.

use std::collections::HashMap;
use std::path::PathBuf;

/// Where injectors keep one lock file per held fault: `DRILL_RUN_DIR`, else /run/drillkit,
/// else the temp dir.
pub fn lock_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DRILL_RUN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let run = PathBuf::from("/run/drillkit");
    if std::fs::create_dir_all(&run).is_ok() {
        return run;
    }
    std::env::temp_dir().join("drillkit")
}

type Held = HashMap<String, nix::fcntl::Flock<std::fs::File>>;
static HELD: std::sync::Mutex<Option<Held>> = std::sync::Mutex::new(None);

/// Take the fault's lock for as long as this process holds the fault (released on revert or
/// when the process dies, SIGKILL included); whether it took it (not when another process, or
/// this one already, holds it). Best effort: without it doctor only errs on the side of
/// reporting.
pub(super) fn hold(id: &str) -> bool {
    let dir = lock_dir();
    let _ = std::fs::create_dir_all(&dir);
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{id}.lock")))
    else {
        return false;
    };
    let Ok(lock) = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
    else {
        return false;
    };
    let Ok(mut h) = HELD.lock() else {
        return false;
    };
    h.get_or_insert_with(HashMap::new)
        .insert(id.to_string(), lock);
    true
}

pub(super) fn release(id: &str) {
    let lock = HELD
        .lock()
        .ok()
        .and_then(|mut h| h.as_mut().and_then(|m| m.remove(id)));
    if lock.is_some() {
        let _ = std::fs::remove_file(lock_dir().join(format!("{id}.lock")));
    } else {
        // Reverted by another process (after a SIGKILL, or a fault left in place): the lock file
        // is free, and `is_held` removes a free one.
        let _ = is_held(id);
    }
}

/// Whether a live injector holds this fault (its lock is taken).
pub fn is_held(id: &str) -> bool {
    let path = lock_dir().join(format!("{id}.lock"));
    let Ok(file) = std::fs::OpenOptions::new().write(true).open(&path) else {
        return false;
    };
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(_free) => {
            let _ = std::fs::remove_file(&path);
            false
        }
        Err(_) => true,
    }
}
