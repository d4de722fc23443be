//! `scripts/keep-mtimes.sh` (run by .ci/run): in a fresh clone, a tracked file whose content is
//! the same as at the last run gets that run's modification time back, so the target dir kept
//! between runs finds its build fresh; a file changed since, by a commit or by an edit not yet
//! staged, keeps the clone's time and is rebuilt.

use crate::support::release::root;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

fn git(dir: &Path, args: &[&str]) {
    crate::support::run_ok(
        Command::new("git")
            .args(["-c", "user.name=dk", "-c", "user.email=dk@example.invalid"])
            .args(args)
            .current_dir(dir),
    );
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn keep(clone: &Path, record: &Path) -> String {
    let o = Command::new(clone.join("scripts/keep-mtimes.sh"))
        .arg(record)
        .output()
        .expect("keep-mtimes.sh runs");
    assert!(
        o.status.success(),
        "keep-mtimes.sh: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn unchanged_files_get_their_last_run_time_back_and_changed_ones_keep_the_clones() {
    let tmp = tempfile::tempdir().expect("tmp");
    let origin = tmp.path().join("origin");
    std::fs::create_dir_all(origin.join("scripts")).expect("mkdir");
    std::fs::copy(
        root().join("scripts/keep-mtimes.sh"),
        origin.join("scripts/keep-mtimes.sh"),
    )
    .expect("copy the script");
    for (f, body) in [
        ("same.rs", "fn a() {}\n"),
        ("committed.rs", "fn b() {}\n"),
        ("edited.rs", "fn c() {}\n"),
        ("with space.rs", "fn d() {}\n"),
    ] {
        std::fs::write(origin.join(f), body).expect("write");
    }
    git(&origin, &["init", "-q"]);
    git(&origin, &["add", "."]);
    git(&origin, &["commit", "-qm", "one"]);
    let record = tmp.path().join("target/drillkit-source-mtimes");

    // The first run: nothing recorded yet, every file keeps its time; its files are dated
    // long ago here, so "the clone's time" is told apart from "the last run's" below.
    let first = tmp.path().join("first");
    git(tmp.path(), &["clone", "-q", "origin", "first"]);
    let long_ago = "200001020304.05";
    for f in [
        "same.rs",
        "committed.rs",
        "edited.rs",
        "with space.rs",
        "scripts/keep-mtimes.sh",
    ] {
        let st = Command::new("touch")
            .args(["-m", "-t", long_ago])
            .arg(first.join(f))
            .status()
            .expect("touch");
        assert!(st.success());
    }
    let said = keep(&first, &record);
    assert!(said.contains("0 of 5 files"), "{said}");
    let then = mtime(&first.join("same.rs"));
    assert!(then < SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000));

    // A commit changes committed.rs; the next clone also edits edited.rs without staging it.
    std::fs::write(origin.join("committed.rs"), "fn b() { 1; }\n").expect("write");
    git(&origin, &["commit", "-qam", "two"]);
    let second = tmp.path().join("second");
    git(tmp.path(), &["clone", "-q", "origin", "second"]);
    std::fs::write(second.join("edited.rs"), "fn c() { 2; }\n").expect("edit");
    let said = keep(&second, &record);
    assert!(said.contains("3 of 5 files"), "{said}");
    assert_eq!(
        mtime(&second.join("same.rs")),
        then,
        "same content: time back"
    );
    assert_eq!(mtime(&second.join("with space.rs")), then);
    assert_eq!(mtime(&second.join("scripts/keep-mtimes.sh")), then);
    let recent = SystemTime::now() - Duration::from_secs(3600);
    for f in ["committed.rs", "edited.rs"] {
        assert!(
            mtime(&second.join(f)) > recent,
            "{f} keeps the clone's time"
        );
    }

    // The record now holds the second run: a third clone of the same commit gets every file's
    // time back, the edit (not in the commit) is a change again.
    let third = tmp.path().join("third");
    git(tmp.path(), &["clone", "-q", "origin", "third"]);
    let said = keep(&third, &record);
    assert!(said.contains("4 of 5 files"), "{said}");
    assert_eq!(
        mtime(&third.join("committed.rs")),
        mtime(&second.join("committed.rs"))
    );
    assert!(mtime(&third.join("edited.rs")) > recent);
}
