//! Docker fixtures for the integration tests: the two local test images (built once, FROM
//! scratch, since no registry is reachable), containers with unique names and a
//! `drillkit.test=<unique>` label that are removed on drop, their real state read back with the
//! docker CLI, and a minimal RESP client to fill a real Redis.
//!
//! Host ports are fixed (`-p 127.0.0.1:PORT:80` with a port picked free), not ephemeral
//! (`-p 127.0.0.1::80`): Docker allocates a new ephemeral host port on every start, so a URL read
//! with `docker port` goes stale after the very crash or stop the drill is about.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const BUSYBOX: &str = "drillkit-test-busybox:latest";
pub const REDIS: &str = "drillkit-test-redis:latest";
/// The network tools image (ip, tc, iptables) the tests load into engines elsewhere.
pub const NETTOOLS: &str = "drillkit-test-nettools:latest";
/// The label every container and volume made here carries (value: the fixture's unique name).
pub const LABEL: &str = "drillkit.test";

/// Run `docker ARGS` and return what it left.
pub fn docker_output<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new("docker");
    cmd.args(args).stdin(Stdio::null());
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run the docker CLI: {e}"))
}

/// Run `docker ARGS`, expect success, return stdout (trimmed).
pub fn docker<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args
        .into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect();
    let out = docker_output(&args);
    assert!(
        out.status.success(),
        "`docker {}` failed ({}):\n{}",
        show(&args),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn show(args: &[std::ffi::OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a Docker engine answers (`docker info`); checked once.
pub fn engine_up() -> bool {
    static UP: OnceLock<bool> = OnceLock::new();
    *UP.get_or_init(|| {
        Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

/// `drillkit-test-<pid>-<n>`: unique in this process, and tells a later run whose it was.
pub fn unique() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "drillkit-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Hold an exclusive lock on a file in the temp dir while `f` runs, so that parallel test
/// binaries build each image once.
fn with_file_lock<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let lock = file_lock(name);
    let out = f();
    drop(lock);
    out
}

/// An exclusive flock on `$TMPDIR/NAME.lock`, across test processes; held until dropped.
pub fn file_lock(name: &str) -> nix::fcntl::Flock<std::fs::File> {
    let path = std::env::temp_dir().join(format!("{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open lock file {}: {e}", path.display()));
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("lock {}: {e}", path.display()))
}

/// Wait for a spawned binary to exit, at most `timeout` (then SIGKILL it and fail).
pub fn wait_child(
    mut child: std::process::Child,
    timeout: Duration,
    line: &str,
) -> super::cmd::Run {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("wait for the killed child");
                panic!(
                    "`{line}` still running after {timeout:?}; killed it. stderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Err(e) => panic!("wait for `{line}`: {e}"),
        }
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("collect the output of `{line}`: {e}"));
    super::cmd::Run::from_output(out, line.to_string())
}

fn image_exists(tag: &str) -> bool {
    docker_output(["image", "inspect", tag]).status.success()
}

/// Remove containers and volumes left by test processes that no longer exist (a test binary that
/// was SIGKILLed never ran its drops). Names carry the pid: `drillkit-test-<pid>-<n>`.
fn sweep_leftovers() {
    let alive = |name: &str| -> bool {
        let pid = name
            .strip_prefix("drillkit-test-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        match pid {
            Some(p) => Path::new(&format!("/proc/{p}")).exists(),
            None => true,
        }
    };
    let filter = format!("label={LABEL}");
    let names = docker(["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"]);
    for n in names.lines().filter(|n| !alive(n)) {
        let _ = docker_output(["rm", "-f", "-v", n]);
    }
    let vols = docker(["volume", "ls", "--filter", &filter, "--format", "{{.Name}}"]);
    for v in vols.lines().filter(|v| !alive(v)) {
        let _ = docker_output(["volume", "rm", "-f", v]);
    }
}

/// Sweep leftovers once per test process.
fn once_per_process() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(sweep_leftovers);
}

/// The busybox image (scripts/test.sh's recipe): FROM scratch, /bin/busybox, applets in /bin.
pub fn busybox_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        once_per_process();
        with_file_lock("drillkit-test-busybox-image", || {
            if image_exists(BUSYBOX) {
                return;
            }
            let ctx = tempfile::tempdir().expect("temp dir for the busybox image");
            copy_real(Path::new("/bin/busybox"), &ctx.path().join("busybox"));
            write_file(
                &ctx.path().join("Dockerfile"),
                "FROM scratch\n\
                 COPY busybox /bin/busybox\n\
                 RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
                 CMD [\"/bin/sh\"]\n",
            );
            docker_build(BUSYBOX, ctx.path());
        })
    });
    BUSYBOX
}

