//! The drill runner: a whole scenario through the same library calls the single binaries use —
//! preflight, samplers, faults, recovery, restore, verify, measure, report. Every exit path
//! (success, failure, timeout, SIGINT, SIGTERM, panic) reverts what the journal shows as open.

use crate::exit::{Code, Failure};
use crate::faults::{self, safety, Fault, Injector};
use crate::guard::Trip;
use crate::journal::{self, Journal, Kind};
use crate::progress::{Progress, Section, Sink};
use crate::scenario::{RecoverySpec, Scenario, Step};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long `drill run` lets the samplers take a baseline before the first fault.
const SAMPLER_BASELINE: Duration = Duration::from_millis(300);

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub out_dir: PathBuf,
    pub journal: PathBuf,
    pub allow_production: bool,
    /// Where the runner says it is (`DRILL_ENVIRONMENT`), besides the scenario's `environment:`.
    pub environment: Option<String>,
    /// Labels every container target must carry, besides the scenario's `safety.require_label`.
    pub require_label: Vec<String>,
    /// Plant a defect the drill must catch (`--negative-control`, see [`crate::negative`]).
    pub negative_control: bool,
    /// Which defect (`--negative-control=KIND`); None: the one that fits the scenario.
    pub negative_defect: Option<crate::negative::Defect>,
    /// The engine host's socket reaper containers mount (`--reaper-socket`).
    pub reaper_socket: Option<PathBuf>,
    /// The Docker engines: the run's default (flags, environment) and the scenario's named ones.
    pub engines: crate::docker::engine::EngineSet,
}

/// How a drill ended: its exit code, the measurement the reports were made from, and where the
/// evidence is.
pub struct Finished {
    pub code: Code,
    pub measurement: crate::measure::Measurement,
    pub outputs: Outputs,
}

/// Where a drill's evidence goes.
pub struct Outputs {
    pub journal: PathBuf,
    pub report: PathBuf,
    pub junit: PathBuf,
    pub summary: PathBuf,
}

impl Outputs {
    pub fn new(opts: &RunOptions) -> Outputs {
        Outputs {
            journal: opts.journal.clone(),
            report: opts.out_dir.join("report.md"),
            junit: opts.out_dir.join("junit.xml"),
            summary: opts.out_dir.join("summary.json"),
        }
    }
}

/// The steps `drill plan` prints, in order, each step that talks to Docker with the engine it
/// hits. Resolves nothing and touches nothing.
pub fn plan_lines(s: &Scenario, engines: &crate::docker::engine::EngineSet) -> Vec<String> {
    let on = |docker: bool, name: Option<&str>| {
        if docker {
            format!(" [engine {}]", engines.describe(name))
        } else {
            String::new()
        }
    };
    let probe = |p: &crate::probe::ProbeSpec| {
        format!(
            "{}{}",
            describe_spec(p),
            on(p.docker.is_some(), p.engine.as_deref())
        )
    };
    // The engines a wait's docker probes ask.
    let engines_of = |probes: &[crate::probe::ProbeSpec]| {
        probes
            .iter()
            .filter(|p| p.docker.is_some())
            .map(|p| on(true, p.engine.as_deref()))
            .collect::<Vec<_>>()
            .join("")
    };
    let mut out = Vec::new();
    for svc in &s.services {
        out.push(format!("start service {}", svc.name));
    }
    for p in &s.preflight {
        out.push(format!("preflight: {}", probe(p)));
    }
    for w in &s.watch {
        out.push(format!("watch in the background: {}", probe(w)));
    }
    if let Some(c) = &s.canary {
        out.push(format!(
            "canary writes to {}",
            crate::redact::redact(&c.postgres)
        ));
    }
    for c in &s.stop_if {
        out.push(format!(
            "stop if {} (checked until the end of recovery; a trip reverts every fault)",
            c.describe()
        ));
    }
    for f in &s.faults {
        let docker = s.target_of(f).is_some_and(|t| t.is_docker());
        let t = format!(
            "{}{}",
            s.target_of(f).map(|t| t.describe()).unwrap_or_default(),
            on(docker, s.target_of(f).and_then(|t| t.engine.as_deref()))
        );
        let hold = f
            .duration
            .map(|d| format!(", revert after {d}"))
            .unwrap_or_default();
        let deadline = crate::units::Dur(faults::reaper::deadline_for(
            f.deadline.map(|d| d.0),
            f.duration.map(|d| d.0),
        ));
        out.push(format!(
            "inject {} on {t}{hold} (dead-man's switch: undone by its reaper after {deadline} at the latest)",
            f.action.as_str()
        ));
    }
    if let Some(r) = &s.recovery {
        for a in &r.actions {
            out.push(format!("recovery action: {}", a.label()));
        }
        out.push(format!(
            "wait up to {} for {} probe(s) to pass {} times in a row{}",
            r.timeout,
            r.probes.len(),
            r.consecutive,
            engines_of(&r.probes)
        ));
    }
    for st in &s.restore {
        out.push(format!("restore: {}", st.label()));
    }
    out.push("revert anything still open".into());
    if let Some(v) = &s.verify {
        out.push(format!(
            "verify: wait up to {} for {} probe(s){}",
            v.timeout,
            v.probes.len(),
            engines_of(&v.probes)
        ));
    }
    out.push("measure and write report.md, junit.xml, summary.json".into());
    out
}

