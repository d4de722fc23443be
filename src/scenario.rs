//! Scenario files: a runbook section as data (YAML). Bad files fail before anything is touched,
//! with `file:line:column` and what was expected.

use crate::exit::Failure;
use crate::faults::target::TargetSpec;
use crate::faults::Action;
use crate::journal::Objectives;
use crate::probe::ProbeSpec;
use crate::units::{Dur, Ratio, Size};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Where the drill runs; `production` needs `--allow-production`.
    #[serde(default)]
    pub environment: Option<String>,
    /// The runbook section this drill automates, for the report.
    #[serde(default)]
    pub runbook: Option<String>,
    #[serde(default)]
    pub objectives: ObjectivesSpec,
    #[serde(default)]
    pub safety: Safety,
    /// Role → person, e.g. `incident_commander: "@alice"`; owners of action items.
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
    /// Named Docker engines (host / context / TLS files) that targets and docker probes refer
    /// to with `engine:`; without one they use the run's engine (flags, DOCKER_HOST, context).
    #[serde(default)]
    pub engines: BTreeMap<String, crate::docker::engine::EngineSpec>,
    /// Named targets that faults refer to.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetSpec>,
    /// Processes drillkit starts before the drill and stops after it (demo and test services).
    #[serde(default)]
    pub services: Vec<Service>,
    /// Baseline: every probe must pass before anything is touched.
    #[serde(default)]
    pub preflight: Vec<ProbeSpec>,
    /// Background samplers: what users see during the drill.
    #[serde(default)]
    pub watch: Vec<ProbeSpec>,
    #[serde(default)]
    pub canary: Option<CanarySpec>,
    /// Stop conditions: when one trips, every open fault is reverted at once and the drill is
    /// aborted. Asked from before the first fault to the end of recovery.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_if: Vec<crate::guard::StopIfSpec>,
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    #[serde(default)]
    pub recovery: Option<RecoverySpec>,
    /// After recovery: undo faults and bring the old state back.
    #[serde(default)]
    pub restore: Vec<Step>,
    /// After restore: probes that must pass again (e.g. cache warm again).
    #[serde(default)]
    pub verify: Option<RecoverySpec>,
    /// Success criteria from the runbook, shown as a checklist in the report.
    #[serde(default)]
    pub criteria: Vec<String>,
    /// A tabletop exercise (runbook §1): discussed, not injected; see `report tabletop`.
    #[serde(default)]
    pub tabletop: Option<crate::tabletop::Tabletop>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObjectivesSpec {
    #[serde(default)]
    pub rto: Option<Dur>,
    #[serde(default)]
    pub rpo: Option<Dur>,
    #[serde(default)]
    pub max_error_rate: Option<Ratio>,
    /// p99 latency of the watch samples, e.g. `1s`.
    #[serde(default)]
    pub max_latency: Option<Dur>,
}

impl ObjectivesSpec {
    pub fn to_journal(&self) -> Objectives {
        Objectives {
            rto_s: self.rto.map(|d| d.as_secs_f64()),
            rpo_s: self.rpo.map(|d| d.as_secs_f64()),
            max_error_rate: self.max_error_rate.map(|r| r.0),
            max_latency_s: self.max_latency.map(|d| d.as_secs_f64()),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Safety {
    /// A selector matching more targets than this is refused.
    #[serde(default = "one")]
    pub max_targets: usize,
    /// Only containers carrying these `KEY=VALUE` labels may be targeted (opt-in).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::faults::target::one_or_many"
    )]
    pub require_label: Vec<String>,
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            max_targets: 1,
            require_label: Vec::new(),
        }
    }
}

fn one() -> usize {
    1
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    /// drillkit's built-in demo HTTP service (a supervisor restarting a worker, like a restart policy).
    #[serde(default)]
    pub demo: Option<DemoSpec>,
    /// Or any command, run with `sh -c`.
    #[serde(default)]
    pub command: Option<String>,
    /// Probe that says the service is up; waited for before the drill starts.
    #[serde(default)]
    pub ready: Option<ProbeSpec>,
    #[serde(default = "ten_seconds")]
    pub ready_timeout: Dur,
}

