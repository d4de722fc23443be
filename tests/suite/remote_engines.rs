//! Remote Docker engines (issue 14): a second real dockerd on this machine, reached over TLS
//! (`tcp://127.0.0.1:PORT`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`) and over ssh (an sshd on a
//! loopback port whose sessions reach it), with a container of the same name on the main
//! engine that must never be touched. One test function: the engine and sshd are started once
//! and removed at its end, whatever happens (drops run while a failed assertion unwinds).

use crate::support::cmd::Bin;
use crate::support::docker as dk;
use crate::support::engine::{Engine, Sshd};
use std::path::Path;
use std::time::{Duration, Instant};

/// What the tests read of a container on the second engine.
#[derive(Debug, Clone, PartialEq)]
struct Remote {
    running: bool,
    paused: bool,
    restart_count: u64,
    pid: i64,
    status: String,
}

fn remote(e: &Engine, name: &str) -> Remote {
    let out = e.docker(&["inspect", name]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect JSON");
    let c = &v[0];
    Remote {
        running: c["State"]["Running"].as_bool().unwrap_or(false),
        paused: c["State"]["Paused"].as_bool().unwrap_or(false),
        restart_count: c["RestartCount"].as_u64().unwrap_or(0),
        pid: c["State"]["Pid"].as_i64().unwrap_or(0),
        status: c["State"]["Status"].as_str().unwrap_or_default().into(),
    }
}

fn wait_remote(e: &Engine, name: &str, what: &str, pred: impl Fn(&Remote) -> bool) -> Remote {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = remote(e, name);
        if pred(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{name} on the second engine not {what} within 30s: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn with_env(mut b: Bin, env: &[(String, String)]) -> Bin {
    b = b.no_docker_env();
    for (k, v) in env {
        b = b.env(k, v);
    }
    b
}

/// The journal's `fault_planned` events.
fn planned(journal: &Path) -> Vec<serde_json::Value> {
    if !journal.exists() {
        return Vec::new();
    }
    dk::journal_events(journal)
        .into_iter()
        .filter(|e| e["event"] == "fault_planned")
        .collect()
}

#[test]
fn faults_reach_the_chosen_engine_and_only_it() {
    let Some(engine) = Engine::shared() else {
        return;
    };
    // The local `web`: a same-named container on the main engine, which must stay untouched.
    let local = dk::sleeper("always").run_up();
    let web = local.name.clone();
    engine.docker(&[
        "run",
        "-d",
        "--name",
        &web,
        "--restart",
        "always",
        dk::BUSYBOX,
        "sleep",
        "3600",
    ]);
    wait_remote(&engine, &web, "running", |r| r.running);
    let local_before = local.state();
    let dir = tempfile::tempdir().expect("tempdir");
    // Reaper containers on the second engine mount its socket (its host is this machine):
    // tls_env() and the sshd's env() carry DRILL_REAPER_SOCKET.
    let tls = engine.tls_env();

    // 1. crash over TLS: the restart policy of the *remote* web fires (restart count +1).
    let before = remote(&engine, &web);
    let j1 = dir.path().join("crash.jsonl");
    let t = Instant::now();
    with_env(Bin::new("inject-fault"), &tls)
        .args(["crash", "--container", &web])
        .journal(&j1)
        .succeeds();
    eprintln!(
        "timing: crash over TLS, helper image built: {:?}",
        t.elapsed()
    );
    let after = wait_remote(&engine, &web, "restarted", |r| {
        r.running && r.restart_count == before.restart_count + 1
    });
    assert_ne!(after.pid, before.pid, "a new main process after the crash");
    let t = Instant::now();
    with_env(Bin::new("inject-fault"), &tls)
        .args(["crash", "--container", &web])
        .journal(&j1)
        .succeeds();
    eprintln!(
        "timing: crash over TLS, helper image cached: {:?}",
        t.elapsed()
    );
    wait_remote(&engine, &web, "restarted twice", |r| {
        r.running && r.restart_count == before.restart_count + 2
    });
    let p = planned(&j1);
    assert_eq!(p.len(), 2);
    assert_eq!(p[0]["engine"]["host"], engine.tcp.as_str(), "{}", p[0]);
    let key = engine.certs.join("key.pem");
    assert_eq!(p[0]["engine"]["tls"]["key"], key.display().to_string());
    let text = std::fs::read_to_string(&j1).expect("journal");
    assert!(
        !text.contains("PRIVATE KEY"),
        "key material in the journal: {text}"
    );
    // No kill helper container stays behind on the engine (each open crash has its armed
    // reaper container until it is reverted or seen recovered).
    let crashes = dk::fault_ids(&[&j1]);
    let helpers = dk::helpers_of(&engine.docker(&dk::helper_ps_args()), &crashes);
    assert!(
        !helpers
            .iter()
            .any(|h| h.starts_with("drillkit-helper-kill-")),
        "{helpers:?}"
    );
    assert_eq!(
        reapers_on(&engine, &crashes).len(),
        2,
        "one armed reaper per open crash"
    );
    Bin::new("inject-fault")
        .no_docker_env()
        .args(["revert"])
        .journal(&j1)
        .succeeds();
    assert!(
        reapers_on(&engine, &crashes).is_empty(),
        "disarmed by the revert"
    );

    // 2. stop over TLS, SIGKILL the injector while it holds the fault, then revert with no
    //    DOCKER_* variable at all: the journal alone leads back to the second engine.
    let j2 = dir.path().join("stop.jsonl");
    let child = with_env(Bin::new("inject-fault"), &tls)
        .args([
            "stop",
            "--container",
            &web,
            "--timeout",
            "1s",
            "--duration",
            "120s",
        ])
        .journal(&j2)
        .spawn();
    wait_remote(&engine, &web, "stopped", |r| !r.running);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dk::journal_kinds(&j2).contains(&"fault_applied".to_string()) {
        assert!(Instant::now() < deadline, "no fault_applied in {j2:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("SIGKILL");
    let _ = dk::wait_child(child, Duration::from_secs(10), "inject-fault stop");
    assert!(
        !remote(&engine, &web).running,
        "still stopped after SIGKILL"
    );
    // `list` (no DOCKER_* set) shows the open fault with the engine it is on.
    Bin::new("inject-fault")
        .no_docker_env()
        .args(["list"])
        .journal(&j2)
        .succeeds()
        .stderr_has(&format!("on {} (TLS)", engine.tcp));
    Bin::new("inject-fault")
        .no_docker_env()
        .args(["revert"])
        .journal(&j2)
        .succeeds()
        .stderr_has("started");
    wait_remote(&engine, &web, "started again", |r| r.running);
    assert!(
        reapers_on(&engine, &dk::fault_ids(&[&j2])).is_empty(),
        "the revert disarmed the reaper"
    );

    // 2b. The dead-man's switch on the engine's side (issue 15): stop over TLS with a deadline,
    //     SIGKILL the injector, delete the journal: the reaper container on the second engine
    //     starts web again and removes itself. Then the same for a paused web.
    dead_man_on(
        &engine,
        &tls,
        &web,
        &dir.path().join("dm-stop.jsonl"),
        "stop",
    );
    dead_man_on(
        &engine,
        &tls,
        &web,
        &dir.path().join("dm-pause.jsonl"),
        "pause",
    );
    // A socket that reaches another engine (the main one) is refused before the fault.
    let mut wrong = engine.tls_env();
    wrong.push((
        "DRILL_REAPER_SOCKET".to_string(),
        "/var/run/docker.sock".to_string(),
    ));
    let j_wrong = dir.path().join("wrong-socket.jsonl");
    with_env(Bin::new("inject-fault"), &wrong)
        .args(["stop", "--container", &web])
        .journal(&j_wrong)
        .code(3)
        .stderr_has("did not arm");
    assert!(
        remote(&engine, &web).running,
        "not stopped without a reaper"
    );
    assert!(reapers_on(&engine, &dk::fault_ids(&[&j_wrong])).is_empty());

    // 3. pause over ssh for 2s: paused, then unpaused.
    if let Some(sshd) = Sshd::start(&engine) {
        let j3 = dir.path().join("pause.jsonl");
        let ssh_env = sshd.env();
        let child = with_env(Bin::new("inject-fault"), &ssh_env)
            .args(["pause", "--container", &web, "--duration", "2s"])
            .journal(&j3)
            .spawn();
        wait_remote(&engine, &web, "paused", |r| r.paused);
        let run = dk::wait_child(
            child,
            Duration::from_secs(60),
            "inject-fault pause over ssh",
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        let r = remote(&engine, &web);
        assert!(r.running && !r.paused, "unpaused after --duration: {r:?}");
        let p = planned(&j3);
        assert_eq!(
            p[0]["engine"]["host"],
            format!("ssh://root@127.0.0.1:{}", sshd.port)
        );
        // The crash column over ssh: the helper works through the API alone there too.
        let before = remote(&engine, &web);
        let t = Instant::now();
        with_env(Bin::new("inject-fault"), &ssh_env)
            .args(["crash", "--container", &web])
            .journal(&j3)
            .succeeds();
        eprintln!(
            "timing: crash over ssh, helper image cached: {:?}",
            t.elapsed()
        );
        wait_remote(&engine, &web, "restarted over ssh", |r| {
            r.running && r.restart_count == before.restart_count + 1
        });
        // ssh refused (wrong key): exit 3 naming the engine, nothing touched.
        let bad = with_env(Bin::new("inject-fault"), &ssh_env)
            .env("DRILLKIT_SSH_CONFIG", "/dev/null")
            .args(["pause", "--container", &web])
            .journal(&j3)
            .code(3);
        assert!(
            bad.stderr
                .contains(&format!("ssh://root@127.0.0.1:{}", sshd.port)),
            "{}",
            bad.stderr
        );
        assert!(!remote(&engine, &web).paused);
    }

    // 4. An unreachable engine: exit 3 naming it; nothing recorded, nothing touched anywhere.
    let j4 = dir.path().join("unreachable.jsonl");
    let closed = format!("tcp://127.0.0.1:{}", crate::support::engine::free_port());
    let run = Bin::new("inject-fault")
        .no_docker_env()
        .env("DOCKER_HOST", &closed)
        .args(["stop", "--container", &web])
        .journal(&j4)
        .code(3);
    assert!(run.stderr.contains(&closed), "{}", run.stderr);
    assert!(planned(&j4).is_empty());
    // Misconfigured TLS (no certificates where DOCKER_CERT_PATH says): exit 3 naming the file.
    let run = Bin::new("inject-fault")
        .no_docker_env()
        .env("DOCKER_HOST", &engine.tcp)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", dir.path())
        .args(["stop", "--container", &web])
        .journal(&j4)
        .code(3);
    assert!(run.stderr.contains("ca.pem is missing"), "{}", run.stderr);
    // TLS required by the engine but not configured: refused by the engine, exit 3.
    Bin::new("inject-fault")
        .no_docker_env()
        .env("DOCKER_HOST", &engine.tcp)
        .args(["stop", "--container", &web])
        .journal(&j4)
        .code(3);
    assert!(planned(&j4).is_empty());
    assert!(remote(&engine, &web).running);

    // 5. Process and namespace faults are local-only: exit 2 with a remote engine, and the
    //    local process is not stopped.
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("sleep");
    let run = with_env(Bin::new("inject-fault"), &tls)
        .args(["pause", "--pid", &sleeper.id().to_string()])
        .journal(&j4)
        .code(2);
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", sleeper.id())).expect("stat");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(run.stderr.contains("local-only"), "{}", run.stderr);
    assert!(
        !stat.contains(") T "),
        "the local process was stopped: {stat}"
    );
    let run = with_env(Bin::new("inject-fault"), &tls)
        .args([
            "partition",
            "--netns",
            "dk-issue-14-none",
            "--to",
            "10.0.0.0/8",
        ])
        .journal(&j4)
        .code(2);
    assert!(run.stderr.contains("local-only"), "{}", run.stderr);

    // 6. doctor on that engine finds no helper left and no open fault; a helper a killed
    //    injector left behind (made here with the labels a helper carries) is found and removed.
    //    doctor looks at the whole machine: no other test's killed fault meanwhile.
    let census = crate::support::census();
    with_env(Bin::new("inject-fault"), &tls)
        .args(["doctor"])
        .journal(&j2)
        .succeeds();
    engine.docker(&[
        "create",
        "--name",
        "dk-issue-14-stale-helper",
        "--label",
        "drillkit.helper=kill",
        "--label",
        "drillkit.fault=f-0000dead",
        dk::BUSYBOX,
        "true",
    ]);
    with_env(Bin::new("inject-fault"), &tls)
        .args(["doctor"])
        .journal(&j2)
        .code(1)
        .stderr_has("helper-container");
    with_env(Bin::new("inject-fault"), &tls)
        .args(["doctor", "--fix"])
        .journal(&j2)
        .succeeds();
    assert!(!engine.docker_ok(&["inspect", "dk-issue-14-stale-helper"]));
    drop(census);

    // 7. A scenario names the second engine (`engines:` + `engine:` on the target and the
    //    probe); `drill plan` shows it per step and `drill run` with no DOCKER_* set crashes the
    //    remote web, whose restart policy brings it back.
    let file = dir.path().join("two-engines.yaml");
    std::fs::write(
        &file,
        "name: dk-issue-14-two-engines\n\
         engines:\n  dr:\n    host: ${DR_HOST}\n    cert_path: ${DR_CERTS}\n\
         targets:\n  web:\n    container: ${WEB}\n    engine: dr\n\
         preflight:\n  - docker: ${WEB}\n    engine: dr\n\
         faults:\n  - action: crash\n    target: web\n\
         recovery:\n  timeout: 30s\n  interval: 100ms\n  consecutive: 2\n  probes:\n    - docker: ${WEB}\n      engine: dr\n\
         restore:\n  - revert: all\n",
    )
    .expect("scenario");
    let scenario_env = |b: Bin| {
        b.no_docker_env()
            .env("DR_HOST", &engine.tcp)
            .env("DR_CERTS", &engine.certs)
            .env("WEB", &web)
            .env("DRILL_REAPER_SOCKET", &engine.sock)
    };
    let plan = scenario_env(Bin::new("drill"))
        .arg("plan")
        .arg(&file)
        .succeeds();
    let on_dr = format!("[engine dr: {} (TLS)]", engine.tcp);
    assert!(
        plan.stdout
            .contains(&format!("inject crash on container {web} {on_dr}")),
        "{}",
        plan.stdout
    );
    let before = remote(&engine, &web);
    let out = dir.path().join("out");
    scenario_env(Bin::new("drill"))
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .current_dir(dir.path())
        .succeeds();
    let after = wait_remote(&engine, &web, "restarted by the drill", |r| r.running);
    assert_eq!(after.restart_count, before.restart_count + 1, "{after:?}");
    let p = planned(&out.join("journal.jsonl"));
    assert_eq!(p[0]["engine"]["host"], engine.tcp.as_str());

    // The local web was never touched: same process, same restart count, still running.
    let local_after = local.state();
    assert_eq!(local_after.pid, local_before.pid, "local web was touched");
    assert_eq!(local_after.restart_count, local_before.restart_count);
    assert_eq!(local_after.started_at, local_before.started_at);
    assert!(local_after.running && !local_after.paused);
    let r = remote(&engine, &web);
    assert!(r.running, "{r:?} {}", r.status);
}

/// Reaper containers (any state) of these faults on the second engine.
fn reapers_on(e: &Engine, faults: &[String]) -> Vec<String> {
    faults
        .iter()
        .flat_map(|f| {
            let args = crate::support::docker::reaper_ps_args(Some(f));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            crate::support::docker::names(&e.docker(&args))
        })
        .collect()
}

/// `inject-fault ACTION --container web --deadline 8s` on the second engine, `kill -9` of the
/// injector and `rm` of the journal: web runs again within 25 s (printed: how long after the
/// deadline), and no drillkit container or process is left.
fn dead_man_on(e: &Engine, env: &[(String, String)], web: &str, journal: &Path, action: &str) {
    let mut injector = with_env(Bin::new("inject-fault"), env)
        .args([
            action,
            "--container",
            web,
            "--timeout",
            "1s",
            "--duration",
            "10m",
            "--deadline",
            "8s",
        ])
        .journal(journal)
        .spawn();
    let started = Instant::now();
    let fault = crate::dead_man::planned_fault(journal);
    let armed = dk::journal_events(journal)
        .into_iter()
        .find(|x| x["event"] == "reaper_armed")
        .expect("reaper_armed");
    assert_eq!(armed["reaper"], "container", "{armed}");
    assert_eq!(armed["socket"], e.sock.display().to_string(), "{armed}");
    let deadline_at = dk::journal_events(journal)
        .into_iter()
        .find(|x| x["event"] == "fault_planned")
        .and_then(|x| x["deadline"].as_str().map(str::to_string))
        .expect("deadline");
    wait_remote(e, web, "faulted", |r| {
        if action == "pause" {
            r.paused
        } else {
            !r.running
        }
    });
    let mine = [fault.clone()];
    assert_eq!(
        reapers_on(e, &mine).len(),
        1,
        "one reaper container on the engine"
    );
    injector.kill().expect("kill -9");
    let _ = injector.wait();
    std::fs::remove_file(journal).expect("rm the journal");
    let back = wait_remote(e, web, "running again", |r| r.running && !r.paused);
    let took = started.elapsed();
    let late = chrono::Utc::now()
        .signed_duration_since(chrono::DateTime::parse_from_rfc3339(&deadline_at).expect("rfc3339"))
        .num_milliseconds();
    eprintln!(
        "timing: remote {action}: running again {took:?} after the injector started, seen {late} ms after the deadline"
    );
    assert!(took < Duration::from_secs(25), "{took:?} {back:?}");
    let until = Instant::now() + Duration::from_secs(10);
    while !reapers_on(e, &mine).is_empty()
        || !crate::dead_man::reaper_containers_of(&fault).is_empty()
    {
        assert!(
            Instant::now() < until,
            "reaper container left: {:?}",
            reapers_on(e, &mine)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