/// A Redis image FROM scratch: this host's redis-server (the real file behind the symlink), every
/// library `ldd` lists at the same path, the dynamic loader, and busybox.
pub fn redis_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        once_per_process();
        with_file_lock("drillkit-test-redis-image", || {
            if image_exists(REDIS) {
                return;
            }
            let server = Path::new("/usr/bin/redis-server");
            assert!(
                server.exists(),
                "{} is missing: install redis-server (scripts/test.sh does)",
                server.display()
            );
            let ctx = tempfile::tempdir().expect("temp dir for the redis image");
            let root = ctx.path().join("rootfs");
            copy_real(server, &root.join("usr/bin/redis-server"));
            copy_real(Path::new("/bin/busybox"), &root.join("bin/busybox"));
            copy_real(
                Path::new("/lib64/ld-linux-x86-64.so.2"),
                &root.join("lib64/ld-linux-x86-64.so.2"),
            );
            for lib in ldd(server) {
                let inside = root.join(lib.strip_prefix("/").unwrap_or(&lib));
                copy_real(&lib, &inside);
            }
            write_file(
                &ctx.path().join("Dockerfile"),
                "FROM scratch\n\
                 COPY rootfs/ /\n\
                 RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
                 CMD [\"/usr/bin/redis-server\"]\n",
            );
            docker_build(REDIS, ctx.path());
            let version = docker(["run", "--rm", REDIS, "/usr/bin/redis-server", "--version"]);
            assert!(
                version.starts_with("Redis server"),
                "the redis image does not run: {version}"
            );
        })
    });
    REDIS
}

/// The network tools image network helpers run on engines elsewhere (what the release publishes
/// as drillkit-nettools), FROM scratch: this host's `ip`, `tc` and iptables (the multi-call
/// binary behind `iptables`, with `iptables`/`ip6tables` links), their libraries, the xtables
/// extensions and `/etc/protocols`. No shell.
pub fn nettools_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        once_per_process();
        with_file_lock("drillkit-test-nettools-image", || {
            if image_exists(NETTOOLS) {
                return;
            }
            let ctx = tempfile::tempdir().expect("temp dir for the nettools image");
            let root = ctx.path().join("rootfs");
            let real = |p: &str| {
                std::fs::canonicalize(p)
                    .unwrap_or_else(|e| panic!("{p}: {e} (install iproute2 and iptables)"))
            };
            let multi = real("/usr/sbin/iptables");
            let multi_name = multi
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let mut bins = vec![real("/usr/sbin/ip"), real("/usr/sbin/tc"), multi.clone()];
            copy_real(&bins[0], &root.join("usr/sbin/ip"));
            copy_real(&bins[1], &root.join("usr/sbin/tc"));
            copy_real(&multi, &root.join("usr/sbin").join(&multi_name));
            for link in ["iptables", "ip6tables"] {
                std::os::unix::fs::symlink(&multi_name, root.join("usr/sbin").join(link))
                    .expect("symlink");
            }
            let xt = [
                "/usr/lib/x86_64-linux-gnu/xtables",
                "/usr/lib/aarch64-linux-gnu/xtables",
                "/usr/lib/xtables",
            ]
            .iter()
            .map(Path::new)
            .find(|p| p.is_dir())
            .expect("the xtables extensions directory");
            for e in std::fs::read_dir(xt).expect("xtables dir").flatten() {
                let p = e.path();
                copy_real(&p, &root.join(p.strip_prefix("/").expect("absolute")));
                bins.push(p);
            }
            let mut libs: Vec<PathBuf> = bins.iter().flat_map(|b| ldd(b)).collect();
            libs.push(PathBuf::from("/lib64/ld-linux-x86-64.so.2"));
            libs.sort();
            libs.dedup();
            for lib in libs.iter().filter(|l| l.exists()) {
                copy_real(lib, &root.join(lib.strip_prefix("/").unwrap_or(lib)));
            }
            copy_real(Path::new("/etc/protocols"), &root.join("etc/protocols"));
            write_file(
                &ctx.path().join("Dockerfile"),
                "FROM scratch\nCOPY rootfs/ /\n",
            );
            docker_build(NETTOOLS, ctx.path());
        })
    });
    NETTOOLS
}

/// The absolute library paths `ldd` resolves for a binary.
fn ldd(bin: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ldd {}: {e}", bin.display()));
    assert!(out.status.success(), "ldd {} failed", bin.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once("=>"))
        .filter_map(|(_, rhs)| rhs.split_whitespace().next())
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

/// Copy the file a path resolves to (not the symlink), creating parent directories.
fn copy_real(from: &Path, to: &Path) {
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    }
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}

fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn docker_build(tag: &str, ctx: &Path) {
    let ctx = ctx.to_string_lossy().into_owned();
    docker(["build", "-q", "-t", tag, &ctx]);
}

/// A TCP port on 127.0.0.1 that nothing listens on now, never handed out twice by this process.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(HashSet::new()));
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if given.lock().expect("port set").insert(port) {
            return port;
        }
    }
}

/// What `docker inspect` says about a container right now.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    pub restart_count: u64,
    pub pid: i64,
    pub started_at: String,
}

impl State {
    /// Running and answering for itself: not paused, not in a restart loop.
    pub fn up(&self) -> bool {
        self.running && !self.paused && !self.restarting
    }
}

/// How to run one test container.
#[derive(Clone, Debug)]
pub struct Spec {
    image: String,
    cmd: Vec<String>,
    restart: Option<String>,
    publish: Option<u16>,
    labels: Vec<String>,
    label_value: Option<String>,
    volume_at: Option<String>,
}

impl Spec {
    pub fn new(image: &str) -> Spec {
        Spec {
            image: image.into(),
            cmd: vec![],
            restart: None,
            publish: None,
            labels: vec![],
            label_value: None,
            volume_at: None,
        }
    }

    /// The command (after the image).
    pub fn cmd<I: IntoIterator<Item = S>, S: Into<String>>(mut self, cmd: I) -> Spec {
        self.cmd = cmd.into_iter().map(Into::into).collect();
        self
    }

    /// `--restart POLICY` (always, unless-stopped, on-failure…).
    pub fn restart(mut self, policy: &str) -> Spec {
        self.restart = Some(policy.into());
        self
    }

    /// Publish this container port on a free, fixed 127.0.0.1 port.
    pub fn publish(mut self, container_port: u16) -> Spec {
        self.publish = Some(container_port);
        self
    }

    /// An extra `--label k=v` (e.g. the compose labels).
    pub fn label(mut self, kv: &str) -> Spec {
        self.labels.push(kv.into());
        self
    }

    /// The value of `drillkit.test=` (default: the container's own unique name); containers given
    /// the same value form a group a label selector matches.
    pub fn group(mut self, value: &str) -> Spec {
        self.label_value = Some(value.into());
        self
    }

    /// A named volume (labelled, removed on drop) mounted here.
    pub fn volume(mut self, at: &str) -> Spec {
        self.volume_at = Some(at.into());
        self
    }

    /// `docker run -d` it; panics with Docker's message when it does not start.
    pub fn run(self) -> Container {
        let name = unique();
        let group = self.label_value.clone().unwrap_or_else(|| name.clone());
        let label = format!("{LABEL}={group}");
        let volume = self.volume_at.as_ref().map(|_| {
            let v = format!("{name}-data");
            docker([
                "volume",
                "create",
                "--label",
                &format!("{LABEL}={name}"),
                &v,
            ]);
            v
        });
        // A port picked free can be taken by the time Docker binds it: try a few.
        let mut last_err = String::new();
        for _ in 0..5 {
            let host_port = self.publish.map(|_| free_port());
            let mut args: Vec<String> = vec![
                "run".into(),
                "-d".into(),
                "--name".into(),
                name.clone(),
                "--label".into(),
                label.clone(),
            ];
            for l in &self.labels {
                args.extend(["--label".into(), l.clone()]);
            }
            if let Some(r) = &self.restart {
                args.extend(["--restart".into(), r.clone()]);
            }
            if let (Some(cp), Some(hp)) = (self.publish, host_port) {
                args.extend(["-p".into(), format!("127.0.0.1:{hp}:{cp}")]);
            }
            if let (Some(v), Some(at)) = (&volume, &self.volume_at) {
                args.extend(["-v".into(), format!("{v}:{at}")]);
            }
            args.push(self.image.clone());
            args.extend(self.cmd.iter().cloned());
            let out = docker_output(&args);
            if out.status.success() {
                let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
                let c = Container {
                    name,
                    id,
                    label_value: group,
                    host_port,
                    volume,
                };
                if let (Some(cp), Some(hp)) = (self.publish, host_port) {
                    let seen = c.docker_port(cp);
                    assert_eq!(seen, hp, "docker port {} {cp}", c.name);
                }
                return c;
            }
            last_err = String::from_utf8_lossy(&out.stderr).into_owned();
            // A failed start with a port clash leaves a created container behind.
            let _ = docker_output(["rm", "-f", &name]);
            let clash = last_err.contains("already allocated") || last_err.contains("in use");
            if !clash {
                break;
            }
        }
        if let Some(v) = &volume {
            let _ = docker_output(["volume", "rm", "-f", v]);
        }
        panic!("docker run {name} ({}) failed: {last_err}", self.image);
    }
}

