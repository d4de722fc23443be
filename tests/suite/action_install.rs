//! Releases and how the composite action installs them (issue 13): scripts/package.sh packs
//! the same bytes twice and static binaries; under act (a real runner, host mode, offline) the
//! action installs a release served from a loopback HTTP server without cargo and runs the demo
//! drill, refuses a tampered archive naming the checksum, and builds from source only when the
//! server has no release.
//!
//! None of this compiles drillkit again when the suite runs through scripts/test.sh: the suite
//! is the release build, so packing only strips and tars (one pack per run, shared), and the
//! source build under act is cargo finding everything fresh (support/release.rs).

use crate::support::act::Act;
use crate::support::release::{assert_nothing_compiled, cargo_target_dir, package, root};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BINS: [&str; 6] = [
    "drill",
    "inject-fault",
    "wait-recovery",
    "verify-backup",
    "measure-rto",
    "report",
];
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit of this checkout (what `--version` of a pack or source build shows).
fn head_commit() -> String {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(root())
        .output()
        .expect("git");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One packed release for every test of this run (packing is a cargo build, then strip and
/// tar). It lives in the target dir, which CI keeps between runs: the packs of runs that are
/// over (their process is gone) are removed first.
fn release() -> &'static Path {
    static PACKED: OnceLock<PathBuf> = OnceLock::new();
    PACKED.get_or_init(|| {
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("action-install-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = tmp.join(format!("action-install-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let started = Instant::now();
        let archive = package(&dir);
        eprintln!(
            "BENCH package.sh (first pack of this run): {:.1}s",
            started.elapsed().as_secs_f64()
        );
        archive
    })
}

fn file_name(p: &Path) -> String {
    p.file_name().expect("name").to_string_lossy().into_owned()
}

#[test]
fn package_sh_is_reproducible_and_static() {
    let a = release();
    let other = tempfile::tempdir().expect("tmp");
    let started = Instant::now();
    let b = package(other.path());
    eprintln!(
        "BENCH package.sh (second pack): {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(file_name(a), file_name(&b));
    assert!(
        std::fs::read(a).expect("a") == std::fs::read(&b).expect("b"),
        "two packs of the same commit differ: {} vs {}",
        a.display(),
        b.display()
    );
    let sums = std::fs::read_to_string(format!("{}.sha256", a.display())).expect("sha256");
    assert!(
        sums.ends_with(&format!("  {}\n", file_name(a))),
        "sha256sum format: {sums:?}"
    );
    let check = Command::new("sha256sum")
        .args(["-c", &format!("{}.sha256", file_name(a))])
        .current_dir(a.parent().expect("dir"))
        .output()
        .expect("sha256sum");
    assert!(check.status.success(), "sha256sum -c");

    // The entries: one folder, sorted, owned by 0:0 without names, one fixed time.
    let list = Command::new("tar")
        .args(["--numeric-owner", "-tvzf"])
        .arg(a)
        .output()
        .expect("tar");
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    let top = file_name(a).trim_end_matches(".tar.gz").to_string();
    for f in BINS.iter().chain(&["LICENSE", "README.md"]) {
        assert!(
            list.contains(&format!("{top}/{f}\n")),
            "{f} missing:\n{list}"
        );
    }
    let times: std::collections::BTreeSet<_> = list
        .lines()
        .map(|l| {
            let cols: Vec<_> = l.split_whitespace().collect();
            assert_eq!(cols[1], "0/0", "owner: {l}");
            (cols[3].to_string(), cols[4].to_string())
        })
        .collect();
    assert_eq!(times.len(), 1, "one mtime for every entry:\n{list}");

    // Static: no NEEDED shared library, and it runs with an empty environment.
    let dir = tempfile::tempdir().expect("tmp");
    let x = Command::new("tar")
        .arg("-xzf")
        .arg(a)
        .arg("-C")
        .arg(dir.path())
        .status()
        .expect("tar x");
    assert!(x.success());
    let commit = head_commit();
    for b in BINS {
        let bin = dir.path().join(&top).join(b);
        let elf = Command::new("readelf")
            .arg("-d")
            .arg(&bin)
            .output()
            .expect("readelf");
        let dynamic = String::from_utf8_lossy(&elf.stdout);
        assert!(
            !dynamic.contains("(NEEDED)"),
            "{b} needs shared libraries:\n{dynamic}"
        );
        let v = Command::new(&bin)
            .arg("--version")
            .env_clear()
            .output()
            .expect(b);
        assert_eq!(
            String::from_utf8_lossy(&v.stdout).trim(),
            format!("{b} {VERSION} (commit {commit})"),
            "{b} --version"
        );
    }
}

/// busybox httpd serving `dir` on a free loopback port; stopped on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &Path) -> Option<Server> {
        let busybox = Path::new("/bin/busybox");
        if !crate::support::has(crate::support::Fixture::Busybox) {
            return None;
        }
        let port = crate::support::docker::free_port();
        let child = Command::new(busybox)
            .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start busybox httpd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "httpd did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A release folder as the action expects it: ROOT/vVERSION/ARCHIVE{,.sha256}.
fn serve_dir(archive: &Path, tamper: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let v = dir.path().join(format!("v{VERSION}"));
    std::fs::create_dir(&v).expect("mkdir");
    let name = file_name(archive);
    let mut bytes = std::fs::read(archive).expect("archive");
    if tamper {
        let i = bytes.len() / 2;
        bytes[i] ^= 0x01;
    }
    std::fs::write(v.join(&name), bytes).expect("write");
    std::fs::copy(
        format!("{}.sha256", archive.display()),
        v.join(format!("{name}.sha256")),
    )
    .expect("sha256");
    dir
}

/// The demo scenario on a free port (the drill's demo service would collide with another
/// test's on the fixed one).
fn demo_scenario(dir: &Path) -> PathBuf {
    let port = crate::support::docker::free_port();
    let text = std::fs::read_to_string(root().join("scenarios/demo.yaml"))
        .expect("demo")
        .replace("127.0.0.1:18080", &format!("127.0.0.1:{port}"));
    let p = dir.join("demo.yaml");
    std::fs::write(&p, text).expect("write scenario");
    p
}

/// `cargo` and `rustc` that leave a mark and fail: the release install must not call them.
fn no_toolchain(dir: &Path) -> (PathBuf, PathBuf) {
    let bin = dir.join("no-toolchain");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let mark = dir.join("toolchain-called");
    for t in ["cargo", "rustc"] {
        let p = bin.join(t);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho \"{t} $*\" >>'{}'\nexit 97\n",
                mark.display()
            ),
        )
        .expect("write shim");
        let _ = Command::new("chmod").arg("+x").arg(&p).status();
    }
    (bin, mark)
}

fn path_with(first: &Path) -> String {
    format!(
        "{}:{}",
        first.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn the_action_installs_a_local_release_in_seconds_and_runs_the_demo() {
    require!(Act);
    let served = serve_dir(release(), false);
    let Some(server) = Server::start(served.path()) else {
        return;
    };
    let work = tempfile::tempdir().expect("tmp");
    let (shims, mark) = no_toolchain(work.path());
    let run = Act::new("workflow_dispatch", "tests/workflows/action-install.yml")
        .input("download-url", &server.url)
        .input("scenario", demo_scenario(work.path()))
        .env("DRILLKIT_INSTALL_DIR", work.path().join("bin"))
        .env("PATH", path_with(&shims))
        .run();
    run.assert_success();
    assert!(
        !mark.exists(),
        "the release install called the toolchain: {}",
        std::fs::read_to_string(&mark).unwrap_or_default()
    );
    assert_eq!(
        run.output("drillkit/release", "installed").as_deref(),
        Some("true")
    );
    // act logs nothing for a skipped step.
    assert_eq!(run.step_result("drillkit/source"), None);
    assert_eq!(run.step_result("drillkit/build"), None);
    assert_eq!(run.output("drillkit", "result").as_deref(), Some("passed"));
    let install = run
        .step_time("drillkit/release")
        .expect("install step time");
    eprintln!(
        "BENCH act release install: {:.2}s (act run {:.1}s)",
        install.as_secs_f64(),
        run.elapsed.as_secs_f64()
    );
    assert!(
        install <= Duration::from_secs(10),
        "install took {install:?}"
    );
    for b in BINS {
        assert!(work.path().join("bin").join(b).is_file(), "{b} installed");
    }
    assert!(
        run.summary().contains("demo-api-crash"),
        "step summary: {}",
        run.summary()
    );
}

#[test]
fn a_tampered_archive_fails_the_install_naming_the_checksum() {
    require!(Act);
    let served = serve_dir(release(), true);
    let Some(server) = Server::start(served.path()) else {
        return;
    };
    let work = tempfile::tempdir().expect("tmp");
    let (shims, mark) = no_toolchain(work.path());
    let run = Act::new("workflow_dispatch", "tests/workflows/action-install.yml")
        .input("download-url", &server.url)
        .input("scenario", demo_scenario(work.path()))
        .env("DRILLKIT_INSTALL_DIR", work.path().join("bin"))
        .env("PATH", path_with(&shims))
        .run();
    assert!(
        !run.success(),
        "a tampered archive was accepted:\n{}",
        run.log()
    );
    assert_eq!(
        run.step_result("drillkit/release"),
        Some("failure".into()),
        "{}",
        run.log()
    );
    let said = run.step_log("drillkit/release");
    assert!(
        said.contains("SHA-256 checksum mismatch"),
        "the install step does not name the checksum:\n{said}"
    );
    let errors = run.annotations("error");
    assert!(
        errors
            .iter()
            .any(|(step, m)| step == "drillkit/release" && m.contains("checksum")),
        "no error annotation names the checksum: {errors:?}"
    );
    // Never a fallback: no build, nothing installed, no drill.
    assert!(!mark.exists(), "fell back to the toolchain");
    assert!(!work.path().join("bin/drill").exists());
    assert_ne!(run.step_result("drillkit/run"), Some("success".into()));
    assert_eq!(
        run.output("drillkit/finish", "result").as_deref(),
        Some("error")
    );
    eprintln!(
        "BENCH act tampered archive refused: install step {:.2}s (act run {:.1}s)",
        run.step_time("drillkit/release")
            .unwrap_or_default()
            .as_secs_f64(),
        run.elapsed.as_secs_f64()
    );
}

#[test]
fn without_a_release_the_action_builds_its_own_source() {
    require!(Act);
    let served = tempfile::tempdir().expect("tmp"); // nothing: every file is a 404
    let Some(server) = Server::start(served.path()) else {
        return;
    };
    let work = tempfile::tempdir().expect("tmp");
    let run = Act::new("workflow_dispatch", "tests/workflows/action-install.yml")
        .input("download-url", &server.url)
        .input("scenario", demo_scenario(work.path()))
        .env("DRILLKIT_INSTALL_DIR", work.path().join("bin"))
        // This checkout (the action's copy under act is the same files at a new path, which
        // cargo would compile again) and this run's target dir: the build is incremental, a
        // no-op when the suite is the release build. A target dir the job sets is the caller's
        // to cache, so the cache step stays out of the way.
        .env("DRILLKIT_SOURCE_DIR", root())
        .env("CARGO_TARGET_DIR", cargo_target_dir())
        .run();
    run.assert_success();
    assert_eq!(
        run.output("drillkit/release", "installed").as_deref(),
        Some("false")
    );
    let key = run.output("drillkit/source", "key").expect("cache key");
    let hash = key.rsplit('-').next().unwrap_or("");
    assert!(
        key.starts_with("drillkit-src-")
            && key.contains(&format!("-{VERSION}-"))
            && hash.len() == 32,
        "cache key {key}"
    );
    assert_eq!(
        run.output("drillkit/source", "own-target-dir").as_deref(),
        Some("true")
    );
    assert_eq!(
        run.output("drillkit/source", "installed").as_deref(),
        Some("false")
    );
    assert_eq!(
        run.step_result("drillkit/build"),
        Some("success".into()),
        "{}",
        run.log()
    );
    let built = run.step_log("drillkit/build");
    assert!(built.contains("cargo build --release --locked"), "{built}");
    assert_nothing_compiled("the action's source build", &built);
    // Installed, the commit of this checkout in --version, and the demo drill ran on it.
    let commit = head_commit();
    let v = Command::new(work.path().join("bin/drill"))
        .arg("--version")
        .output()
        .expect("installed drill");
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("drill {VERSION} (commit {commit})")
    );
    assert_eq!(run.output("drillkit", "result").as_deref(), Some("passed"));
    assert!(
        run.summary().contains("demo-api-crash"),
        "step summary: {}",
        run.summary()
    );
    eprintln!(
        "BENCH act source build install: {:.1}s (act run {:.1}s)",
        run.step_time("drillkit/build")
            .unwrap_or_default()
            .as_secs_f64(),
        run.elapsed.as_secs_f64()
    );
}

/// A fake install: six scripts that print `NAME VERSION (commit COMMIT)`.
fn fake_install(dir: &Path, version: &str, commit: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for b in BINS {
        let p = dir.join(b);
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho '{b} {version} (commit {commit})'\n"),
        )
        .expect("write");
        let _ = Command::new("chmod").arg("+x").arg(&p).status();
    }
}

fn install_script(dir: &Path, reference: &str) -> (bool, String, String) {
    let out = dir.join(format!("output-{reference}"));
    let r = Command::new("bash")
        .arg(root().join("scripts/action-install.sh"))
        .arg("release")
        .env("ACTION_PATH", root())
        .env("DRILLKIT_INSTALL_DIR", dir.join("bin"))
        .env("DRILLKIT_REF", reference)
        .env("GITHUB_OUTPUT", &out)
        .env_remove("DRILLKIT_REPO")
        .env_remove("GITHUB_ACTION_REPOSITORY")
        .env_remove("DRILLKIT_DOWNLOAD_URL")
        .output()
        .expect("run install script");
    (
        r.status.success(),
        std::fs::read_to_string(&out).unwrap_or_default(),
        String::from_utf8_lossy(&r.stderr).into_owned(),
    )
}

#[test]
fn a_cached_install_is_reused_only_with_the_same_version_and_commit() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = "a".repeat(40);
    let b = "b".repeat(40);
    fake_install(&dir.path().join("bin"), VERSION, &a);
    // Pinned to commit a: reused.
    let (ok, out, err) = install_script(dir.path(), &a);
    assert!(ok, "{err}");
    assert!(out.contains("installed=true\n"), "{out}\n{err}");
    assert!(out.contains(&format!("commit={a}\n")), "{out}");
    // Pinned to another commit: not reused (and a local checkout has no release to fetch).
    let (ok, out, err) = install_script(dir.path(), &b);
    assert!(ok, "{err}");
    assert!(out.contains("installed=false\n"), "{out}\n{err}");
    // A tag ref: any one commit, but every binary must agree on it and on the version.
    let (_, out, _) = install_script(dir.path(), "v0");
    assert!(out.contains("installed=true\n"), "{out}");
    std::fs::write(
        dir.path().join("bin/report"),
        format!("#!/bin/sh\necho 'report {VERSION} (commit {b})'\n"),
    )
    .expect("write");
    let (_, out, _) = install_script(dir.path(), "v0");
    assert!(
        out.contains("installed=false\n"),
        "mixed commits reused: {out}"
    );
    fake_install(&dir.path().join("bin"), "0.0.1", &a);
    let (_, out, _) = install_script(dir.path(), "v0");
    assert!(
        out.contains("installed=false\n"),
        "another version reused: {out}"
    );
}

