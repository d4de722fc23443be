//! degrade: slow a container's or a namespace's traffic down — delay, jitter, loss, rate.
//!
//! `tc netem` does all of it where the kernel has it. Kernels without netem (this project's build
//! machine, some CI sandboxes) get the same effects from parts they do have: loss through an
//! iptables `statistic` rule, rate through a `tbf` root qdisc, and delay/jitter through a small
//! TCP proxy drillkit runs inside the target's network namespace, fed by an iptables `REDIRECT`
//! rule — no helper image, no change to the application. Everything drillkit adds is marked (the
//! qdisc handle `dd17:`, the rule comment `drillkit:<fault id>`, the proxy's command line naming
//! the fault), and revert removes exactly that: a root qdisc drillkit did not add is never
//! replaced or removed.

use super::netns::{self, Netns};
use super::partition::{self, Dest};
use super::{Error, Result, Undo};
use std::time::Duration;

/// The root qdisc handle drillkit uses, so a qdisc of anyone else's is never taken for ours.
pub const HANDLE: &str = "dd17:";
/// The proxy runs with this group id; the REDIRECT rule exempts it so its own connections pass.
pub const PROXY_GID: u32 = 0xD717;
/// The hidden `inject-fault` subcommand that is the proxy (found in /proc by doctor and revert).
pub const PROXY_ARG: &str = "__degrade-proxy";

/// How to degrade.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Method {
    /// netem when the kernel has it, otherwise iptables loss + tbf rate + the delay proxy.
    #[default]
    Auto,
    /// `tc qdisc … netem` (CONFIG_NET_SCH_NETEM).
    Netem,
    /// Loss with an iptables `statistic` rule, rate with `tbf`; no delay.
    Iptables,
    /// Delay/jitter with drillkit's TCP proxy (iptables REDIRECT); loss and rate as `iptables`.
    Proxy,
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Method, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Method::Auto),
            "netem" => Ok(Method::Netem),
            "iptables" => Ok(Method::Iptables),
            "proxy" => Ok(Method::Proxy),
            _ => Err(format!(
                "degrade takes {}, got '{s}'",
                Method::NAMES.join(", ")
            )),
        }
    }
}

/// A degrade as asked for (destinations still as written; see [`Options::settings`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    pub delay: Option<Duration>,
    pub jitter: Option<Duration>,
    /// Fraction of packets dropped (0.1 = 10%).
    pub loss: Option<f64>,
    /// tc rate, e.g. `1mbit`.
    pub rate: Option<String>,
    /// Interfaces (default: every non-loopback interface of the namespace).
    pub devs: Vec<String>,
    /// Only traffic to these, `CIDR` or `HOST:PORT`.
    pub to: Vec<String>,
    pub method: Method,
    /// In a container on an engine elsewhere: the helper image with ip/tc/iptables (default
    /// [`crate::docker::helper::default_net_image`]).
    pub helper_image: Option<String>,
}

impl Options {
    /// What can be checked without the system: the error names the scenario key (`rate`,
    /// `jitter`, `action`) it is about.
    pub fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        if self.delay.is_none() && self.loss.is_none() && self.rate.is_none() {
            return Err((
                "action",
                "degrade needs at least one of delay, loss, rate".into(),
            ));
        }
        if self.jitter.is_some() && self.delay.is_none() {
            return Err(("jitter", "jitter needs delay".into()));
        }
        if let Some(r) = &self.rate {
            rate_bits(r).map_err(|e| ("rate", e.to_string()))?;
        }
        Ok(())
    }

    /// The settings with every destination resolved to addresses (names are looked up once,
    /// here, so the rules and their undo name addresses).
    pub async fn settings(&self) -> Result<Settings> {
        Ok(Settings {
            delay: self.delay,
            jitter: self.jitter,
            loss: self.loss,
            rate: self.rate.clone(),
            devs: self.devs.clone(),
            to: partition::parse_dests(&self.to).await?,
        })
    }
}

