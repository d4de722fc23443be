//! Network namespaces and the tools that are the interface to them (`iptables`, `tc`,
//! `nsenter`). A fault's undo records the namespace it touched; a namespace that is gone took
//! its rules and qdiscs with it, so reverting there is a no-op.

use super::{Error, Result};
use serde::{Deserialize, Serialize};
use std::process::Command;

/// Where a network fault lives.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Netns {
    /// The host's own namespace.
    #[default]
    Host,
    /// A named namespace (`ip netns add NAME`, i.e. /run/netns/NAME).
    Named { name: String },
    /// The namespace of a process (a container's main process); `start_time` guards pid reuse.
    Process { pid: i32, start_time: u64 },
    /// A container's namespace on its engine, entered by a helper container (`network_mode:
    /// container:ID`, only `NET_ADMIN`) from `image`, which has `ip`, `tc` and `iptables`; no
    /// shell on the engine's host is needed. `fault` labels the helpers.
    Container {
        id: String,
        name: String,
        image: String,
        fault: String,
    },
}

impl Netns {
    /// The namespace file to enter, `None` for the host.
    pub fn path(&self) -> Option<String> {
        match self {
            Netns::Host => None,
            Netns::Named { name } => Some(format!("/run/netns/{name}")),
            Netns::Process { pid, .. } => Some(format!("/proc/{pid}/ns/net")),
            Netns::Container { .. } => None,
        }
    }

    /// Entered through a helper container on the engine (see [`exec`]).
    pub fn is_container(&self) -> bool {
        matches!(self, Netns::Container { .. })
    }

    /// Whether the namespace still exists (the same one, not a recycled pid's).
    pub fn exists(&self) -> bool {
        match self {
            Netns::Host => true,
            Netns::Named { name } => std::path::Path::new(&format!("/run/netns/{name}")).exists(),
            Netns::Process { pid, start_time } => crate::process::is_same(*pid, *start_time),
            // Asked of its engine ([`exists_on`]).
            Netns::Container { .. } => true,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Netns::Host => "the host".into(),
            Netns::Named { name } => format!("netns {name}"),
            Netns::Process { pid, .. } => format!("netns of pid {pid}"),
            Netns::Container { name, .. } => format!("netns of container {name}"),
        }
    }

    /// The full command line that runs `args` inside this namespace (for a container's, the
    /// `docker run` equivalent of its helper, as a person would read it).
    pub fn argv(&self, args: &[String]) -> Vec<String> {
        if let Netns::Container { id, image, .. } = self {
            let mut v = sv(&["docker", "run", "--rm"]);
            v.push(format!("--network=container:{}", super::target::short(id)));
            v.extend(sv(&["--cap-drop=ALL", "--cap-add=NET_ADMIN"]));
            v.push(image.clone());
            v.extend(args.iter().cloned());
            return v;
        }
        match self.path() {
            None => args.to_vec(),
            Some(p) => {
                let mut v = vec!["nsenter".to_string(), format!("--net={p}"), "--".into()];
                v.extend(args.iter().cloned());
                v
            }
        }
    }

    /// A named namespace, checked to exist (exit 3 when it does not).
    pub fn named(name: &str) -> Result<Netns> {
        if name.is_empty() || name.contains('/') {
            return Err(Error::Invalid(format!(
                "--netns takes a name from `ip netns list`, got '{name}'"
            )));
        }
        let ns = Netns::Named { name: name.into() };
        if !ns.exists() {
            return Err(Error::Target(format!(
                "no network namespace {name} (/run/netns/{name}; see `ip netns list`)"
            )));
        }
        Ok(ns)
    }
}

/// A command in a namespace (the tool's own arguments; [`Cmd::argv`] adds the way in).
#[derive(Clone, Debug, PartialEq)]
pub struct Cmd {
    pub netns: Netns,
    pub args: Vec<String>,
}

impl Cmd {
    pub fn new(netns: &Netns, args: Vec<String>) -> Cmd {
        Cmd {
            netns: netns.clone(),
            args,
        }
    }

    /// The whole command line (`nsenter …`, or the helper's `docker run …`).
    pub fn argv(&self) -> Vec<String> {
        self.netns.argv(&self.args)
    }
}

