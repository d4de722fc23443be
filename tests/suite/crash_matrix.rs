//! The crash-safety matrix: every fault type × every way a drill can end — normal (`revert`),
//! `--duration` expiry, SIGINT, SIGTERM, SIGKILL then `inject-fault revert`, SIGKILL then
//! `inject-fault doctor --fix` — and after each, the system is inspected: tagged iptables rules
//! (host and namespace), drillkit qdiscs, delay proxies, fill files, the container's and the
//! process's state, open faults in the journal. Every cell must be 0 leftovers. The table is
//! printed (run with `--nocapture`); the README quotes it. Rows on the same thing (the
//! container, the namespace, a process, the file system) run in turn, the four kinds at once;
//! each case looks for leftovers on what its row touches, on the host and in its journal.

use crate::support::netns;
use crate::support::proc_state;

use crate::support::cmd::Bin;
use crate::support::docker as dk;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq)]
enum End {
    Normal,
    Duration,
    Sigint,
    Sigterm,
    KillRevert,
    KillDoctor,
}

const ENDS: [End; 6] = [
    End::Normal,
    End::Duration,
    End::Sigint,
    End::Sigterm,
    End::KillRevert,
    End::KillDoctor,
];

impl End {
    fn label(self) -> &'static str {
        match self {
            End::Normal => "normal",
            End::Duration => "--duration",
            End::Sigint => "SIGINT",
            End::Sigterm => "SIGTERM",
            End::KillRevert => "KILL+revert",
            End::KillDoctor => "KILL+doctor",
        }
    }
}

struct World {
    container: String,
    ns: netns::Ns,
    fs: tempfile::TempDir,
    echo: netns::Echo,
}

/// Delay proxies in this test's namespace `ns` (by the namespace's inode, as `ip netns identify`
/// tells them apart): other tests' proxies run in namespaces of their own.
fn count_proxies(ns: &str) -> usize {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let Some(ours) = id(&Path::new("/run/netns").join(ns)) else {
        return 0;
    };
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    std::fs::read(e.path().join("cmdline"))
                        .map(|c| String::from_utf8_lossy(&c).contains("__degrade-proxy"))
                        .unwrap_or(false)
                        && id(&e.path().join("ns/net")) == Some(ours)
                })
                .count()
        })
        .unwrap_or(0)
}

fn host_rules() -> usize {
    let mut n = 0;
    for tool in ["iptables", "ip6tables"] {
        for t in ["filter", "nat", "mangle"] {
            if let Ok(o) = Command::new(tool).args(["-t", t, "-S"]).output() {
                n += String::from_utf8_lossy(&o.stdout)
                    .matches("drillkit:")
                    .count();
            }
        }
    }
    n
}

/// What a row's faults act on: its leftovers are looked for there (and on the host, and in the
/// journal). Rows on different things run at once.
#[derive(Clone, Copy, PartialEq)]
enum Touches {
    Container,
    Netns,
    Process,
    Fs,
}

/// Leftovers after a case, each named: on what the row touches, host rules, the journal.
fn inspect(w: &World, j: &Path, touches: Touches, pid: Option<u32>) -> Vec<String> {
    let mut left = Vec::new();
    if touches == Touches::Netns {
        let st = w.ns.state();
        let rules = st.matches("drillkit:").count();
        if rules > 0 {
            left.push(format!("{rules} rule(s) in the namespace"));
        }
        if st.contains("dd17:") {
            left.push("qdisc dd17:".into());
        }
        let p = count_proxies(&w.ns.name);
        if p > 0 {
            left.push(format!("{p} proxy process(es)"));
        }
    }
    let hr = host_rules();
    if hr > 0 {
        left.push(format!("{hr} rule(s) on the host"));
    }
    if touches == Touches::Fs {
        let files = std::fs::read_dir(w.fs.path())
            .map(|r| r.count())
            .unwrap_or(0);
        if files > 0 {
            left.push(format!("{files} fill file(s)"));
        }
    }
    if touches == Touches::Container {
        let s = dk::docker([
            "inspect",
            "--format",
            "{{.State.Running}} {{.State.Paused}} {{len .NetworkSettings.Networks}}",
            &w.container,
        ]);
        if s != "true false 1" {
            left.push(format!("container state {s}"));
        }
    }
    if let Some(pid) = pid {
        if proc_state(pid) == Some('T') {
            left.push(format!("process {pid} stopped"));
        }
    }
    if j.exists() {
        let r = Bin::new("inject-fault")
            .args(["list", "--json"])
            .journal(j)
            .succeeds();
        let open = r.json().as_array().map(|a| a.len()).unwrap_or(0);
        if open > 0 {
            left.push(format!("{open} open fault(s) in the journal"));
        }
    }
    left
}

