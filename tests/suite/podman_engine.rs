//! Podman's Docker-compatible API as an engine (issue 14 item 7): `podman system service` on a
//! private unix socket (its own storage root, run root and temp dir, nothing shared with a
//! system podman), the test image loaded with `podman load` from `docker save`, and
//! `inject-fault` aimed at it with `--docker-host unix://…`: pause and unpause, stop and — with
//! no `DOCKER_*` variable and no flag — revert from the journal alone, and crash (the
//! container's restart policy brings it back: restart count +1, a new pid).
//!
//! Containers run with `--network none` (no netavark bridge or iptables rules on the host) and
//! with ulimits inside this machine's hard limits: podman's default `nofile`/`nproc` of 1048576
//! is refused by the kernel in a sandbox whose hard limit is lower (runc: "error setting rlimit
//! type 7: operation not permitted"), so `containers.conf` sets smaller ones.

use crate::support::cmd::Bin;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A podman API service of this test's own.
struct Podman {
    dir: PathBuf,
    sock: PathBuf,
    service: Option<Child>,
}

impl Podman {
    fn start() -> Option<Podman> {
        let present = Command::new("podman")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !crate::support::check("podman (Debian's podman)", present) {
            return None;
        }
        let dir = PathBuf::from(format!("/tmp/dk-h14region-podman-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tmp")).expect("mkdir");
        // The hard limits here, for podman's default ulimits.
        let nofile: u64 = std::fs::read_to_string("/proc/self/limits")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(4).and_then(|v| v.parse().ok()))
            .unwrap_or(1024u64)
            .min(1024 * 1024);
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc=4096:4096\"]\nnetns = \"none\"\n\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"
            ),
        )
        .expect("containers.conf");
        let mut p = Podman {
            sock: dir.join("podman.sock"),
            dir,
            service: None,
        };
        let log = std::fs::File::create(p.dir.join("service.log")).expect("log");
        let child = p
            .cmd()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", p.sock.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start podman system service");
        p.service = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !p.ping() {
            assert!(
                Instant::now() < deadline,
                "podman system service did not answer in 30s: {}",
                std::fs::read_to_string(p.dir.join("service.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(p)
    }

    /// `podman` with this instance's storage and configuration.
    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"));
        c
    }

    /// `podman ARGS`; must succeed; stdout trimmed.
    fn run(&self, args: &[&str]) -> String {
        let out = self
            .cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run podman");
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// GET /_ping on the socket answers OK.
    fn ping(&self) -> bool {
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(&self.sock) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text.starts_with("HTTP/1.") && text.contains(" 200 ") && text.ends_with("OK")
    }

    /// (status, paused, restart count, pid) of a container.
    fn state(&self, name: &str) -> (String, bool, u64, i64) {
        let out = self.run(&["inspect", name]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("inspect JSON");
        let c = &v[0];
        (
            c["State"]["Status"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            c["State"]["Paused"].as_bool().unwrap_or(false),
            c["RestartCount"].as_u64().unwrap_or(0),
            c["State"]["Pid"].as_i64().unwrap_or(0),
        )
    }

    fn wait(&self, name: &str, what: &str, pred: impl Fn(&(String, bool, u64, i64)) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.state(name);
            if pred(&s) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} on podman not {what} within 30s: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["rm", "-a", "-f", "-t", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut c) = self.service.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        crate::support::engine::remove_mounted_dir(&self.dir);
    }
}

#[test]
fn inject_fault_drives_a_podman_engine() {
    require!(Docker, Root);
    let Some(podman) = Podman::start() else {
        return;
    };
    let image = crate::support::docker::busybox_image();
    let load = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker save {image} | CONTAINERS_CONF={conf} podman --root {d}/root --runroot {d}/run --tmpdir {d}/tmp load -q",
            conf = podman.dir.join("containers.conf").display(),
            d = podman.dir.display()
        ))
        .output()
        .expect("podman load");
    assert!(
        load.status.success(),
        "podman load: {}",
        String::from_utf8_lossy(&load.stderr)
    );
    let name = format!("dk-h14region-pod-{}", std::process::id());
    podman.run(&[
        "run",
        "-d",
        "--name",
        &name,
        "--restart",
        "always",
        "--network",
        "none",
        image,
        "sleep",
        "3600",
    ]);
    podman.wait(&name, "running", |s| s.0 == "running");
    let dir = tempfile::tempdir().expect("tempdir");
    let j = dir.path().join("journal.jsonl");
    let host = podman.host();
    let at = |b: Bin| b.no_docker_env().args(["--docker-host", &host]).journal(&j);

    // pause, then revert from the journal alone.
    at(Bin::new("inject-fault"))
        .args(["pause", "--container", &name])
        .succeeds();
    assert!(podman.state(&name).1, "paused: {:?}", podman.state(&name));
    Bin::new("inject-fault")
        .no_docker_env()
        .journal(&j)
        .arg("revert")
        .succeeds();
    podman.wait(&name, "unpaused", |s| s.0 == "running" && !s.1);

    // pause with a duration: unpaused by inject-fault itself.
    at(Bin::new("inject-fault"))
        .args(["pause", "--container", &name, "--duration", "1s"])
        .succeeds();
    assert!(!podman.state(&name).1, "unpaused after --duration");

    // stop, then revert with no DOCKER_* variable and no flag: the journal names the engine.
    at(Bin::new("inject-fault"))
        .args(["stop", "--container", &name, "--timeout", "1s"])
        .succeeds();
    podman.wait(&name, "stopped", |s| s.0 == "exited" || s.0 == "stopped");
    let r = Bin::new("inject-fault")
        .no_docker_env()
        .journal(&j)
        .arg("revert")
        .succeeds();
    assert!(r.stderr.contains("started"), "{}", r.stderr);
    podman.wait(&name, "running again", |s| s.0 == "running");

    // crash: the restart policy brings it back (podman restarts it: count +1, a new pid).
    let before = podman.state(&name);
    at(Bin::new("inject-fault"))
        .args(["crash", "--container", &name])
        .succeeds();
    podman.wait(&name, "restarted by its policy", |s| {
        s.0 == "running" && s.2 == before.2 + 1 && s.3 != before.3
    });
    let open = Bin::new("inject-fault")
        .no_docker_env()
        .journal(&j)
        .args(["list", "--json"])
        .succeeds();
    // The crash closes itself only when a recovery wait sees it back; revert closes it now
    // (its undo, "start it if it is not running", has nothing to do).
    let n = open.json().as_array().map(Vec::len).unwrap_or(0);
    if n > 0 {
        Bin::new("inject-fault")
            .no_docker_env()
            .journal(&j)
            .arg("revert")
            .succeeds();
    }
    let open = Bin::new("inject-fault")
        .no_docker_env()
        .journal(&j)
        .args(["list", "--json"])
        .succeeds();
    assert_eq!(
        open.json().as_array().map(Vec::len),
        Some(0),
        "{}",
        open.stdout
    );
    assert_eq!(podman.state(&name).0, "running");

    // An engine that is not there: exit 3 naming it, nothing touched.
    let gone = format!("unix://{}/nobody.sock", podman.dir.display());
    let r = Bin::new("inject-fault")
        .no_docker_env()
        .journal(&j)
        .args(["pause", "--container", &name, "--docker-host", &gone])
        .code(3);
    assert!(r.stderr.contains(&gone), "{}", r.stderr);
    assert!(!podman.state(&name).1);
}