/// The engines of a scenario with an `engines:` map, each with the steps that hit it (what the
/// `regions` event records; see [`crate::journal::Kind::Regions`]). Empty without a map: a drill
/// on one engine has no regions. The run's own engine is `default`, listed only when used.
pub fn regions(
    s: &Scenario,
    engines: &crate::docker::engine::EngineSet,
) -> Vec<crate::journal::Region> {
    if s.engines.is_empty() {
        return Vec::new();
    }
    let key = |n: Option<&str>| n.unwrap_or("default").to_string();
    let mut names: Vec<String> = vec!["default".into()];
    names.extend(s.engines.keys().cloned());
    let mut out: Vec<crate::journal::Region> = names
        .iter()
        .map(|n| crate::journal::Region {
            name: n.clone(),
            engine: engines.pick(Some(n.as_str())),
            steps: Vec::new(),
            probes: Vec::new(),
        })
        .collect();
    let mut add = |name: String, step: String, probe: Option<String>| {
        if let Some(r) = out.iter_mut().find(|r| r.name == name) {
            r.steps.push(step);
            if let Some(p) = probe {
                if !r.probes.contains(&p) {
                    r.probes.push(p);
                }
            }
        }
    };
    let mut probe_lists: Vec<(&str, &[crate::probe::ProbeSpec])> = vec![
        ("preflight probe", &s.preflight),
        ("watch sampler", &s.watch),
    ];
    for f in &s.faults {
        if let Some(t) = s.target_of(f).filter(|t| t.is_docker()) {
            add(
                key(t.engine.as_deref()),
                format!("fault: {} {}", f.action.as_str(), t.describe()),
                None,
            );
        }
    }
    if let Some(r) = &s.recovery {
        probe_lists.push(("recovery probe", &r.probes));
    }
    if let Some(v) = &s.verify {
        probe_lists.push(("verify probe", &v.probes));
    }
    let stop_if: Vec<crate::probe::ProbeSpec> = s.stop_if.iter().map(|c| c.probe.clone()).collect();
    probe_lists.push(("stop_if probe", &stop_if));
    for (what, list) in probe_lists {
        for p in list {
            if let Some(c) = &p.docker {
                let d = crate::probe::docker::describe(c, p.healthy, p.engine.as_deref());
                add(key(p.engine.as_deref()), format!("{what}: {d}"), Some(d));
            }
        }
    }
    // The run's own engine only when something uses it.
    out.retain(|r| r.name != "default" || !r.steps.is_empty());
    out
}

fn describe_spec(p: &crate::probe::ProbeSpec) -> String {
    crate::redact::redact(&serde_json::to_string(p).unwrap_or_default())
}

/// Whether the scenario talks to Docker at all (a container target or a Docker probe): only then
/// must a Docker engine be chosen, so a broken `DOCKER_*` setting does not stop a drill that has
/// no use for it.
pub fn uses_docker(s: &Scenario) -> bool {
    let probes = s
        .preflight
        .iter()
        .chain(&s.watch)
        .chain(s.recovery.iter().flat_map(|r| &r.probes))
        .chain(s.verify.iter().flat_map(|r| &r.probes))
        .chain(s.services.iter().filter_map(|svc| svc.ready.as_ref()));
    s.targets.values().any(|t| t.is_docker()) || crate::probe::any_docker(probes)
}

