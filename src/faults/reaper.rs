//! The dead-man's switch: every fault has a deadline, and before it is applied a reaper is armed
//! with the fault's undo. The reaper is a detached process in its own session (a hidden
//! subcommand of drillkit's own executable, `__reap`), so neither a SIGKILL of the injector, a
//! cancelled job's process-group kill, nor a deleted journal takes it down. At the deadline it
//! undoes the fault unless it was already undone, records what it did in a file next to the
//! journal (`<journal>.reaper.jsonl`, and a `fault_reverted` event while the journal still
//! exists) and exits. A normal revert disarms it (SIGTERM, checked against its start time).
//!
//! One file per armed reaper, `<lock dir>/<fault id>.reaper`, says which process it is and its
//! deadline; `doctor` lists them.
//!
//! Container faults (stop, pause: undone through the Docker API alone) get their reaper on the
//! target's side instead: a small labelled container on the same engine (`docker::helper`'s image,
//! the engine host's socket mounted), so a runner VM that disappears does not take the switch
//! with it. It sleeps until the deadline, undoes the fault, prints what it did (its logs), and
//! the engine removes it (`AutoRemove`); on a local engine it also appends to the record next to
//! the journal (the journal's folder is mounted). A normal revert disarms it by removing it.

use super::{lock::lock_dir, Error, Result, Undo};
use crate::journal::{self, Journal, Kind, OpenFault, Ts};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The deadline when none is given and the fault is not held for a duration.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(3600);
/// Added to `--duration` for the default deadline.
pub const DEADLINE_SLACK: Duration = Duration::from_secs(60);
/// How often an armed reaper looks whether its fault was reverted elsewhere.
const POLL: Duration = Duration::from_secs(2);

/// The hidden subcommand both `inject-fault` and `drill` answer to.
pub const SUBCOMMAND: &str = "__reap";

/// `--deadline`, else `--duration` + 60 s, else 1 h.
pub fn deadline_for(given: Option<Duration>, hold: Option<Duration>) -> Duration {
    given.unwrap_or_else(|| match hold {
        Some(h) => h + DEADLINE_SLACK,
        None => DEFAULT_DEADLINE,
    })
}

/// Whether an undo has anything for a reaper to do.
pub fn reapable(u: &Undo) -> bool {
    match u {
        Undo::Nothing { .. } | Undo::Manual { .. } => false,
        Undo::All { steps } => steps.iter().any(reapable),
        _ => true,
    }
}

/// Whether a fault's reaper is a container on its engine: undos that need the Docker API
/// alone (start, unpause).
pub fn by_container(u: &Undo) -> bool {
    match u {
        Undo::DockerStart { .. } | Undo::DockerUnpause { .. } => true,
        Undo::All { steps } => !steps.is_empty() && steps.iter().all(by_container),
        _ => false,
    }
}

/// The engine host's socket a reaper container mounts: a local engine's own socket; for an
/// engine reached over tcp:// or ssh://, the path given (`--reaper-socket`), else the default
/// path. The reaper checks that it reaches the engine it was armed on before it is armed.
pub fn reaper_socket(engine: &crate::docker::Engine, given: Option<&Path>) -> PathBuf {
    match (engine.transport(), given) {
        (Ok(crate::docker::engine::Transport::Unix(p)), _) => p,
        (_, Some(p)) => p.to_path_buf(),
        _ => PathBuf::from(crate::docker::helper::REAPER_SOCKET),
    }
}

/// The helper command a reaper container runs (`__drillkit-helper reap ORDERS`).
pub const HELPER_COMMAND: &str = "reap";

/// What a reaper container needs: its orders, the time left until the deadline when it was
/// armed (the container's clock may not be ours), and the record file's name in the mounted
/// journal folder (local engines).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ContainerOrders {
    #[serde(flatten)]
    pub orders: Orders,
    pub after_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// The ID of the engine it was armed on (`Info.ID`): through the mounted socket it must
    /// reach that engine, not another one on the same host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_id: Option<String>,
}

