//! `verify-backup` flags and the thin run function: parse, resolve the flags once into
//! [`crate::backup::Options`], verify each file (one read per file), restore when asked, then
//! print a line per check, journal every check and map the outcome to the exit code.

use crate::backup::restore::{self, DumpKind, ExpectRows, RestoreOptions};
use crate::backup::{self, checksum, Baseline, Check, FileReport, FormatHint, Options};
use crate::cli::common::{print_json, say, Common};
use crate::exit::{Classify, Code, Failure};
use crate::journal::{Journal, Kind};
use crate::units::{Dur, Ratio, Size};
use clap::{Parser, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

const EXAMPLES: &str = "\
Examples:
  verify-backup /backups/latest.sql.gz --max-age 24h --min-size 1MiB
  verify-backup /backups --latest --max-age 26h          # the newest backup in the folder
  verify-backup db.sql.gz --checksum-file SHA256SUMS     # GNU or BSD checksum lists
  verify-backup db.sql.gz --sha256 9f86d08...            # sidecars (db.sql.gz.sha256) are found by themselves
  verify-backup /backups/base --max-age 24h              # a pg_basebackup folder (plain or -Ft tar) with backup_manifest
  verify-backup /backups/base --wal-dir /archive/wal     # ... taking the WAL it needs from an archive
  verify-backup dump.rdb                                  # Redis RDB: magic and CRC-64
  verify-backup db.sql.gz --restore-to postgres://postgres@localhost:5432/ \\
      --expect-rows public.orders>=1000 --check-sql \"SELECT count(*) > 0 FROM public.users\"
  verify-backup db.sql.gz --json > summary.json; verify-backup db.sql.gz --baseline summary.json

Exit codes: 0 every check passed · 1 a check failed (backup invalid, too old, missing, restore failed)
· 2 bad input (a flag) · 3 a file could not be read or the restore server could not be reached
· 4 interrupted (the scratch database is still dropped).";

/// Force the format check instead of telling it from the content.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    Auto,
    Plain,
    Custom,
    Rdb,
}

/// Verify backup files in one read each (age, size, checksum, compression, format) and prove
/// a PostgreSQL dump restores into a scratch database.
#[derive(Parser, Debug)]
#[command(name = "verify-backup", version = super::common::version(), after_help = EXAMPLES)]
pub struct Args {
    /// Backup files, base-backup folders (with backup_manifest), or with --latest folders.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,

    /// Verify the newest backup in each PATH folder (fails when there is none).
    #[arg(long, env = "DRILL_BACKUP_LATEST", help_heading = "What to check")]
    pub latest: bool,

