//! Network partitions: a container cut from its Docker networks through the Docker API (and
//! connected again with the aliases and addresses it had), or a host or namespace cut from a CIDR
//! or `HOST:PORT` with iptables rules — the runbook's §2.4 rule, carrying the fault id in a
//! comment so that revert and `doctor` remove exactly drillkit's rules and nothing else.

use super::netns::{self, Netns};
use super::target::{short, Target};
use super::{Error, Op, Result, Undo};
use std::collections::HashMap;
use std::net::IpAddr;

/// How a partition cuts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Method {
    /// Docker for a container without `to`; iptables otherwise.
    #[default]
    Auto,
    /// Disconnect the container from its networks (Docker API).
    Docker,
    /// DROP rules to each `to` in the target's network namespace.
    Iptables,
}

impl Method {
    /// The names flags and scenarios take.
    pub const NAMES: [&'static str; 3] = ["auto", "docker", "iptables"];
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Method, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Method::Auto),
            "docker" => Ok(Method::Docker),
            "iptables" => Ok(Method::Iptables),
            _ => Err(format!(
                "partition takes {}, got '{s}'",
                Method::NAMES.join(", ")
            )),
        }
    }
}

/// What a partition cuts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    /// Docker: only these networks (default: all the container is on).
    pub networks: Vec<String>,
    /// iptables: destinations, `CIDR`, address or `HOST:PORT`.
    pub to: Vec<String>,
    pub method: Method,
    /// iptables in a container on an engine elsewhere: the helper image with ip/tc/iptables
    /// (default [`crate::docker::helper::default_net_image`]).
    pub helper_image: Option<String>,
}

impl Options {
    /// The method `auto` means for this target: Docker for a container without `to`.
    pub fn method_for(&self, target: &Target) -> Method {
        match (self.method, target) {
            (Method::Auto, Target::Container { .. }) if self.to.is_empty() => Method::Docker,
            (Method::Auto, _) => Method::Iptables,
            (m, _) => m,
        }
    }
}

/// The DROP rule that cuts `ns` from `d`, and its undo.
pub fn cut(ns: &Netns, d: &Dest, fault: &str) -> (Op, Undo) {
    let rule = partition_rule(d, fault);
    (
        Op::Run(netns::Cmd::new(
            ns,
            insert_argv(d.tool(), "filter", "OUTPUT", &rule),
        )),
        Undo::IptablesDelete {
            netns: ns.clone(),
            tool: d.tool().into(),
            table: "filter".into(),
            chain: "OUTPUT".into(),
            rule,
        },
    )
}

/// Every rule drillkit adds carries `-m comment --comment drillkit:<fault id>`.
pub const COMMENT_PREFIX: &str = "drillkit:";

/// The tables doctor searches for tagged rules.
pub const TABLES: [&str; 3] = ["filter", "nat", "mangle"];

/// A destination given with `--to`: an address or CIDR, and for `HOST:PORT` a TCP port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dest {
    pub addr: String,
    pub v6: bool,
    pub port: Option<u16>,
}

impl Dest {
    pub fn tool(&self) -> &'static str {
        if self.v6 {
            "ip6tables"
        } else {
            "iptables"
        }
    }

    /// The match part of a rule: `-d ADDR [-p tcp --dport PORT]`.
    pub fn matches(&self) -> Vec<String> {
        let mut v = vec!["-d".to_string(), self.addr.clone()];
        if let Some(p) = self.port {
            v.extend(netns::sv(&["-p", "tcp", "--dport"]));
            v.push(p.to_string());
        }
        v
    }
}