impl Method {
    /// The names flags and scenarios take.
    pub const NAMES: [&'static str; 4] = ["auto", "netem", "iptables", "proxy"];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Auto => "auto",
            Method::Netem => "netem",
            Method::Iptables => "iptables",
            Method::Proxy => "proxy",
        }
    }
}

/// What to do to the traffic.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    pub delay: Option<Duration>,
    pub jitter: Option<Duration>,
    /// Fraction of packets dropped (0.1 = 10%).
    pub loss: Option<f64>,
    /// tc rate, e.g. `1mbit`.
    pub rate: Option<String>,
    /// Interfaces (default: every non-loopback interface of the namespace).
    pub devs: Vec<String>,
    /// Only traffic to these (loss, proxy); the proxy needs exactly one `HOST:PORT`.
    pub to: Vec<Dest>,
}

/// Whether the kernel has netem: /proc/config.gz when it exists, else a loaded module, else the
/// module file. `Err` carries what was looked at when nothing says yes.
pub fn netem_available() -> Result<(), String> {
    if let Ok(gz) = std::fs::read("/proc/config.gz") {
        use std::io::Read;
        let mut text = String::new();
        if flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .is_ok()
        {
            for line in text.lines() {
                if line == "CONFIG_NET_SCH_NETEM=y" || line == "CONFIG_NET_SCH_NETEM=m" {
                    return Ok(());
                }
            }
            return Err("netem is not available in this kernel (CONFIG_NET_SCH_NETEM is not set in /proc/config.gz)".into());
        }
    }
    if std::path::Path::new("/sys/module/sch_netem").exists() {
        return Ok(());
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let dir = format!("/lib/modules/{}/kernel/net/sched", release.trim());
    let has_module = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with("sch_netem"))
        })
        .unwrap_or(false);
    if has_module {
        return Ok(());
    }
    Err(format!("netem is not available in this kernel (CONFIG_NET_SCH_NETEM: no /proc/config.gz entry, no sch_netem module loaded or in {dir})"))
}

/// Pick the method `auto` means here; refuse a method the kernel lacks (exit 3) or one that
/// cannot do what was asked (exit 2).
pub fn resolve(method: Method, s: &Settings) -> Result<Method> {
    resolve_for(method, s, netem_available)
}

/// [`resolve`] for a kernel elsewhere: `netem` tells whether that kernel has netem (asked of a
/// helper on its engine).
pub fn resolve_for(
    method: Method,
    s: &Settings,
    netem: impl Fn() -> Result<(), String>,
) -> Result<Method> {
    if s.delay.is_none() && s.loss.is_none() && s.rate.is_none() {
        return Err(Error::Invalid(
            "degrade needs at least one of --delay, --loss, --rate".into(),
        ));
    }
    if s.jitter.is_some() && s.delay.is_none() {
        return Err(Error::Invalid("--jitter needs --delay".into()));
    }
    let m = match method {
        Method::Auto => {
            if netem().is_ok() {
                Method::Netem
            } else if s.delay.is_some() {
                Method::Proxy
            } else {
                Method::Iptables
            }
        }
        m => m,
    };
    match m {
        Method::Netem => {
            netem().map_err(|e| Error::Tool(format!("{e}; use --method iptables or proxy")))?
        }
        Method::Iptables if s.delay.is_some() => {
            return Err(Error::Invalid(
                "--method iptables cannot delay; use --method proxy (a TCP proxy for one --to HOST:PORT) or netem".into(),
            ))
        }
        Method::Proxy if s.delay.is_some() => {
            let tcp: Vec<&Dest> = s.to.iter().filter(|d| d.port.is_some()).collect();
            if tcp.len() != 1 || s.to.len() != 1 {
                return Err(Error::Invalid(
                    "--delay with --method proxy delays TCP to one destination: give exactly one --to HOST:PORT".into(),
                ));
            }
        }
        _ => {}
    }
    Ok(m)
}