    /// Check the content as this format instead of telling it from the bytes.
    #[arg(
        long,
        value_enum,
        default_value = "auto",
        env = "DRILL_BACKUP_FORMAT",
        help_heading = "What to check"
    )]
    pub format: FormatArg,

    /// The largest zstd window to decode (memory every decoder must hold); a frame that needs
    /// more fails the zstd check. Default 128MiB, as `zstd -d`; at most 2GiB (`zstd --long=31`).
    #[arg(
        long,
        value_name = "SIZE",
        env = "DRILL_BACKUP_ZSTD_MAX_WINDOW",
        help_heading = "What to check"
    )]
    pub zstd_max_window: Option<Size>,

    /// A WAL archive folder (`archive_command`'s target; segments plain or .gz/.zst/.lz4) that
    /// holds WAL a base backup needs and does not carry itself.
    #[arg(
        long,
        value_name = "DIR",
        env = "DRILL_BACKUP_WAL_DIR",
        help_heading = "What to check"
    )]
    pub wal_dir: Option<PathBuf>,

    /// Fail when the backup was modified longer ago than this (24h with --latest).
    #[arg(
        long,
        value_name = "DUR",
        env = "DRILL_BACKUP_MAX_AGE",
        help_heading = "Checks"
    )]
    pub max_age: Option<Dur>,

    /// Fail when the backup is smaller than this (an empty file always fails).
    #[arg(
        long,
        value_name = "SIZE",
        env = "DRILL_BACKUP_MIN_SIZE",
        help_heading = "Checks"
    )]
    pub min_size: Option<Size>,

    /// An earlier run's summary (--json or --summary output) to compare size and rows with.
    #[arg(
        long,
        value_name = "FILE",
        env = "DRILL_BACKUP_BASELINE",
        help_heading = "Checks"
    )]
    pub baseline: Option<PathBuf>,

    /// With --baseline: fail when size or a table's rows dropped by more than this.
    #[arg(
        long,
        value_name = "PCT",
        default_value = "50%",
        env = "DRILL_BACKUP_MAX_SHRINK",
        help_heading = "Checks"
    )]
    pub max_shrink: Ratio,

    /// Expected SHA-256 of the (single) file.
    #[arg(
        long,
        value_name = "HEX",
        env = "DRILL_BACKUP_SHA256",
        help_heading = "Checksums"
    )]
    pub sha256: Option<String>,

    /// Expected SHA-512 of the (single) file.
    #[arg(
        long,
        value_name = "HEX",
        env = "DRILL_BACKUP_SHA512",
        help_heading = "Checksums"
    )]
    pub sha512: Option<String>,

    /// Expected MD5 of the (single) file.
    #[arg(
        long,
        value_name = "HEX",
        env = "DRILL_BACKUP_MD5",
        help_heading = "Checksums"
    )]
    pub md5: Option<String>,

    /// A checksum list (GNU `sha256sum` or BSD `SHA256 (name) = hex` form); repeatable.
    #[arg(
        long,
        value_name = "FILE",
        env = "DRILL_BACKUP_CHECKSUM_FILE",
        value_delimiter = ',',
        help_heading = "Checksums"
    )]
    pub checksum_file: Vec<PathBuf>,

    /// Do not look for sidecars (FILE.sha256, FILE.sha256sum, FILE.md5, ...).
    #[arg(long, env = "DRILL_BACKUP_NO_SIDECARS", help_heading = "Checksums")]
    pub no_sidecars: bool,

    /// Restore PostgreSQL dumps into a new scratch database on this server, e.g. postgres://postgres@db:5432/
    #[arg(
        long,
        value_name = "URL",
        env = "DRILL_RESTORE_TO",
        help_heading = "Restore test"
    )]
    pub restore_to: Option<String>,

    /// Restore a base backup physically: copy/unpack it with its WAL into a temp folder, start
    /// a scratch PostgreSQL of its major version on a free loopback port, let it recover to
    /// consistency, run --expect-rows/--check-sql, stop it and delete the folder.
    #[arg(long, env = "DRILL_RESTORE_BASE", help_heading = "Restore test")]
    pub restore_base: bool,

    /// After the restore, TABLE must have this many rows (TABLE>=N, >, =, <=, <); repeatable.
    #[arg(
        long,
        value_name = "TABLE>=N",
        env = "DRILL_EXPECT_ROWS",
        value_delimiter = ',',
        help_heading = "Restore test"
    )]
    pub expect_rows: Vec<ExpectRows>,

    /// After the restore, this query must return true; repeatable.
    #[arg(
        long,
        value_name = "SQL",
        env = "DRILL_CHECK_SQL",
        help_heading = "Restore test"
    )]
    pub check_sql: Vec<String>,

    /// Keep the scratch database instead of dropping it.
    #[arg(long, env = "DRILL_RESTORE_KEEP", help_heading = "Restore test")]
    pub keep: bool,

    /// Give up on a restore after this long (the scratch database is still dropped).
    #[arg(
        long,
        value_name = "DUR",
        env = "DRILL_RESTORE_TIMEOUT",
        help_heading = "Restore test"
    )]
    pub restore_timeout: Option<Dur>,

    /// Sessions that load a plain dump's big COPY blocks together (1 loads them over one, like
    /// psql; default: this machine's cores, at most 4). Custom dumps restore in one transaction.
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=64),
        help_heading = "Restore test"
    )]
    pub restore_jobs: Option<u16>,

    /// The pg_restore to use for custom-format dumps (default: newest installed).
    #[arg(
        long,
        value_name = "PATH",
        env = "DRILL_PG_RESTORE",
        help_heading = "Restore test"
    )]
    pub pg_restore: Option<PathBuf>,

    /// Warnings fail too (a zstd frame without checksum, an RDB saved without CRC, ...).
    #[arg(long, env = "DRILL_BACKUP_STRICT", help_heading = "Output")]
    pub strict: bool,

    /// Also write the JSON summary to this file (a later run's --baseline).
    #[arg(
        long,
        value_name = "FILE",
        env = "DRILL_BACKUP_SUMMARY",
        help_heading = "Output"
    )]
    pub summary: Option<PathBuf>,

    /// Append one JSON line per backup verified to this file (path, size, sha256, checks,
    /// restored yes/no, when): the record of proof `--require-restored-within` reads.
    #[arg(
        long,
        value_name = "FILE",
        env = "DRILL_BACKUP_RECORD",
        help_heading = "Output"
    )]
    pub record: Option<PathBuf>,

    /// Fail when the newest backup in --record proven restorable by a restore test was proven
    /// longer ago than this (e.g. 7d); this run's results count.
    #[arg(
        long,
        value_name = "DUR",
        env = "DRILL_BACKUP_RESTORED_WITHIN",
        help_heading = "Checks"
    )]
    pub require_restored_within: Option<Dur>,

    #[command(flatten)]
    pub common: Common,
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    let verbose = args.common.verbose;
    crate::cli::common::main("verify-backup", verbose, |cancel| async move {
        run(args, cancel).await
    })
}