/// An armed reaper container: its name and the socket it mounts.
#[derive(Clone, Debug, PartialEq)]
pub struct ArmedContainer {
    pub name: String,
    pub socket: PathBuf,
}

/// Whether the engine is reached through a socket file on this host, so a reaper process here
/// reaches it as well as a container there would.
pub fn socket_on_this_host(engine: &crate::docker::Engine) -> bool {
    matches!(engine.transport(), Ok(crate::docker::engine::Transport::Unix(p)) if p.exists())
}

/// Arm a reaper container on the fault's engine. Fails (and the fault is then not applied)
/// when it cannot be started.
pub async fn arm_container(
    docker: &crate::docker::Docker,
    orders: &Orders,
    socket: Option<&Path>,
) -> Result<ArmedContainer> {
    let socket = reaper_socket(docker.engine(), socket);
    // On this machine's engine the journal's folder is the engine host's too: the reaper
    // records what it did next to the journal, as the process reaper does.
    let journal = std::path::absolute(&orders.journal).unwrap_or(orders.journal.clone());
    let (record_dir, record) = match (docker.engine().is_local(), journal.parent()) {
        (true, Some(dir)) if dir.is_dir() => (
            Some(dir.to_path_buf()),
            record_path(&journal)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
        ),
        _ => (None, None),
    };
    let engine_id = docker.info().await.ok().and_then(|i| i.id);
    let co = ContainerOrders {
        orders: orders.clone(),
        after_s: orders.deadline.since(Ts::now()).max(0.0),
        record,
        engine_id,
    };
    let json =
        serde_json::to_string(&co).map_err(|e| Error::Invalid(format!("reaper orders: {e}")))?;
    let spec = crate::docker::helper::ReaperSpec {
        fault: orders.fault.clone(),
        drill: orders.drill.clone(),
        what: format!("{} {}", orders.action, orders.target),
        deadline: orders.deadline.to_rfc3339(),
        socket: socket.clone(),
        record_dir,
        args: vec![HELPER_COMMAND.into(), json],
    };
    let name = crate::docker::helper::arm_reaper(docker, &spec).await?;
    Ok(ArmedContainer { name, socket })
}

/// Disarm a fault's reaper container, if it has one (a normal revert).
pub async fn disarm_container(docker: &crate::docker::Docker, fault: &str) {
    if let Err(e) = crate::docker::helper::disarm_reaper(docker, fault).await {
        tracing::warn!("could not disarm the reaper container of {fault}: {e}");
    }
}

/// The reaper inside its container, first: reach the engine through the mounted socket and
/// check it is the one the reaper was armed on. Only then is it armed.
pub async fn reaper_engine(
    co: &ContainerOrders,
) -> std::result::Result<crate::docker::Docker, String> {
    let docker = crate::docker::connect(&crate::docker::Engine::local())
        .await
        .map_err(|e| format!("the mounted socket: {e}"))?;
    let id = docker
        .info()
        .await
        .map_err(|e| format!("the mounted socket's engine: {e}"))?
        .id;
    let wrong = "give the engine host's socket path with --reaper-socket";
    if let (Some(want), Some(got)) = (&co.engine_id, id) {
        if *want != got {
            return Err(format!(
                "the mounted socket reaches engine {got}, not {want} where the fault is ({wrong})"
            ));
        }
    }
    // Engines on one host may share an ID (it comes from the host's key file): the fault's
    // container must be there too.
    for (id, name) in containers(&co.orders.undo) {
        if let Err(crate::docker::Error::NoSuchContainer(_)) =
            crate::docker::inspect(&docker, id).await
        {
            return Err(format!(
                "the mounted socket reaches an engine without container {name} ({wrong})"
            ));
        }
    }
    Ok(docker)
}

/// The containers an undo starts or unpauses: (id, name).
fn containers(u: &Undo) -> Vec<(&str, &str)> {
    match u {
        Undo::DockerStart { id, name } | Undo::DockerUnpause { id, name } => {
            vec![(id.as_str(), name.as_str())]
        }
        Undo::All { steps } => steps.iter().flat_map(containers).collect(),
        _ => vec![],
    }
}

