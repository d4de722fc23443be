//! Guards: production is refused without `--allow-production` (flag or scenario), a container
//! without the required opt-in label is refused (flag, environment, scenario `safety:`), and
//! `--dry-run` of every fault changes nothing — checked by comparing the state before and after.

use crate::support::netns;

use crate::support::cmd::Bin;
use crate::support::docker as dk;

fn inspect(name: &str) -> String {
    dk::docker([
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.Paused}} {{.State.Pid}} {{json .NetworkSettings.Networks}}",
        name,
    ])
}

#[test]
fn production_is_refused_without_allow_production() {
    let _host = crate::support::host_room("guards");
    require!(Docker);
    let c = dk::sleeper("no").run_up();
    let dir = tempfile::tempdir().expect("tmp");
    let j = dir.path().join("j.jsonl");
    let before = inspect(&c.name);
    Bin::new("inject-fault")
        .args(["pause", "--container", &c.name])
        .env("DRILL_ENVIRONMENT", "production")
        .journal(&j)
        .code(2)
        .stderr_has("--allow-production");
    assert_eq!(inspect(&c.name), before);
    Bin::new("inject-fault")
        .args([
            "pause",
            "--container",
            &c.name,
            "--allow-production",
            "--duration",
            "100ms",
        ])
        .env("DRILL_ENVIRONMENT", "production")
        .journal(&j)
        .succeeds();
    assert_eq!(inspect(&c.name), before);

    let scenario = dir.path().join("prod.yaml");
    std::fs::write(&scenario, format!("name: prod\nenvironment: production\nfaults:\n  - action: pause\n    target: {{ container: {} }}\n", c.name)).expect("write");
    Bin::new("drill")
        .args(["run"])
        .arg(&scenario)
        .args(["--out"])
        .arg(dir.path().join("out"))
        .code(2)
        .stderr_has("--allow-production");
    assert_eq!(inspect(&c.name), before);
}

#[test]
fn a_container_without_the_opt_in_label_is_refused() {
    let _host = crate::support::host_room("guards");
    require!(Docker);
    let c = dk::sleeper("no").run_up();
    let opted = dk::sleeper("no").label("drill.opt-in=yes").run_up();
    let dir = tempfile::tempdir().expect("tmp");
    let j = dir.path().join("j.jsonl");
    let before = inspect(&c.name);
    Bin::new("inject-fault")
        .args([
            "pause",
            "--container",
            &c.name,
            "--require-label",
            "drill.opt-in=yes",
        ])
        .journal(&j)
        .code(2)
        .stderr_has("does not carry the label drill.opt-in=yes");
    Bin::new("inject-fault")
        .args(["partition", "--container", &c.name])
        .env("DRILL_REQUIRE_LABEL", "drill.opt-in=yes")
        .journal(&j)
        .code(2)
        .stderr_has("does not carry the label");
    assert_eq!(inspect(&c.name), before);
    Bin::new("inject-fault")
        .args([
            "pause",
            "--container",
            &opted.name,
            "--require-label",
            "drill.opt-in=yes",
            "--duration",
            "100ms",
        ])
        .journal(&j)
        .succeeds();

    let scenario = dir.path().join("label.yaml");
    std::fs::write(&scenario, format!("name: label\nsafety:\n  require_label: drill.opt-in=yes\nfaults:\n  - action: pause\n    target: {{ container: {} }}\n", c.name)).expect("write");
    Bin::new("drill")
        .args(["run"])
        .arg(&scenario)
        .args(["--out"])
        .arg(dir.path().join("out"))
        .code(2)
        .stderr_has("does not carry the label");
    assert_eq!(inspect(&c.name), before);
}

#[test]
fn dry_run_of_every_fault_changes_nothing() {
    let _host = crate::support::host_room("guards");
    require!(Docker, Netns);
    let c = dk::sleeper("no").run_up();
    let ns = netns::Ns::new(7);
    let fsdir = tempfile::tempdir().expect("tmp");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(fsdir.path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(mounted, "mount tmpfs");
    let dir = tempfile::tempdir().expect("tmp");
    let j = dir.path().join("j.jsonl");
    let fs = fsdir.path().display().to_string();
    let state = || {
        let files: Vec<String> = std::fs::read_dir(fsdir.path())
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        format!(
            "{}\n{}\n{:?}\n{}",
            inspect(&c.name),
            ns.state(),
            files,
            std::fs::read_to_string(&j).unwrap_or_default()
        )
    };
    let before = state();
    let cases: Vec<Vec<&str>> = vec![
        vec!["crash", "--container", &c.name],
        vec!["stop", "--container", &c.name],
        vec!["kill", "--container", &c.name],
        vec!["pause", "--container", &c.name],
        vec!["restart", "--container", &c.name],
        vec!["partition", "--container", &c.name],
        vec!["partition", "--netns", &ns.name, "--to", "10.0.2.0/24"],
        vec![
            "degrade", "--netns", &ns.name, "--loss", "10%", "--rate", "1mbit",
        ],
        vec![
            "degrade",
            "--netns",
            &ns.name,
            "--delay",
            "100ms",
            "--to",
            "10.0.2.1:5432",
        ],
        vec!["fill-disk", "--path", &fs],
    ];
    for args in cases {
        let r = Bin::new("inject-fault")
            .args(&args)
            .arg("--dry-run")
            .journal(&j)
            .succeeds();
        r.stderr_has("would ");
        assert_eq!(state(), before, "dry-run {args:?} changed something");
    }
    let _ = std::process::Command::new("umount")
        .arg(fsdir.path())
        .status();
}