/// Resolve flags into options; every error names its flag (exit 2).
fn options(args: &Args) -> Result<Options, Failure> {
    let mut expected = Vec::new();
    for (flag, algo, value) in [
        ("--sha256", checksum::Algo::Sha256, &args.sha256),
        ("--sha512", checksum::Algo::Sha512, &args.sha512),
        ("--md5", checksum::Algo::Md5, &args.md5),
    ] {
        if let Some(v) = value {
            if args.paths.len() != 1 {
                return Err(Failure::bad_input(anyhow::anyhow!(
                    "{flag} gives the digest of one file, but {} paths were given; use --checksum-file for several",
                    args.paths.len()
                )));
            }
            expected.push(
                checksum::parse_hex_flag(flag, algo, v)
                    .map_err(anyhow::Error::msg)
                    .or_bad_input()?,
            );
        }
    }
    let mut lists = Vec::new();
    for f in &args.checksum_file {
        lists.push(
            checksum::read_checksum_file(f)
                .map_err(anyhow::Error::msg)
                .or_bad_input()?,
        );
    }
    let baseline = match &args.baseline {
        Some(b) => Some(
            Baseline::read(b)
                .map_err(anyhow::Error::msg)
                .or_bad_input()?,
        ),
        None => None,
    };
    // A window is a power of two (plus eighths of one): round the limit up to the next one.
    let zstd_window_log = match args.zstd_max_window {
        None => None,
        Some(Size(n)) if (1 << 10..=1 << 31).contains(&n) => Some(64 - (n - 1).leading_zeros()),
        Some(_) => {
            return Err(anyhow::anyhow!(
                "--zstd-max-window: give a size from 1KiB to 2GiB (2GiB for zstd --long=31)"
            ))
            .or_bad_input()
        }
    };
    if let Some(w) = &args.wal_dir {
        if !w.is_dir() {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "--wal-dir {}: not a folder",
                w.display()
            )));
        }
    }
    let max_age = args.max_age.map(|d| d.0).or(if args.latest {
        Some(Dur::secs(24 * 3600).0)
    } else {
        None
    });
    Ok(Options {
        max_age,
        min_size: args.min_size.map(|s| s.0).unwrap_or(1),
        baseline,
        max_shrink: args.max_shrink.0,
        expected,
        checksum_files: lists,
        sidecars: !args.no_sidecars,
        zstd_window_log,
        wal_dir: args.wal_dir.clone(),
        format: match args.format {
            FormatArg::Auto => FormatHint::Auto,
            FormatArg::Plain => FormatHint::Plain,
            FormatArg::Custom => FormatHint::Custom,
            FormatArg::Rdb => FormatHint::Rdb,
        },
    })
}

/// A file to verify, or a `--latest` folder with nothing in it.
enum Target {
    File(PathBuf, Option<Check>),
    Missing(PathBuf, Check),
}