fn wait_applied(j: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if j.exists()
            && std::fs::read_to_string(j)
                .unwrap_or_default()
                .contains("\"fault_applied\"")
        {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("injector exited {st} before applying");
        }
        assert!(Instant::now() < deadline, "fault not applied within 20s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_case(
    w: &World,
    fault: &str,
    args: &[String],
    touches: Touches,
    end: End,
    pid: Option<u32>,
) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tmp");
    let j = dir.path().join("journal.jsonl");
    let bin = || Bin::new("inject-fault").journal(&j);
    match end {
        End::Normal => {
            // Applied by an injector that exits: free until reverted below.
            let _free = crate::support::dead_fault();
            bin().args(args).succeeds();
            if fault == "degrade proxy" {
                // The look below finds a proxy where there is one.
                assert_eq!(count_proxies(&w.ns.name), 1, "the applied proxy is seen");
            }
            bin().arg("revert").succeeds();
        }
        End::Duration => {
            bin().args(args).args(["--duration", "300ms"]).succeeds();
        }
        End::Sigint | End::Sigterm | End::KillRevert | End::KillDoctor => {
            let mut child = bin().args(args).args(["--duration", "60s"]).spawn();
            wait_applied(&j, &mut child);
            let sig = match end {
                End::Sigint => "-INT",
                End::Sigterm => "-TERM",
                _ => "-KILL",
            };
            // From the SIGKILL until this case undoes it, the fault is another doctor's leftover.
            let dead = (sig == "-KILL").then(crate::support::dead_fault);
            Command::new("kill")
                .args([sig, &child.id().to_string()])
                .status()
                .expect("kill");
            let r = dk::wait_child(child, Duration::from_secs(30), fault);
            match end {
                End::Sigint | End::Sigterm => {
                    assert_eq!(
                        r.code,
                        4,
                        "{fault} {}: exit {} (expected 4)\n{}",
                        end.label(),
                        r.code,
                        r.stderr
                    )
                }
                End::KillRevert => {
                    bin().arg("revert").succeeds();
                }
                _ => {
                    drop(dead);
                    let _census = crate::support::census();
                    bin().args(["doctor", "--fix"]).succeeds();
                }
            }
        }
    }
    inspect(w, &j, touches, pid)
}

