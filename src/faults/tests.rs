//! Planning without a system: what each fault would do and how it would be undone, for every
//! kind of target. None of these need root, Docker or a network namespace.

use super::netns::Netns;
use super::target::Target;
use super::*;
use crate::exit::Code;
use nix::sys::signal::Signal;
use std::time::Duration;

fn container() -> Target {
    Target::Container {
        id: "0123456789abcdef0123".into(),
        name: "api".into(),
    }
}

fn process() -> Target {
    Target::Process {
        pid: 4242,
        start_time: 77,
        name: "postgres".into(),
    }
}

fn netns() -> Target {
    Target::Netns {
        netns: Netns::Named { name: "app".into() },
    }
}

/// The first fault of a one-fault scenario, as the runner builds it.
fn from_yaml(fault: &str) -> std::result::Result<Fault, String> {
    let text = format!("name: t\nfaults:\n  - target: {{ container: api }}\n{fault}");
    let s: crate::scenario::Scenario = serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())?;
    Fault::from_spec(&s.faults[0], None)
}

#[test]
fn container_faults_are_one_api_call_undone_by_start_or_unpause() {
    let t = Duration::from_secs(7);
    let cases = [
        (
            Fault::Crash,
            "kill(<State.Pid of 0123456789ab>, SIGKILL) from the host",
            "docker_start",
        ),
        (
            Fault::Stop { timeout: t },
            "POST /containers/0123456789ab/stop?t=7",
            "docker_start",
        ),
        (
            Fault::Kill {
                signal: Signal::SIGTERM,
            },
            "POST /containers/0123456789ab/kill?signal=SIGTERM",
            "docker_start",
        ),
        (
            Fault::Pause,
            "POST /containers/0123456789ab/pause",
            "docker_unpause",
        ),
        (
            Fault::Restart { timeout: t },
            "POST /containers/0123456789ab/restart?t=7",
            "docker_start",
        ),
    ];
    for (fault, call, undo) in cases {
        let step = plan::plan_one(&container(), &fault).expect("plans");
        assert_eq!(step.call, call);
        assert_eq!(step.action(), fault.action());
        assert!(step.ops.is_empty());
        assert!(
            step.id.starts_with("f-") && step.id.len() == 10,
            "{}",
            step.id
        );
        let json = serde_json::to_value(&step.undo).expect("undo is JSON");
        assert_eq!(json["kind"], undo, "{json}");
        assert!(step.undo.needs_docker());
    }
}

#[test]
fn process_faults_say_honestly_what_a_signal_cannot_undo() {
    let crash = plan::plan_one(&process(), &Fault::Crash).expect("crash");
    assert_eq!(crash.call, "kill(4242, SIGKILL)");
    assert!(matches!(crash.undo, Undo::Nothing { .. }));
    let stop = plan::plan_one(
        &process(),
        &Fault::Stop {
            timeout: Duration::from_secs(3),
        },
    )
    .expect("stop");
    assert_eq!(stop.call, "kill(4242, SIGTERM), SIGKILL after 3s");
    assert!(matches!(&stop.undo, Undo::Manual { hint } if hint.contains("postgres")));
    let pause = plan::plan_one(&process(), &Fault::Pause).expect("pause");
    assert_eq!(
        pause.undo,
        Undo::ProcessContinue {
            pid: 4242,
            start_time: 77
        }
    );
    assert!(!pause.undo.needs_docker());
    let restart = plan::plan_one(
        &process(),
        &Fault::Restart {
            timeout: DEFAULT_STOP_TIMEOUT,
        },
    )
    .expect_err("restart of a process");
    assert_eq!(restart.code(), Code::BadInput);
}

#[test]
fn single_call_faults_refuse_places() {
    for t in [
        netns(),
        Target::Path {
            path: "/srv".into(),
        },
    ] {
        let e = plan::plan_one(&t, &Fault::Crash).expect_err("refused");
        assert_eq!(e.code(), Code::BadInput, "{e}");
        assert!(e.to_string().contains("containers or processes"), "{e}");
    }
}

#[tokio::test]
async fn an_iptables_partition_is_one_tagged_rule_per_destination_undone_by_deleting_it() {
    let fault = Fault::Partition(partition::Options {
        to: vec!["10.0.2.0/24".into(), "10.0.3.5:5432".into()],
        ..Default::default()
    });
    let steps = plan(&[netns()], &fault, None).await.expect("plans");
    let step = &steps[0];
    assert_eq!(step.ops.len(), 2);
    let Op::Run(first) = &step.ops[0] else {
        panic!("a command: {:?}", step.ops[0])
    };
    let first = &first.argv();
    let comment = format!("drillkit:{}", step.id);
    assert_eq!(first[..3], ["nsenter", "--net=/run/netns/app", "--"]);
    assert!(first.contains(&comment), "{first:?}");
    assert!(
        first.windows(2).any(|w| w == ["-d", "10.0.2.0/24"]),
        "{first:?}"
    );
    assert!(step.call.contains("--dport 5432"), "{}", step.call);
    let Undo::All { steps: undos } = &step.undo else {
        panic!("two rules, two undos: {:?}", step.undo)
    };
    assert_eq!(undos.len(), 2);
    for u in undos {
        let Undo::IptablesDelete { netns, rule, .. } = u else {
            panic!("{u:?}")
        };
        assert_eq!(*netns, Netns::Named { name: "app".into() });
        assert!(rule.contains(&comment));
    }
    assert!(!step.undo.needs_docker());
    // The undo a person reads names each rule, last applied first.
    assert!(step.undo.describe().starts_with(
        "nsenter --net=/run/netns/app -- iptables -w 5 -t filter -D OUTPUT -d 10.0.3.5"
    ));
}