fn targets(args: &Args) -> Result<Vec<Target>, Failure> {
    let mut out = Vec::new();
    for p in &args.paths {
        if args.latest {
            if !p.is_dir() {
                return Err(Failure::bad_input(anyhow::anyhow!(
                    "--latest needs folders, but {} is not one",
                    p.display()
                )));
            }
            match backup::latest_in(p) {
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
                && !backup::manifest::looks_like_base_backup(p)
                && !backup::pgdir::is_directory_dump(p)
            {
                return Err(Failure::bad_input(anyhow::anyhow!(
                    "{} is a folder that is neither a base backup nor a data directory: pass --latest to verify the newest backup in it",
                    p.display()
                )));
            }
            out.push(Target::File(p.clone(), None));
        }
    }
    Ok(out)
}

fn tag(c: &Check) -> &'static str {
    match (c.ok, c.warning) {
        (false, _) => "FAIL",
        (true, true) => "warn",
        (true, false) => "ok",
    }
}

fn show(journal: &Journal, file: &str, checks: &mut [Check], strict: bool) -> Result<(), Failure> {
    for c in checks.iter_mut() {
        if strict && c.warning && c.ok {
            c.ok = false;
            c.detail = format!("{} (a warning; --strict makes it fail)", c.detail);
        }
        say(&format!("  {:<4}  {:<16} {}", tag(c), c.check, c.detail));
        if !c.ok {
            crate::cli::actions::error_annotation(&crate::redact::redact(&format!(
                "{file}: {}: {}",
                c.check, c.detail
            )));
        } else if c.warning {
            crate::cli::actions::warning_annotation(&crate::redact::redact(&format!(
                "{file}: {}: {}",
                c.check, c.detail
            )));
        }
        journal
            .append(Kind::BackupCheck {
                file: file.to_string(),
                check: c.check.clone(),
                ok: c.ok,
                detail: crate::redact::redact(&c.detail),
                warning: c.warning,
            })
            .map_err(|e| {
                Failure::env(anyhow::anyhow!(
                    "cannot write the journal {}: {e}",
                    journal.path().display()
                ))
            })?;
    }
    Ok(())
}