fn ten_seconds() -> Dur {
    Dur::secs(10)
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DemoSpec {
    pub listen: String,
    /// Where the worker writes its pid (the fault's target).
    pub pidfile: PathBuf,
    #[serde(default = "one_second")]
    pub restart_delay: Dur,
}

fn one_second() -> Dur {
    Dur::secs(1)
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CanarySpec {
    pub postgres: String,
    #[serde(default)]
    pub interval: Option<Dur>,
    #[serde(default)]
    pub table: Option<String>,
    /// How long the read-back after the drill keeps trying to reach a primary (default 30s).
    #[serde(default)]
    pub read_back_timeout: Option<Dur>,
}

/// A fault's target: the name of an entry in `targets:` or an inline selector.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum TargetRef {
    Named(String),
    Inline(TargetSpec),
}

impl<'de> Deserialize<'de> for TargetRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TargetRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a target name from `targets:` or a selector like { container: NAME }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TargetRef, E> {
                Ok(TargetRef::Named(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<TargetRef, A::Error> {
                let spec =
                    TargetSpec::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                spec.validate().map_err(serde::de::Error::custom)?;
                Ok(TargetRef::Inline(spec))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub action: Action,
    pub target: TargetRef,
    /// Hold the fault this long, then revert it (default: until `restore`).
    #[serde(default)]
    pub duration: Option<Dur>,
    /// The dead-man's switch: a reaper undoes the fault this long after it is applied if
    /// nothing else has (default: `duration` + 60s, else 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Dur>,
    /// For `kill`: the signal (default SIGKILL).
    #[serde(default)]
    pub signal: Option<String>,
    /// For `stop`/`restart`: grace period before SIGKILL.
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub max_targets: Option<usize>,
    /// partition (Docker): only these networks (default: every network of the container).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::faults::target::one_or_many"
    )]
    pub network: Vec<String>,
    /// partition and degrade: CIDR, address or HOST:PORT (one or a list); fill-disk: how full,
    /// e.g. `95%`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::faults::target::one_or_many"
    )]
    pub to: Vec<String>,
    /// partition: auto|docker|iptables; degrade: auto|netem|iptables|proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// degrade: added latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Dur>,
    /// degrade: packets dropped, e.g. `10%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<Ratio>,
    /// degrade: a tc rate, e.g. `1mbit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// partition (iptables) and degrade in a container on an engine elsewhere: the helper image
    /// with ip, tc and iptables (default: the one released with drillkit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helper_image: Option<String>,
    /// degrade: interfaces (default: every non-loopback one).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::faults::target::one_or_many"
    )]
    pub dev: Vec<String>,
    /// fill-disk: leave this much free (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave: Option<Size>,
    /// fill-disk on a container: the mount point to fill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_root_fs: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_journal_fs: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecoverySpec {
    #[serde(default = "five_minutes")]
    pub timeout: Dur,
    #[serde(default = "quarter_second")]
    pub interval: Dur,
    #[serde(default = "three")]
    pub consecutive: u32,
    #[serde(default)]
    pub probes: Vec<ProbeSpec>,
    /// Commands run (as timed phases) right after the faults, e.g. a manual failover.
    #[serde(default)]
    pub actions: Vec<Step>,
}

fn five_minutes() -> Dur {
    Dur(crate::wait::DEFAULT_TIMEOUT)
}
fn quarter_second() -> Dur {
    Dur(crate::wait::DEFAULT_INTERVAL)
}
fn three() -> u32 {
    crate::wait::DEFAULT_CONSECUTIVE
}

/// A restore or recovery step: undo faults, or run a command as a timed phase.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default)]
    pub name: Option<String>,
    /// `all`: revert every fault of this drill.
    #[serde(default)]
    pub revert: Option<RevertWhat>,
    /// A shell command (`sh -c`); non-zero exit fails the phase.
    #[serde(default)]
    pub run: Option<String>,
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// The backup this step reads (a file, or a base backup's folder): the command finds it in
    /// `$DRILL_BACKUP` (with `DRILL_JOURNAL` and `DRILL_ID`, so `verify-backup` records its
    /// checks in the drill). A negative control hands it a damaged copy instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum RevertWhat {
    All,
}

impl Step {
    pub fn label(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match (&self.revert, &self.run) {
            (Some(_), _) => "revert all faults".into(),
            (None, Some(cmd)) => format!("run {cmd}"),
            _ => "step".into(),
        }
    }
}

/// A scenario that failed to load: where and why.
#[derive(Debug)]
pub struct ScenarioError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ScenarioError {}

impl From<ScenarioError> for Failure {
    fn from(e: ScenarioError) -> Failure {
        Failure::bad_input(e)
    }
}

pub fn load(path: &Path) -> Result<Scenario, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::bad_input(anyhow::anyhow!(
            "{}: cannot read scenario: {e}",
            path.display()
        ))
    })?;
    parse(&path.display().to_string(), &text).map_err(Failure::from)
}