/// Run a scenario: the exit code (0 passed, 1 drill failed, 3 a fault could not be reverted,
/// 4 interrupted) with the measurement and the evidence written.
pub async fn run(
    mut s: Scenario,
    file: &Path,
    opts: RunOptions,
    cancel: &CancellationToken,
    obs: Sink,
) -> Result<Finished, Failure> {
    safety::guard_production(
        &[
            ("the scenario's environment", s.environment.as_deref()),
            ("DRILL_ENVIRONMENT", opts.environment.as_deref()),
        ],
        opts.allow_production,
    )?;
    let mut require_label = s.safety.require_label.clone();
    require_label.extend(opts.require_label.iter().cloned());
    let required = safety::parse_labels(&require_label, "--require-label")?;
    // Held until the run returns: a damaged backup copy is removed on every exit path.
    let planted = if opts.negative_control {
        Some(
            crate::negative::plant(&mut s, opts.negative_defect).map_err(|e| {
                Failure::bad_input(anyhow::anyhow!(
                    "{}: no negative control for this scenario: {e}",
                    file.display()
                ))
            })?,
        )
    } else {
        None
    };
    let outputs = Outputs::new(&opts);
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| {
        Failure::env(anyhow::anyhow!(
            "cannot create {}: {e}",
            opts.out_dir.display()
        ))
    })?;

    // Services first (they are the system under test for demo drills); they stop on drop.
    let mut services = Services::default();
    let started = services
        .start(&s, cancel, obs.as_ref(), &opts.engines)
        .await;
    if let Err(e) = started {
        services.stop().await;
        return Err(e);
    }

    let journal = Journal::start_with_id(
        &opts.journal,
        "drill",
        journal::new_drill_id(),
        &s.name,
        Some(file.display().to_string()),
        s.environment.clone(),
        s.objectives.to_journal(),
        s.roles
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )?;
    let regions = regions(&s, &opts.engines);
    if !regions.is_empty() {
        journal.append(Kind::Regions { regions })?;
    }
    if let Some(p) = &planted {
        journal.append_durable(Kind::NegativeControl {
            defect: p.defect.clone(),
            expected: p.expected.clone(),
            catch: p.catch.into(),
        })?;
    }
    obs.progress(Progress::DrillStarted {
        name: s.name.clone(),
        id: journal.drill_id().to_string(),
        journal: opts.journal.display().to_string(),
    });

    // The body runs in its own task so that a panic is caught here and cleanup still runs.
    let body = {
        let (s, j, c, o) = (s.clone(), journal.clone(), cancel.clone(), obs.clone());
        let engines = opts.engines.clone();
        let how = How {
            skip_reverts: planted.as_ref().is_some_and(|p| p.skip_reverts),
            backup_copy: planted
                .as_ref()
                .and_then(|p| p.backup.as_ref())
                .map(|b| (b.original.clone(), b.copy.clone())),
            reaper_socket: opts.reaper_socket.clone(),
        };
        tokio::spawn(async move { body(&s, &j, &c, &o, &required, &engines, &how).await })
    };
    let result = body.await;
    let (code, outcome) = match result {
        Ok(Ok(BodyEnd::Finished)) => (None, "finished"),
        // The verdict (aborted, exit 1) comes from the `drill_aborted` event.
        Ok(Ok(BodyEnd::Aborted)) => (None, "aborted"),
        Ok(Ok(BodyEnd::Interrupted)) => (Some(Code::Interrupted), "interrupted"),
        Ok(Err(e)) => {
            obs.progress(Progress::DrillStopped(format!("{:#}", e.error)));
            journal.append(Kind::Note {
                message: crate::redact::redact(&format!(
                    "{}{:#}",
                    crate::measure::STOPPED_NOTE,
                    e.error
                )),
            })?;
            (Some(e.code), "error")
        }
        Err(join) => {
            let msg = if join.is_panic() {
                "the drill panicked"
            } else {
                "the drill task was cancelled"
            };
            obs.progress(Progress::DrillStopped(format!(
                "{msg}; reverting every open fault"
            )));
            journal.append(Kind::Note {
                message: msg.into(),
            })?;
            (Some(Code::Interrupted), "interrupted")
        }
    };

    // The safety net: whatever happened, nothing this drill injected stays injected.
    let reverted = revert_all(&journal, None, obs.as_ref()).await?;
    services.stop().await;
    journal.append(Kind::DrillFinished {
        outcome: outcome.into(),
    })?;

    let m = write_reports(&journal, &outputs)?;
    let code = match code {
        Some(c) => c,
        None if !reverted.failed.is_empty() => Code::Environment,
        None if m.passed => Code::Ok,
        None => Code::DrillFailed,
    };
    Ok(Finished {
        code,
        measurement: m,
        outputs,
    })
}