/// Parse `--to` values: `10.0.2.0/24`, `10.0.2.5`, `db.internal:5432`, `[fd00::1]:80`. Names are
/// resolved here, once, so the rules (and their undo) name addresses.
pub async fn parse_dests(values: &[String]) -> Result<Vec<Dest>> {
    let mut out = Vec::new();
    for v in values {
        let bad = |why: &str| {
            Error::Invalid(format!(
                "--to {v}: {why}; expected a CIDR (10.0.2.0/24), an address, or HOST:PORT"
            ))
        };
        let v = v.trim();
        if let Some((net, bits)) = v.split_once('/') {
            let ip: IpAddr = net.parse().map_err(|_| bad("not an address"))?;
            let b: u8 = bits.parse().map_err(|_| bad("bad prefix length"))?;
            if b > if ip.is_ipv6() { 128 } else { 32 } {
                return Err(bad("prefix length too long"));
            }
            out.push(Dest {
                addr: format!("{ip}/{b}"),
                v6: ip.is_ipv6(),
                port: None,
            });
            continue;
        }
        if let Ok(ip) = v.parse::<IpAddr>() {
            out.push(Dest {
                addr: ip.to_string(),
                v6: ip.is_ipv6(),
                port: None,
            });
            continue;
        }
        let (host, port) = v.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("bad port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => {
                let mut a: Vec<IpAddr> = tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|e| Error::Target(format!("--to {v}: cannot resolve {host}: {e}")))?
                    .map(|s| s.ip())
                    .collect();
                a.sort();
                a.dedup();
                a
            }
        };
        if addrs.is_empty() {
            return Err(Error::Target(format!("--to {v}: {host} has no address")));
        }
        for ip in addrs {
            out.push(Dest {
                addr: ip.to_string(),
                v6: ip.is_ipv6(),
                port: Some(port),
            });
        }
    }
    Ok(out)
}

/// The comment arguments that tag a rule with its fault.
pub fn tag(fault: &str) -> Vec<String> {
    vec![
        "-m".into(),
        "comment".into(),
        "--comment".into(),
        format!("{COMMENT_PREFIX}{fault}"),
    ]
}

/// The command that inserts `rule` first in `chain` (first, so an earlier ACCEPT cannot make the
/// fault a silent no-op).
pub fn insert_argv(tool: &str, table: &str, chain: &str, rule: &[String]) -> Vec<String> {
    let mut v = netns::sv(&[tool, "-w", "5", "-t", table, "-I", chain, "1"]);
    v.extend(rule.iter().cloned());
    v
}

fn op_argv(tool: &str, op: &str, table: &str, chain: &str, rule: &[String]) -> Vec<String> {
    let mut v = netns::sv(&[tool, "-w", "5", "-t", table, op, chain]);
    v.extend(rule.iter().cloned());
    v
}

/// The partition rule for one destination: DROP what goes there, tagged with the fault id.
pub fn partition_rule(d: &Dest, fault: &str) -> Vec<String> {
    let mut r = d.matches();
    r.extend(tag(fault));
    r.extend(netns::sv(&["-j", "DROP"]));
    r
}

/// Delete a rule wherever it still is (every copy); a namespace that is gone took it along.
/// `docker` is the engine of a container's namespace entered through a helper.
pub async fn delete_rule(
    ns: &Netns,
    docker: Option<&crate::docker::Docker>,
    tool: &str,
    table: &str,
    chain: &str,
    rule: &[String],
) -> Result<String> {
    if !netns::exists_on(ns, docker).await? {
        return Ok(format!("{} is gone, and its rules with it", ns.describe()));
    }
    let mut deleted = 0;
    for _ in 0..16 {
        let check = netns::exec(ns, docker, &op_argv(tool, "-C", table, chain, rule)).await?;
        if !check.ok {
            if check.code == 1
                || check.stderr.contains("does a matching rule exist")
                || check.stderr.contains("No chain")
                || check.stderr.contains("does not exist")
            {
                break;
            }
            // The namespace may have vanished between the check and now.
            if !netns::exists_on(ns, docker).await? {
                break;
            }
            return Err(Error::Tool(format!(
                "`{}` failed: {}",
                netns::shell(&ns.argv(&op_argv(tool, "-C", table, chain, rule))),
                check.stderr
            )));
        }
        netns::exec_ok(ns, docker, &op_argv(tool, "-D", table, chain, rule)).await?;
        deleted += 1;
    }
    Ok(if deleted == 0 {
        format!("rule already gone in {}", ns.describe())
    } else {
        format!(
            "deleted `{tool} -t {table} -D {chain} {}` in {}",
            netns::shell(rule),
            ns.describe()
        )
    })
}

