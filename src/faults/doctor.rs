//! `inject-fault doctor`: find everything drillkit may have left on this host — iptables rules
//! tagged `drillkit:<fault id>` (host, named namespaces, running containers), root qdiscs with
//! drillkit's handle, delay proxies, fill files, and faults the given journals still show as
//! open (stopped, paused or disconnected containers) — and with `--fix` remove them. A fault
//! whose injector is still alive (it holds the fault's lock) is reported, never touched, so the
//! doctor is safe in an `if: always()` step even while another drill runs. Armed reapers (the
//! dead-man's switches) are listed with their deadlines.

use super::netns::{self, Netns};
use super::{degrade, fill, partition, Error, Result, Undo};
use crate::journal::Journal;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One leftover.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// `open-fault`, `iptables-rule`, `qdisc`, `proxy`, `fill-file`, `reaper`, `helper-container`.
    pub kind: String,
    pub what: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// A live injector holds it: reported, not touched.
    pub live: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    fix: Fix,
}

#[derive(Clone, Debug)]
enum Fix {
    Journal {
        journal: PathBuf,
        fault: Box<crate::journal::OpenFault>,
    },
    Rule(partition::TaggedRule),
    Qdisc {
        netns: Netns,
        dev: String,
    },
    Proxy(String),
    File(String),
    ReaperFile(PathBuf),
    /// A helper container (`docker::helper`) a killed injector left on the engine.
    Helper(String),
}

/// Where to look.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub journals: Vec<PathBuf>,
    /// Extra directories to search for fill files (besides mount roots and journal records).
    pub dirs: Vec<PathBuf>,
}

/// Every namespace drillkit may have touched: the host, named ones, running containers'.
async fn namespaces(docker: Option<&crate::docker::Docker>) -> Vec<Netns> {
    let mut out = vec![Netns::Host];
    out.extend(netns::named_all());
    // A remote engine's pids are another machine's: only a local engine's containers have
    // namespaces here.
    if let Some(d) = docker.filter(|d| d.engine().is_local()) {
        let opts = bollard::query_parameters::ListContainersOptions {
            all: false,
            ..Default::default()
        };
        if let Ok(list) = d.list_containers(Some(opts)).await {
            for c in list {
                let Some(id) = c.id else { continue };
                if let Ok(f) = crate::docker::inspect(d, &id).await {
                    let Ok(pid) = i32::try_from(f.pid) else {
                        continue;
                    };
                    if let Some(info) = crate::process::info(pid) {
                        out.push(Netns::Process {
                            pid,
                            start_time: info.start_time,
                        });
                    }
                }
            }
        }
    }
    out
}

fn live(fault: &str) -> bool {
    !fault.is_empty() && super::is_held(fault)
}

/// Look for leftovers; touches nothing. A finding whose fault no live injector holds counts only
/// when a second look still finds it: the scan lists (say) a rule, then asks whether its fault's
/// lock is held; an injector that reverted in between (rule gone, then lock released) would
/// otherwise be reported — and `--fix`ed — as a leftover of a dead one.
pub async fn scan(scope: &Scope, docker: Option<&crate::docker::Docker>) -> Result<Vec<Finding>> {
    let first = scan_once(scope, docker).await?;
    if first.iter().all(|f| f.live) {
        return Ok(first);
    }
    let second = scan_once(scope, docker).await?;
    Ok(settled(first, second))
}

/// The second look's findings: live ones, and the others that the first look found too.
fn settled(first: Vec<Finding>, second: Vec<Finding>) -> Vec<Finding> {
    second
        .into_iter()
        .filter(|f| {
            f.live
                || first
                    .iter()
                    .any(|g| !g.live && g.kind == f.kind && g.what == f.what)
        })
        .collect()
}