/// Revert every open fault of the journal's drill, telling the observer about each.
async fn revert_all(
    journal: &Journal,
    docker: Option<&crate::docker::Docker>,
    obs: &dyn crate::progress::Observer,
) -> Result<faults::Reverted, Failure> {
    let mut engines = faults::Engines::new(docker, None);
    let r = faults::revert_open(journal, &mut engines, Some(journal.drill_id()), None).await?;
    tell_reverted(&r, obs);
    Ok(r)
}

/// One progress event per fault a revert undid or could not undo.
pub fn tell_reverted(r: &faults::Reverted, obs: &dyn crate::progress::Observer) {
    for (f, how) in &r.done {
        obs.progress(Progress::Reverted {
            id: f.id.clone(),
            action: f.action.clone(),
            target: f.target.clone(),
            how: how.clone(),
        });
    }
    for line in r.errors() {
        obs.progress(Progress::RevertFailed(line));
    }
}

/// How the drive runs: a negative control's changes, and where reaper containers find their
/// engine's socket.
#[derive(Clone, Debug, Default)]
struct How {
    /// `unreverted-fault`: the drill's own reverts are skipped (the safety net still runs).
    skip_reverts: bool,
    /// `flipped-byte`: (the backup, its damaged copy): steps naming that backup get the copy.
    backup_copy: Option<(PathBuf, PathBuf)>,
    reaper_socket: Option<PathBuf>,
}

enum BodyEnd {
    Finished,
    Interrupted,
    /// A stop condition tripped (`stop_if`); its faults are already reverted.
    Aborted,
}