/// A rule drillkit left: where, and the arguments that delete it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaggedRule {
    pub netns: Netns,
    pub tool: String,
    pub table: String,
    /// `-A CHAIN …` as `iptables -S` prints it.
    pub line: String,
    pub fault: String,
}

/// Every rule carrying a drillkit comment in `ns`.
pub fn tagged_rules(ns: &Netns) -> Vec<TaggedRule> {
    let mut out = Vec::new();
    for tool in ["iptables", "ip6tables"] {
        for table in TABLES {
            let Ok(o) = netns::run(ns, &netns::sv(&[tool, "-w", "5", "-t", table, "-S"])) else {
                continue;
            };
            if !o.ok {
                continue;
            }
            for line in o.stdout.lines() {
                if let Some(i) = line.find(COMMENT_PREFIX) {
                    let fault: String = line[i + COMMENT_PREFIX.len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect();
                    out.push(TaggedRule {
                        netns: ns.clone(),
                        tool: tool.into(),
                        table: table.into(),
                        line: line.to_string(),
                        fault,
                    });
                }
            }
        }
    }
    out
}

/// Delete a rule found by [`tagged_rules`] (its `-A` line turned into `-D`).
pub fn delete_tagged(r: &TaggedRule) -> Result<()> {
    let Some(rest) = r.line.strip_prefix("-A ") else {
        return Ok(());
    };
    let mut argv = netns::sv(&[&r.tool, "-w", "5", "-t", &r.table, "-D"]);
    argv.extend(split_rule(rest));
    netns::run_ok(&r.netns, &argv).map(|_| ())
}

/// Split an `iptables -S` line into arguments (double quotes group, as iptables prints them).
pub fn split_rule(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut has = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                has = true;
            }
            c if c.is_whitespace() && !quoted => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

/// A container's endpoint on one network, as needed to connect it again.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub network: String,
    pub network_id: String,
    pub aliases: Vec<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
}

