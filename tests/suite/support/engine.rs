//! A second Docker engine on this machine, and an sshd in front of it: the "remote" engines of
//! the remote-engine tests.
//!
//! The engine is a real `dockerd` with its own `--data-root`, `--exec-root`, `--pidfile`, a bridge
//! made here (`ip link add … type bridge`; never `--bridge none`, which deletes docker0 and breaks
//! the main engine), its own `--default-address-pool`, `--iptables=false`, listening on a unix
//! socket and on `tcp://127.0.0.1:PORT` with `--tlsverify` (a CA, a server certificate for
//! IP:127.0.0.1 and a client certificate, all made here with openssl). The test image is loaded
//! into it from the main engine (`docker save | docker load`).
//!
//! The sshd (`sshd -f CONFIG` on a loopback port, host and user keys made here) sets
//! `DOCKER_HOST` to the second engine's socket for its sessions, so `ssh … docker system
//! dial-stdio` on the "remote" reaches the second engine.
//!
//! Everything is named `dk-issue-14-…` and removed on drop (containers, engine, bridge, files).
//!
//! The tests of this run that use the engine share it ([`Engine::shared`]) and run at the same
//! time: each looks only at its own containers, networks (subnets of its own) and faults (the
//! `drillkit.fault` label of helpers and reapers), and a `doctor` over the engine takes
//! [`super::census`].

use super::run_ok as run;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

