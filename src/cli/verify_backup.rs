//! `verify-backup` flags and the thin run function: resolve the flags once into a
//! [`backup::run::Request`], let [`backup::run::run`] verify, restore and journal, then print
//! the totals and the JSON summary and map the outcome to the exit code.

use crate::backup::restore::{ExpectRows, RestoreOptions};
use crate::backup::run::Request;
use crate::backup::{self, checksum, Baseline, FormatHint, Options};
use crate::cli::common::{print_json, say, Common, Printer};
use crate::exit::{Classify, Code, Failure};
use crate::journal::Journal;
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

/// The whole request, from the flags; every mistake names its flag (exit 2).
fn request(args: &Args) -> Result<Request, Failure> {
    let opts = options(args)?;
    let restore_checks = !args.expect_rows.is_empty() || !args.check_sql.is_empty();
    if args.restore_to.is_none() {
        if !args.restore_base && restore_checks {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "--expect-rows and --check-sql need --restore-to or --restore-base (they run against the restored copy)"
            )));
        }
        if args.restore_jobs.is_some() {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "--restore-jobs needs --restore-to"
            )));
        }
    }
    let restore =
        |url: String, keep: bool, jobs: usize, pg_restore: Option<PathBuf>| RestoreOptions {
            url,
            expect_rows: args.expect_rows.clone(),
            check_sql: args.check_sql.clone(),
            keep,
            pg_restore,
            timeout: args.restore_timeout.map(|d| d.0),
            zstd_window_log: opts.zstd_window_log(),
            jobs,
        };
    let jobs = args.restore_jobs.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get().min(4))
            .unwrap_or(1)
    });
    let req = Request {
        paths: args.paths.clone(),
        latest: args.latest,
        restore: args
            .restore_to
            .clone()
            .map(|url| restore(url, args.keep, jobs, args.pg_restore.clone())),
        restore_base: args
            .restore_base
            .then(|| restore(String::new(), false, 1, None)),
        strict: args.strict,
        record: args.record.clone(),
        restored_within: args.require_restored_within.map(|d| (d.0, d.to_string())),
        opts,
    };
    backup::run::check(&req)?;
    Ok(req)
}

async fn run(args: Args, cancel: CancellationToken) -> Result<Code, Failure> {
    let req = request(&args)?;
    let journal_path = args.common.journal_path();
    let journal =
        Journal::attach(&journal_path, "verify-backup", "verify-backup").map_err(|e| {
            Failure::env(anyhow::anyhow!(
                "cannot open the journal {}: {e}",
                journal_path.display()
            ))
        })?;
    let mut out = backup::run::run(&req, &journal, &Printer, &cancel).await?;
    let code = out.code();
    let (checks, bad, warns) = out.counts();
    say(&format!(
        "verify-backup: {} backup(s), {checks} checks: {bad} failed, {warns} warning(s){}",
        out.reports.len(),
        if args.strict && warns > 0 {
            " (--strict: warnings fail)"
        } else {
            ""
        }
    ));
    let doc = out.summary(journal.drill_id());
    if let Some(s) = &args.summary {
        write_summary(s, &doc)?;
    }
    if args.common.json {
        print_json(&doc);
    }
    if let Some(e) = out.interrupted.take() {
        return Err(e.into());
    }
    Ok(code)
}

fn write_summary(path: &Path, doc: &serde_json::Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(doc).map_err(|e| Failure::env(anyhow::anyhow!(e)))?;
    std::fs::write(path, text + "\n")
        .map_err(|e| Failure::env(anyhow::anyhow!("--summary {}: {e}", path.display())))
}