/// The networks a container is on (all of them, or the ones named), with what reconnecting
/// needs. Addresses are pinned only on networks whose subnet was configured (Docker refuses a
/// fixed address elsewhere); aliases drop the short id Docker adds by itself.
pub async fn endpoints(
    docker: &crate::docker::Docker,
    id: &str,
    name: &str,
    only: &[String],
) -> Result<Vec<Endpoint>> {
    let c = docker
        .inspect_container(id, None)
        .await
        .map_err(crate::docker::Error::api(format!(
            "cannot inspect container {name}"
        )))?;
    let nets: HashMap<String, bollard::models::EndpointSettings> = c
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default();
    for n in only {
        if !nets.contains_key(n) {
            let mut on: Vec<&String> = nets.keys().collect();
            on.sort();
            return Err(Error::Invalid(format!(
                "container {name} is not on network {n} (it is on: {})",
                on.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let short = short(id).to_string();
    let mut out = Vec::new();
    let mut names: Vec<&String> = nets.keys().collect();
    names.sort();
    for net in names {
        if !only.is_empty() && !only.contains(net) {
            continue;
        }
        if net == "host" || net == "none" {
            return Err(Error::Invalid(format!(
                "container {name} uses the {net} network; it cannot be disconnected from it (use --to with iptables)"
            )));
        }
        let Some(ep) = nets.get(net) else { continue };
        // Docker accepts a fixed address only on networks whose subnet a user configured, which
        // inspect does not tell apart; the address is recorded on every user-defined network and
        // reconnect falls back to letting Docker choose when it is refused.
        let configured = net != "bridge";
        let nonempty = |s: &Option<String>| s.clone().filter(|v| !v.is_empty());
        out.push(Endpoint {
            network: net.clone(),
            network_id: ep.network_id.clone().unwrap_or_default(),
            aliases: ep
                .aliases
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|a| *a != short)
                .collect(),
            ipv4: if configured {
                nonempty(&ep.ip_address)
            } else {
                None
            },
            ipv6: if configured {
                nonempty(&ep.global_ipv6_address)
            } else {
                None
            },
        });
    }
    if out.is_empty() {
        return Err(Error::Target(format!(
            "container {name} is on no network drillkit can disconnect"
        )));
    }
    Ok(out)
}

pub fn reconnect_undo(id: &str, name: &str, e: &Endpoint) -> Undo {
    Undo::DockerReconnect {
        id: id.into(),
        name: name.into(),
        network: e.network.clone(),
        network_id: e.network_id.clone(),
        aliases: e.aliases.clone(),
        ipv4: e.ipv4.clone(),
        ipv6: e.ipv6.clone(),
    }
}

/// Disconnect; already disconnected is fine.
pub async fn disconnect(
    docker: &crate::docker::Docker,
    container: &str,
    network: &str,
) -> Result<()> {
    docker
        .disconnect_network(
            network,
            bollard::models::NetworkDisconnectRequest {
                container: container.into(),
                force: Some(false),
            },
        )
        .await
        .map_err(|e| {
            crate::docker::Error::api(format!("disconnect {} from {network}", short(container)))(e)
                .into()
        })
}

/// Undo of a Docker partition. Idempotent: a container already connected (or gone) is left alone.
#[allow(clippy::too_many_arguments)]
pub async fn reconnect(
    docker: &crate::docker::Docker,
    id: &str,
    name: &str,
    network: &str,
    network_id: &str,
    aliases: &[String],
    ipv4: Option<&str>,
    ipv6: Option<&str>,
) -> Result<String> {
    let c = match docker.inspect_container(id, None).await {
        Ok(c) => c,
        Err(e) if crate::docker::is_not_found(&e) => {
            return Ok(format!(
                "container {name} no longer exists; nothing to reconnect"
            ))
        }
        Err(e) => return Err(crate::docker::Error::api(format!("inspect {name}"))(e).into()),
    };
    let nets = c
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default();
    if nets.contains_key(network)
        || nets
            .values()
            .any(|e| !network_id.is_empty() && e.network_id.as_deref() == Some(network_id))
    {
        return Ok(format!("{name} already on {network}"));
    }
    let target = if network_id.is_empty() {
        network
    } else {
        network_id
    };
    let ipam = (ipv4.is_some() || ipv6.is_some()).then(|| bollard::models::EndpointIpamConfig {
        ipv4_address: ipv4.map(str::to_string),
        ipv6_address: ipv6.map(str::to_string),
        ..Default::default()
    });
    let req = bollard::models::NetworkConnectRequest {
        container: id.into(),
        endpoint_config: Some(bollard::models::EndpointSettings {
            aliases: (!aliases.is_empty()).then(|| aliases.to_vec()),
            ipam_config: ipam,
            ..Default::default()
        }),
    };
    let mut result = docker.connect_network(target, req.clone()).await;
    let mut pinned = ipv4.is_some() || ipv6.is_some();
    if let Err(bollard::errors::Error::DockerResponseServerError { message, .. }) = &result {
        if pinned && message.contains("user specified IP address") {
            let mut retry = req;
            if let Some(ep) = retry.endpoint_config.as_mut() {
                ep.ipam_config = None;
            }
            pinned = false;
            result = docker.connect_network(target, retry).await;
        }
    }
    let ipv4 = if pinned { ipv4 } else { None };
    match result {
        Ok(()) => Ok(format!(
            "reconnected {name} to {network}{}{}",
            ipv4.map(|a| format!(" as {a}")).unwrap_or_default(),
            if aliases.is_empty() {
                String::new()
            } else {
                format!(" (aliases {})", aliases.join(", "))
            }
        )),
        Err(e) if crate::docker::is_not_found(&e) => Ok(format!(
            "network {network} no longer exists; nothing to reconnect {name} to"
        )),
        Err(e) => {
            Err(crate::docker::Error::api(format!("reconnect {name} to {network}"))(e).into())
        }
    }
}