/// Parse and check a scenario. Every error carries a position.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let err = |line: usize, column: usize, message: String| ScenarioError {
        file: file.into(),
        line,
        column,
        message,
    };
    let expanded = expand_env(text, |k| std::env::var(k).ok()).map_err(|(l, c, m)| err(l, c, m))?;
    let text = expanded.as_str();
    let s: Scenario = serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        err(line, column, clean_message(&e.to_string()))
    })?;
    // Checks that need the whole file; positions are found by looking for the offending text.
    let at = |needle: &str, msg: String| {
        let (l, c) = locate(text, needle);
        err(l, c, msg)
    };
    if s.name.trim().is_empty() {
        return Err(at("name:", "name must not be empty".into()));
    }
    for (name, e) in &s.engines {
        e.validate()
            .map_err(|m| at(&format!("{name}:"), format!("engine '{name}': {m}")))?;
    }
    let known_engine = |n: &str| n == "default" || s.engines.contains_key(n);
    // `engine: NAME` must name an engine of `engines:` (or `default`); `whose` prefixes the error.
    let check_engine = |whose: &str, e: Option<&str>| match e {
        Some(e) if !known_engine(e) => {
            let mut names: Vec<&str> = s.engines.keys().map(|k| k.as_str()).collect();
            names.insert(0, "default");
            Err(at(
                &format!("engine: {e}"),
                format!(
                    "{whose}undefined engine '{e}'; defined engines: {}",
                    names.join(", ")
                ),
            ))
        }
        _ => Ok(()),
    };
    for (name, t) in &s.targets {
        t.validate()
            .map_err(|m| at(&format!("{name}:"), format!("target '{name}': {m}")))?;
        check_engine(&format!("target '{name}': "), t.engine.as_deref())?;
        if let Some(e) = &t.engine {
            if !t.is_docker() {
                return Err(at(
                    &format!("engine: {e}"),
                    format!("target '{name}': engine applies to container, label and compose_service targets"),
                ));
            }
        }
    }
    for f in &s.faults {
        if let TargetRef::Inline(t) = &f.target {
            check_engine("", t.engine.as_deref())?;
        }
        if let TargetRef::Named(n) = &f.target {
            if !s.targets.contains_key(n) {
                let known: Vec<&str> = s.targets.keys().map(|k| k.as_str()).collect();
                return Err(at(
                    &format!("target: {n}"),
                    format!(
                        "undefined target '{n}'; defined targets: {}",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
        if let Some(sig) = &f.signal {
            if f.action != Action::Kill {
                return Err(at("signal:", "signal applies to action: kill".into()));
            }
            crate::process::parse_signal(sig).map_err(|m| at("signal:", m))?;
        }
        let only = |present: bool, key: &str, actions: &[Action]| {
            if present && !actions.contains(&f.action) {
                let names: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
                return Err(at(
                    &format!("{key}:"),
                    format!("{key} applies to action: {}", names.join(" or ")),
                ));
            }
            Ok(())
        };
        let (p, d, fd) = (Action::Partition, Action::Degrade, Action::FillDisk);
        only(!f.network.is_empty(), "network", &[p])?;
        only(!f.to.is_empty(), "to", &[p, d, fd])?;
        only(f.method.is_some(), "method", &[p, d])?;
        only(f.delay.is_some(), "delay", &[d])?;
        only(f.jitter.is_some(), "jitter", &[d])?;
        only(f.loss.is_some(), "loss", &[d])?;
        only(f.rate.is_some(), "rate", &[d])?;
        only(!f.dev.is_empty(), "dev", &[d])?;
        only(f.leave.is_some(), "leave", &[fd])?;
        only(f.mount.is_some(), "mount", &[fd])?;
        only(f.allow_root_fs, "allow_root_fs", &[fd])?;
        only(f.allow_journal_fs, "allow_journal_fs", &[fd])?;
        if let Err(m) = crate::faults::Fault::from_spec(f, None) {
            let key = m.split(':').next().unwrap_or("action").to_string();
            return Err(at(&format!("{key}:"), m));
        }
    }
    for l in &s.safety.require_label {
        match l.split_once('=') {
            Some((k, _)) if !k.is_empty() => {}
            _ => {
                return Err(at(
                    "require_label:",
                    format!("require_label must be KEY=VALUE, got '{l}'"),
                ))
            }
        }
    }
    let probe_lists: Vec<(&str, &Vec<ProbeSpec>)> = [
        ("preflight", Some(&s.preflight)),
        ("watch", Some(&s.watch)),
        ("recovery", s.recovery.as_ref().map(|r| &r.probes)),
        ("verify", s.verify.as_ref().map(|r| &r.probes)),
    ]
    .into_iter()
    .filter_map(|(n, l)| l.map(|l| (n, l)))
    .collect();
    for (section, probes) in probe_lists {
        for p in probes {
            p.validate()
                .map_err(|m| at(&probe_needle(p), format!("{section} probe: {m}")))?;
            check_engine(&format!("{section} probe: "), p.engine.as_deref())?;
            if section != "watch" && p.interval.is_some() {
                return Err(at("interval:", format!("{section} probe: 'interval' belongs to watch probes; set the wait's interval on the section")));
            }
        }
    }
    for c in &s.stop_if {
        c.validate().map_err(|m| {
            let key = m.split(':').next().unwrap_or("stop_if").to_string();
            // Point at the condition's own line when the key is its kind (or `stop_if:`).
            let needle = match key.as_str() {
                "stop_if" => stop_if_needle(c),
                k => format!("{k}:"),
            };
            let (l, col) = locate_after(text, "stop_if:", &needle);
            err(l, col, format!("stop_if: {m}"))
        })?;
    }
    for svc in &s.services {
        match (&svc.demo, &svc.command) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(at(
                    &format!("name: {}", svc.name),
                    format!(
                        "service '{}' needs exactly one of demo or command",
                        svc.name
                    ),
                ))
            }
        }
        if let Some(r) = &svc.ready {
            r.validate().map_err(|m| {
                at(
                    &probe_needle(r),
                    format!("service '{}' ready probe: {m}", svc.name),
                )
            })?;
        }
    }
    for step in s
        .restore
        .iter()
        .chain(s.recovery.iter().flat_map(|r| r.actions.iter()))
    {
        match (&step.revert, &step.run) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(at(
                    &step
                        .name
                        .clone()
                        .map(|n| format!("name: {n}"))
                        .unwrap_or_else(|| "restore:".into()),
                    "a step needs exactly one of revert or run".into(),
                ))
            }
        }
    }
    if let Some(r) = &s.recovery {
        if r.consecutive == 0 {
            return Err(at("consecutive:", "consecutive must be at least 1".into()));
        }
        if r.probes.is_empty() {
            return Err(at("recovery:", "recovery needs at least one probe".into()));
        }
    }
    if s.safety.max_targets == 0 {
        return Err(at("max_targets:", "max_targets must be at least 1".into()));
    }
    Ok(s)
}

