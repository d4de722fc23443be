//! Reverting what the journal shows as open: one fault, or every open fault of a drill (or of
//! the whole journal), newest first. Each revert is recorded (`fault_reverted` or
//! `revert_failed`); the caller decides what a person sees.

use super::{lock, reaper, Error, Result};
use crate::docker::{Docker, Engine};
use crate::journal::{Journal, Kind, OpenFault};

/// Undo one open fault and record it. Idempotent: undoing what is already undone succeeds.
/// The fault's lock is held while it is undone (a fault applied by an injector that has since
/// exited is free): a `doctor --fix` meanwhile leaves it, and the helper containers undoing it,
/// to this revert.
pub async fn revert(journal: &Journal, docker: Option<&Docker>, f: &OpenFault) -> Result<String> {
    let took = lock::hold(&f.id);
    let result = f.undo.revert(docker).await;
    match &result {
        Ok(how) => {
            journal
                .append(Kind::FaultReverted {
                    id: f.id.clone(),
                    how: how.clone(),
                })
                .map_err(Error::Journal)?;
            lock::release(&f.id);
            reaper::disarm(&f.id);
            if let Some(d) = docker.filter(|_| reaper::by_container(&f.undo)) {
                reaper::disarm_container(d, &f.id).await;
            }
        }
        Err(e) => {
            if took {
                lock::release(&f.id);
            }
            journal
                .append(Kind::RevertFailed {
                    id: f.id.clone(),
                    error: e.to_string(),
                })
                .map_err(Error::Journal)?;
        }
    }
    result
}

/// What a revert of open faults did, fault by fault.
#[derive(Debug, Default)]
pub struct Reverted {
    /// Undone, with how.
    pub done: Vec<(OpenFault, String)>,
    /// Still open, with why.
    pub failed: Vec<(OpenFault, Error)>,
}

impl Reverted {
    /// The failures as lines (`id action target: error`).
    pub fn errors(&self) -> Vec<String> {
        self.failed
            .iter()
            .map(|(f, e)| format!("{} {} {}: {e}", f.id, f.action, f.target))
            .collect()
    }
}

/// Connections to the engines open faults were applied on, made on first need and kept: each
/// fault goes back to the engine its record names, whatever the environment says now.
pub struct Engines<'a> {
    given: Option<&'a Docker>,
    /// For faults recorded without an engine (journals from before engines were recorded).
    fallback: Option<Engine>,
    made: Vec<(Engine, std::result::Result<Docker, String>)>,
}

