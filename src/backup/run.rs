//! `verify-backup`'s whole job as one library call: resolve what to verify, verify each file in
//! one read, restore it when asked (logically into a scratch database, or physically into a
//! scratch server), record the proof, and settle one report per file. Every check is written to
//! the journal and told to the [`Observer`] as it is settled; `cli/` only turns flags into a
//! [`Request`] and the [`Outcome`] into output and an exit code.

use super::restore::{self, DumpKind, RestoreOptions, RestoreReport};
use super::{Check, Error, FileReport, Options};
use crate::exit::Code;
use crate::journal::{Journal, Kind};
use crate::progress::{Observer, Progress};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What one `verify-backup` run is asked to do, resolved from its flags.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub paths: Vec<PathBuf>,
    /// Verify the newest backup in each folder of `paths`.
    pub latest: bool,
    pub opts: Options,
    /// Restore PostgreSQL dumps into a scratch database on this server.
    pub restore: Option<RestoreOptions>,
    /// Restore base backups physically into a scratch server.
    pub restore_base: Option<RestoreOptions>,
    /// Warnings fail too.
    pub strict: bool,
    /// Append the proof of this run to this file.
    pub record: Option<PathBuf>,
    /// Judge the record: the newest restored backup must be this recent (and how the user
    /// wrote it, for the message).
    pub restored_within: Option<(Duration, String)>,
}

/// The reports of a run, and whether a signal cut it short.
#[derive(Debug, Default)]
pub struct Outcome {
    pub reports: Vec<FileReport>,
    /// Set when the run was interrupted (the scratch database was still dropped); the reports
    /// settled so far are kept.
    pub interrupted: Option<Error>,
    pub strict: bool,
}

impl Outcome {
    /// The exit code of the run (DESIGN's table): interrupted 4, a file unreadable 3, a check
    /// failed 1, else 0.
    pub fn code(&self) -> Code {
        if self.interrupted.is_some() {
            Code::Interrupted
        } else if self.reports.iter().any(|r| r.unreadable) {
            Code::Environment
        } else if self.reports.iter().any(|r| !r.ok) {
            Code::DrillFailed
        } else {
            Code::Ok
        }
    }

    /// (checks, failed, warnings) over every report.
    pub fn counts(&self) -> (usize, usize, usize) {
        let all = self.reports.iter().flat_map(|r| r.checks.iter());
        let (mut n, mut bad, mut warns) = (0, 0, 0);
        for c in all {
            n += 1;
            bad += usize::from(!c.ok);
            warns += usize::from(c.ok && c.warning);
        }
        (n, bad, warns)
    }

    /// The JSON summary (`--json`, `--summary`; a later run's `--baseline`), secrets redacted.
    pub fn summary(&self, drill: &str) -> serde_json::Value {
        let code = self.code();
        let doc = serde_json::json!({
            "ok": code == Code::Ok,
            "exit_code": code as i32,
            "drill": drill,
            "checked_at": crate::journal::Ts::now(),
            "files": self.reports,
        });
        serde_json::from_str(&crate::redact::redact(&doc.to_string())).unwrap_or(doc)
    }
}

/// A file to verify, or a `--latest` folder with nothing in it.
enum Target {
    File(PathBuf, Option<Check>),
    Missing(PathBuf, Check),
}

/// Check the request before anything is read or restored: every mistake names its flag
/// (exit 2).
pub fn check(req: &Request) -> Result<(), Error> {
    if let Some(r) = &req.restore {
        restore::parse_url(&r.url)?;
    }
    if req.restored_within.is_some() && req.record.is_none() {
        return Err(Error::Invalid(
            "--require-restored-within needs --record FILE (the record of earlier restore tests)"
                .into(),
        ));
    }
    targets(req).map(|_| ())
}

