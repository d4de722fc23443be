//! Every container fault on every kind of engine (issue 14, items 4 and 5): stop, kill, pause,
//! restart, crash, partition (iptables `--to`), degrade (delay) and fill-disk × {the local
//! engine, a second engine over TLS, the same over ssh}. Each one is applied, its effect is
//! measured from inside the system (the container stopped, frozen, restarted by its policy, cannot
//! reach its peer, reaches it late, gets ENOSPC), and it is reverted; stop, pause and partition are
//! also reverted after a SIGKILL of the injector from the journal alone, with no `DOCKER_*`
//! variable set. On the engines elsewhere partition and degrade run ip/tc/iptables in helper
//! containers from a network tools image built here FROM scratch and loaded there; fill-disk
//! writes through a helper with the target's volumes.
//!
//! One engine fixture for the module; the three columns run at once, each fault in turn. The
//! times (apply / revert, as the user waits for them) are printed (`--nocapture`).

use crate::support::cmd::Bin;
use crate::support::docker as dk;
use crate::support::engine::{Engine, Sshd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Col {
    Local,
    Tls,
    Ssh,
}

struct World {
    engine: std::sync::Arc<Engine>,
    sshd: Sshd,
}

impl Col {
    fn label(self) -> &'static str {
        match self {
            Col::Local => "local",
            Col::Tls => "tls",
            Col::Ssh => "ssh",
        }
    }

    /// What a user exports for this engine.
    fn env(self, w: &World) -> Vec<(String, String)> {
        match self {
            Col::Local => Vec::new(),
            Col::Tls => w.engine.tls_env(),
            Col::Ssh => w.sshd.env(),
        }
    }

    /// `docker ARGS` on this column's engine (the test's own access, by socket).
    fn docker(self, w: &World, args: &[&str]) -> Output {
        let mut c = Command::new("docker");
        if self != Col::Local {
            c.arg("-H")
                .arg(format!("unix://{}", w.engine.sock.display()));
        }
        c.args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("docker runs")
    }

    fn docker_ok(self, w: &World, args: &[&str]) -> String {
        let o = self.docker(w, args);
        assert!(
            o.status.success(),
            "docker {args:?} on {}: {}",
            self.label(),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    fn inject(self, w: &World, j: &Path) -> Bin {
        let mut b = Bin::new("inject-fault").no_docker_env().journal(j);
        for (k, v) in self.env(w) {
            b = b.env(k, v);
        }
        b.env("DRILL_HELPER_IMAGE", dk::NETTOOLS)
    }
}

/// What the tests read of a container.
#[derive(Debug)]
struct Seen {
    running: bool,
    paused: bool,
    restarts: u64,
    pid: i64,
}

fn seen(col: Col, w: &World, name: &str) -> Seen {
    let v: serde_json::Value =
        serde_json::from_str(&col.docker_ok(w, &["inspect", name])).expect("inspect JSON");
    let c = &v[0];
    Seen {
        running: c["State"]["Running"].as_bool().unwrap_or(false),
        paused: c["State"]["Paused"].as_bool().unwrap_or(false),
        restarts: c["RestartCount"].as_u64().unwrap_or(0),
        pid: c["State"]["Pid"].as_i64().unwrap_or(0),
    }
}

fn wait_for(col: Col, w: &World, name: &str, what: &str, pred: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = seen(col, w, name);
        if pred(&s) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {name} not {what} within 30s: {s:?}",
            col.label()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One column's containers, one target per fault, on a network of its own; a tmpfs for
/// fill-disk, bind-mounted into its target. The network faults' targets serve HTTP themselves
/// and fetch from their own address: the request leaves through the namespace's netfilter
/// OUTPUT as a peer's would (the second engine runs with `--iptables=false`, so traffic between
/// its containers would meet the host's FORWARD policy instead).
struct Column<'w> {
    col: Col,
    w: &'w World,
    net: String,
    third: u8,
    names: std::sync::Mutex<Vec<String>>,
    fs: PathBuf,
    dir: tempfile::TempDir,
}

impl<'w> Column<'w> {
    fn new(col: Col, w: &'w World, subnet_third: u8) -> Column<'w> {
        let dir = tempfile::tempdir().expect("tmp");
        let fs = dir.path().join("fs");
        std::fs::create_dir_all(&fs).expect("mkdir");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
            .arg(&fs)
            .status()
            .expect("mount runs");
        assert!(st.success(), "mount -t tmpfs: {st}");
        let net = dk::unique();
        let subnet = format!("10.236.{subnet_third}.0/24");
        col.docker_ok(
            w,
            &[
                "network",
                "create",
                "--subnet",
                &subnet,
                "--label",
                &format!("{}={net}", dk::LABEL),
                &net,
            ],
        );
        Column {
            col,
            w,
            net,
            third: subnet_third,
            names: Default::default(),
            fs,
            dir,
        }
    }

    /// A target that serves HTTP on its address `10.236.THIRD.host`:8080; its name and that
    /// `HOST:PORT`.
    fn server(&self, host: u8) -> (String, String) {
        let ip = format!("10.236.{}.{host}", self.third);
        let name = self.run(
            Some(&ip),
            &[],
            &[
                "sh",
                "-c",
                "mkdir -p /www && echo ok > /www/ok && httpd -p 8080 -h /www && exec sleep 3600",
            ],
        );
        (name, format!("{ip}:8080"))
    }

    /// `docker run -d` a busybox on the column's network (restart policy always).
    fn run(&self, ip: Option<&str>, extra: &[&str], cmd: &[&str]) -> String {
        let name = dk::unique();
        let label = format!("{}={name}", dk::LABEL);
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &label,
            "--restart",
            "always",
            "--network",
            &self.net,
        ];
        if let Some(ip) = ip {
            args.extend(["--ip", ip]);
        }
        args.extend(extra);
        args.push(dk::BUSYBOX);
        args.extend(cmd);
        self.col.docker_ok(self.w, &args);
        self.names.lock().expect("names").push(name.clone());
        name
    }

    fn target(&self) -> String {
        self.run(None, &[], &["sleep", "3600"])
    }

    /// How long one HTTP request from `name` to `to` takes, timed inside the container
    /// (`/proc/uptime`, 10 ms steps; `docker exec`'s own latency is not in it), or None when it
    /// fails.
    fn fetch(&self, name: &str, to: &str) -> Option<Duration> {
        let (host, port) = to.split_once(':').expect("HOST:PORT");
        let get = format!(
            "a=$(cut -d' ' -f1 /proc/uptime); printf 'GET /ok HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} {port}; \
             b=$(cut -d' ' -f1 /proc/uptime); echo; echo \"took $a $b\""
        );
        let o = self.col.docker(self.w, &["exec", name, "sh", "-c", &get]);
        let out = String::from_utf8_lossy(&o.stdout);
        if !out.contains("\nok") {
            return None;
        }
        let line = out.lines().rev().find(|l| l.starts_with("took "))?;
        let t: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        Some(Duration::from_secs_f64((t.get(1)? - t.first()?).max(0.0)))
    }

    fn wait_reaches(&self, name: &str, to: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.fetch(name, to).is_none() {
            assert!(
                Instant::now() < deadline,
                "{}: {name} cannot reach {to}",
                self.col.label()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn journal(&self, what: &str) -> PathBuf {
        self.dir.path().join(format!("{what}.jsonl"))
    }

    /// No helper or reaper container of this column's faults is left on its engine (other
    /// tests' run there at the same time).
    fn assert_no_helpers(&self) {
        let ids = dk::fault_ids(&dk::journals_in(self.dir.path()));
        let left = dk::helpers_of(&self.col.docker_ok(self.w, &dk::helper_ps_args()), &ids);
        assert!(
            left.is_empty(),
            "{}: helper containers left: {left:?}",
            self.col.label()
        );
    }
}

impl Drop for Column<'_> {
    fn drop(&mut self) {
        for n in self.names.lock().expect("names").iter() {
            let _ = self.col.docker(self.w, &["rm", "-f", n]);
        }
        let _ = self.col.docker(self.w, &["network", "rm", &self.net]);
        let _ = Command::new("umount").arg(&self.fs).status();
    }
}

/// Apply and revert times of one fault on one engine.
type Row = (String, Col, Duration, Duration);

fn timed(b: Bin) -> Duration {
    let t = Instant::now();
    b.succeeds();
    t.elapsed()
}

/// Apply with `args`, check the effect, revert, check it is gone.
fn cycle(c: &Column, what: &str, args: &[&str], applied: impl Fn(), reverted: impl Fn()) -> Row {
    let j = c.journal(what);
    let apply = timed(c.col.inject(c.w, &j).args(args));
    applied();
    let revert = timed(c.col.inject(c.w, &j).args(["revert"]));
    reverted();
    assert!(
        open_faults(c, &j).is_empty(),
        "{} {what}: faults left open",
        c.col.label()
    );
    (what.to_string(), c.col, apply, revert)
}

fn open_faults(c: &Column, j: &Path) -> Vec<serde_json::Value> {
    let r = c.col.inject(c.w, j).args(["--json", "list"]).succeeds();
    r.json().as_array().cloned().unwrap_or_default()
}

/// Every fault on one engine.
fn column(c: &Column) -> Vec<Row> {
    let (col, w) = (c.col, c.w);
    std::thread::scope(|s| {
        let mut hs = Vec::new();
        hs.push(s.spawn(move || {
            let t = c.target();
            cycle(
                c,
                "stop",
                &["stop", "--container", &t, "--timeout", "1s"],
                || assert!(!seen(col, w, &t).running, "stop: still running"),
                || wait_for(col, w, &t, "running again", |s| s.running),
            )
        }));
        hs.push(s.spawn(move || {
            let t = c.target();
            cycle(
                c,
                "kill",
                &["kill", "--container", &t],
                || assert!(!seen(col, w, &t).running, "kill: still running"),
                || wait_for(col, w, &t, "running again", |s| s.running),
            )
        }));
        hs.push(s.spawn(move || {
            let t = c.target();
            cycle(
                c,
                "pause",
                &["pause", "--container", &t],
                || assert!(seen(col, w, &t).paused, "pause: not paused"),
                || wait_for(col, w, &t, "unpaused", |s| s.running && !s.paused),
            )
        }));
        hs.push(s.spawn(move || {
            let t = c.target();
            let pid = seen(col, w, &t).pid;
            cycle(
                c,
                "restart",
                &["restart", "--container", &t, "--timeout", "1s"],
                || wait_for(col, w, &t, "restarted", |s| s.running && s.pid != pid),
                || assert!(seen(col, w, &t).running),
            )
        }));
        hs.push(s.spawn(move || {
            let t = c.target();
            let before = seen(col, w, &t);
            cycle(
                c,
                "crash",
                &["crash", "--container", &t],
                || {
                    wait_for(col, w, &t, "restarted by its policy", |s| {
                        s.running && s.restarts == before.restarts + 1 && s.pid != before.pid
                    })
                },
                || assert!(seen(col, w, &t).running),
            )
        }));
        hs.push(s.spawn(move || {
            // partition: DROP to HOST:PORT in the target's namespace.
            let (t, to) = c.server(10);
            c.wait_reaches(&t, &to);
            cycle(
                c,
                "partition",
                &["partition", "--container", &t, "--to", &to],
                || {
                    assert!(
                        c.fetch(&t, &to).is_none(),
                        "partition: {to} is still reachable"
                    )
                },
                || c.wait_reaches(&t, &to),
            )
        }));
        hs.push(s.spawn(move || {
            // degrade: 300ms delay to HOST:PORT (the delay proxy: the same on every kernel) and a rate
            // (a tbf root qdisc on eth0, drillkit's handle); one request takes at least one more delay.
            let (t, to) = c.server(11);
            c.wait_reaches(&t, &to);
            let base = (0..3)
                .filter_map(|_| c.fetch(&t, &to))
                .min()
                .expect("baseline fetch");
            let qdisc = || {
                col.docker_ok(
                    w,
                    &[
                        "run",
                        "--rm",
                        "--network",
                        &format!("container:{t}"),
                        "--cap-drop",
                        "ALL",
                        "--cap-add",
                        "NET_ADMIN",
                        dk::NETTOOLS,
                        "tc",
                        "qdisc",
                        "show",
                        "dev",
                        "eth0",
                        "root",
                    ],
                )
            };
            cycle(
                c,
                "degrade",
                &[
                    "degrade",
                    "--container",
                    &t,
                    "--delay",
                    "300ms",
                    "--rate",
                    "50mbit",
                    "--method",
                    "proxy",
                    "--to",
                    &to,
                ],
                || {
                    assert!(
                        qdisc().contains("dd17:"),
                        "degrade: no drillkit qdisc: {}",
                        qdisc()
                    );
                    let slow = c.fetch(&t, &to).expect("degraded fetch still succeeds");
                    assert!(
                        slow >= base + Duration::from_millis(280),
                        "{}: degrade added {:?} (base {base:?}, degraded {slow:?})",
                        col.label(),
                        slow.saturating_sub(base)
                    );
                },
                || {
                    assert!(
                        !qdisc().contains("dd17:"),
                        "degrade: qdisc left: {}",
                        qdisc()
                    );
                    let again = (0..3)
                        .filter_map(|_| c.fetch(&t, &to))
                        .min()
                        .expect("fetch after revert");
                    assert!(
                        again < base + Duration::from_millis(250),
                        "{}: still slow after revert: {again:?} (base {base:?})",
                        col.label()
                    );
                },
            )
        }));
        hs.push(s.spawn(move || {
            // fill-disk: the target's bind mount (a tmpfs) until ENOSPC.
            let mount = format!("{}:/data", c.fs.display());
            let t = c.run(None, &["-v", &mount], &["sleep", "3600"]);
            let write = |t: &str| {
                let o = col.docker(
                    w,
                    &[
                        "exec",
                        t,
                        "sh",
                        "-c",
                        "dd if=/dev/zero of=/data/w bs=4k count=4 2>&1; sync",
                    ],
                );
                (
                    o.status.success(),
                    String::from_utf8_lossy(&o.stdout).to_string(),
                )
            };
            cycle(
                c,
                "fill-disk",
                &["fill-disk", "--container", &t, "--mount", "/data"],
                || {
                    let (_, said) = write(&t);
                    assert!(
                        said.contains("No space left"),
                        "fill-disk: no ENOSPC: {said}"
                    );
                },
                || {
                    let (ok, said) = write(&t);
                    assert!(ok, "fill-disk: write after revert failed: {said}");
                    let left: Vec<_> = std::fs::read_dir(&c.fs)
                        .expect("read fs")
                        .flatten()
                        .filter(|e| {
                            e.file_name()
                                .to_string_lossy()
                                .starts_with(".drillkit-fill-")
                        })
                        .collect();
                    assert!(left.is_empty(), "fill file left: {left:?}");
                },
            )
        }));
        hs.into_iter()
            .map(|h| h.join().expect("a fault panicked"))
            .collect()
    })
}

/// stop, pause and partition held by an injector that is SIGKILLed, then reverted with no
/// `DOCKER_*` variable set: the journal alone leads to the engine.
fn killed_then_reverted(c: &Column) {
    let (col, w) = (c.col, c.w);
    let (server, to) = c.server(12);
    let cases: Vec<(&str, String)> = vec![
        ("stop", c.target()),
        ("pause", c.target()),
        ("partition", server),
    ];
    let to = &to;
    std::thread::scope(|s| {
        for (what, t) in &cases {
            s.spawn(move || {
                if *what == "partition" {
                    c.wait_reaches(t, to);
                }
                let j = c.journal(&format!("killed-{what}"));
                let mut args = vec![*what, "--container", t.as_str(), "--duration", "120s"];
                match *what {
                    "partition" => args.extend(["--to", to.as_str()]),
                    // The target's shell ignores SIGTERM: without this the engine waits its
                    // default 10 s before SIGKILL, which under a loaded machine (three columns
                    // of faults at once) ran past the wait below.
                    "stop" => args.extend(["--timeout", "1s"]),
                    _ => {}
                }
                let child = col.inject(w, &j).args(&args).spawn();
                dk::wait_journal(&j, "fault_applied", Duration::from_secs(60));
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .expect("SIGKILL");
                let _ = dk::wait_child(child, Duration::from_secs(10), "inject-fault");
                match *what {
                    "stop" => assert!(!seen(col, w, t).running),
                    "pause" => assert!(seen(col, w, t).paused),
                    _ => assert!(c.fetch(t, to).is_none(), "partition held after SIGKILL"),
                }
                Bin::new("inject-fault")
                    .no_docker_env()
                    .env("DRILL_HELPER_IMAGE", "unused:never")
                    .args(["revert"])
                    .journal(&j)
                    .succeeds();
                match *what {
                    "stop" | "pause" => {
                        wait_for(col, w, t, "running again", |s| s.running && !s.paused)
                    }
                    _ => c.wait_reaches(t, to),
                }
                assert!(open_faults(c, &j).is_empty(), "{what}: still open");
            });
        }
    });
}

#[test]
fn every_container_fault_applies_measures_and_reverts_on_every_engine() {
    // The crash matrices' room: none of the three reads what another changes (each looks at
    // its own containers, namespaces and faults), and the other rooms' host-wide looks would
    // count this one's delay proxies and helpers.
    let _host = crate::support::host_room("crash_matrix");
    // Every fault here is applied by an injector that exits, then checked, then reverted (or
    // its injector is killed): free faults, which a doctor elsewhere would undo first.
    let _free = crate::support::dead_fault();
    require!(Docker);
    require!(Tmpfs);
    let t0 = Instant::now();
    let nettools = dk::nettools_image();
    let Some(engine) = Engine::shared() else {
        return;
    };
    let Some(sshd) = Sshd::start(&engine) else {
        return;
    };
    engine.load(nettools);
    let w = World { engine, sshd };
    let ready = t0.elapsed();
    // A missing helper image is exit 3 naming it, with nothing recorded or touched.
    {
        let c = Column::new(Col::Tls, &w, (std::process::id() % 95) as u8 + 100);
        let (t, to) = c.server(10);
        let j = c.journal("no-image");
        c.col
            .inject(&w, &j)
            .env("DRILL_HELPER_IMAGE", "dk-no-such-nettools:v0")
            .args(["partition", "--container", &t, "--to", &to])
            .code(3)
            .stderr_has("dk-no-such-nettools:v0")
            .stderr_has("--helper-image");
        assert!(
            !j.exists() || dk::journal_kinds(&j).iter().all(|k| k != "fault_planned"),
            "a fault was recorded without its helper image"
        );
        // --dry-run shows each helper as the `docker run` it is, and touches nothing.
        c.col
            .inject(&w, &j)
            .args(["degrade", "--container", &t, "--rate", "1mbit", "--dry-run"])
            .succeeds()
            .stderr_has(&format!(
                "docker run --rm --network=container:{}",
                &c.col.docker_ok(&w, &["inspect", "--format", "{{.Id}}", &t])[..12]
            ))
            .stderr_has(dk::NETTOOLS);
        // The first helper from drillkit's own image builds it on the engine (once per build
        // of drillkit); done here, so the columns time the faults, not that build.
        let t = c.target();
        let warm = c.journal("warm");
        c.col
            .inject(&w, &warm)
            .args(["crash", "--container", &t])
            .succeeds();
        // Closed, so its reaper container is disarmed (an open crash keeps one armed).
        c.col.inject(&w, &warm).args(["revert"]).succeeds();
        c.assert_no_helpers();
    }
    let base = (std::process::id() % 95) as u8;
    let rows: Vec<Row> = std::thread::scope(|s| {
        let handles: Vec<_> = [Col::Local, Col::Tls, Col::Ssh]
            .into_iter()
            .enumerate()
            .map(|(i, col)| {
                let w = &w;
                s.spawn(move || {
                    // A subnet of its own for each column.
                    let c = Column::new(col, w, base + 1 + i as u8);
                    let rows = std::thread::scope(|s| {
                        let killed = s.spawn(|| killed_then_reverted(&c));
                        let rows = column(&c);
                        killed.join().expect("a SIGKILL case panicked");
                        rows
                    });
                    c.assert_no_helpers();
                    rows
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a column panicked"))
            .collect()
    });
    eprintln!("\ncontainer faults × engines (apply / revert, wall time of inject-fault):");
    eprintln!("| fault | local | tls | ssh |\n|---|---|---|---|");
    let mut faults: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    faults.dedup();
    faults.sort();
    faults.dedup();
    for f in faults {
        let cell = |col: Col| {
            rows.iter()
                .find(|r| r.0 == f && r.1 == col)
                .map(|r| format!("{:.2}s / {:.2}s", r.2.as_secs_f64(), r.3.as_secs_f64()))
                .unwrap_or_default()
        };
        eprintln!(
            "| {f} | {} | {} | {} |",
            cell(Col::Local),
            cell(Col::Tls),
            cell(Col::Ssh)
        );
    }
    eprintln!(
        "fixtures ready in {:.1}s; whole test {:.1}s",
        ready.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}
