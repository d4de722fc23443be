//! partition, measured from inside: a namespace cut from a HOST:PORT with a tagged iptables rule
//! (a TCP connect from inside fails, and succeeds again after revert, with the namespace's rules
//! exactly as before), and a container cut from its Docker network (it cannot reach its peer;
//! revert reconnects it with the same address and aliases). Dry-run changes nothing.

use crate::support::netns;

use crate::support::cmd::Bin;
use crate::support::docker as dk;
use std::path::PathBuf;

fn journal(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("journal.jsonl")
}

#[test]
fn iptables_partition_cuts_a_namespace_from_host_port_and_revert_restores_exactly() {
    let _host = crate::support::host_room("netfault_partition");
    require!(Netns);
    let ns = netns::Ns::new(1);
    let echo = netns::Echo::start(&ns.host_ip);
    let to = echo.addr.to_string();
    assert_eq!(ns.probe(&format!("connect {to}")), "ok");
    let before = ns.state();
    let dir = tempfile::tempdir().expect("tmp");
    let j = journal(&dir);

    // Dry-run: prints the exact command, touches nothing.
    let r = Bin::new("inject-fault")
        .args(["partition", "--netns", &ns.name, "--to", &to, "--dry-run"])
        .journal(&j)
        .succeeds();
    r.stderr_has("iptables -w 5 -t filter -I OUTPUT 1 -d")
        .stderr_has("--comment drillkit:f-");
    assert_eq!(ns.state(), before, "dry-run changed the namespace");

    Bin::new("inject-fault")
        .args(["partition", "--netns", &ns.name, "--to", &to])
        .journal(&j)
        .succeeds();
    let during = ns.state();
    assert!(during.contains("drillkit:f-"), "no tagged rule:\n{during}");
    assert!(
        ns.probe(&format!("connect {to}")).starts_with("err"),
        "connect still works during the partition"
    );

    Bin::new("inject-fault")
        .args(["revert"])
        .journal(&j)
        .succeeds();
    assert_eq!(ns.state(), before, "revert left something behind");
    assert_eq!(ns.probe(&format!("connect {to}")), "ok");
    // Revert is idempotent.
    Bin::new("inject-fault")
        .args(["revert", "--all"])
        .journal(&j)
        .succeeds();
}

#[test]
fn partition_flags_are_checked_before_anything_is_touched() {
    let _host = crate::support::host_room("netfault_partition");
    require!(Netns);
    let ns = netns::Ns::new(2);
    let before = ns.state();
    let dir = tempfile::tempdir().expect("tmp");
    let j = journal(&dir);
    Bin::new("inject-fault")
        .args(["partition", "--netns", &ns.name, "--to", "10.0.2.0/99"])
        .journal(&j)
        .code(2)
        .stderr_has("--to 10.0.2.0/99");
    Bin::new("inject-fault")
        .args(["partition", "--netns", &ns.name])
        .journal(&j)
        .code(2)
        .stderr_has("needs --to");
    Bin::new("inject-fault")
        .args([
            "partition",
            "--netns",
            "no-such-ns-dk",
            "--to",
            "10.0.2.0/24",
        ])
        .journal(&j)
        .code(3)
        .stderr_has("no network namespace no-such-ns-dk");
    assert_eq!(ns.state(), before);
}

/// A user-defined network with a configured subnet, removed on drop.
struct Network {
    name: String,
}

impl Network {
    fn new(subnet: &str) -> Network {
        let name = dk::unique();
        dk::docker([
            "network",
            "create",
            "--subnet",
            subnet,
            "--label",
            &format!("{}={name}", dk::LABEL),
            &name,
        ]);
        Network { name }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = dk::docker_output(["network", "rm", &self.name]);
    }
}

/// `docker run -d` on a network with an address and an alias; removed on drop.
struct Box_ {
    name: String,
}