/// Parse a tc rate (`500kbit`, `1mbit`, `2mbps`) to bits per second.
pub fn rate_bits(rate: &str) -> Result<u64> {
    let r = rate.trim().to_ascii_lowercase();
    let split = r
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(r.len());
    let (num, unit) = r.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad_rate(rate))?;
    let mult = match unit {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        "gbps" => 8e9,
        _ => return Err(bad_rate(rate)),
    };
    let bits = (n * mult) as u64;
    if bits < 8000 {
        return Err(Error::Invalid(format!("--rate {rate} is below 8kbit")));
    }
    Ok(bits)
}

fn bad_rate(r: &str) -> Error {
    Error::Invalid(format!(
        "--rate {r}: expected a tc rate like 500kbit, 1mbit, 10mbit, 2mbps"
    ))
}

/// The proxy a fault runs.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxySpec {
    pub netns: Netns,
    pub fault: String,
    pub port: u16,
    pub to: String,
    pub delay: Duration,
    pub jitter: Duration,
}

impl ProxySpec {
    /// The proxy's command line (its program is `inject-fault` next to the running binary).
    pub fn args(&self) -> Vec<String> {
        vec![
            PROXY_ARG.into(),
            "--fault".into(),
            self.fault.clone(),
            "--listen".into(),
            format!("127.0.0.1:{}", self.port),
            "--to".into(),
            self.to.clone(),
            "--delay".into(),
            format!("{}ms", self.delay.as_millis()),
            "--jitter".into(),
            format!("{}ms", self.jitter.as_millis()),
        ]
    }

    pub fn describe(&self) -> String {
        let mut argv = vec!["inject-fault".to_string()];
        argv.extend(self.args());
        format!(
            "{} (gid {PROXY_GID}, own process group)",
            netns::shell(&self.netns.argv(&argv))
        )
    }
}

/// One piece of a degrade: a command or the proxy.
#[derive(Clone, Debug, PartialEq)]
pub enum Piece {
    Cmd(netns::Cmd),
    Proxy(ProxySpec),
}