async fn body(
    s: &Scenario,
    journal: &Journal,
    cancel: &CancellationToken,
    obs: &Sink,
    required: &[(String, String)],
    engines: &crate::docker::engine::EngineSet,
    how: &How,
) -> Result<BodyEnd, Failure> {
    // 1. Baseline: the system must be healthy before we break it.
    if !s.preflight.is_empty() {
        let _g = Section::start(obs.as_ref(), "preflight");
        let probes = crate::probe::build_all(&s.preflight, engines).await?;
        for p in &probes {
            let o = p.check(Duration::from_secs(5)).await;
            journal.append(Kind::ProbeChanged {
                probe: p.describe(),
                ok: o.ok,
                detail: format!("preflight: {}", o.detail),
                ms: o.latency.as_secs_f64() * 1000.0,
            })?;
            if !o.ok {
                return Err(Failure::env(anyhow::anyhow!(
                    "preflight failed, nothing was touched: {}: {}",
                    p.describe(),
                    o.detail
                )));
            }
            obs.progress(Progress::PreflightPassed {
                probe: p.describe(),
                detail: o.detail,
            });
        }
    }

    // 2. Resolve and plan every fault before touching anything (a refused selector touches
    //    nothing).
    for f in &s.faults {
        if let Some(t) = s.target_of(f) {
            t.check_engine(&engines.pick(t.engine.as_deref()))?;
        }
    }
    // One connection per engine the faults' targets are on (each fault on its own engine).
    let mut connected: Vec<crate::docker::Docker> = Vec::new();
    let mut planned: Vec<Planned> = Vec::new();
    for f in &s.faults {
        let spec = s
            .target_of(f)
            .ok_or_else(|| Failure::bad_input(anyhow::anyhow!("fault has no target")))?;
        let docker = if spec.is_docker() {
            let engine = engines.pick(spec.engine.as_deref());
            Some(match connected.iter().find(|d| *d.engine() == engine) {
                Some(d) => d.clone(),
                None => {
                    let d = crate::docker::connect(&engine).await?;
                    connected.push(d.clone());
                    d
                }
            })
        } else {
            None
        };
        let max = f.max_targets.unwrap_or(s.safety.max_targets);
        safety::check_max_targets(max)?;
        let targets = spec.resolve(docker.as_ref(), max).await?;
        safety::check_required_labels(&targets, docker.as_ref(), required).await?;
        let fault = Fault::from_spec(f, Some(journal.path().to_path_buf()))
            .map_err(|e| Failure::bad_input(anyhow::anyhow!(e)))?;
        let steps = faults::plan(&targets, &fault, docker.as_ref()).await?;
        let hold = f.duration.map(|d| d.0);
        let deadline = faults::reaper::deadline_for(f.deadline.map(|d| d.0), hold);
        planned.push((steps, hold, deadline, docker));
    }

    // 3. Background samplers.
    let samplers = CancellationToken::new();
    let mut background = tokio::task::JoinSet::new();
    for w in &s.watch {
        let probe = w.build(&mut Vec::new(), engines).await?;
        let interval = w
            .interval
            .map(|d| d.0)
            .unwrap_or(crate::watch::DEFAULT_INTERVAL);
        let timeout = w
            .timeout
            .map(|d| d.0)
            .unwrap_or(crate::watch::DEFAULT_TIMEOUT);
        let (j, c, o) = (journal.clone(), samplers.clone(), obs.clone());
        background.spawn(async move {
            crate::watch::watch(probe, interval, timeout, &j, &c, o.as_ref())
                .await
                .map(|_| ())
                .map_err(Failure::from)
        });
    }
    if let Some(c) = &s.canary {
        let (j, tok, spec) = (journal.clone(), samplers.clone(), c.clone());
        background.spawn(async move {
            let mut cfg = crate::canary::CanaryConfig::new(spec.postgres.clone());
            if let Some(i) = spec.interval {
                cfg.interval = i.0;
            }
            if let Some(t) = &spec.table {
                cfg.table = t.clone();
            }
            if let Some(t) = spec.read_back_timeout {
                cfg.verify_timeout = t.0;
            }
            crate::canary::run_canary(&cfg, &j, tok).await.map(|_| ())
        });
    }
    if !s.watch.is_empty() || s.canary.is_some() {
        // Let the samplers take a baseline before the fault.
        tokio::time::sleep(SAMPLER_BASELINE).await;
        // A sampler that could not start (a canary table that is not ours, a server that is not
        // there) stops the drill before any fault, with its own exit code.
        while let Some(done) = background.try_join_next() {
            if let Ok(Err(e)) = done {
                samplers.cancel();
                while background.join_next().await.is_some() {}
                return Err(e);
            }
        }
    }

    // 4. Stop conditions: asked once before the first fault, then in the background until the
    //    end of recovery. A trip reverts every open fault at once and stops the drive (its waits
    //    take the child token `stop` for their cancellation).
    let stop = cancel.child_token();
    let guard_done = cancel.child_token();
    let tripped: Arc<OnceLock<Trip>> = Arc::default();
    let mut guard_task = None;
    if !s.stop_if.is_empty() {
        let mut guard = crate::guard::Guard::build(&s.stop_if, journal, engines).await?;
        if let Some(t) = guard.round().await {
            abort_on(&t, journal, obs).await?;
            samplers.cancel();
            while background.join_next().await.is_some() {}
            return Ok(BodyEnd::Aborted);
        }
        let (j, o, st, done, tr) = (
            journal.clone(),
            obs.clone(),
            stop.clone(),
            guard_done.clone(),
            tripped.clone(),
        );
        guard_task = Some(tokio::spawn(async move {
            if let Some(t) = guard.watch(crate::guard::DEFAULT_INTERVAL, &done).await {
                let _ = tr.set(t.clone());
                if let Err(e) = abort_on(&t, &j, &o).await {
                    tracing::warn!("stop condition: {:#}", e.error);
                }
                st.cancel();
            }
        }));
    }

    let end = drive(
        s,
        journal,
        &Drive {
            stop: &stop,
            guard_done: &guard_done,
            tripped: &tripped,
            how,
        },
        obs,
        planned,
        engines,
    )
    .await;
    guard_done.cancel();
    if let Some(g) = guard_task {
        let _ = g.await;
    }
    let end = if tripped.get().is_some() {
        Ok(BodyEnd::Aborted)
    } else {
        end
    };

    samplers.cancel();
    while let Some(r) = background.join_next().await {
        if let Ok(Err(e)) = r {
            tracing::warn!("background sampler: {:#}", e.error);
        }
    }
    end
}

/// Record a trip and revert every open fault of the drill, telling the observer.
async fn abort_on(t: &Trip, journal: &Journal, obs: &Sink) -> Result<(), Failure> {
    obs.progress(Progress::Aborted {
        condition: t.condition.clone(),
        value: t.value.clone(),
    });
    let r = crate::guard::abort(journal, None, t).await?;
    tell_reverted(&r, obs.as_ref());
    Ok(())
}