async fn scan_once(scope: &Scope, docker: Option<&crate::docker::Docker>) -> Result<Vec<Finding>> {
    let mut found = Vec::new();
    let mut files: Vec<String> = Vec::new();
    let mut live_qdiscs: Vec<(Netns, String)> = Vec::new();
    for j in &scope.journals {
        if !j.exists() {
            return Err(Error::Invalid(format!(
                "journal {} does not exist",
                j.display()
            )));
        }
        let contents = crate::journal::read(j).map_err(Error::Journal)?;
        crate::journal::warn_damage(j, &contents);
        for f in contents.open_faults() {
            let is_live = live(&f.id);
            collect_undo(&f.undo, &mut |u| match u {
                Undo::RemoveFile { path } => files.push(path.clone()),
                Undo::QdiscRestore { netns, dev, .. } if is_live => {
                    live_qdiscs.push((netns.clone(), dev.clone()))
                }
                _ => {}
            });
            found.push(Finding {
                kind: "open-fault".into(),
                what: format!(
                    "{} {} in {} (undo: {})",
                    f.action,
                    f.target,
                    j.display(),
                    f.undo.describe()
                ),
                fault: Some(f.id.clone()),
                live: is_live,
                fixed: None,
                error: None,
                fix: Fix::Journal {
                    journal: j.clone(),
                    fault: Box::new(f),
                },
            });
        }
    }
    // Armed reapers (dead-man's switches): listed with their deadline; a live one is a safety
    // net, not a leftover; the file of one whose process is gone is.
    for (path, a) in super::reaper::list() {
        let alive = a.alive();
        found.push(Finding {
            kind: "reaper".into(),
            what: format!(
                "{} for fault {} ({} {}, drill {}): pid {}, deadline {}{}",
                if alive {
                    "armed reaper"
                } else {
                    "stale reaper file"
                },
                a.fault,
                a.action,
                a.target,
                a.drill,
                a.pid,
                a.deadline.to_rfc3339(),
                if alive { "" } else { " (its process is gone)" }
            ),
            fault: Some(a.fault.clone()),
            live: alive,
            fixed: None,
            error: None,
            fix: Fix::ReaperFile(path),
        });
    }
    for ns in namespaces(docker).await {
        for r in partition::tagged_rules(&ns) {
            found.push(Finding {
                kind: "iptables-rule".into(),
                what: format!("{} -t {} {} in {}", r.tool, r.table, r.line, ns.describe()),
                fault: Some(r.fault.clone()),
                live: live(&r.fault),
                fixed: None,
                error: None,
                fix: Fix::Rule(r),
            });
        }
        if let Ok(o) = netns::run(&ns, &netns::sv(&["tc", "qdisc", "show"])) {
            for line in o.stdout.lines() {
                let w: Vec<&str> = line.split_whitespace().collect();
                if w.get(2) != Some(&degrade::HANDLE) || !w.contains(&"root") {
                    continue;
                }
                let Some(dev) = w
                    .iter()
                    .position(|x| *x == "dev")
                    .and_then(|i| w.get(i + 1))
                else {
                    continue;
                };
                let is_live = live_qdiscs.iter().any(|(n, d)| *n == ns && d == dev);
                found.push(Finding {
                    kind: "qdisc".into(),
                    what: format!("{} in {}", line.trim(), ns.describe()),
                    fault: None,
                    live: is_live,
                    fixed: None,
                    error: None,
                    fix: Fix::Qdisc {
                        netns: ns.clone(),
                        dev: dev.to_string(),
                    },
                });
            }
        }
    }
    if let Some(d) = docker {
        // Reaper containers (the dead-man's switches of container faults, on the engine): armed
        // while they run; the engine removes them when they are done.
        if let Ok(reapers) = crate::docker::helper::reapers(d, None).await {
            for r in reapers {
                found.push(Finding {
                    kind: "reaper".into(),
                    what: format!(
                        "armed reaper container {} for fault {} ({}, drill {}) on {}: deadline {}, {}",
                        r.name,
                        r.fault,
                        r.what,
                        r.drill,
                        d.engine().describe(),
                        r.deadline,
                        r.state
                    ),
                    fault: Some(r.fault.clone()),
                    live: true,
                    fixed: None,
                    error: None,
                    fix: Fix::Helper(r.name),
                });
            }
        }
        if let Ok(helpers) = crate::docker::helper::leftovers(d).await {
            for (name, fault) in helpers {
                found.push(Finding {
                    kind: "helper-container".into(),
                    what: format!("{name} on {}", d.engine().describe()),
                    live: live(&fault),
                    fault: Some(fault).filter(|f| !f.is_empty()),
                    fixed: None,
                    error: None,
                    fix: Fix::Helper(name),
                });
            }
        }
    }
    for (pid, fault) in degrade::proxies(None) {
        found.push(Finding {
            kind: "proxy".into(),
            what: format!("delay proxy pid {pid}"),
            live: live(&fault),
            fault: Some(fault.clone()),
            fixed: None,
            error: None,
            fix: Fix::Proxy(fault),
        });
    }
    let mut dirs: Vec<PathBuf> = scope.dirs.clone();
    dirs.extend(mount_roots());
    for d in dirs {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(fill::FILE_PREFIX)
                {
                    files.push(e.path().display().to_string());
                }
            }
        }
    }
    files.sort();
    files.dedup();
    for f in files {
        if !Path::new(&f).exists() {
            continue;
        }
        let fault = Path::new(&f)
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(fill::FILE_PREFIX))
            .unwrap_or_default()
            .to_string();
        let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        found.push(Finding {
            kind: "fill-file".into(),
            what: format!("{f} ({})", crate::units::Size(size)),
            live: live(&fault),
            fault: Some(fault),
            fixed: None,
            error: None,
            fix: Fix::File(f),
        });
    }
    Ok(found)
}