#[tokio::test]
async fn partitions_refuse_what_they_cannot_cut() {
    let plan_err = |t: Target, o: partition::Options| async move {
        plan(&[t], &Fault::Partition(o), None)
            .await
            .expect_err("refused")
    };
    let no_to = plan_err(netns(), partition::Options::default()).await;
    assert!(no_to.to_string().contains("needs --to"), "{no_to}");
    let docker_on_ns = plan_err(
        netns(),
        partition::Options {
            method: partition::Method::Docker,
            ..Default::default()
        },
    )
    .await;
    assert!(
        docker_on_ns.to_string().contains("--method docker"),
        "{docker_on_ns}"
    );
    let both = plan_err(
        netns(),
        partition::Options {
            to: vec!["10.0.0.1".into()],
            networks: vec!["backend".into()],
            ..Default::default()
        },
    )
    .await;
    assert!(both.to_string().contains("--network"), "{both}");
    let bad = plan_err(
        netns(),
        partition::Options {
            to: vec!["10.0.0.0/40".into()],
            ..Default::default()
        },
    )
    .await;
    assert!(bad.to_string().contains("prefix length"), "{bad}");
    for e in [no_to, docker_on_ns, both, bad] {
        assert_eq!(e.code(), Code::BadInput);
    }
    let on_process = plan_err(
        process(),
        partition::Options {
            to: vec!["10.0.0.1".into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(on_process.code(), Code::BadInput);
}

#[test]
fn auto_partition_disconnects_a_container_unless_told_where_to_cut() {
    let auto = partition::Options::default();
    assert_eq!(auto.method_for(&container()), partition::Method::Docker);
    assert_eq!(auto.method_for(&netns()), partition::Method::Iptables);
    let to = partition::Options {
        to: vec!["10.0.0.1".into()],
        ..Default::default()
    };
    assert_eq!(to.method_for(&container()), partition::Method::Iptables);
    assert_eq!("IPTABLES".parse(), Ok(partition::Method::Iptables));
    assert!("nft".parse::<partition::Method>().is_err());
}

#[test]
fn degrade_methods_refuse_what_they_cannot_do() {
    let s = |delay: bool, loss: bool, to: Vec<partition::Dest>| degrade::Settings {
        delay: delay.then_some(Duration::from_millis(100)),
        loss: loss.then_some(0.1),
        to,
        ..Default::default()
    };
    let tcp = |port| partition::Dest {
        addr: "10.0.0.9".into(),
        v6: false,
        port: Some(port),
    };
    let e = degrade::resolve(degrade::Method::Iptables, &s(true, false, vec![tcp(80)]))
        .expect_err("iptables cannot delay");
    assert_eq!(e.code(), Code::BadInput);
    let e = degrade::resolve(
        degrade::Method::Proxy,
        &s(true, false, vec![tcp(80), tcp(81)]),
    )
    .expect_err("one destination");
    assert!(e.to_string().contains("exactly one"), "{e}");
    assert_eq!(
        degrade::resolve(degrade::Method::Proxy, &s(true, false, vec![tcp(80)])).expect("ok"),
        degrade::Method::Proxy
    );
    assert_eq!(
        degrade::resolve(degrade::Method::Iptables, &s(false, true, vec![])).expect("loss"),
        degrade::Method::Iptables
    );
    assert!(degrade::resolve(degrade::Method::Auto, &s(false, false, vec![])).is_err());
    let jitter = degrade::Settings {
        jitter: Some(Duration::from_millis(5)),
        loss: Some(0.1),
        ..Default::default()
    };
    assert!(degrade::resolve(degrade::Method::Iptables, &jitter).is_err());
}

#[tokio::test]
async fn degrade_loss_without_tc_is_a_statistic_rule_per_destination() {
    let ns = Netns::Named { name: "app".into() };
    let settings = degrade::Settings {
        loss: Some(0.25),
        devs: vec!["eth0".into()],
        ..Default::default()
    };
    let pieces = degrade::plan(
        &ns,
        None,
        "f-0000abcd",
        degrade::Method::Iptables,
        &settings,
    )
    .await
    .expect("plans without reading qdiscs");
    assert_eq!(pieces.len(), 1);
    let (degrade::Piece::Cmd(cmd), Undo::IptablesDelete { rule, .. }) = &pieces[0] else {
        panic!("{:?}", pieces[0])
    };
    let argv = &cmd.argv();
    assert!(
        argv.windows(2).any(|w| w == ["--probability", "0.2500"]),
        "{argv:?}"
    );
    assert!(rule.contains(&"drillkit:f-0000abcd".to_string()));
    assert!(rule.windows(3).any(|w| w == ["!", "-o", "lo"]), "{rule:?}");
    let host = degrade::plan(
        &Netns::Host,
        None,
        "f-1",
        degrade::Method::Iptables,
        &degrade::Settings {
            loss: Some(0.1),
            ..Default::default()
        },
    )
    .await
    .expect_err("the host's interfaces are never guessed");
    assert!(host.to_string().contains("--dev"), "{host}");
    assert_eq!(degrade::rate_bits("1mbit").expect("rate"), 1_000_000);
    assert_eq!(degrade::rate_bits("2mbps").expect("rate"), 16_000_000);
    assert!(degrade::rate_bits("1kbit").is_err());
    assert!(degrade::rate_bits("fast").is_err());
}

#[test]
fn scenario_faults_become_faults_or_name_the_key_to_fix() {
    assert_eq!(
        from_yaml("    action: kill\n    signal: TERM\n"),
        Ok(Fault::Kill {
            signal: Signal::SIGTERM
        })
    );
    assert_eq!(
        from_yaml("    action: stop\n"),
        Ok(Fault::Stop {
            timeout: DEFAULT_STOP_TIMEOUT
        })
    );
    assert_eq!(
        from_yaml("    action: restart\n    timeout: 3s\n"),
        Ok(Fault::Restart {
            timeout: Duration::from_secs(3)
        })
    );
    let Ok(Fault::FillDisk(f)) = from_yaml("    action: fill-disk\n    to: 95%\n") else {
        panic!("fill-disk")
    };
    assert_eq!(f.goal, fill::Goal::Percent(0.95));
    let Ok(Fault::Partition(p)) =
        from_yaml("    action: partition\n    method: iptables\n    to: [10.0.0.0/8]\n")
    else {
        panic!("partition")
    };
    assert_eq!(p.method, partition::Method::Iptables);
    let errors = [
        ("    action: degrade\n", "action:"),
        (
            "    action: degrade\n    jitter: 5ms\n    loss: 1%\n",
            "jitter:",
        ),
        ("    action: degrade\n    rate: fast\n", "rate:"),
        (
            "    action: degrade\n    loss: 1%\n    method: tc\n",
            "method:",
        ),
        ("    action: kill\n    signal: SIGNOPE\n", "signal:"),
        (
            "    action: fill-disk\n    leave: 1GiB\n    to: 90%\n",
            "to:",
        ),
        ("    action: fill-disk\n    to: [90%, 95%]\n", "to:"),
    ];
    for (yaml, key) in errors {
        let e = from_yaml(yaml).expect_err(yaml);
        assert!(e.starts_with(key), "{yaml}: {e}");
    }
}

#[test]
fn fill_disk_refuses_the_root_and_journal_filesystems_unless_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = |root: bool, journal: Option<std::path::PathBuf>, journal_ok: bool| fill::Options {
        goal: fill::Goal::Leave(0),
        mount: None,
        allow_root_fs: root,
        allow_journal_fs: journal_ok,
        journal,
    };
    let on_root = std::fs::metadata("/")
        .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
        .ok()
        == std::fs::metadata(dir.path())
            .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
            .ok();
    if on_root {
        let e = fill::plan(dir.path(), "f-1", &opts(false, None, false)).expect_err("root fs");
        assert!(e.to_string().contains("--allow-root-fs"), "{e}");
        assert_eq!(e.code(), Code::BadInput);
    }
    let journal = dir.path().join("drill").join("journal.jsonl");
    let e = fill::plan(dir.path(), "f-1", &opts(true, Some(journal.clone()), false))
        .expect_err("journal fs");
    assert!(e.to_string().contains("--allow-journal-fs"), "{e}");
    let (file, _) =
        fill::plan(dir.path(), "f-1", &opts(true, Some(journal), true)).expect("allowed");
    assert_eq!(file, dir.path().join(".drillkit-fill-f-1"));
    assert!(!file.exists(), "planning touches nothing");
    let not_dir = dir.path().join("file");
    std::fs::write(&not_dir, b"x").expect("write");
    let e = fill::plan(&not_dir, "f-1", &opts(true, None, false)).expect_err("not a dir");
    assert_eq!(e.code(), Code::BadInput);
}

#[test]
fn the_journal_shape_of_an_undo_is_stable() {
    // Journals written by earlier versions must still be revertible.
    let json = r#"{"kind":"iptables_delete","netns":{"kind":"named","name":"app"},"tool":"iptables","table":"filter","chain":"OUTPUT","rule":["-d","10.0.0.1","-j","DROP"]}"#;
    let u: Undo = serde_json::from_str(json).expect("reads");
    assert_eq!(serde_json::to_string(&u).expect("writes"), json);
    let start: Undo =
        serde_json::from_str(r#"{"kind":"docker_start","id":"abc","name":"web"}"#).expect("reads");
    assert_eq!(
        start.describe(),
        "POST /containers/abc/start if web is not running"
    );
}