impl Box_ {
    fn run(net: &Network, ip: &str, alias: &str, labels: &[&str], cmd: &[&str]) -> Box_ {
        let name = dk::unique();
        let mut args: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--name".into(),
            name.clone(),
            "--label".into(),
            format!("{}={name}", dk::LABEL),
            "--network".into(),
            net.name.clone(),
            "--ip".into(),
            ip.into(),
            "--network-alias".into(),
            alias.into(),
        ];
        for l in labels {
            args.extend(["--label".into(), l.to_string()]);
        }
        args.push(dk::busybox_image().into());
        args.extend(cmd.iter().map(|s| s.to_string()));
        dk::docker(&args);
        Box_ { name }
    }

    fn endpoint(&self, net: &str) -> (String, Vec<String>) {
        let out = dk::docker(["inspect", &self.name]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("inspect json");
        let ep = &v[0]["NetworkSettings"]["Networks"][net];
        let ip = ep["IPAddress"].as_str().unwrap_or_default().to_string();
        let short = v[0]["Id"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(12)
            .collect::<String>();
        let mut aliases: Vec<String> = ep["Aliases"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .filter(|a| *a != short)
                    .collect()
            })
            .unwrap_or_default();
        aliases.sort();
        aliases.dedup();
        (ip, aliases)
    }

    /// An HTTP GET of /ok from inside the container (busybox nc), answered `ok`.
    fn reaches(&self, host: &str) -> bool {
        let out = dk::docker_output([
            "exec",
            &self.name,
            "sh",
            "-c",
            &format!("printf 'GET /ok HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} 80"),
        ]);
        String::from_utf8_lossy(&out.stdout).contains("\nok")
    }
}

impl Drop for Box_ {
    fn drop(&mut self) {
        let _ = dk::docker_output(["rm", "-f", &self.name]);
    }
}

#[test]
fn docker_partition_cuts_the_api_from_its_database_and_reconnects_with_same_ip_and_aliases() {
    let _host = crate::support::host_room("netfault_partition");
    require!(Docker);
    let third = 100 + (std::process::id() % 100) as u8;
    let net = Network::new(&format!("10.232.{third}.0/24"));
    let db = Box_::run(
        &net,
        &format!("10.232.{third}.10"),
        "db",
        &[],
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo ok > /www/ok && exec httpd -f -p 80 -h /www",
        ],
    );
    let api = Box_::run(
        &net,
        &format!("10.232.{third}.20"),
        "api-alias",
        &["drill.opt-in=yes"],
        &["sleep", "3600"],
    );
    let _ = &db;
    // Baseline: the api reaches db's httpd once it listens (polled, not slept for).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !api.reaches("db") {
        assert!(
            std::time::Instant::now() < deadline,
            "baseline: api cannot reach db"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let before = api.endpoint(&net.name);
    let dir = tempfile::tempdir().expect("tmp");
    let j = journal(&dir);

    let r = Bin::new("inject-fault")
        .args([
            "partition",
            "--container",
            &api.name,
            "--network",
            &net.name,
            "--dry-run",
        ])
        .journal(&j)
        .succeeds();
    r.stderr_has(&format!("POST /networks/{}/disconnect", net.name));
    assert_eq!(api.endpoint(&net.name), before, "dry-run disconnected");

    Bin::new("inject-fault")
        .args([
            "partition",
            "--container",
            &api.name,
            "--require-label",
            "drill.opt-in=yes",
        ])
        .journal(&j)
        .succeeds();
    assert_eq!(api.endpoint(&net.name).0, "", "still connected");
    assert!(
        !api.reaches("db"),
        "api still reaches db during the partition"
    );

    Bin::new("inject-fault")
        .args(["revert"])
        .journal(&j)
        .succeeds();
    assert_eq!(
        api.endpoint(&net.name),
        before,
        "not reconnected with the same address and aliases"
    );
    assert!(api.reaches("db"), "api does not reach db after revert");
    Bin::new("inject-fault")
        .args(["revert", "--all"])
        .journal(&j)
        .succeeds();
}