/// How the drive is stopped: `stop` (a signal, or a tripped stop condition, which is then in
/// `tripped`); `guard_done` ends the stop conditions at the end of recovery.
struct Drive<'a> {
    stop: &'a CancellationToken,
    guard_done: &'a CancellationToken,
    tripped: &'a OnceLock<Trip>,
    how: &'a How,
}

/// One fault's steps, how long to hold it, its dead-man deadline, and the engine its target is on.
type Planned = (
    Vec<faults::Step>,
    Option<Duration>,
    Duration,
    Option<crate::docker::Docker>,
);

/// Faults, recovery, restore and verify: the part that is interrupted by a signal or a stop
/// condition.
async fn drive(
    s: &Scenario,
    journal: &Journal,
    d: &Drive<'_>,
    obs: &Sink,
    planned: Vec<Planned>,
    engines: &crate::docker::engine::EngineSet,
) -> Result<BodyEnd, Failure> {
    let cancel = d.stop;
    let mut timed_reverts = tokio::task::JoinSet::new();
    // Later reverts connect to the engine each fault's record names; no connection is needed.
    let docker = None;
    {
        let _g = Section::start(obs.as_ref(), "inject faults");
        for (steps, hold, deadline, fault_docker) in &planned {
            let injector = Injector {
                journal,
                docker: fault_docker.as_ref(),
                reaper_socket: d.how.reaper_socket.as_deref(),
            };
            for step in steps {
                if cancel.is_cancelled() {
                    return Ok(BodyEnd::Interrupted);
                }
                let id = injector.apply(step, *hold, *deadline).await?;
                obs.progress(Progress::Injected {
                    id: id.clone(),
                    step: step.describe(),
                });
                if d.tripped.get().is_some() {
                    // A stop condition tripped while this fault was being applied: its revert
                    // may have come first, so undo this one again (undo is idempotent).
                    let r = injector.undo_now(step).await;
                    if let Err(e) = r {
                        obs.progress(Progress::RevertFailed(format!("{id}: {e}")));
                    }
                    return Ok(BodyEnd::Interrupted);
                }
                if hold.is_some() && d.how.skip_reverts {
                    journal.append(Kind::Note {
                        message: format!(
                            "negative control: fault {id} is not reverted after its duration"
                        ),
                    })?;
                } else if let Some(d) = *hold {
                    let (j, docker, o) = (journal.clone(), fault_docker.clone(), obs.clone());
                    timed_reverts.spawn(async move {
                        tokio::time::sleep(d).await;
                        let mut engines = faults::Engines::new(docker.as_ref(), None);
                        if let Ok(r) =
                            faults::revert_open(&j, &mut engines, None, Some(&[id])).await
                        {
                            tell_reverted(&r, o.as_ref());
                        }
                    });
                }
            }
        }
    }

    if let Some(r) = &s.recovery {
        for a in &r.actions {
            if run_step(a, journal, cancel, obs, docker, d.how).await? {
                return Ok(BodyEnd::Interrupted);
            }
        }
        if wait_for(r, journal, cancel, obs, "recovery", engines, false).await? {
            return Ok(BodyEnd::Interrupted);
        }
    }
    // Stop conditions hold until the end of recovery.
    d.guard_done.cancel();
    if d.tripped.get().is_some() {
        return Ok(BodyEnd::Interrupted);
    }
    // Faults held for a duration are reverted when it expires, even if recovery came sooner.
    tokio::select! {
        _ = async { while timed_reverts.join_next().await.is_some() {} } => {}
        _ = cancel.cancelled() => return Ok(BodyEnd::Interrupted),
    }
    for st in &s.restore {
        if run_step(st, journal, cancel, obs, docker, d.how).await? {
            return Ok(BodyEnd::Interrupted);
        }
    }
    if let Some(v) = &s.verify {
        if !d.how.skip_reverts {
            revert_all(journal, docker, obs.as_ref()).await?;
        }
        if wait_for(v, journal, cancel, obs, "verify", engines, true).await? {
            return Ok(BodyEnd::Interrupted);
        }
    }
    Ok(BodyEnd::Finished)
}