/// The reaper inside its container, then: wait until the deadline, undo the fault through the
/// mounted socket, and return what it did (the caller prints it: the container's logs); on a
/// local engine also append it to the record next to the journal.
pub async fn reap_in_container(co: ContainerOrders, docker: crate::docker::Docker) -> Reaped {
    tokio::time::sleep(Duration::from_secs_f64(container_wait(&co, Ts::now()))).await;
    let o = &co.orders;
    let done = o.undo.revert(Some(&docker)).await;
    let (outcome, detail) = match done {
        Ok(how) => (
            "reverted".to_string(),
            format!("dead-man's switch at its deadline (reaper container): {how}"),
        ),
        Err(e) => ("revert failed".to_string(), e.to_string()),
    };
    let r = Reaped::now(o, outcome, detail, false);
    if let Some(name) = &co.record {
        append_record(
            &Path::new(crate::docker::helper::REAPER_RECORD_DIR).join(name),
            &r,
        );
    }
    r
}

/// How long a reaper container sleeps: until the deadline by its own clock when that agrees with
/// the time left when it was armed (less the few seconds starting it took), else the time left
/// (the engine's clock is not ours).
fn container_wait(co: &ContainerOrders, now: Ts) -> f64 {
    let by_clock = co.orders.deadline.since(now);
    if by_clock <= co.after_s && by_clock >= co.after_s - 10.0 {
        by_clock.max(0.0)
    } else {
        co.after_s
    }
}

fn append_record(path: &Path, r: &Reaped) {
    if let Ok(mut line) = serde_json::to_vec(r) {
        line.push(b'\n');
        use std::io::Write;
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(&line));
    }
}

/// An armed reaper, as its file in the lock dir records it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Armed {
    pub fault: String,
    pub drill: String,
    pub action: String,
    pub target: String,
    pub deadline: Ts,
    pub pid: i32,
    pub start_time: u64,
    pub journal: PathBuf,
}

impl Armed {
    /// Whether its process is still there (the same process, not a recycled pid).
    pub fn alive(&self) -> bool {
        crate::process::is_same(self.pid, self.start_time)
    }
}

fn armed_path(fault: &str) -> PathBuf {
    lock_dir().join(format!("{fault}.reaper"))
}

/// Every reaper file in the lock dir.
pub fn list() -> Vec<(PathBuf, Armed)> {
    let Ok(rd) = std::fs::read_dir(lock_dir()) else {
        return vec![];
    };
    let mut out: Vec<(PathBuf, Armed)> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "reaper"))
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            let a = serde_json::from_str(&text).ok()?;
            Some((p, a))
        })
        .collect();
    out.sort_by_key(|(_, a)| a.deadline);
    out
}

/// What a reaper needs, passed on its command line (so it needs neither the journal nor the
/// lock dir to do its job).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Orders {
    pub fault: String,
    pub drill: String,
    pub action: String,
    pub target: String,
    pub undo: Undo,
    pub deadline: Ts,
    pub journal: PathBuf,
    /// The engine the fault was applied on (none: this machine's), for a process reaper that
    /// serves an engine whose socket is on this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<Box<crate::docker::Engine>>,
}