/// What a command left.
#[derive(Debug)]
pub struct Output {
    pub ok: bool,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run `args` in `ns`. A missing tool is exit 3 naming it and why drillkit shells out to it.
/// A container's namespace on an engine is [`exec`]'s.
pub fn run(ns: &Netns, args: &[String]) -> Result<Output> {
    if ns.is_container() {
        return Err(Error::Invalid(format!(
            "{} is entered through its engine",
            ns.describe()
        )));
    }
    let argv = ns.argv(args);
    let (prog, rest) = argv
        .split_first()
        .ok_or_else(|| Error::Invalid("empty command".into()))?;
    let out = Command::new(prog)
        .args(rest)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| missing(prog, &e))?;
    Ok(Output {
        ok: out.status.success(),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Run and require success (exit 3 with the tool's own message otherwise).
pub fn run_ok(ns: &Netns, args: &[String]) -> Result<String> {
    let o = run(ns, args)?;
    if !o.ok {
        return Err(Error::Tool(format!(
            "`{}` failed (exit {}): {}",
            ns.argv(args).join(" "),
            o.code,
            o.stderr
        )));
    }
    Ok(o.stdout)
}

/// Run `args` in `ns`: here, or for a container's namespace on an engine in a helper container
/// there (`docker` is that engine).
pub async fn exec(
    ns: &Netns,
    docker: Option<&crate::docker::Docker>,
    args: &[String],
) -> Result<Output> {
    let Netns::Container {
        id, image, fault, ..
    } = ns
    else {
        return run(ns, args);
    };
    let docker = docker
        .ok_or_else(|| Error::Target(format!("{} is reached through Docker", ns.describe())))?;
    let o = crate::docker::helper::in_netns(docker, image, id, fault, args.to_vec()).await?;
    Ok(Output {
        ok: o.code == 0,
        code: i32::try_from(o.code).unwrap_or(-1),
        stdout: o.stdout,
        stderr: o.stderr.trim().to_string(),
    })
}

/// [`exec`], and require success (exit 3 with the tool's own message otherwise).
pub async fn exec_ok(
    ns: &Netns,
    docker: Option<&crate::docker::Docker>,
    args: &[String],
) -> Result<String> {
    let o = exec(ns, docker, args).await?;
    if !o.ok {
        return Err(Error::Tool(format!(
            "`{}` failed (exit {}): {}",
            shell(&ns.argv(args)),
            o.code,
            o.stderr
        )));
    }
    Ok(o.stdout)
}

/// Whether the namespace is still there; a container's is asked of its engine (gone or not
/// running: its namespace, and every rule and qdisc in it, went with it).
pub async fn exists_on(ns: &Netns, docker: Option<&crate::docker::Docker>) -> Result<bool> {
    let Netns::Container { id, .. } = ns else {
        return Ok(ns.exists());
    };
    let docker = docker
        .ok_or_else(|| Error::Target(format!("{} is reached through Docker", ns.describe())))?;
    match crate::docker::inspect(docker, id).await {
        Ok(f) => Ok(f.running),
        Err(crate::docker::Error::NoSuchContainer(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn missing(prog: &str, e: &std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        let why = match prog {
            "iptables" | "ip6tables" => "network faults shell out to iptables, the kernel firewall's interface; install iptables",
            "tc" => "qdisc faults shell out to tc (iproute2), the traffic-control interface; install iproute2",
            "ip" => "namespace discovery shells out to ip (iproute2); install iproute2",
            "nsenter" => "faults inside a container's or a namespace's network shell out to nsenter (util-linux); install util-linux",
            _ => "it is needed for this fault",
        };
        Error::Tool(format!("{prog} not found on PATH: {why}"))
    } else {
        Error::Tool(format!("cannot run {prog}: {e}"))
    }
}

/// Non-loopback interfaces of a namespace (`ip -o link show`).
pub async fn interfaces(ns: &Netns, docker: Option<&crate::docker::Docker>) -> Result<Vec<String>> {
    let out = exec_ok(ns, docker, &sv(&["ip", "-o", "link", "show"])).await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n != "lo")
        .collect())
}

/// Every named namespace (`/run/netns/*`).
pub fn named_all() -> Vec<Netns> {
    let mut out: Vec<Netns> = std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str().map(str::to_string))
                .map(|name| Netns::Named { name })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by_key(|n| n.describe());
    out
}

/// `&["a", "b"]` as owned strings.
pub fn sv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A command line as a person would type it (for dry-run and the journal).
pub fn shell(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '!' || c == '"') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
