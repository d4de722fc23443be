//! Shared test support: run the real binaries, make real services, check fixtures.
#![allow(dead_code)]

pub mod act;
pub mod cmd;
pub mod docker;
pub mod engine;
pub mod netns;
pub mod pg;
pub mod py;
pub mod release;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// What a test can need from this machine. Each is checked one way, here.
#[derive(Clone, Copy, Debug)]
pub enum Fixture {
    /// A Docker engine answering `docker info`.
    Docker,
    /// Root (euid 0): mounts, iptables, signals to other users' processes.
    Root,
    /// Root and `ip netns` (namespaces, veth pairs, iptables inside them).
    Netns,
    /// PostgreSQL 15's server binaries (`initdb`, `pg_ctl`, `pg_basebackup`).
    Postgres,
    /// A tmpfs can be mounted (for filling a small filesystem).
    Tmpfs,
    /// `openssl` to make certificates.
    Openssl,
    /// The offline Actions runner kit (`act-run` and the vendored actions; see [`gha_dir`]).
    Act,
    /// A static busybox with `httpd` (test images, a file server).
    Busybox,
}

impl Fixture {
    fn describe(self) -> &'static str {
        match self {
            Fixture::Docker => "a Docker engine (`docker info`)",
            Fixture::Root => "root",
            Fixture::Netns => "root and `ip netns`",
            Fixture::Postgres => "PostgreSQL 15 (initdb)",
            Fixture::Tmpfs => "mounting a tmpfs",
            Fixture::Openssl => "openssl",
            Fixture::Busybox => "/bin/busybox (busybox-static)",
            Fixture::Act => {
                "the offline Actions runner (DRILLKIT_GHA_DIR or ../shared/gha/act-run)"
            }
        }
    }

    fn present(self) -> bool {
        match self {
            Fixture::Docker => docker::engine_up(),
            Fixture::Root => is_root(),
            Fixture::Netns => is_root() && succeeds("ip", &["netns", "list"]),
            Fixture::Postgres => std::path::Path::new(pg::BIN).join("initdb").exists(),
            Fixture::Tmpfs => is_root() && succeeds("mount", &["--version"]),
            Fixture::Openssl => succeeds("openssl", &["version"]),
            Fixture::Act => gha_dir().is_some(),
            Fixture::Busybox => std::path::Path::new("/bin/busybox").is_file(),
        }
    }
}

/// `/proc/self` belongs to the effective user.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The offline Actions runner kit: `$DRILLKIT_GHA_DIR` (scripts/test.sh sets it), else
/// `shared/gha` beside the checkout, else `/work/shared/gha`.
pub fn gha_dir() -> Option<std::path::PathBuf> {
    let beside = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/gha");
    std::env::var_os("DRILLKIT_GHA_DIR")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain([beside, "/work/shared/gha".into()])
        .find(|d| d.join("act-run").is_file())
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Whether `f` is here. When it is not: with `DRILLKIT_REQUIRE_FIXTURES` set (as `scripts/test.sh`
/// sets it after installing everything) the test fails, so a broken install step cannot hide
/// behind skips; without it the skip is written straight to the terminal (past the harness's
/// capture) as `SKIPPED test: needs …`, so it is seen, not counted as a silent pass.
pub fn has(f: Fixture) -> bool {
    check(f.describe(), f.present())
}

/// [`has`] for a composite fixture a support module checks itself (a second Docker engine, an
/// sshd): the same fail-or-visible-skip rule.
pub fn check(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    if std::env::var_os("DRILLKIT_REQUIRE_FIXTURES").is_some() {
        panic!(
            "{test} needs {what} and DRILLKIT_REQUIRE_FIXTURES is set: failing instead of skipping"
        );
    }
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: needs {what}");
    false
}

/// `require!(Docker, Netns);` at the top of a test: returns from it (a visible skip) or fails it
/// (with `DRILLKIT_REQUIRE_FIXTURES`) when a fixture is missing. See [`has`].
macro_rules! require {
    ($($f:ident),+ $(,)?) => {
        $(
            if !$crate::support::has($crate::support::Fixture::$f) {
                return;
            }
        )+
    };
}

/// Tests that change or read host-wide state — iptables rules and qdiscs on the host, delay
/// proxies, `doctor --fix` which removes every drillkit leftover it finds — share the host only
/// with the tests of their own room (module): one room at a time holds it, any number of tests
/// inside. Tests that touch only their own containers, namespaces and servers take no room.
pub fn host_room(room: &'static str) -> Room {
    let mut held = HOST.0.lock().unwrap_or_else(|e| e.into_inner());
    while held.0.is_some_and(|r| r != room) {
        held = HOST.1.wait(held).unwrap_or_else(|e| e.into_inner());
    }
    held.0 = Some(room);
    held.1 += 1;
    Room
}

static HOST: (Mutex<(Option<&str>, usize)>, Condvar) = (Mutex::new((None, 0)), Condvar::new());

/// A test's turn in a [`host_room`]; the room frees when its last test drops this.
pub struct Room;

impl Drop for Room {
    fn drop(&mut self) {
        let mut held = HOST.0.lock().unwrap_or_else(|e| e.into_inner());
        held.1 -= 1;
        if held.1 == 0 {
            held.0 = None;
            HOST.1.notify_all();
        }
    }
}

/// `inject-fault doctor` looks at the whole machine — the host's and named namespaces, the local
/// engine's containers, this run's reaper files — besides the engine it is given, and to it a
/// fault no live process holds is a leftover (which `--fix` undoes): one whose injector was
/// killed, or exited leaving it applied (`inject-fault partition …` without `--duration`). A
/// test holds [`dead_fault`] while such a fault of its own is applied, and [`census`] around a
/// `doctor` of its own (or for as long as it leaves leftovers for one): the two never overlap,
/// so no test's doctor counts or undoes another test's fault. Never take either twice in one
/// test (a waiting census would block the second).
static CENSUS: RwLock<()> = RwLock::new(());

/// Held while a fault of this test is applied with no live process holding it (see [`CENSUS`]).
pub fn dead_fault() -> RwLockReadGuard<'static, ()> {
    CENSUS.read().unwrap_or_else(|e| e.into_inner())
}

/// Held around a `doctor` over the machine (see [`CENSUS`]); never while holding [`dead_fault`].
pub fn census() -> RwLockWriteGuard<'static, ()> {
    CENSUS.write().unwrap_or_else(|e| e.into_inner())
}

/// Run a command (stdin closed) that must succeed; its stdout, trimmed. A failure names the
/// command, its status and its stderr.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A process's state letter from `/proc/PID/stat` (R, S, D, T stopped, Z zombie…); None when it
/// is gone.
pub fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = s.rfind(')')?;
    s.get(close + 2..)?.chars().next()
}