#[test]
fn a_requested_version_is_fetched_by_its_own_name_and_never_built_from_this_source() {
    let served = serve_dir(release(), false);
    let Some(server) = Server::start(served.path()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let script = |mode: &str, version: &str| {
        let out = dir.path().join(format!("out-{mode}-{version}"));
        let r = Command::new("bash")
            .arg(root().join("scripts/action-install.sh"))
            .arg(mode)
            .env("ACTION_PATH", root())
            .env("DRILLKIT_VERSION", version)
            .env("DRILLKIT_DOWNLOAD_URL", &server.url)
            .env(
                "DRILLKIT_INSTALL_DIR",
                dir.path().join(format!("bin-{version}")),
            )
            .env("GITHUB_OUTPUT", &out)
            .env_remove("DRILLKIT_REPO")
            .env_remove("GITHUB_ACTION_REPOSITORY")
            .output()
            .expect("run install script");
        (
            r.status.success(),
            std::fs::read_to_string(&out).unwrap_or_default(),
            String::from_utf8_lossy(&r.stderr).into_owned(),
        )
    };
    // The served version installs, named with or without the v.
    let (ok, out, err) = script("release", &format!("v{VERSION}"));
    assert!(ok && out.contains("installed=true\n"), "{out}\n{err}");
    // Another version: its own URL (a 404 here), so no release...
    let (ok, out, err) = script("release", "9.9.9");
    assert!(ok && out.contains("installed=false\n"), "{out}\n{err}");
    assert!(err.contains("/v9.9.9/drillkit-v9.9.9-"), "{err}");
    // ...and this checkout's source is not 9.9.9: without the repository to clone its tag
    // from, the source build refuses instead of installing this source under that name.
    let (ok, _, err) = script("key", "9.9.9");
    assert!(!ok, "built another version from this source");
    assert!(err.contains("9.9.9") && err.contains(VERSION), "{err}");
}