#[test]
fn every_fault_times_every_ending_leaves_nothing_behind() {
    let _host = crate::support::host_room("crash_matrix");
    require!(Docker, Netns);
    let c = dk::sleeper("no").run_up();
    let ns = netns::Ns::new(9);
    let fs = tempfile::tempdir().expect("tmp");
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(fs.path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "mount tmpfs");
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Umount(fs.path().to_path_buf());
    let echo = netns::Echo::start(&ns.host_ip);
    let w = World {
        container: c.name.clone(),
        ns,
        fs,
        echo,
    };
    let to = w.echo.addr.to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let cname = w.container.clone();
    let nsn = w.ns.name.clone();
    let fsp = w.fs.path().display().to_string();
    // (name, args, what it acts on: rows on different things run at once)
    let faults: Vec<(&str, Vec<String>, Touches)> = vec![
        (
            "docker stop",
            s(&["stop", "--container", &cname, "--timeout", "1s"]),
            Touches::Container,
        ),
        (
            "docker kill",
            s(&["kill", "--container", &cname]),
            Touches::Container,
        ),
        (
            "docker crash",
            s(&["crash", "--container", &cname]),
            Touches::Container,
        ),
        (
            "docker pause",
            s(&["pause", "--container", &cname]),
            Touches::Container,
        ),
        (
            "process stop",
            s(&["stop", "--timeout", "1s"]),
            Touches::Process,
        ),
        ("process pause", s(&["pause"]), Touches::Process),
        (
            "partition docker",
            s(&["partition", "--container", &cname]),
            Touches::Container,
        ),
        (
            "partition iptables",
            s(&["partition", "--netns", &nsn, "--to", &to]),
            Touches::Netns,
        ),
        (
            "degrade iptables+tbf",
            s(&[
                "degrade", "--netns", &nsn, "--loss", "5%", "--rate", "8mbit", "--method",
                "iptables",
            ]),
            Touches::Netns,
        ),
        (
            "degrade proxy",
            s(&[
                "degrade", "--netns", &nsn, "--delay", "50ms", "--to", &to, "--method", "proxy",
            ]),
            Touches::Netns,
        ),
        ("fill-disk", s(&["fill-disk", "--path", &fsp]), Touches::Fs),
    ];
    // One row: its cells, each the leftovers of one ending.
    let row = |name: &str, args: &[String], touches: Touches| -> Vec<Vec<String>> {
        let mut cells = Vec::new();
        for end in ENDS {
            let mut child = None;
            let mut args = args.to_vec();
            if touches == Touches::Process {
                let ch = Command::new("sleep").arg("3600").spawn().expect("sleep");
                args.extend(["--pid".to_string(), ch.id().to_string()]);
                child = Some(ch);
            }
            let pid = child.as_ref().map(|c| c.id());
            let left = run_case(&w, name, &args, touches, end, pid);
            if let Some(mut ch) = child {
                let _ = ch.kill();
                let _ = ch.wait();
            }
            if touches == Touches::Container {
                // Bring the container back for the next case if a case left it down (counted).
                if !left.is_empty() {
                    let _ = dk::docker_output(["unpause", &cname]);
                    let _ = dk::docker_output(["start", &cname]);
                }
                c.wait_for("running", Duration::from_secs(20), |s| s.up());
            }
            cells.push(left);
        }
        cells
    };
    // The rows of each kind in turn (they share its container, namespace or file system), the
    // kinds at once.
    let kinds = [
        Touches::Container,
        Touches::Netns,
        Touches::Process,
        Touches::Fs,
    ];
    let mut results: Vec<(usize, Vec<Vec<String>>)> = std::thread::scope(|sc| {
        let hs: Vec<_> = kinds
            .iter()
            .map(|&kind| {
                let faults = &faults;
                let row = &row;
                sc.spawn(move || {
                    faults
                        .iter()
                        .enumerate()
                        .filter(|(_, f)| f.2 == kind)
                        .map(|(i, (name, args, touches))| (i, row(name, args, *touches)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().expect("a kind of rows panicked"))
            .collect()
    });
    results.sort_by_key(|r| r.0);
    let mut table = String::new();
    table.push_str(&format!("| {:<22} |", "fault \\ ending"));
    for e in ENDS {
        table.push_str(&format!(" {:<11} |", e.label()));
    }
    table.push('\n');
    table.push_str(&format!("|{}|", "-".repeat(24)));
    for _ in ENDS {
        table.push_str(&format!("{}|", "-".repeat(13)));
    }
    table.push('\n');
    let mut failures = Vec::new();
    for (i, cells) in &results {
        let name = faults[*i].0;
        table.push_str(&format!("| {name:<22} |"));
        for (end, left) in ENDS.iter().zip(cells) {
            if !left.is_empty() {
                failures.push(format!("{name} × {}: {}", end.label(), left.join(", ")));
            }
            table.push_str(&format!(
                " {:<11} |",
                if left.is_empty() {
                    "0".to_string()
                } else {
                    format!("{} LEFT", left.len())
                }
            ));
        }
        table.push('\n');
    }
    println!("\nCrash-safety matrix (leftovers after each ending):\n{table}");
    eprintln!("\nCrash-safety matrix (leftovers after each ending):\n{table}");
    assert!(failures.is_empty(), "leftovers:\n{}", failures.join("\n"));
}

/// The remote column: the container faults on a second engine reached over TLS (helpers there do
/// the crash, the iptables/tc work, the delay proxy and the fill file), × every ending. After
/// each case, on that engine: the container running, unpaused and on its network, no
/// `drillkit:` rule and no `dd17:` qdisc in its namespace, no helper container, no fill file, no
/// open fault. Rows run at once (a container each); endings in turn.
#[test]
fn container_faults_on_a_tls_engine_times_every_ending_leave_nothing_behind() {
    use crate::support::engine::Engine;
    let _host = crate::support::host_room("crash_matrix");
    require!(Docker, Tmpfs);
    let nettools = dk::nettools_image();
    let Some(engine) = Engine::shared() else {
        return;
    };
    engine.load(nettools);
    let e: &Engine = &engine;
    // This test's faults: the helpers and reapers left on the engine are counted among these.
    let ids = std::sync::Mutex::new(Vec::<String>::new());
    let tls = engine.tls_env();
    let net = dk::unique();
    let third = (std::process::id() % 200) as u8 + 20;
    e.docker(&[
        "network",
        "create",
        "--subnet",
        &format!("10.237.{third}.0/24"),
        &net,
    ]);
    let fs = tempfile::tempdir().expect("tmp");
    assert!(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(fs.path())
            .status()
            .is_ok_and(|s| s.success()),
        "mount tmpfs"
    );
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Umount(fs.path().to_path_buf());
    let bind = format!("{}:/data", fs.path().display());
    let run = |host: u8, extra: &[&str]| -> (String, String) {
        let name = dk::unique();
        let ip = format!("10.237.{third}.{host}");
        let mut a = vec!["run", "-d", "--name", &name, "--network", &net, "--ip", &ip];
        a.extend(extra);
        a.extend([
            dk::BUSYBOX,
            "sh",
            "-c",
            "mkdir -p /www && echo ok > /www/ok && httpd -p 8080 -h /www && exec sleep 3600",
        ]);
        e.docker(&a);
        (name, format!("{ip}:8080"))
    };
    let rows: Vec<(&str, Vec<String>, String)> = [
        ("stop", 10u8),
        ("pause", 11),
        ("crash", 12),
        ("partition iptables", 13),
        ("degrade proxy+tbf", 14),
        ("fill-disk", 15),
    ]
    .into_iter()
    .map(|(row, host)| {
        let extra: Vec<&str> = if row == "fill-disk" {
            vec!["-v", &bind]
        } else {
            vec![]
        };
        let (c, to) = run(host, &extra);
        let args: Vec<&str> = match row {
            "stop" => vec!["stop", "--container", &c, "--timeout", "1s"],
            "pause" => vec!["pause", "--container", &c],
            "crash" => vec!["crash", "--container", &c],
            "partition iptables" => vec!["partition", "--container", &c, "--to", &to],
            "degrade proxy+tbf" => vec![
                "degrade",
                "--container",
                &c,
                "--delay",
                "50ms",
                "--rate",
                "50mbit",
                "--method",
                "proxy",
                "--to",
                &to,
            ],
            _ => vec!["fill-disk", "--container", &c, "--mount", "/data"],
        };
        (row, args.iter().map(|s| s.to_string()).collect(), c.clone())
    })
    .collect();
    // The tmpfs is the fill-disk row's (rows run at once): only that row counts its files.
    let left_on_engine = |row: &str, c: &str, j: &Path| -> Vec<String> {
        let mut left = Vec::new();
        let s = e.docker(&[
            "inspect",
            "--format",
            "{{.State.Running}} {{.State.Paused}} {{len .NetworkSettings.Networks}} {{.State.Pid}}",
            c,
        ]);
        let (state, pid) = s.rsplit_once(' ').unwrap_or((&s, ""));
        if state != "true false 1" {
            left.push(format!("container state {state}"));
        } else {
            // The container's network namespace, read from this host (the second engine's
            // containers run here) with the host's iptables and tc: the binaries the helper
            // image carries (dk::nettools_image), without a container started per look.
            let tool = |args: &[&str]| {
                crate::support::run_ok(Command::new("nsenter").args(["-t", pid, "-n"]).args(args))
            };
            let rules = tool(&["iptables", "-S"]) + &tool(&["iptables", "-t", "nat", "-S"]);
            let n = rules.matches("drillkit:").count();
            if n > 0 {
                left.push(format!("{n} rule(s) in its namespace"));
            }
            if tool(&["tc", "qdisc", "show"]).contains("dd17:") {
                left.push("qdisc dd17:".into());
            }
        }
        let files = std::fs::read_dir(fs.path()).map(|r| r.count()).unwrap_or(0);
        if row == "fill-disk" && files > 0 {
            left.push(format!("{files} fill file(s)"));
        }
        if j.exists() {
            let r = Bin::new("inject-fault")
                .no_docker_env()
                .args(["list", "--json"])
                .journal(j)
                .succeeds();
            let open = r.json().as_array().map(|a| a.len()).unwrap_or(0);
            if open > 0 {
                left.push(format!("{open} open fault(s) in the journal"));
            }
        }
        left
    };
    let results: Vec<(String, Vec<Vec<String>>)> = std::thread::scope(|s| {
        let hs: Vec<_> = rows
            .iter()
            .map(|(row, args, c)| {
                let tls = &tls;
                let ids = &ids;
                let left_on_engine = &left_on_engine;
                s.spawn(move || {
                    let mut cells = Vec::new();
                    for end in ENDS {
                        let dir = tempfile::tempdir().expect("tmp");
                        let j = dir.path().join("journal.jsonl");
                        let bin = || {
                            let mut b = Bin::new("inject-fault").no_docker_env().journal(&j);
                            for (k, v) in tls {
                                b = b.env(k, v);
                            }
                            b.env("DRILL_HELPER_IMAGE", nettools)
                        };
                        match end {
                            End::Normal => {
                                // Applied by an injector that exits: free until reverted below.
                                let _free = crate::support::dead_fault();
                                bin().args(args).succeeds();
                                // The look sees what the helpers did while it is applied.
                                let seen = left_on_engine(row, c, &j);
                                let want = match *row {
                                    "partition iptables" => Some("rule(s) in its namespace"),
                                    "degrade proxy+tbf" => Some("qdisc dd17:"),
                                    _ => None,
                                };
                                if let Some(want) = want {
                                    assert!(
                                        seen.iter().any(|l| l.contains(want)),
                                        "{row} applied: {want} not seen, saw {seen:?}"
                                    );
                                }
                                bin().arg("revert").succeeds();
                            }
                            End::Duration => {
                                bin().args(args).args(["--duration", "300ms"]).succeeds();
                            }
                            _ => {
                                let mut child =
                                    bin().args(args).args(["--duration", "60s"]).spawn();
                                wait_applied(&j, &mut child);
                                let sig = match end {
                                    End::Sigint => "-INT",
                                    End::Sigterm => "-TERM",
                                    _ => "-KILL",
                                };
                                let dead = (sig == "-KILL").then(crate::support::dead_fault);
                                Command::new("kill")
                                    .args([sig, &child.id().to_string()])
                                    .status()
                                    .expect("kill");
                                let r = dk::wait_child(child, Duration::from_secs(60), row);
                                match end {
                                    End::Sigint | End::Sigterm => {
                                        assert_eq!(r.code, 4, "{row} {}: {}", end.label(), r.stderr)
                                    }
                                    // From the journal alone: no DOCKER_* set.
                                    End::KillRevert => {
                                        Bin::new("inject-fault")
                                            .no_docker_env()
                                            .arg("revert")
                                            .journal(&j)
                                            .succeeds();
                                    }
                                    _ => {
                                        drop(dead);
                                        let _census = crate::support::census();
                                        bin().args(["doctor", "--fix"]).succeeds();
                                    }
                                }
                            }
                        }
                        ids.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .extend(dk::fault_ids(&[&j]));
                        let left = left_on_engine(row, c, &j);
                        if !left.is_empty() {
                            let _ = e.docker_ok(&["unpause", c]);
                            let _ = e.docker_ok(&["start", c]);
                        }
                        cells.push(left);
                    }
                    (row.to_string(), cells)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("a row panicked"))
            .collect()
    });
    let ids = ids.into_inner().unwrap_or_else(|e| e.into_inner());
    assert!(ids.len() >= 36, "every case planned its fault: {ids:?}");
    let helpers = dk::helpers_of(&e.docker(&dk::helper_ps_args()), &ids);
    let mut table = format!("| {:<22} |", "TLS engine \\ ending");
    for end in ENDS {
        table.push_str(&format!(" {:<11} |", end.label()));
    }
    table.push('\n');
    let mut failures = Vec::new();
    for (row, cells) in &results {
        table.push_str(&format!("| {row:<22} |"));
        for (end, left) in ENDS.iter().zip(cells) {
            table.push_str(&format!(
                " {:<11} |",
                if left.is_empty() {
                    "0".to_string()
                } else {
                    format!("{} LEFT", left.len())
                }
            ));
            if !left.is_empty() {
                failures.push(format!("{row} × {}: {}", end.label(), left.join(", ")));
            }
        }
        table.push('\n');
    }
    eprintln!("\nCrash-safety matrix, remote column (TLS engine):\n{table}");
    assert!(
        helpers.is_empty(),
        "helper containers left on the engine: {helpers:?}"
    );
    assert!(failures.is_empty(), "leftovers:\n{}", failures.join("\n"));
}