/// A running test container; removed (with its volume) on drop.
#[derive(Debug)]
pub struct Container {
    pub name: String,
    pub id: String,
    /// The value of its `drillkit.test` label.
    pub label_value: String,
    host_port: Option<u16>,
    volume: Option<String>,
}

impl Container {
    /// The published host port (fixed for the container's life).
    pub fn port(&self) -> u16 {
        self.host_port
            .unwrap_or_else(|| panic!("{} publishes no port", self.name))
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// The label selector matching this container's group: `drillkit.test=<value>`.
    pub fn selector(&self) -> String {
        format!("{LABEL}={}", self.label_value)
    }

    /// What `docker port NAME PORT` says the host port is.
    pub fn docker_port(&self, container_port: u16) -> u16 {
        let out = docker(["port", &self.name, &format!("{container_port}/tcp")]);
        let first = out.lines().next().unwrap_or("");
        first
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("cannot read a port from `docker port {}`: {out}", self.name))
    }

    /// The container's state from `docker inspect`.
    pub fn state(&self) -> State {
        let out = docker(["inspect", &self.name]);
        let v: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("docker inspect {} is not JSON ({e}): {out}", self.name));
        let c = &v[0];
        let s = &c["State"];
        State {
            status: s["Status"].as_str().unwrap_or_default().to_string(),
            running: s["Running"].as_bool().unwrap_or(false),
            paused: s["Paused"].as_bool().unwrap_or(false),
            restarting: s["Restarting"].as_bool().unwrap_or(false),
            restart_count: c["RestartCount"].as_u64().unwrap_or(0),
            pid: s["Pid"].as_i64().unwrap_or(0),
            started_at: s["StartedAt"].as_str().unwrap_or_default().to_string(),
        }
    }

    /// Poll the state until `pred` holds; panics with the last state after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&State) -> bool) -> State {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.state();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "container {} not {what} within {timeout:?}; last state {s:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Running, not paused, not restarting — and, when it publishes a port, accepting TCP there.
    pub fn wait_up(&self, timeout: Duration) -> State {
        let s = self.wait_for("running", timeout, State::up);
        if let Some(p) = self.host_port {
            wait_tcp(p, timeout);
        }
        s
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker_output(["rm", "-f", "-v", &self.name]);
        if let Some(v) = &self.volume {
            let _ = docker_output(["volume", "rm", "-f", v]);
        }
    }
}