async fn run(args: Args, cancel: CancellationToken) -> Result<Code, Failure> {
    let opts = options(&args)?;
    let targets = targets(&args)?;
    let restore_opts = args.restore_to.as_ref().map(|url| RestoreOptions {
        url: url.clone(),
        expect_rows: args.expect_rows.clone(),
        check_sql: args.check_sql.clone(),
        keep: args.keep,
        pg_restore: args.pg_restore.clone(),
        timeout: args.restore_timeout.map(|d| d.0),
        zstd_window_log: opts.zstd_window_log(),
        jobs: args.restore_jobs.map(usize::from).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get().min(4))
                .unwrap_or(1)
        }),
    });
    let base_opts = args.restore_base.then(|| RestoreOptions {
        url: String::new(),
        expect_rows: args.expect_rows.clone(),
        check_sql: args.check_sql.clone(),
        keep: false,
        pg_restore: None,
        timeout: args.restore_timeout.map(|d| d.0),
        zstd_window_log: opts.zstd_window_log(),
        jobs: 1,
    });
    if let Some(r) = &restore_opts {
        restore::parse_url(&r.url)?;
    } else if !args.restore_base && (!args.expect_rows.is_empty() || !args.check_sql.is_empty()) {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--expect-rows and --check-sql need --restore-to or --restore-base (they run against the restored copy)"
        )));
    } else if args.restore_jobs.is_some() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--restore-jobs needs --restore-to"
        )));
    }
    if args.require_restored_within.is_some() && args.record.is_none() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--require-restored-within needs --record FILE (the record of earlier restore tests)"
        )));
    }
    let journal_path = args.common.journal_path();
    let journal =
        Journal::attach(&journal_path, "verify-backup", "verify-backup").map_err(|e| {
            Failure::env(anyhow::anyhow!(
                "cannot open the journal {}: {e}",
                journal_path.display()
            ))
        })?;

    let mut reports: Vec<FileReport> = Vec::new();
    let mut interrupted: Option<Failure> = None;
    for t in targets {
        let (path, first) = match t {
            Target::Missing(dir, mut check) => {
                let mut rep = FileReport {
                    file: dir.display().to_string(),
                    path: dir.clone(),
                    ..Default::default()
                };
                rep.unreadable = check.check == "readable";
                say(&format!("{}", dir.display()));
                show(
                    &journal,
                    &rep.file,
                    std::slice::from_mut(&mut check),
                    args.strict,
                )?;
                rep.push(check);
                rep.settle(args.strict);
                reports.push(rep);
                continue;
            }
            Target::File(p, first) => (p, first),
        };
        say(&format!("{}", path.display()));
        let mut first = first;
        if let Some(c) = first.as_mut() {
            show(
                &journal,
                &path.display().to_string(),
                std::slice::from_mut(c),
                args.strict,
            )?;
        }
        // The restore (when asked) runs alongside the one-pass checks: both read the file.
        let early = restore_opts
            .as_ref()
            .and_then(|ro| restore::sniff(&path, ro.zstd_window_log).map(|k| (ro, k)));
        // A plain dump is restored from the verification pass's decoded bytes: one read, one
        // inflate for both.
        let (tap, source) = match early {
            Some((_, DumpKind::Plain)) => {
                let (tx, rx) = backup::engine::tap();
                (Some(tx), Some(rx))
            }
            _ => (None, None),
        };
        let o = opts.clone();
        let p = path.clone();
        let verify = tokio::task::spawn_blocking(move || backup::verify_tapped(&p, &o, tap));
        let (verified, mut restored) = match early {
            Some((ro, kind)) => {
                let (v, r) = tokio::join!(verify, restore::run(&path, kind, ro, source, &cancel));
                (v, Some(r))
            }
            None => (verify.await, None),
        };
        let mut rep = verified.map_err(|e| {
            Failure::env(anyhow::anyhow!(
                "verification of {} stopped: {e}",
                path.display()
            ))
        })?;
        show(&journal, &rep.file, &mut rep.checks, args.strict)?;
        if let Some(c) = first {
            rep.checks.insert(0, c);
        }
        if let Some(ro) = &restore_opts {
            let kind = match rep.format.as_str() {
                "pg-plain" => Some(DumpKind::Plain),
                "pg-custom" => Some(DumpKind::Custom),
                "pg-directory" => Some(DumpKind::Directory),
                _ => None,
            };
            let intact = restored.is_some() || rep.checks.iter().all(|c| c.ok);
            let kind = kind.or(early.map(|(_, k)| k));
            let outcome = match kind {
                None => {
                    let c = Check::warn(
                        "restore",
                        format!(
                            "not attempted: a {} backup is not a PostgreSQL dump",
                            rep.format
                        ),
                    );
                    note(&journal, &mut rep, c, args.strict)?;
                    None
                }
                Some(_) if !intact => {
                    let c =
                        Check::fail("restore", "not attempted: the file failed its checks above");
                    note(&journal, &mut rep, c, args.strict)?;
                    None
                }
                Some(kind) => Some(match restored.take() {
                    Some(r) => r,
                    None => restore::run(&path, kind, ro, None, &cancel).await,
                }),
            };
            if let Some(result) = outcome {
                if !take_restore(&journal, &mut rep, result, args.strict, &mut interrupted)? {
                    rep.settle(args.strict);
                    reports.push(rep);
                    break;
                }
                if opts.baseline.is_some() {
                    backup::recheck_shrink(&opts, &mut rep);
                }
            }
        }
        if let Some(bo) = &base_opts {
            let outcome = if !rep.format.starts_with("pg-basebackup") {
                let c = Check::warn(
                    "restore",
                    format!(
                        "--restore-base: not attempted: a {} backup is not a base backup",
                        rep.format
                    ),
                );
                note(&journal, &mut rep, c, args.strict)?;
                None
            } else if !rep.checks.iter().all(|c| c.ok) {
                let c = Check::fail(
                    "restore",
                    "--restore-base: not attempted: the backup failed its checks above",
                );
                note(&journal, &mut rep, c, args.strict)?;
                None
            } else {
                Some(
                    backup::physical::run(&path, opts.wal_dir.as_deref(), bo, &journal, &cancel)
                        .await,
                )
            };
            if let Some(result) = outcome {
                if !take_restore(&journal, &mut rep, result, args.strict, &mut interrupted)? {
                    rep.settle(args.strict);
                    reports.push(rep);
                    break;
                }
            }
        }
        rep.settle(args.strict);
        reports.push(rep);
    }

    if let Some(record) = &args.record {
        prove(&args, record, &journal, &mut reports)?;
    }
    let failed = reports.iter().filter(|r| !r.ok).count();
    let unreadable = reports.iter().any(|r| r.unreadable);
    let code = if interrupted.is_some() {
        Code::Interrupted
    } else if unreadable {
        Code::Environment
    } else if failed > 0 {
        Code::DrillFailed
    } else {
        Code::Ok
    };
    let checks: usize = reports.iter().map(|r| r.checks.len()).sum();
    let bad: usize = reports
        .iter()
        .map(|r| r.checks.iter().filter(|c| !c.ok).count())
        .sum();
    let warns: usize = reports
        .iter()
        .map(|r| r.checks.iter().filter(|c| c.ok && c.warning).count())
        .sum();
    say(&format!(
        "verify-backup: {} backup(s), {checks} checks: {bad} failed, {warns} warning(s){}",
        reports.len(),
        if args.strict && warns > 0 {
            " (--strict: warnings fail)"
        } else {
            ""
        }
    ));
    let doc = serde_json::json!({
        "ok": code == Code::Ok,
        "exit_code": code as i32,
        "drill": journal.drill_id(),
        "checked_at": crate::journal::Ts::now(),
        "files": reports,
    });
    let doc: serde_json::Value =
        serde_json::from_str(&crate::redact::redact(&doc.to_string())).unwrap_or(doc);
    if let Some(s) = &args.summary {
        write_summary(s, &doc)?;
    }
    if args.common.json {
        print_json(&doc);
    }
    if let Some(f) = interrupted {
        return Err(f);
    }
    Ok(code)
}