/// Arm a reaper for a fault about to be applied: spawn the detached process and record it.
/// Fails (and the fault is then not applied) when the process cannot be started.
pub fn arm(orders: &Orders) -> Result<()> {
    let exe = std::env::var_os("DRILL_REAPER_EXE")
        .map(PathBuf::from)
        .map(Ok)
        .unwrap_or_else(std::env::current_exe)
        .map_err(|e| Error::io("find drillkit's own executable for the reaper", e))?;
    let json =
        serde_json::to_string(orders).map_err(|e| Error::Invalid(format!("reaper orders: {e}")))?;
    let journal = std::path::absolute(&orders.journal).unwrap_or(orders.journal.clone());
    let child = std::process::Command::new(&exe)
        .arg(SUBCOMMAND)
        .arg("--orders")
        .arg(&json)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| Error::io(format!("start the reaper ({})", exe.display()), e))?;
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    // Not waited for here: the reaper outlives us (it is reparented when we exit); `disarm`
    // collects a disarmed one.
    drop(child);
    let start_time = crate::process::info(pid)
        .map(|i| i.start_time)
        .unwrap_or_default();
    let armed = Armed {
        fault: orders.fault.clone(),
        drill: orders.drill.clone(),
        action: orders.action.clone(),
        target: orders.target.clone(),
        deadline: orders.deadline,
        pid,
        start_time,
        journal,
    };
    let dir = lock_dir();
    let _ = std::fs::create_dir_all(&dir);
    let text = serde_json::to_string(&armed).unwrap_or_default();
    std::fs::write(armed_path(&orders.fault), text)
        .map_err(|e| Error::io(format!("record the reaper in {}", dir.display()), e))?;
    Ok(())
}

/// Disarm the fault's reaper (a normal revert): SIGTERM it and remove its file. A reaper never
/// disarms itself.
pub fn disarm(fault: &str) {
    let path = armed_path(fault);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    if let Ok(a) = serde_json::from_str::<Armed>(&text) {
        if a.pid == std::process::id() as i32 {
            return;
        }
        if a.alive() {
            let _ = crate::process::signal(a.pid, nix::sys::signal::Signal::SIGTERM);
            collect(a.pid);
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// Collect a disarmed reaper when it is our own child (the injector that armed it), so no
/// zombie is left; returns at once for anyone else's.
fn collect(pid: i32) {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(10)),
            _ => return,
        }
    }
}

/// Where a reaper records what it did: next to the journal.
pub fn record_path(journal: &Path) -> PathBuf {
    let name = journal
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "journal".into());
    journal.with_file_name(format!("{name}.reaper.jsonl"))
}

/// One line of the reaper's record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Reaped {
    pub at: Ts,
    pub fault: String,
    pub drill: String,
    pub action: String,
    pub target: String,
    pub deadline: Ts,
    /// `reverted`, `already undone`, `revert failed`
    pub outcome: String,
    pub detail: String,
    pub journal_present: bool,
}

impl Reaped {
    /// What a reaper did with its orders, now.
    fn now(o: &Orders, outcome: String, detail: String, journal_present: bool) -> Reaped {
        Reaped {
            at: Ts::now(),
            fault: o.fault.clone(),
            drill: o.drill.clone(),
            action: o.action.clone(),
            target: o.target.clone(),
            deadline: o.deadline,
            outcome,
            detail,
            journal_present,
        }
    }
}

/// The reaper itself (`__reap --orders JSON`): leave the injector's session, wait for the
/// deadline (or until the fault is reverted elsewhere, or SIGTERM = disarmed), then undo.
pub async fn run(orders: Orders, cancel: &CancellationToken) -> Result<Option<Reaped>> {
    // Its own session: a process-group kill of the job that started the injector misses it.
    let _ = nix::unistd::setsid();
    let result = watch(&orders, cancel).await;
    let _ = std::fs::remove_file(armed_path(&orders.fault));
    result
}

async fn watch(o: &Orders, cancel: &CancellationToken) -> Result<Option<Reaped>> {
    loop {
        let left = o.deadline.since(Ts::now());
        if left <= 0.0 {
            break;
        }
        if closed_in_journal(o) == Some(true) {
            return Ok(None);
        }
        let nap = Duration::from_secs_f64(left).min(POLL);
        tokio::select! {
            _ = tokio::time::sleep(nap) => {}
            _ = cancel.cancelled() => return Ok(None),
        }
    }
    let present = o.journal.exists();
    let (outcome, detail) = match closed_in_journal(o) {
        Some(true) => (
            "already undone".to_string(),
            "the journal shows it reverted".into(),
        ),
        _ => match undo(o, present).await {
            Ok(how) => ("reverted".to_string(), how),
            Err(e) => ("revert failed".to_string(), e.to_string()),
        },
    };
    let r = Reaped::now(o, outcome, detail, present);
    append_record(&record_path(&o.journal), &r);
    Ok(Some(r))
}