const BRIDGE: &str = "dk-issue-14-br";
const BRIDGE_ADDR: &str = "10.213.77.1/24";
const POOL: &str = "base=10.213.128.0/17,size=24";

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether a command succeeds, its output discarded.
fn quiet(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn have(prog: &str) -> bool {
    quiet(Command::new("sh").args(["-c", &format!("command -v {prog}")]))
}

/// The second engine.
pub struct Engine {
    pub dir: PathBuf,
    pub sock: PathBuf,
    /// `tcp://127.0.0.1:PORT` (TLS).
    pub tcp: String,
    /// ca.pem, cert.pem, key.pem for a client (DOCKER_CERT_PATH).
    pub certs: PathBuf,
    dockerd: Option<Child>,
    bridge: bool,
    /// Images loaded so far (one `docker load` each, however many tests ask).
    loaded: Mutex<Vec<String>>,
    /// One second engine at a time on this machine, across test processes too (its bridge and
    /// address pool are fixed, and `start` deletes a bridge of that name): an flock held from
    /// `start` to drop.
    _turn: nix::fcntl::Flock<std::fs::File>,
}

impl Engine {
    /// The second engine: the one the tests of this process running now share, or a new one
    /// (None, skipped, when dockerd, openssl or ip are missing). It stops when the last test
    /// using it drops its handle.
    pub fn shared() -> Option<Arc<Engine>> {
        static SHARED: Mutex<Weak<Engine>> = Mutex::new(Weak::new());
        let mut held = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = held.upgrade() {
            return Some(e);
        }
        let e = Arc::new(Engine::start()?);
        *held = Arc::downgrade(&e);
        Some(e)
    }

    fn start() -> Option<Engine> {
        let present =
            have("dockerd") && have("openssl") && have("ip") && super::docker::engine_up();
        if !super::check("a second dockerd (dockerd, openssl, ip)", present) {
            return None;
        }
        let image = super::docker::busybox_image();
        let turn = super::docker::file_lock("dk-issue-14-engine");
        let dir = PathBuf::from(format!("/tmp/dk-issue-14-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("certs")).expect("mkdir");
        let mut e = Engine {
            sock: dir.join("docker.sock"),
            tcp: String::new(),
            certs: dir.join("certs"),
            dir: dir.clone(),
            dockerd: None,
            bridge: false,
            loaded: Mutex::new(Vec::new()),
            _turn: turn,
        };
        e.make_certs();
        // A bridge of our own (a stale one from a killed run is ours too).
        let _ = Command::new("ip").args(["link", "del", BRIDGE]).output();
        run(Command::new("ip").args(["link", "add", BRIDGE, "type", "bridge"]));
        e.bridge = true;
        run(Command::new("ip").args(["addr", "add", BRIDGE_ADDR, "dev", BRIDGE]));
        run(Command::new("ip").args(["link", "set", BRIDGE, "up"]));
        let port = free_port();
        e.tcp = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("dockerd.log")).expect("log");
        let d = |p: &str| dir.join(p).display().to_string();
        let child = Command::new("dockerd")
            .args([
                "--data-root",
                &d("data"),
                "--exec-root",
                &d("exec"),
                "--pidfile",
                &d("dockerd.pid"),
                "-H",
                &format!("unix://{}", e.sock.display()),
                "-H",
                &e.tcp,
                "--tlsverify",
                "--tlscacert",
                &d("ca/ca.pem"),
                "--tlscert",
                &d("ca/server-cert.pem"),
                "--tlskey",
                &d("ca/server-key.pem"),
                "--iptables=false",
                "--ip-masq=false",
                "--bridge",
                BRIDGE,
                "--default-address-pool",
                POOL,
                "--cgroup-parent",
                "/dk-issue-14",
                "--log-level",
                "warn",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start the second dockerd");
        e.dockerd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !e.docker_ok(&["info"]) {
            assert!(
                Instant::now() < deadline,
                "the second dockerd did not come up in 60s: {}",
                std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // The test image, from the main engine.
        let load = format!(
            "docker save {image} | DOCKER_HOST=unix://{} docker load -q",
            e.sock.display()
        );
        run(Command::new("sh").args(["-c", &load]));
        Some(e)
    }

    fn make_certs(&self) {
        let ca = self.dir.join("ca");
        std::fs::create_dir_all(&ca).expect("mkdir ca");
        let script = format!(
            r#"set -e
cd {ca}
key() {{ openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }}
key ca-key.pem
openssl req -x509 -new -key ca-key.pem -out ca.pem -days 2 -subj /CN=dk-issue-14-ca 2>/dev/null
key server-key.pem
openssl req -new -key server-key.pem -out server.csr -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server-cert.pem -days 2 -extfile server.ext 2>/dev/null
key client-key.pem
openssl req -new -key client-key.pem -out client.csr -subj /CN=dk-issue-14-client 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out client-cert.pem -days 2 -extfile client.ext 2>/dev/null
cp ca.pem {certs}/ca.pem
cp client-cert.pem {certs}/cert.pem
cp client-key.pem {certs}/key.pem
"#,
            ca = ca.display(),
            certs = self.certs.display()
        );
        run(Command::new("sh").args(["-c", &script]));
    }

    /// `docker ARGS` against the second engine (its unix socket); success or not.
    pub fn docker_ok(&self, args: &[&str]) -> bool {
        quiet(
            Command::new("docker")
                .arg("-H")
                .arg(format!("unix://{}", self.sock.display()))
                .args(args),
        )
    }

    /// `docker ARGS` against the second engine; must succeed; stdout trimmed.
    pub fn docker(&self, args: &[&str]) -> String {
        run(Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args))
    }

    /// Load an image of the main engine into this one (`docker save | docker load`), once.
    pub fn load(&self, image: &str) {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if loaded.iter().any(|i| i == image) {
            return;
        }
        let load = format!(
            "docker save {image} | DOCKER_HOST=unix://{} docker load -q",
            self.sock.display()
        );
        run(Command::new("sh").args(["-c", &load]));
        loaded.push(image.to_string());
    }

    /// The variables a user sets for this engine over TLS.
    pub fn tls_env(&self) -> Vec<(String, String)> {
        vec![
            ("DOCKER_HOST".into(), self.tcp.clone()),
            ("DOCKER_TLS_VERIFY".into(), "1".into()),
            ("DOCKER_CERT_PATH".into(), self.certs.display().to_string()),
            self.reaper_socket(),
        ]
    }

    /// Reaper containers on this engine mount its socket, which is not at the default path on
    /// its host (this machine): what a user of such an engine sets.
    pub fn reaper_socket(&self) -> (String, String) {
        (
            "DRILL_REAPER_SOCKET".into(),
            self.sock.display().to_string(),
        )
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(mut child) = self.dockerd.take() {
            // Our engine: every container on it is ours.
            let ids = Command::new("docker")
                .arg("-H")
                .arg(format!("unix://{}", self.sock.display()))
                .args(["ps", "-aq"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            for id in ids.split_whitespace() {
                let _ = self.docker_ok(&["rm", "-f", id]);
            }
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.bridge {
            let _ = Command::new("ip").args(["link", "del", BRIDGE]).output();
        }
        // Anything dockerd left mounted under its roots, then the files.
        remove_mounted_dir(&self.dir);
    }
}

/// Unmount whatever an engine left mounted under `dir` (deepest first), then remove it.
pub fn remove_mounted_dir(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut under: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect();
    under.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in under {
        let _ = Command::new("umount").args(["-l", m]).output();
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// An sshd on a loopback port whose sessions reach `engine` (`SetEnv DOCKER_HOST=…`), with a
/// user key and a client config (`DRILLKIT_SSH_CONFIG`) made here.
pub struct Sshd {
    pub port: u16,
    /// The ssh client configuration to use (identity, known hosts).
    pub config: PathBuf,
    dir: PathBuf,
    child: Child,
    /// The engine's own socket on this host, for reaper containers.
    reaper_socket: (String, String),
}

impl Sshd {
    pub fn start(engine: &Engine) -> Option<Sshd> {
        let sshd = Path::new("/usr/sbin/sshd");
        if !super::check("sshd (openssh-server)", sshd.exists() && have("ssh")) {
            return None;
        }
        // A folder of its own: tests sharing the engine each start one.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = engine.dir.join(format!("ssh-{n}"));
        std::fs::create_dir_all(&dir).expect("mkdir ssh");
        // Privilege separation needs this directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let d = |p: &str| dir.join(p).display().to_string();
        for key in ["host_key", "id_ed25519"] {
            run(Command::new("ssh-keygen").args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "dk-issue-14",
                "-f",
                &d(key),
            ]));
        }
        std::fs::copy(dir.join("id_ed25519.pub"), dir.join("authorized_keys")).expect("keys");
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {pid}\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nStrictModes no\nSetEnv DOCKER_HOST=unix://{sock}\n",
            hk = d("host_key"),
            ak = d("authorized_keys"),
            pid = d("sshd.pid"),
            sock = engine.sock.display()
        );
        std::fs::write(dir.join("sshd_config"), config).expect("sshd_config");
        let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).expect("host key");
        std::fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {}", host_pub.trim()),
        )
        .expect("known_hosts");
        let client = format!(
            "Host 127.0.0.1\n  IdentityFile {id}\n  IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n",
            id = d("id_ed25519"),
            kh = d("known_hosts")
        );
        std::fs::write(dir.join("ssh_config"), client).expect("ssh_config");
        let log = std::fs::File::create(dir.join("sshd.log")).expect("log");
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f", &d("sshd_config")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let s = Sshd {
            port,
            config: dir.join("ssh_config"),
            dir,
            child,
            reaper_socket: engine.reaper_socket(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen in 20s: {}",
                std::fs::read_to_string(s.dir.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(s)
    }

    /// The variables a user sets for the engine behind this sshd.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "DOCKER_HOST".into(),
                format!("ssh://root@127.0.0.1:{}", self.port),
            ),
            (
                "DRILLKIT_SSH_CONFIG".into(),
                self.config.display().to_string(),
            ),
            self.reaper_socket.clone(),
        ]
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