/// Plan a degrade in `ns`: the pieces in the order they are applied, each with its undo.
/// Reads (never changes) the interfaces and current root qdiscs (through `docker` for a
/// container's namespace on an engine).
pub async fn plan(
    ns: &Netns,
    docker: Option<&crate::docker::Docker>,
    fault: &str,
    m: Method,
    s: &Settings,
) -> Result<Vec<(Piece, Undo)>> {
    let mut out = Vec::new();
    let devs = if s.devs.is_empty() {
        if *ns == Netns::Host {
            return Err(Error::Invalid(
                "degrading the host's own traffic needs --dev (drillkit will not guess the host's interfaces)".into(),
            ));
        }
        netns::interfaces(ns, docker).await?
    } else {
        s.devs.clone()
    };
    let qdisc_needed = m == Method::Netem || s.rate.is_some();
    if qdisc_needed {
        if devs.is_empty() {
            return Err(Error::Target(format!(
                "{} has no interface to degrade",
                ns.describe()
            )));
        }
        for dev in &devs {
            let previous = current_root(ns, docker, dev).await?;
            let mut argv = netns::sv(&["tc", "qdisc", "add", "dev", dev, "root", "handle", HANDLE]);
            if m == Method::Netem {
                argv.push("netem".into());
                if let Some(d) = s.delay {
                    argv.extend(["delay".into(), format!("{}ms", d.as_millis())]);
                    if let Some(j) = s.jitter {
                        argv.push(format!("{}ms", j.as_millis()));
                    }
                }
                if let Some(l) = s.loss {
                    argv.extend(["loss".into(), format!("{}%", trim(l * 100.0))]);
                }
                if let Some(r) = &s.rate {
                    rate_bits(r)?;
                    argv.extend(["rate".into(), r.clone()]);
                }
            } else if let Some(r) = &s.rate {
                let bits = rate_bits(r)?;
                let burst = (bits / 8 / 100).max(3200);
                argv.extend(netns::sv(&["tbf", "rate", r]));
                argv.extend([
                    "burst".into(),
                    burst.to_string(),
                    "latency".into(),
                    "400ms".into(),
                ]);
            }
            out.push((
                Piece::Cmd(netns::Cmd::new(ns, argv)),
                Undo::QdiscRestore {
                    netns: ns.clone(),
                    dev: dev.clone(),
                    previous,
                },
            ));
        }
    }
    if m != Method::Netem {
        if let Some(l) = s.loss {
            let dests: Vec<Option<&Dest>> = if s.to.is_empty() {
                vec![None]
            } else {
                s.to.iter().map(Some).collect()
            };
            for d in dests {
                let tool = d.map(|d| d.tool()).unwrap_or("iptables");
                let rule_match = match d {
                    Some(d) => d.matches(),
                    None => netns::sv(&["!", "-o", "lo"]),
                };
                let mut rule = rule_match;
                rule.extend(netns::sv(&[
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                ]));
                rule.push(format!("{:.4}", l));
                rule.extend(partition::tag(fault));
                rule.extend(netns::sv(&["-j", "DROP"]));
                out.push((
                    Piece::Cmd(netns::Cmd::new(
                        ns,
                        partition::insert_argv(tool, "filter", "OUTPUT", &rule),
                    )),
                    Undo::IptablesDelete {
                        netns: ns.clone(),
                        tool: tool.into(),
                        table: "filter".into(),
                        chain: "OUTPUT".into(),
                        rule,
                    },
                ));
            }
        }
        if let Some(delay) = s.delay {
            let needs_to = || Error::Invalid("--delay needs --to HOST:PORT".into());
            let d = s.to.first().ok_or_else(needs_to)?;
            let port = d.port.ok_or_else(needs_to)?;
            if d.v6 {
                return Err(Error::Invalid(
                    "the delay proxy handles IPv4 destinations".into(),
                ));
            }
            let listen = 40000 + (rand::random::<u16>() % 20000);
            let spec = ProxySpec {
                netns: ns.clone(),
                fault: fault.into(),
                port: listen,
                to: format!("{}:{port}", d.addr),
                delay,
                jitter: s.jitter.unwrap_or_default(),
            };
            out.push((
                Piece::Proxy(spec),
                Undo::ProxyStop {
                    fault: fault.into(),
                    netns: ns.clone(),
                },
            ));
            let mut rule = d.matches();
            rule.extend(netns::sv(&["-m", "owner", "!", "--gid-owner"]));
            rule.push(PROXY_GID.to_string());
            rule.extend(partition::tag(fault));
            rule.extend(netns::sv(&["-j", "REDIRECT", "--to-ports"]));
            rule.push(listen.to_string());
            out.push((
                Piece::Cmd(netns::Cmd::new(
                    ns,
                    partition::insert_argv("iptables", "nat", "OUTPUT", &rule),
                )),
                Undo::IptablesDelete {
                    netns: ns.clone(),
                    tool: "iptables".into(),
                    table: "nat".into(),
                    chain: "OUTPUT".into(),
                    rule,
                },
            ));
        }
    }
    Ok(out)
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The root qdisc of `dev` (`tc qdisc show dev DEV root`); refused unless it is the kernel's
/// default (handle `0:`): drillkit restores a default by deleting its own, and never replaces a
/// qdisc someone configured.
pub async fn current_root(
    ns: &Netns,
    docker: Option<&crate::docker::Docker>,
    dev: &str,
) -> Result<String> {
    let show = netns::sv(&["tc", "qdisc", "show", "dev", dev, "root"]);
    let out = netns::exec_ok(ns, docker, &show).await?;
    let line = out.lines().next().unwrap_or("").trim().to_string();
    let handle = line.split_whitespace().nth(2).unwrap_or("");
    if handle == HANDLE {
        return Err(Error::Target(format!(
            "{dev} in {} is already degraded by drillkit ({line}); revert that fault first",
            ns.describe()
        )));
    }
    if handle != "0:" && !line.is_empty() {
        return Err(Error::Target(format!(
            "{dev} in {} has a configured root qdisc ({line}); drillkit only replaces the kernel's default and will not touch it",
            ns.describe()
        )));
    }
    Ok(line)
}

/// Undo of a qdisc: delete the root qdisc if (and only if) it is drillkit's.
pub async fn restore_qdisc(
    ns: &Netns,
    docker: Option<&crate::docker::Docker>,
    dev: &str,
    previous: &str,
) -> Result<String> {
    if !netns::exists_on(ns, docker).await? {
        return Ok(format!("{} is gone, and its qdiscs with it", ns.describe()));
    }
    let show = netns::exec(
        ns,
        docker,
        &netns::sv(&["tc", "qdisc", "show", "dev", dev, "root"]),
    )
    .await?;
    if !show.ok {
        return Ok(format!("{dev} is gone from {}", ns.describe()));
    }
    let ours = show
        .stdout
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(2))
        == Some(HANDLE);
    if !ours {
        return Ok(format!("root qdisc of {dev} is not drillkit's; left alone"));
    }
    netns::exec_ok(
        ns,
        docker,
        &netns::sv(&["tc", "qdisc", "del", "dev", dev, "root"]),
    )
    .await?;
    Ok(format!(
        "deleted drillkit's root qdisc on {dev} in {} (back to: {previous})",
        ns.describe()
    ))
}