fn targets(req: &Request) -> Result<Vec<Target>, Error> {
    let mut out = Vec::new();
    for p in &req.paths {
        if req.latest {
            if !p.is_dir() {
                return Err(Error::Invalid(format!(
                    "--latest needs folders, but {} is not one",
                    p.display()
                )));
            }
            match super::latest_in(p) {
                Err(e) => out.push(Target::Missing(
                    p.clone(),
                    Check::fail("readable", format!("cannot list: {e}")),
                )),
                Ok(None) => out.push(Target::Missing(
                    p.clone(),
                    Check::fail("latest", "no backup in this folder"),
                )),
                Ok(Some((f, _))) => {
                    let c = Check::pass("latest", format!("newest backup in {}", p.display()));
                    out.push(Target::File(f, Some(c)));
                }
            }
        } else {
            // A data directory or tar backup without its manifest is a failed check (exit 1,
            // said by the manifest check); any other folder is a mistaken argument.
            if p.is_dir()
                && !super::manifest::looks_like_base_backup(p)
                && !super::pgdir::is_directory_dump(p)
            {
                return Err(Error::Invalid(format!(
                    "{} is a folder that is neither a base backup nor a data directory: pass --latest to verify the newest backup in it",
                    p.display()
                )));
            }
            out.push(Target::File(p.clone(), None));
        }
    }
    Ok(out)
}

/// The checks of a run as they are settled: `--strict` applied, told, journalled.
struct Sink<'a> {
    journal: &'a Journal,
    obs: &'a dyn Observer,
    strict: bool,
}