fn collect_undo(u: &Undo, f: &mut dyn FnMut(&Undo)) {
    if let Undo::All { steps } = u {
        for s in steps {
            collect_undo(s, f);
        }
    } else {
        f(u);
    }
}

/// Mount points of local filesystems (where fill files would sit at the top).
fn mount_roots() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let local = [
        "ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "vfat", "f2fs", "overlay",
    ];
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = right.split_whitespace().next().unwrap_or("");
        if !local.contains(&fstype) {
            continue;
        }
        if let Some(mp) = left.split_whitespace().nth(4) {
            let mp = mp.replace("\\040", " ");
            if mp.starts_with("/proc") || mp.starts_with("/sys") || mp.starts_with("/dev") {
                continue;
            }
            out.push(PathBuf::from(mp));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Remove every leftover that no live injector holds. Open journal faults go first (their
/// recorded undo is the most precise), then whatever is still tagged.
pub async fn fix(findings: &mut [Finding], docker: Option<&crate::docker::Docker>) {
    // Each open fault goes back to the engine its record names.
    let mut engines = super::Engines::new(docker, None);
    for f in findings.iter_mut() {
        if f.live {
            continue;
        }
        let result = match &f.fix {
            Fix::Journal { journal, fault } => {
                let conn = if fault.undo.needs_docker() {
                    match engines.get(fault.engine.as_deref()).await {
                        Ok(d) => Ok(Some(d)),
                        Err(e) => Err(Error::Target(e)),
                    }
                } else {
                    Ok(None)
                };
                match (conn, Journal::attach(journal, "inject-fault", "doctor")) {
                    (Ok(d), Ok(j)) => super::revert(&j, d.as_ref(), fault).await,
                    (Err(e), _) => Err(e),
                    (_, Err(e)) => Err(Error::io(format!("journal {}", journal.display()), e)),
                }
            }
            _ => continue,
        };
        set(f, result);
    }
    for f in findings.iter_mut() {
        if f.live || matches!(f.fix, Fix::Journal { .. }) {
            continue;
        }
        let result = match &f.fix {
            Fix::Journal { .. } => continue,
            Fix::Rule(r) => {
                if partition::tagged_rules(&r.netns)
                    .iter()
                    .any(|x| x.line == r.line && x.table == r.table && x.tool == r.tool)
                {
                    partition::delete_tagged(r).map(|_| "deleted".to_string())
                } else {
                    Ok("already gone".into())
                }
            }
            Fix::Qdisc { netns, dev } => {
                degrade::restore_qdisc(netns, None, dev, "the kernel's default").await
            }
            Fix::Proxy(fault) => degrade::stop_proxy(fault).await,
            Fix::File(path) => fill::remove(path),
            Fix::ReaperFile(path) => std::fs::remove_file(path)
                .map(|_| "removed".to_string())
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok("already gone".into()),
                    _ => Err(Error::io(format!("remove {}", path.display()), e)),
                }),
            Fix::Helper(name) => match docker {
                Some(d) => crate::docker::helper::remove(d, name)
                    .await
                    .map(|_| "removed".to_string())
                    .map_err(Error::from),
                None => Err(Error::Target("the engine is gone".into())),
            },
        };
        set(f, result);
    }
}

fn set(f: &mut Finding, r: Result<String>) {
    match r {
        Ok(how) => f.fixed = Some(how),
        Err(e) => f.error = Some(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::{Finding, Fix};

    fn finding(kind: &str, what: &str, live: bool) -> Finding {
        Finding {
            kind: kind.into(),
            what: what.into(),
            fault: None,
            live,
            fixed: None,
            error: None,
            fix: Fix::File(what.into()),
        }
    }

    #[test]
    fn a_leftover_counts_only_when_the_second_look_still_finds_it() {
        let first = vec![
            // Reverted by its live injector between the scan and the lock check: gone next.
            finding("iptables-rule", "rule of f-1", false),
            finding("fill-file", "/mnt/.drillkit-fill-f-2", false),
            finding("proxy", "delay proxy pid 7", true),
        ];
        let second = vec![
            finding("fill-file", "/mnt/.drillkit-fill-f-2", false),
            finding("proxy", "delay proxy pid 7", true),
            // Appeared since the first look (a fault being applied): not judged yet.
            finding("qdisc", "qdisc of f-3", false),
        ];
        let kept: Vec<(String, bool)> = super::settled(first, second)
            .into_iter()
            .map(|f| (f.what, f.live))
            .collect();
        assert_eq!(
            kept,
            [
                ("/mnt/.drillkit-fill-f-2".to_string(), false),
                ("delay proxy pid 7".to_string(), true)
            ]
        );
    }
}