/// Returns true when interrupted.
async fn run_step(
    st: &Step,
    journal: &Journal,
    cancel: &CancellationToken,
    obs: &Sink,
    docker: Option<&crate::docker::Docker>,
    how: &How,
) -> Result<bool, Failure> {
    let _g = Section::start(obs.as_ref(), st.label());
    if st.revert.is_some() && how.skip_reverts {
        journal.append(Kind::Note {
            message: format!("negative control: step '{}' skipped", st.label()),
        })?;
        return Ok(false);
    }
    if st.revert.is_some() {
        journal.append(Kind::PhaseStarted { name: st.label() })?;
        let r = revert_all(journal, docker, obs.as_ref()).await?;
        let ok = r.failed.is_empty();
        journal.append(Kind::PhaseFinished {
            name: st.label(),
            ok,
            detail: (!ok).then(|| r.errors().join("; ")),
        })?;
        return Ok(false);
    }
    let cmd = st.run.clone().unwrap_or_default();
    // A step that reads a backup finds it in DRILL_BACKUP (a negative control's damaged copy
    // instead), and records what it checks in this drill's journal.
    let mut env = Vec::new();
    if let Some(b) = &st.backup {
        let backup = match &how.backup_copy {
            Some((original, copy)) if original == b => copy,
            _ => b,
        };
        let journal_path = std::path::absolute(journal.path()).unwrap_or(journal.path().into());
        env.push(("DRILL_BACKUP".to_string(), backup.display().to_string()));
        env.push((
            "DRILL_JOURNAL".to_string(),
            journal_path.display().to_string(),
        ));
        env.push((
            crate::journal::ENV_DRILL_ID.to_string(),
            journal.drill_id().to_string(),
        ));
    }
    let ended = crate::phase::run_env(
        journal,
        &st.label(),
        &crate::phase::Command::Shell(cmd),
        &env,
        st.timeout.map(|d| d.0),
        cancel,
        obs.as_ref(),
    )
    .await?;
    Ok(ended == crate::phase::Ended::Interrupted)
}

/// Returns true when interrupted.
async fn wait_for(
    r: &RecoverySpec,
    journal: &Journal,
    cancel: &CancellationToken,
    obs: &Sink,
    what: &str,
    engines: &crate::docker::engine::EngineSet,
    verify: bool,
) -> Result<bool, Failure> {
    let _g = Section::start(obs.as_ref(), what);
    let probes = crate::probe::build_all(&r.probes, engines).await?;
    let cfg = crate::wait::Config {
        timeout: r.timeout.0,
        interval: r.interval.0,
        consecutive: r.consecutive,
        request_timeout: crate::wait::DEFAULT_REQUEST_TIMEOUT.min(r.timeout.0),
        verify,
    };
    let outcome = crate::wait::wait(&probes, &cfg, journal, cancel, obs.as_ref()).await?;
    let (recovered, seconds) = match outcome {
        crate::wait::Outcome::Recovered { waited_s, .. } => (true, waited_s),
        crate::wait::Outcome::TimedOut { .. } => (false, r.timeout.0.as_secs_f64()),
        crate::wait::Outcome::Interrupted | crate::wait::Outcome::Aborted(_) => return Ok(true),
    };
    obs.progress(Progress::WaitEnded {
        what: what.to_string(),
        recovered,
        seconds,
    });
    Ok(false)
}

/// Measure the journal's current drill and write report.md, junit.xml and summary.json (local
/// evidence first, before anything is sent anywhere).
pub fn write_reports(
    journal: &Journal,
    out: &Outputs,
) -> Result<crate::measure::Measurement, Failure> {
    let contents = journal::read(journal.path())?;
    journal::warn_damage(journal.path(), &contents);
    let events = contents.drill(journal.drill_id());
    let m = crate::measure::measure(journal.drill_id(), &events, &Default::default());
    let md = crate::report::markdown::render(&m);
    write(&out.report, md.as_bytes())?;
    let xml = crate::report::junit::report(std::slice::from_ref(&m), vec![])
        .to_string()
        .map_err(|e| Failure::env(anyhow::anyhow!("cannot write JUnit: {e}")))?;
    write(&out.junit, xml.as_bytes())?;
    let json = serde_json::to_vec_pretty(&m).map_err(|e| Failure::env(anyhow::anyhow!("{e}")))?;
    write(
        &out.summary,
        crate::redact::redact(&String::from_utf8_lossy(&json)).as_bytes(),
    )?;
    Ok(m)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d)
            .map_err(|e| Failure::env(anyhow::anyhow!("cannot create {}: {e}", d.display())))?;
    }
    std::fs::write(path, bytes)
        .map_err(|e| Failure::env(anyhow::anyhow!("cannot write {}: {e}", path.display())))
}