impl Sink<'_> {
    fn file(&self, path: &Path) {
        self.obs
            .progress(Progress::BackupFile(path.display().to_string()));
    }

    fn settle(&self, file: &str, checks: &mut [Check]) -> Result<(), Error> {
        for c in checks.iter_mut() {
            if self.strict && c.warning && c.ok {
                c.ok = false;
                c.detail = format!("{} (a warning; --strict makes it fail)", c.detail);
            }
            self.obs.progress(Progress::BackupChecked {
                file: file.to_string(),
                check: c.clone(),
            });
            self.journal
                .append(Kind::BackupCheck {
                    file: file.to_string(),
                    check: c.check.clone(),
                    ok: c.ok,
                    detail: crate::redact::redact(&c.detail),
                    warning: c.warning,
                })
                .map_err(|source| Error::Journal {
                    path: self.journal.path().display().to_string(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Settle one check and keep it in the report.
    fn note(&self, rep: &mut FileReport, mut c: Check) -> Result<(), Error> {
        self.settle(&rep.file, std::slice::from_mut(&mut c))?;
        rep.push(c);
        Ok(())
    }

    /// Take a restore test's result (logical or physical) into the report. `Ok(Some(e))`: it
    /// was interrupted.
    fn restored(
        &self,
        rep: &mut FileReport,
        result: Result<(RestoreReport, Vec<Check>), Error>,
    ) -> Result<Option<Error>, Error> {
        match result {
            Ok((r, mut checks)) => {
                self.settle(&rep.file, &mut checks)?;
                rep.checks.extend(checks);
                rep.restore = Some(r);
                Ok(None)
            }
            Err(e @ Error::Interrupted(_)) => Ok(Some(e)),
            Err(e) => Err(e),
        }
    }
}

/// Verify (and restore) every backup of the request. `Err` when the tool could not go on (a
/// bad request, the restore server unreachable, the journal unwritable); failed checks are in
/// the reports, an interruption in [`Outcome::interrupted`].
pub async fn run(
    req: &Request,
    journal: &Journal,
    obs: &dyn Observer,
    cancel: &CancellationToken,
) -> Result<Outcome, Error> {
    check(req)?;
    let sink = Sink {
        journal,
        obs,
        strict: req.strict,
    };
    let mut out = Outcome {
        strict: req.strict,
        ..Default::default()
    };
    for t in targets(req)? {
        let (path, first) = match t {
            Target::Missing(dir, check) => {
                let mut rep = FileReport {
                    file: dir.display().to_string(),
                    path: dir.clone(),
                    unreadable: check.check == "readable",
                    ..Default::default()
                };
                sink.file(&dir);
                sink.note(&mut rep, check)?;
                rep.settle(req.strict);
                out.reports.push(rep);
                continue;
            }
            Target::File(p, first) => (p, first),
        };
        sink.file(&path);
        let mut first = first;
        if let Some(c) = first.as_mut() {
            sink.settle(&path.display().to_string(), std::slice::from_mut(c))?;
        }
        let (rep, interrupted) = one(req, &sink, &path, first, cancel).await?;
        out.reports.push(rep);
        if interrupted.is_some() {
            out.interrupted = interrupted;
            break;
        }
    }
    if let Some(record) = &req.record {
        prove(req, record, &sink, &mut out.reports)?;
    }
    Ok(out)
}

/// Verify one file, then restore it when asked; the restore of a dump runs alongside the
/// one-pass checks (both read the file).
async fn one(
    req: &Request,
    sink: &Sink<'_>,
    path: &Path,
    first: Option<Check>,
    cancel: &CancellationToken,
) -> Result<(FileReport, Option<Error>), Error> {
    let early = req
        .restore
        .as_ref()
        .and_then(|ro| restore::sniff(path, ro.zstd_window_log).map(|k| (ro, k)));
    // A plain dump is restored from the verification pass's decoded bytes: one read, one
    // inflate for both.
    let (tap, source) = match early {
        Some((_, DumpKind::Plain)) => {
            let (tx, rx) = super::engine::tap();
            (Some(tx), Some(rx))
        }
        _ => (None, None),
    };
    let (o, p) = (req.opts.clone(), path.to_path_buf());
    let verify = tokio::task::spawn_blocking(move || super::verify_tapped(&p, &o, tap));
    let (verified, mut restored) = match early {
        Some((ro, kind)) => {
            let (v, r) = tokio::join!(verify, restore::run(path, kind, ro, source, cancel));
            (v, Some(r))
        }
        None => (verify.await, None),
    };
    let mut rep = verified.map_err(|e| {
        Error::Environment(format!("verification of {} stopped: {e}", path.display()))
    })?;
    sink.settle(&rep.file.clone(), &mut rep.checks)?;
    if let Some(c) = first {
        rep.checks.insert(0, c);
    }
    if let Some(ro) = &req.restore {
        let kind = match rep.format.as_str() {
            "pg-plain" => Some(DumpKind::Plain),
            "pg-custom" => Some(DumpKind::Custom),
            "pg-directory" => Some(DumpKind::Directory),
            _ => early.map(|(_, k)| k),
        };
        let intact = restored.is_some() || rep.checks.iter().all(|c| c.ok);
        let outcome = match kind {
            None => {
                let why = format!(
                    "not attempted: a {} backup is not a PostgreSQL dump",
                    rep.format
                );
                sink.note(&mut rep, Check::warn("restore", why))?;
                None
            }
            Some(_) if !intact => {
                let c = Check::fail("restore", "not attempted: the file failed its checks above");
                sink.note(&mut rep, c)?;
                None
            }
            Some(kind) => Some(match restored.take() {
                Some(r) => r,
                None => restore::run(path, kind, ro, None, cancel).await,
            }),
        };
        if let Some(result) = outcome {
            if let Some(stop) = sink.restored(&mut rep, result)? {
                rep.settle(req.strict);
                return Ok((rep, Some(stop)));
            }
            if req.opts.baseline.is_some() {
                super::recheck_shrink(&req.opts, &mut rep);
            }
        }
    }
    if let Some(bo) = &req.restore_base {
        let outcome = if !rep.format.starts_with("pg-basebackup") {
            let why = format!(
                "--restore-base: not attempted: a {} backup is not a base backup",
                rep.format
            );
            sink.note(&mut rep, Check::warn("restore", why))?;
            None
        } else if !rep.checks.iter().all(|c| c.ok) {
            let c = Check::fail(
                "restore",
                "--restore-base: not attempted: the backup failed its checks above",
            );
            sink.note(&mut rep, c)?;
            None
        } else {
            let wal = req.opts.wal_dir.as_deref();
            Some(super::physical::run(path, wal, bo, sink.journal, cancel).await)
        };
        if let Some(result) = outcome {
            if let Some(stop) = sink.restored(&mut rep, result)? {
                rep.settle(req.strict);
                return Ok((rep, Some(stop)));
            }
        }
    }
    rep.settle(req.strict);
    Ok((rep, None))
}

/// `--record`: append this run's entries; `--require-restored-within`: judge the record (this
/// run included) and add the verdict as a report of its own.
fn prove(
    req: &Request,
    record: &Path,
    sink: &Sink<'_>,
    reports: &mut Vec<FileReport>,
) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Environment(format!("--record {}: {e}", record.display()));
    let now = chrono::Utc::now();
    let drill = Some(sink.journal.drill_id());
    let entries: Vec<super::record::Entry> = reports
        .iter()
        .map(|r| super::record::Entry::of(r, now, drill))
        .collect();
    super::record::append(record, &entries).map_err(io)?;
    let Some((within, shown)) = &req.restored_within else {
        return Ok(());
    };
    let all = super::record::read(record).map_err(io)?;
    let check = super::record::restored_within(&all, *within, now, shown);
    let mut rep = FileReport {
        file: record.display().to_string(),
        path: record.to_path_buf(),
        format: "record".into(),
        ..Default::default()
    };
    sink.file(record);
    sink.note(&mut rep, check)?;
    rep.settle(req.strict);
    reports.push(rep);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Heard(Mutex<Vec<Progress>>);

    impl Observer for Heard {
        fn progress(&self, p: Progress) {
            if let Ok(mut v) = self.0.lock() {
                v.push(p);
            }
        }
    }

    #[test]
    fn a_bad_request_is_refused_before_anything_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("db.sql");
        std::fs::write(&file, "SELECT 1;\n").expect("write");
        let latest_on_a_file = Request {
            paths: vec![file.clone()],
            latest: true,
            ..Default::default()
        };
        let e = check(&latest_on_a_file).expect_err("--latest on a file");
        assert_eq!(e.code(), Code::BadInput);
        assert!(e.to_string().contains("--latest needs folders"), "{e}");

        let unjudged = Request {
            paths: vec![file.clone()],
            restored_within: Some((Duration::from_secs(60), "1m".into())),
            ..Default::default()
        };
        let e = check(&unjudged).expect_err("no --record");
        assert!(e.to_string().contains("--record"), "{e}");

        let folder = Request {
            paths: vec![dir.path().to_path_buf()],
            ..Default::default()
        };
        let e = check(&folder).expect_err("a plain folder without --latest");
        assert!(e.to_string().contains("pass --latest"), "{e}");
    }

    #[tokio::test]
    async fn an_empty_latest_folder_is_a_failed_check_told_and_journalled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("backups");
        std::fs::create_dir(&empty).expect("mkdir");
        let journal_path = dir.path().join("journal.jsonl");
        let journal = Journal::attach(&journal_path, "test", "test").expect("journal");
        let heard = Heard::default();
        let req = Request {
            paths: vec![empty.clone()],
            latest: true,
            ..Default::default()
        };
        let out = run(&req, &journal, &heard, &CancellationToken::new())
            .await
            .expect("run");
        assert_eq!(out.code(), Code::DrillFailed);
        assert_eq!(out.counts(), (1, 1, 0));
        let heard = heard.0.into_inner().expect("lock");
        assert_eq!(heard[0], Progress::BackupFile(empty.display().to_string()));
        assert!(
            matches!(&heard[1], Progress::BackupChecked { check, .. } if check.check == "latest" && !check.ok),
            "{heard:?}"
        );
        let text = std::fs::read_to_string(&journal_path).expect("journal text");
        assert!(
            text.contains("\"backup_check\"") && text.contains("no backup in this folder"),
            "{text}"
        );
        let doc = out.summary(journal.drill_id());
        assert_eq!(doc["exit_code"], 1);
        assert_eq!(doc["files"][0]["checks"][0]["check"], "latest");
    }

    #[test]
    fn an_interruption_outranks_an_unreadable_file_which_outranks_a_failed_check() {
        let failed = FileReport {
            checks: vec![Check::fail("size", "empty")],
            ..Default::default()
        };
        let unreadable = FileReport {
            unreadable: true,
            ..Default::default()
        };
        let mut out = Outcome {
            reports: vec![failed],
            ..Default::default()
        };
        assert_eq!(out.code(), Code::DrillFailed);
        out.reports.push(unreadable);
        assert_eq!(out.code(), Code::Environment);
        out.interrupted = Some(Error::Interrupted("signal".into()));
        assert_eq!(out.code(), Code::Interrupted);
    }
}
