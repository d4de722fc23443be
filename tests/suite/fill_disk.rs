//! fill-disk on a small tmpfs the test mounts: a write from the target (a process on the host, a
//! container through its bind mount) gets a real ENOSPC, and succeeds again after revert; the
//! root filesystem and the journal's filesystem are refused before anything is written;
//! `--to PERCENT` stops near the set use.

use crate::support::cmd::Bin;
use crate::support::docker as dk;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `mb` MiB mounted in a temp dir; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new(mb: u32) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tmp");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(st.success(), "mount -t tmpfs: {st}");
        Tmpfs { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn used_pct(&self) -> f64 {
        let s = nix::sys::statvfs::statvfs(self.path()).expect("statvfs");
        1.0 - s.blocks_free() as f64 / s.blocks() as f64
    }
    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path())
            .expect("read_dir")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        v.sort();
        v
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn journal() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().expect("tmp");
    let j = d.path().join("j.jsonl");
    (d, j)
}

#[test]
fn a_write_gets_enospc_while_filled_and_succeeds_after_revert() {
    let _host = crate::support::host_room("fill_disk");
    require!(Tmpfs);
    let fs = Tmpfs::new(8);
    let (_d, j) = journal();
    Bin::new("inject-fault")
        .args(["fill-disk", "--path"])
        .arg(fs.path())
        .journal(&j)
        .succeeds();
    let err =
        std::fs::write(fs.path().join("app.dat"), vec![1u8; 8192]).expect_err("write should fail");
    assert_eq!(err.raw_os_error(), Some(28), "expected ENOSPC, got {err}");
    Bin::new("inject-fault")
        .args(["revert"])
        .journal(&j)
        .succeeds();
    std::fs::write(fs.path().join("app.dat"), vec![1u8; 8192]).expect("write after revert");
    std::fs::remove_file(fs.path().join("app.dat")).expect("rm");
    assert!(fs.entries().is_empty(), "left: {:?}", fs.entries());
}

#[test]
fn to_percent_stops_near_the_set_use() {
    let _host = crate::support::host_room("fill_disk");
    require!(Tmpfs);
    let fs = Tmpfs::new(16);
    let (_d, j) = journal();
    Bin::new("inject-fault")
        .args(["fill-disk", "--to", "50%", "--path"])
        .arg(fs.path())
        .journal(&j)
        .succeeds();
    let used = fs.used_pct();
    assert!((0.45..=0.55).contains(&used), "used {:.1}%", used * 100.0);
    Bin::new("inject-fault")
        .args(["revert"])
        .journal(&j)
        .succeeds();
    assert!(fs.entries().is_empty());
}

#[test]
fn root_and_journal_filesystems_are_refused_before_anything_is_written() {
    let _host = crate::support::host_room("fill_disk");
    require!(Tmpfs);
    let fs = Tmpfs::new(8);
    let (_d, j) = journal();
    Bin::new("inject-fault")
        .args(["fill-disk", "--path", "/"])
        .journal(&j)
        .code(2)
        .stderr_has("root filesystem")
        .stderr_has("--allow-root-fs");
    let inside = fs.path().join("journal.jsonl");
    Bin::new("inject-fault")
        .args(["fill-disk", "--path"])
        .arg(fs.path())
        .journal(&inside)
        .code(2)
        .stderr_has("holding the journal");
    assert!(
        fs.entries().is_empty(),
        "something was written: {:?}",
        fs.entries()
    );
    // Dry-run prints the fallocate and writes nothing.
    Bin::new("inject-fault")
        .args(["fill-disk", "--dry-run", "--path"])
        .arg(fs.path())
        .journal(&j)
        .succeeds()
        .stderr_has("fallocate -l");
    assert!(fs.entries().is_empty());
}

#[test]
fn a_container_sees_enospc_on_its_bind_mount_and_recovers_after_revert() {
    let _host = crate::support::host_room("fill_disk");
    require!(Docker);
    require!(Tmpfs);
    let fs = Tmpfs::new(8);
    let name = dk::unique();
    dk::docker([
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &format!("{}={name}", dk::LABEL),
        "-v",
        &format!("{}:/data", fs.path().display()),
        dk::busybox_image(),
        "sleep",
        "3600",
    ]);
    struct Rm(String);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = dk::docker_output(["rm", "-f", &self.0]);
        }
    }
    let _rm = Rm(name.clone());
    let (_d, j) = journal();
    let write = || {
        dk::docker_output([
            "exec",
            &name,
            "sh",
            "-c",
            "dd if=/dev/zero of=/data/w bs=4k count=4 2>&1; sync",
        ])
    };
    Bin::new("inject-fault")
        .args(["fill-disk", "--container", &name, "--mount", "/data"])
        .journal(&j)
        .succeeds();
    let out = write();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("No space left"),
        "container write did not get ENOSPC: {text}"
    );
    Bin::new("inject-fault")
        .args(["revert"])
        .journal(&j)
        .succeeds();
    let out = write();
    assert!(
        out.status.success(),
        "write after revert failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