fn write_summary(path: &Path, doc: &serde_json::Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(doc).map_err(|e| Failure::env(anyhow::anyhow!(e)))?;
    std::fs::write(path, text + "\n")
        .map_err(|e| Failure::env(anyhow::anyhow!("--summary {}: {e}", path.display())))
}

/// Show one check and keep it in the report.
fn note(
    journal: &Journal,
    rep: &mut FileReport,
    mut c: Check,
    strict: bool,
) -> Result<(), Failure> {
    show(journal, &rep.file, std::slice::from_mut(&mut c), strict)?;
    rep.push(c);
    Ok(())
}

/// Take a restore test's result (logical or physical) into the report. `Ok(false)`: it was
/// interrupted, and `interrupted` holds why.
fn take_restore(
    journal: &Journal,
    rep: &mut FileReport,
    result: Result<(restore::RestoreReport, Vec<Check>), Failure>,
    strict: bool,
    interrupted: &mut Option<Failure>,
) -> Result<bool, Failure> {
    match result {
        Ok((r, mut checks)) => {
            show(journal, &rep.file, &mut checks, strict)?;
            rep.checks.extend(checks);
            rep.restore = Some(r);
            Ok(true)
        }
        Err(f) if f.code == Code::Interrupted => {
            *interrupted = Some(f);
            Ok(false)
        }
        Err(f) => Err(f),
    }
}

/// `--record`: append this run's entries; `--require-restored-within`: judge the record (this
/// run included) and add the verdict as a report of its own.
fn prove(
    args: &Args,
    record: &Path,
    journal: &Journal,
    reports: &mut Vec<FileReport>,
) -> Result<(), Failure> {
    let now = chrono::Utc::now();
    let entries: Vec<backup::record::Entry> = reports
        .iter()
        .map(|r| backup::record::Entry::of(r, now, Some(journal.drill_id())))
        .collect();
    backup::record::append(record, &entries)
        .map_err(|e| Failure::env(anyhow::anyhow!("--record {}: {e}", record.display())))?;
    let Some(within) = args.require_restored_within else {
        return Ok(());
    };
    let all = backup::record::read(record)
        .map_err(|e| Failure::env(anyhow::anyhow!("--record {}: {e}", record.display())))?;
    let check = backup::record::restored_within(&all, within.0, now, &within.to_string());
    let mut rep = FileReport {
        file: record.display().to_string(),
        path: record.to_path_buf(),
        format: "record".into(),
        ..Default::default()
    };
    say(&format!("{}", record.display()));
    note(journal, &mut rep, check, args.strict)?;
    rep.settle(args.strict);
    reports.push(rep);
    Ok(())
}