/// Pids of running proxies (of one fault, or all), from their command lines.
pub fn proxies(fault: Option<&str>) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for pid in crate::process::all_pids() {
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.get(1).map(String::as_str) != Some(PROXY_ARG) {
            continue;
        }
        let f = args
            .iter()
            .position(|a| a == "--fault")
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_default();
        if fault.is_none_or(|want| want == f) {
            out.push((pid, f));
        }
    }
    out
}

/// Stop a fault's proxy wherever it runs: its helper container on the engine of a container's
/// namespace, else the local process ([`stop_proxy`]).
pub async fn stop_proxy_on(
    fault: &str,
    ns: &Netns,
    docker: Option<&crate::docker::Docker>,
) -> Result<String> {
    if !ns.is_container() {
        return stop_proxy(fault).await;
    }
    let docker =
        docker.ok_or_else(|| Error::Target("the delay proxy's engine is needed".into()))?;
    let gone = crate::docker::helper::remove_for(docker, "proxy", fault).await?;
    Ok(if gone.is_empty() {
        format!("no proxy of {fault} running")
    } else {
        format!("removed proxy helper {}", gone.join(", "))
    })
}

/// Stop a fault's proxy: SIGTERM, then SIGKILL after a second. Gone already is fine.
pub async fn stop_proxy(fault: &str) -> Result<String> {
    let found = proxies(Some(fault));
    if found.is_empty() {
        return Ok(format!("no proxy of {fault} running"));
    }
    for (pid, _) in &found {
        let _ = crate::process::signal(*pid, nix::sys::signal::Signal::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while tokio::time::Instant::now() < deadline && !proxies(Some(fault)).is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (pid, _) in proxies(Some(fault)) {
        let _ = crate::process::signal(pid, nix::sys::signal::Signal::SIGKILL);
    }
    reap();
    Ok(format!(
        "stopped proxy of {fault} (pid {})",
        found
            .iter()
            .map(|p| p.0.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

static CHILDREN: std::sync::Mutex<Vec<std::process::Child>> = std::sync::Mutex::new(Vec::new());

fn reap() {
    if let Ok(mut c) = CHILDREN.lock() {
        c.retain_mut(|ch| matches!(ch.try_wait(), Ok(None)));
    }
}

/// Start the proxy inside the namespace and wait until it listens. It runs in its own process
/// group, so a Ctrl-C in the terminal reaches only drillkit, which removes the rule first and
/// then stops the proxy. In a container's namespace on an engine it is a helper container
/// there (drillkit's own image), removed by [`stop_proxy_on`].
pub async fn start_proxy(p: &ProxySpec, docker: Option<&crate::docker::Docker>) -> Result<()> {
    use std::os::unix::process::CommandExt;
    if let Netns::Container { id, .. } = &p.netns {
        let docker = docker.ok_or_else(|| Error::Target("the delay proxy needs Docker".into()))?;
        let args = p.args().into_iter().skip(1).collect();
        crate::docker::helper::start_proxy(docker, id, &p.fault, PROXY_GID, args).await?;
        return Ok(());
    }
    let me = std::env::current_exe().map_err(|e| Error::io("cannot find own executable", e))?;
    let exe = match me.file_name().and_then(|n| n.to_str()) {
        Some("inject-fault") => me.clone(),
        _ => me.with_file_name("inject-fault"),
    };
    let mut argv = vec![exe.display().to_string()];
    argv.extend(p.args());
    let argv = p.netns.argv(&argv);
    let (prog, rest) = argv
        .split_first()
        .ok_or_else(|| Error::Tool("empty proxy command".into()))?;
    let mut child = std::process::Command::new(prog)
        .args(rest)
        .gid(PROXY_GID)
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| Error::io(format!("cannot start the delay proxy ({prog})"), e))?;
    let stdout = child.stdout.take();
    let ready = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut line = String::new();
        if let Some(out) = stdout {
            let _ = std::io::BufReader::new(out).read_line(&mut line);
        }
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(5), ready)
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    if let Ok(mut c) = CHILDREN.lock() {
        c.push(child);
    }
    if !line.starts_with("ready") {
        return Err(Error::Tool(format!(
            "the delay proxy did not start in {} ({})",
            p.netns.describe(),
            if line.is_empty() {
                "no answer within 5s".to_string()
            } else {
                line.trim().to_string()
            }
        )));
    }
    Ok(())
}

/// The proxy itself: accept on `listen`, connect to `to` after `delay ± jitter`, and hold every
/// chunk going to `to` for `delay ± jitter` (order kept), so each round trip grows by the delay.
/// `ready` is called once the socket listens (the CLI tells [`start_proxy`] so on stdout).
pub async fn run_proxy(
    listen: &str,
    to: &str,
    delay: Duration,
    jitter: Duration,
    ready: impl FnOnce(),
) -> Result<()> {
    let l = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Error::io(format!("proxy cannot listen on {listen}"), e))?;
    ready();
    let to = to.to_string();
    loop {
        let (client, _) = match l.accept().await {
            Ok(c) => c,
            Err(_) => continue,
        };
        let to = to.clone();
        tokio::spawn(async move {
            tokio::time::sleep(sample(delay, jitter)).await;
            let Ok(server) = tokio::net::TcpStream::connect(&to).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let up = tokio::spawn(pump(cr, sw, delay, jitter));
            let down = tokio::spawn(pump(sr, cw, Duration::ZERO, Duration::ZERO));
            let _ = up.await;
            let _ = down.await;
        });
    }
}

fn sample(delay: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return delay;
    }
    let j = jitter.as_secs_f64();
    let off = (rand::random::<f64>() * 2.0 - 1.0) * j;
    Duration::from_secs_f64((delay.as_secs_f64() + off).max(0.0))
}

async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    jitter: Duration,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, buf)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if w.write_all(&buf).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    });
    let mut last = tokio::time::Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let at = (tokio::time::Instant::now() + sample(delay, jitter)).max(last);
                last = at;
                if tx.send((at, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}