/// Some(true) when the journal shows the fault reverted, Some(false) when open, None when the
/// journal (or the fault in it) is not there.
fn closed_in_journal(o: &Orders) -> Option<bool> {
    let c = journal::read(&o.journal).ok()?;
    let planned = c
        .events
        .iter()
        .any(|e| matches!(&e.kind, Kind::FaultPlanned { id, .. } if *id == o.fault));
    if !planned {
        return None;
    }
    Some(!c.open_faults().iter().any(|f| f.id == o.fault))
}

async fn undo(o: &Orders, journal_present: bool) -> Result<String> {
    let docker = if o.undo.needs_docker() {
        // Host-side reapers serve an engine on this host: the fault's, else this machine's.
        let engine = o
            .engine
            .as_deref()
            .cloned()
            .unwrap_or_else(crate::docker::Engine::local);
        Some(crate::docker::connect(&engine).await?)
    } else {
        None
    };
    let how = if journal_present {
        // Recorded in the journal like any revert, so `list`, `report` and doctor agree.
        let j = Journal::for_drill(&o.journal, "reaper", &o.drill);
        let f = OpenFault {
            id: o.fault.clone(),
            drill: o.drill.clone(),
            action: o.action.clone(),
            target: o.target.clone(),
            undo: o.undo.clone(),
            planned_at: Ts::now(),
            applied: true,
            before: None,
            engine: None,
        };
        let how = super::revert(&j, docker.as_ref(), &f).await?;
        let _ = j.append(Kind::Note {
            message: format!(
                "dead-man's switch: fault {} ({} {}) reverted by its reaper at its deadline {}",
                o.fault,
                o.action,
                o.target,
                o.deadline.to_rfc3339()
            ),
        });
        how
    } else {
        o.undo.revert(docker.as_ref()).await?
    };
    Ok(format!("dead-man's switch at its deadline: {how}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_default_to_the_duration_plus_a_minute_else_an_hour() {
        let s = Duration::from_secs;
        assert_eq!(deadline_for(Some(s(8)), Some(s(60))), s(8));
        assert_eq!(deadline_for(None, Some(s(60))), s(120));
        assert_eq!(deadline_for(None, None), s(3600));
        assert!(!reapable(&Undo::Nothing { reason: "x".into() }));
        assert!(reapable(&Undo::DockerStart {
            id: "a".into(),
            name: "b".into()
        }));
        assert_eq!(
            record_path(Path::new("/x/.drill/journal.jsonl")),
            PathBuf::from("/x/.drill/journal.reaper.jsonl")
        );
    }

    #[test]
    fn container_faults_get_a_reaper_container_that_trusts_its_clock_only_when_it_agrees() {
        let start = Undo::DockerStart {
            id: "a".into(),
            name: "b".into(),
        };
        assert!(by_container(&start));
        assert!(by_container(&Undo::All {
            steps: vec![start.clone()]
        }));
        assert!(!by_container(&Undo::ProcessContinue {
            pid: 1,
            start_time: 1
        }));
        let deadline = Ts::now().plus_secs(10.0);
        let co = |after_s: f64| ContainerOrders {
            orders: Orders {
                fault: "f".into(),
                drill: "d".into(),
                action: "stop".into(),
                target: "t".into(),
                undo: start.clone(),
                deadline,
                journal: "j".into(),
                engine: None,
            },
            after_s,
            record: None,
            engine_id: None,
        };
        let now = deadline.plus_secs(-9.0);
        // Started a second after it was armed: its clock agrees, so the deadline holds.
        assert!((container_wait(&co(10.0), now) - 9.0).abs() < 1e-3);
        // A clock far off (here: an hour behind the time left): the time left is used.
        assert_eq!(container_wait(&co(3600.0), now), 3600.0);
        assert_eq!(container_wait(&co(2.0), now), 2.0);
    }
}