/// What a `stop_if` entry is found by in the file: its kind's value.
fn stop_if_needle(c: &crate::guard::StopIfSpec) -> String {
    if let Some(f) = &c.file {
        return f.display().to_string();
    }
    if let Some(v) = &c.env {
        return v.clone();
    }
    if c.error_rate.is_some() {
        return "error_rate:".into();
    }
    probe_needle(&c.probe)
}

/// Like [`locate`], but the first occurrence at or after the line holding `after`.
fn locate_after(text: &str, after: &str, needle: &str) -> (usize, usize) {
    let start = text
        .lines()
        .position(|l| l.contains(after))
        .unwrap_or_default();
    for (i, line) in text.lines().enumerate().skip(start) {
        if let Some(c) = line.find(needle) {
            return (i + 1, c + 1);
        }
    }
    locate(text, needle)
}

fn probe_needle(p: &ProbeSpec) -> String {
    [
        &p.http,
        &p.tcp,
        &p.docker,
        &p.redis,
        &p.command,
        &p.postgres,
        &p.dns,
    ]
    .into_iter()
    .flatten()
    .next()
    .cloned()
    .unwrap_or_else(|| "probes:".into())
}

/// Replace `${VAR}` and `${VAR:-default}` with values from the environment (workflow inputs
/// reach scenarios this way). `$$` is a literal `$`. Lines stay where they were, so positions in
/// later errors still point into the file; an unset variable without a default is an error.
pub fn expand_env(
    text: &str,
    get: impl Fn(&str) -> Option<String>,
) -> Result<String, (usize, usize, String)> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
                continue;
            }
            let Some(body) = after.strip_prefix('{') else {
                out.push('$');
                rest = after;
                continue;
            };
            let col = line.len() - rest.len() + i + 1;
            let end = body
                .find('}')
                .ok_or((n + 1, col, "unterminated ${...}".to_string()))?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((k, d)) => (k, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err((n + 1, col, format!("invalid variable name in ${{{expr}}}")));
            }
            match get(name).filter(|v| !v.is_empty()).or(default.map(str::to_string)) {
                Some(v) => out.push_str(&v),
                None => return Err((n + 1, col, format!("environment variable {name} is not set (give it a default: ${{{name}:-value}})"))),
            }
            rest = &body[end + 1..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// serde_yaml_ng appends " at line L column C" to some messages; the position is printed first.
fn clean_message(m: &str) -> String {
    match m.find(" at line ") {
        Some(i) => m[..i].to_string(),
        None => m.to_string(),
    }
}

/// 1-based line and column of the first occurrence of `needle` (1:1 when absent).
fn locate(text: &str, needle: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        if let Some(c) = line.find(needle) {
            return (i + 1, c + 1);
        }
    }
    (1, 1)
}