impl<'a> Engines<'a> {
    /// `given`: a connection already made (reused when its engine is the recorded one);
    /// `fallback`: the engine of faults recorded without one.
    pub fn new(given: Option<&'a Docker>, fallback: Option<Engine>) -> Engines<'a> {
        Engines {
            given,
            fallback,
            made: Vec::new(),
        }
    }

    /// The connection for a fault recorded on `recorded`; the error names the engine.
    pub async fn get(&mut self, recorded: Option<&Engine>) -> std::result::Result<Docker, String> {
        let engine = match (recorded, self.given) {
            (Some(e), _) => e.clone(),
            (None, Some(d)) => return Ok(d.clone()),
            (None, None) => self.fallback.clone().unwrap_or_else(Engine::local),
        };
        if let Some(d) = self.given.filter(|d| *d.engine() == engine) {
            return Ok(d.clone());
        }
        if let Some((_, r)) = self.made.iter().find(|(e, _)| *e == engine) {
            return r.clone();
        }
        let r = crate::docker::connect(&engine)
            .await
            .map_err(|e| e.to_string());
        self.made.push((engine, r.clone()));
        r
    }
}

/// Revert the open faults of the journal — only one drill's, or only the given ids, when asked —
/// newest first, each on the engine its record names (see [`Engines`]). Every fault is tried;
/// the failures (an engine that is gone among them) are in the result, not an early return.
pub async fn revert_open(
    journal: &Journal,
    engines: &mut Engines<'_>,
    only_drill: Option<&str>,
    only_ids: Option<&[String]>,
) -> Result<Reverted> {
    let contents = crate::journal::read(journal.path()).map_err(Error::Journal)?;
    crate::journal::warn_damage(journal.path(), &contents);
    let open: Vec<OpenFault> = contents
        .open_faults()
        .into_iter()
        .filter(|f| only_drill.is_none_or(|d| f.drill == d))
        .filter(|f| only_ids.is_none_or(|ids| ids.contains(&f.id)))
        .collect();
    let mut out = Reverted::default();
    // Newest first: undo in the reverse order of doing.
    for f in open.into_iter().rev() {
        let docker = if f.undo.needs_docker() {
            match engines.get(f.engine.as_deref()).await {
                Ok(d) => Some(d),
                Err(why) => {
                    // An engine that cannot be reached fails the faults that need it, not the
                    // others; the fault stays open for a later revert.
                    journal
                        .append(Kind::RevertFailed {
                            id: f.id.clone(),
                            error: why.clone(),
                        })
                        .map_err(Error::Journal)?;
                    out.failed.push((f, Error::Target(why)));
                    continue;
                }
            }
        } else {
            None
        };
        match revert(journal, docker.as_ref(), &f).await {
            Ok(how) => out.done.push((f, how)),
            Err(e) => out.failed.push((f, e)),
        }
    }
    Ok(out)
}

/// Close every open crash of a container (of the journal's drill) that the engine shows running
/// again with a new process or one more restart: the restart policy recovered it, so the fault
/// is recorded as `fault_recovered` and is no longer open. A crash whose container is not back
/// stays open: its conditional undo (start it if it is not running) is still the safety net.
/// Touches nothing; connects to Docker only when such a crash is open and no client is given.
pub async fn close_recovered(
    journal: &Journal,
    docker: Option<&Docker>,
) -> Result<Vec<(OpenFault, String)>> {
    let contents = crate::journal::read(journal.path()).map_err(Error::Journal)?;
    let crashes: Vec<OpenFault> = contents
        .open_faults()
        .into_iter()
        .filter(|f| f.drill == journal.drill_id() && f.applied && f.action == "crash")
        .filter(|f| matches!(f.undo, super::Undo::DockerStart { .. }))
        .collect();
    if crashes.is_empty() {
        return Ok(vec![]);
    }
    let connected = match docker {
        Some(_) => None,
        // The engine the crash was recorded on (journals from before engines: this machine's).
        None => {
            let engine = crashes[0]
                .engine
                .as_deref()
                .cloned()
                .unwrap_or_else(Engine::local);
            Some(crate::docker::connect(&engine).await?)
        }
    };
    let Some(docker) = docker.or(connected.as_ref()) else {
        return Ok(vec![]);
    };
    let mut closed = Vec::new();
    for f in crashes {
        let super::Undo::DockerStart { id, .. } = &f.undo else {
            continue;
        };
        let now = match crate::docker::inspect(docker, id).await {
            Ok(n) => n,
            // Gone: nothing recovered it; `inject-fault revert` reports it.
            Err(_) => continue,
        };
        if !now.running || now.paused || now.restarting {
            continue;
        }
        let how = match f.before {
            Some(b) if now.restart_count > b.restart_count => format!(
                "recovered by itself: running again, restart count {} → {}",
                b.restart_count, now.restart_count
            ),
            Some(b) if now.pid != b.pid => {
                "recovered by itself: running again with a new main process".to_string()
            }
            Some(_) => continue,
            // An older journal without the pre-crash facts: the crash was applied only once the
            // engine saw the process die, so running now means it was brought back.
            None => "recovered by itself: running again".to_string(),
        };
        journal
            .append(Kind::FaultRecovered {
                id: f.id.clone(),
                how: how.clone(),
            })
            .map_err(Error::Journal)?;
        lock::release(&f.id);
        reaper::disarm(&f.id);
        reaper::disarm_container(docker, &f.id).await;
        closed.push((f, how));
    }
    Ok(closed)
}