/// A demo service's address must be free: where another program (often a demo drill still
/// running) already listens, the drill would crash one service and measure the other.
fn demo_address_free(service: &str, listen: &str) -> Result<(), Failure> {
    match std::net::TcpListener::bind(listen) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(Failure::env(anyhow::anyhow!(
            "service {service}: {listen} is already in use (another demo drill still running?); \
             stop that program or give the service another listen address"
        ))),
        // Anything else (a name that does not resolve…) is the service's own error to report.
        Err(_) => Ok(()),
    }
}

/// Whether `pidfile` names a live child of `supervisor` (the demo worker it started).
fn demo_worker_of(pidfile: &std::path::Path, supervisor: u32) -> bool {
    std::fs::read_to_string(pidfile)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .and_then(crate::process::info)
        .is_some_and(|p| u32::try_from(p.ppid) == Ok(supervisor) && p.state != 'Z')
}

/// Services a scenario asks drillkit to run for the length of the drill.
#[derive(Default)]
struct Services {
    children: Vec<(String, tokio::process::Child)>,
}

impl Services {
    async fn start(
        &mut self,
        s: &Scenario,
        cancel: &CancellationToken,
        obs: &dyn crate::progress::Observer,
        engines: &crate::docker::engine::EngineSet,
    ) -> Result<(), Failure> {
        for svc in &s.services {
            let mut cmd = if let Some(d) = &svc.demo {
                demo_address_free(&svc.name, &d.listen)?;
                let exe = std::env::current_exe().map_err(|e| {
                    Failure::env(anyhow::anyhow!("cannot find own executable: {e}"))
                })?;
                let mut c = tokio::process::Command::new(exe);
                c.args([
                    "demo-service",
                    "--listen",
                    &d.listen,
                    "--restart-delay",
                    &d.restart_delay.to_string(),
                    "--pidfile",
                ])
                .arg(&d.pidfile);
                // Its SIGTERM at the end of the drill is the normal stop, not a warning.
                if std::env::var_os("DRILL_LOG").is_none() {
                    c.env("DRILL_LOG", "error");
                }
                c
            } else {
                let mut c = tokio::process::Command::new("sh");
                c.arg("-c").arg(svc.command.clone().unwrap_or_default());
                c
            };
            let child = cmd
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| {
                    Failure::env(anyhow::anyhow!("cannot start service {}: {e}", svc.name))
                })?;
            self.children.push((svc.name.clone(), child));
            if let Some(ready) = &svc.ready {
                let probe = ready.build(&mut Vec::new(), engines).await?;
                let deadline = tokio::time::Instant::now() + svc.ready_timeout.0;
                loop {
                    let o = probe.check(Duration::from_secs(1)).await;
                    let Some((_, child)) = self.children.last_mut() else {
                        break;
                    };
                    // A demo service is ready when its own worker answers: the pidfile the
                    // worker writes once it listens names a child of our supervisor (another
                    // program answering on the address does not make it ready).
                    let ours = match (&svc.demo, child.id()) {
                        (Some(d), Some(sup)) => demo_worker_of(&d.pidfile, sup),
                        _ => true,
                    };
                    if o.ok && ours {
                        break;
                    }
                    // A service that failed is not waited for; one that exited 0 may have
                    // started a daemon (`docker compose up -d`) that becomes ready later.
                    if let Ok(Some(status)) = child.try_wait() {
                        if !status.success() || svc.demo.is_some() {
                            return Err(Failure::env(anyhow::anyhow!(
                                "service {} exited ({status}) before it was ready: {}",
                                svc.name,
                                o.detail
                            )));
                        }
                    }
                    if tokio::time::Instant::now() >= deadline || cancel.is_cancelled() {
                        let detail = if o.ok {
                            "its probe passed, but its worker never wrote its pidfile: another \
                             program answers that address"
                                .to_string()
                        } else {
                            o.detail
                        };
                        return Err(Failure::env(anyhow::anyhow!(
                            "service {} not ready within {}: {detail}",
                            svc.name,
                            svc.ready_timeout,
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            obs.progress(Progress::ServiceStarted(svc.name.clone()));
        }
        Ok(())
    }

    /// SIGTERM each service (so supervisors stop their workers), then kill what is left.
    async fn stop(&mut self) {
        for (name, child) in self.children.iter_mut().rev() {
            if let Some(pid) = child.id() {
                let _ = crate::process::signal(pid as i32, nix::sys::signal::Signal::SIGTERM);
            }
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                tracing::warn!("service {name} ignored SIGTERM; killing it");
                let _ = child.kill().await;
            }
        }
        self.children.clear();
    }
}