impl Scenario {
    /// The target selector of a fault, named ones looked up.
    pub fn target_of<'a>(&'a self, f: &'a FaultSpec) -> Option<&'a TargetSpec> {
        match &f.target {
            TargetRef::Named(n) => self.targets.get(n),
            TargetRef::Inline(t) => Some(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_are_checked_by_name_and_shape() {
        let base = "name: x\nengines:\n  dr:\n    host: tcp://10.0.0.9:2376\n";
        let ok = format!(
            "{base}targets:\n  web:\n    container: web\n    engine: dr\nfaults:\n  - action: crash\n    target: web\n"
        );
        let s = parse("s.yaml", &ok).expect("parses");
        assert_eq!(s.targets["web"].engine.as_deref(), Some("dr"));
        let bad = format!("{base}targets:\n  web:\n    container: web\n    engine: staging\n");
        let e = parse("s.yaml", &bad).expect_err("unknown engine");
        assert!(
            e.message.contains("undefined engine 'staging'"),
            "{}",
            e.message
        );
        assert_eq!(e.line, 8, "{e:?}");
        let proc = format!("{base}targets:\n  p:\n    pid: 4242\n    engine: dr\n");
        let e = parse("s.yaml", &proc).expect_err("engine on a pid");
        assert!(
            e.message.contains("engine applies to container"),
            "{}",
            e.message
        );
        let both = "name: x\nengines:\n  dr:\n    host: tcp://h:1\n    context: c\n";
        let e = parse("s.yaml", both).expect_err("host and context");
        assert!(
            e.message.contains("host or context, not both"),
            "{}",
            e.message
        );
        let probe = format!("{base}preflight:\n  - http: http://x\n    engine: dr\n");
        let e = parse("s.yaml", &probe).expect_err("engine on http");
        assert!(
            e.message.contains("'engine' belongs to a docker probe"),
            "{}",
            e.message
        );
    }

    #[test]
    fn environment_values_are_substituted_in_place() {
        let get = |k: &str| (k == "API").then(|| "my-api".to_string());
        assert_eq!(
            expand_env("a: ${API}\nb: ${DB:-db1} $$5\n", get),
            Ok("a: my-api\nb: db1 $5\n".into())
        );
        assert_eq!(
            expand_env("x: 1\ny: ${NOPE}\n", get).map_err(|e| (e.0, e.1)),
            Err((2, 4))
        );
        assert!(expand_env("y: ${bad-name}", get).is_err());
    }

    #[test]
    fn stop_if_mistakes_point_at_their_line() {
        // http probes build a client, which needs the process's one crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let text = "name: x\nstop_if:\n  - http: http://web/health\n    failing_for: 2s\n  - file: /run/HALT\n    window: 10s\n";
        let e = parse("s.yaml", text).expect_err("window without error_rate");
        assert_eq!((e.line, e.column), (6, 5), "{e}");
        assert!(e.message.contains("window: applies to error_rate"), "{e}");
        let text = "name: x\nstop_if:\n  - http: http://web/health\n    failing_fo: 2s\n";
        let e = parse("s.yaml", text).expect_err("unknown key");
        assert!(e.message.contains("unknown key `failing_fo`"), "{e}");
        assert_eq!((e.line, e.column), (4, 5), "{e}");
        let ok = "name: x\nstop_if:\n  - http: http://web/health\n    failing_for: 2s\n  - error_rate: 5%\n    window: 10s\n  - file: /run/HALT\n  - env: DR_DRILLS_PAUSED\n";
        let s = parse("s.yaml", ok).expect("valid");
        assert_eq!(s.stop_if.len(), 4);
    }

    #[test]
    fn undefined_targets_point_at_their_line() {
        let text = "name: x\ntargets:\n  api: { container: a }\nfaults:\n  - action: stop\n    target: apii\n";
        let e = parse("s.yaml", text).expect_err("undefined");
        assert_eq!((e.line, e.column), (6, 5), "{e}");
        assert!(e.message.contains("undefined target 'apii'"), "{e}");
    }
}