/// Wait until something accepts TCP on 127.0.0.1:port.
pub fn wait_tcp(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing accepts TCP on 127.0.0.1:{port} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain HTTP GET from the test (no client library): the status code and the body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::Read;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// A busybox httpd serving `ok` at each of `paths`, on a published port, with a restart policy.
pub fn httpd(restart: &str, paths: &[&str]) -> Container {
    httpd_spec(restart, paths).run_up()
}

/// The spec behind [`httpd`], for adding labels or a group before running it.
pub fn httpd_spec(restart: &str, paths: &[&str]) -> Spec {
    let mut script = String::from("mkdir -p /www");
    for p in paths {
        let p = p.trim_start_matches('/');
        if let Some((dir, _)) = p.rsplit_once('/') {
            script.push_str(&format!(" && mkdir -p /www/{dir}"));
        }
        script.push_str(&format!(" && echo ok > /www/{p}"));
    }
    script.push_str(" && exec httpd -f -p 80 -h /www");
    Spec::new(busybox_image())
        .cmd(["sh", "-c", &script])
        .restart(restart)
        .publish(80)
}

/// A long sleep in busybox: a container to stop, pause and kill that serves nothing.
pub fn sleeper(restart: &str) -> Spec {
    Spec::new(busybox_image())
        .cmd(["sleep", "3600"])
        .restart(restart)
}

impl Spec {
    /// Run it and wait until it is up (and its port answers).
    pub fn run_up(self) -> Container {
        let c = self.run();
        c.wait_up(Duration::from_secs(20));
        c
    }
}

/// A real Redis (7, this host's build) with its data on a named volume, published on a free port,
/// saving to /data.
pub fn redis(restart: &str) -> Container {
    Spec::new(redis_image())
        .cmd([
            "/usr/bin/redis-server",
            "--port",
            "6379",
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--dir",
            "/data",
        ])
        .restart(restart)
        .publish(6379)
        .volume("/data")
        .run_up()
}

/// A minimal RESP client over TCP (the images have no redis-cli).
pub struct Resp {
    reader: BufReader<std::net::TcpStream>,
}

impl Resp {
    pub fn connect(port: u16) -> Resp {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        // Redis may accept (docker-proxy) before it is ready: retry until PING answers.
        loop {
            let attempt = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                .and_then(|s| {
                    s.set_read_timeout(Some(Duration::from_secs(5)))?;
                    let mut r = Resp {
                        reader: BufReader::new(s),
                    };
                    match r.try_command(&["PING"])? {
                        ref p if p == "+PONG" => Ok(r),
                        other => Err(std::io::Error::other(format!("PING answered {other}"))),
                    }
                });
            match attempt {
                Ok(r) => return r,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "redis on 127.0.0.1:{port} does not answer PING: {e}"
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Send one command; the reply as `+simple`, `-error`, `:int`, `$bulk` or `*n`.
    pub fn command(&mut self, args: &[&str]) -> String {
        self.try_command(args)
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    fn try_command(&mut self, args: &[&str]) -> std::io::Result<String> {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.reader.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        if line.is_empty() {
            return Err(std::io::Error::other("connection closed"));
        }
        let line = line.trim_end().to_string();
        if let Some(n) = line.strip_prefix('$') {
            let n: i64 = n.parse().unwrap_or(-1);
            if n >= 0 {
                let mut body = vec![0u8; n as usize + 2];
                std::io::Read::read_exact(&mut self.reader, &mut body)?;
                return Ok(format!("${}", String::from_utf8_lossy(&body[..n as usize])));
            }
        }
        Ok(line)
    }

    /// DBSIZE as a number.
    pub fn dbsize(&mut self) -> u64 {
        let r = self.command(&["DBSIZE"]);
        r.strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("DBSIZE answered {r}"))
    }
}

/// The journal's events, one JSON value per line (a torn line fails the test).
pub fn journal_events(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read journal {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("journal line is not JSON ({e}): {l}"))
        })
        .collect()
}

/// The `event` field of each journal line, in order.
pub fn journal_kinds(path: &Path) -> Vec<String> {
    journal_events(path)
        .iter()
        .map(|e| e["event"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Polls the journal at `path` until an event of `kind` is in it (lines still being written are
/// skipped); panics after `timeout` naming what was there.
pub fn wait_journal(path: &Path, kind: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let kinds: Vec<String> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|e| e["event"].as_str().map(str::to_string))
            .collect();
        if kinds.iter().any(|k| k == kind) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} in {} within {timeout:?}; saw {kinds:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `docker ps` arguments listing reaper containers (any state), of one fault or all: their
/// names, one a line (`names` splits them).
pub fn reaper_ps_args(fault: Option<&str>) -> Vec<String> {
    let mut a: Vec<String> = ["ps", "-a", "--filter", "label=drillkit.helper=reaper"]
        .map(String::from)
        .into();
    if let Some(f) = fault {
        a.extend(["--filter".into(), format!("label=drillkit.fault={f}")]);
    }
    a.extend(["--format".into(), "{{.Names}}".into()]);
    a
}

/// The ids of the faults the journals planned (`fault_planned`); a missing journal plans none.
pub fn fault_ids<P: AsRef<Path>>(journals: &[P]) -> Vec<String> {
    journals
        .iter()
        .filter(|j| j.as_ref().exists())
        .flat_map(|j| journal_events(j.as_ref()))
        .filter(|e| e["event"] == "fault_planned")
        .filter_map(|e| e["id"].as_str().map(str::to_string))
        .collect()
}

/// The journals (`*.jsonl`) directly in `dir`.
pub fn journals_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect()
        })
        .unwrap_or_default()
}

/// `docker ps` arguments listing every drillkit helper and reaper container (any state) as
/// `NAME FAULT`: for [`helpers_of`].
pub fn helper_ps_args() -> Vec<&'static str> {
    vec![
        "ps",
        "-a",
        "--filter",
        "label=drillkit.helper",
        "--format",
        "{{.Names}} {{.Label \"drillkit.fault\"}}",
    ]
}

/// The helper and reaper containers of a [`helper_ps_args`] answer that work for one of
/// `faults` (a test's own, on an engine other tests use at the same time).
pub fn helpers_of(out: &str, faults: &[String]) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, f)| faults.iter().any(|x| x == f))
        .map(|(n, _)| n.to_string())
        .collect()
}

/// The lines of a `docker … --format '{{.Names}}'` answer.
pub fn names(out: &str) -> Vec<String> {
    out.lines().map(str::to_string).collect()
}
