//! Backup verification, the domain behind `verify-backup`: the checks a DR runbook does with
//! `ls`, `find -mtime`, `md5sum`, `gzip -t` and `gunzip -c | psql`, done in one read of each
//! file (see [`engine`]) with a named verdict per check, plus a restore into a scratch database
//! (see [`restore`]). No clap here: the CLI edge is `cli/verify_backup.rs`.

pub mod checksum;
pub mod engine;
mod error;
pub mod gzip;
pub mod manifest;
pub mod pgcustom;
pub mod pgdir;
pub mod pgdump;
pub mod physical;
pub mod rdb;
pub mod record;
pub mod restore;
pub mod run;
pub mod sql;
pub mod tar;
pub mod wal;
pub mod zstd;

pub use error::Error;

use checksum::{Algo, ChecksumFile, Expected};
use engine::Compression;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What a format check concluded.
#[derive(Clone, Debug, Serialize)]
pub struct FormatReport {
    /// `pg-plain`, `pg-custom`, `redis-rdb`, `pg-basebackup`, `unknown`.
    pub kind: String,
    pub ok: bool,
    pub warning: bool,
    pub detail: String,
    /// Rows per table found in the dump's data.
    pub tables: BTreeMap<String, u64>,
}

/// The format to check a file as; `Auto` tells it from the content, then the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FormatHint {
    #[default]
    Auto,
    Plain,
    Custom,
    Rdb,
    BaseBackup,
}

impl FormatHint {
    /// The hint a file name gives (`.sql`, `.dump`, `.rdb`), when the content says nothing.
    pub fn from_name(path: &Path) -> FormatHint {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let base = name
            .trim_end_matches(".gz")
            .trim_end_matches(".zst")
            .trim_end_matches(".zstd");
        if base.ends_with(".sql") || base.ends_with(".psql") {
            FormatHint::Plain
        } else if [".dump", ".pgdump", ".backup", ".custom"]
            .iter()
            .any(|e| base.ends_with(e))
        {
            FormatHint::Custom
        } else if base.ends_with(".rdb") {
            FormatHint::Rdb
        } else {
            FormatHint::Auto
        }
    }
}

/// One named check and its evidence.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Check {
    pub check: String,
    pub ok: bool,
    pub warning: bool,
    pub detail: String,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            check: name.into(),
            ok: true,
            warning: false,
            detail: detail.into(),
        }
    }
    pub fn fail(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            check: name.into(),
            ok: false,
            warning: false,
            detail: detail.into(),
        }
    }
    pub fn warn(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            check: name.into(),
            ok: true,
            warning: true,
            detail: detail.into(),
        }
    }
}

/// Everything established about one backup.
#[derive(Clone, Debug, Serialize, Default)]
pub struct FileReport {
    pub file: String,
    #[serde(skip)]
    pub path: PathBuf,
    pub ok: bool,
    /// A file (or part of a base backup) could not be read: the tool could not finish (exit 3).
    pub unreadable: bool,
    pub format: String,
    pub compression: String,
    pub size: Option<u64>,
    pub modified: Option<String>,
    pub age_s: Option<f64>,
    pub uncompressed: Option<u64>,
    pub digests: BTreeMap<String, String>,
    pub tables: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<restore::RestoreReport>,
    pub checks: Vec<Check>,
}

impl FileReport {
    pub fn push(&mut self, c: Check) {
        self.checks.push(c);
    }
    /// Settle `ok`: every check passed (warnings fail only under `strict`).
    pub fn settle(&mut self, strict: bool) {
        self.ok = !self.unreadable && self.checks.iter().all(|c| c.ok && !(strict && c.warning));
    }
}

/// A row in an earlier run's summary (the `--json` document) to compare against.
#[derive(Clone, Debug, Default)]
pub struct BaselineEntry {
    pub file: String,
    pub size: Option<u64>,
    pub tables: BTreeMap<String, u64>,
}

/// An earlier run's summary.
#[derive(Clone, Debug, Default)]
pub struct Baseline {
    pub source: PathBuf,
    pub files: Vec<BaselineEntry>,
}

impl Baseline {
    /// Read a summary written by `verify-backup --json` (or `--summary`).
    pub fn read(path: &Path) -> Result<Baseline, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--baseline {}: {e}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            format!(
                "--baseline {}: not a verify-backup summary ({e})",
                path.display()
            )
        })?;
        let files = v.get("files").and_then(|f| f.as_array()).ok_or_else(|| {
            format!(
                "--baseline {}: no 'files' list (expected a verify-backup --json summary)",
                path.display()
            )
        })?;
        let mut out = Vec::new();
        for f in files {
            let mut tables = BTreeMap::new();
            let restored = f.get("restore").and_then(|r| r.get("tables"));
            for src in [f.get("tables"), restored].into_iter().flatten() {
                if let Some(map) = src.as_object() {
                    for (k, n) in map {
                        if let Some(n) = n.as_u64() {
                            tables.entry(k.clone()).or_insert(n);
                        }
                    }
                }
            }
            out.push(BaselineEntry {
                file: f
                    .get("file")
                    .and_then(|x| x.as_str())
                    .unwrap_or("")
                    .to_string(),
                size: f.get("size").and_then(|x| x.as_u64()),
                tables,
            });
        }
        Ok(Baseline {
            source: path.to_path_buf(),
            files: out,
        })
    }

    /// The entry to compare `file` with: same path, else same base name, else the only one.
    pub fn entry_for(&self, file: &str) -> Option<&BaselineEntry> {
        let base = |s: &str| Path::new(s).file_name().map(|n| n.to_os_string());
        self.files
            .iter()
            .find(|e| e.file == file)
            .or_else(|| self.files.iter().find(|e| base(&e.file) == base(file)))
            .or(if self.files.len() == 1 {
                self.files.first()
            } else {
                None
            })
    }
}

/// How to check each file (resolved from the flags once).
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub max_age: Option<Duration>,
    pub min_size: u64,
    pub baseline: Option<Baseline>,
    pub max_shrink: f64,
    /// Digests given on the command line (one file only).
    pub expected: Vec<Expected>,
    pub checksum_files: Vec<ChecksumFile>,
    pub sidecars: bool,
    pub format: FormatHint,
    /// The largest zstd window decoded, as a power of two (`None`: 128 MiB, `zstd`'s default).
    pub zstd_window_log: Option<u32>,
    /// A WAL archive to take a base backup's missing segments from (`--wal-dir`).
    pub wal_dir: Option<PathBuf>,
}

impl Options {
    pub fn zstd_window_log(&self) -> u32 {
        self.zstd_window_log.unwrap_or(self::zstd::WINDOW_LOG_MAX)
    }
}

fn fmt_age(secs: f64) -> String {
    crate::units::fmt_duration(secs)
}

fn modified_rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The common first checks: exists/readable, age, size. `None` when there is nothing more to do.
fn stat_checks(path: &Path, opts: &Options, rep: &mut FileReport) -> Option<std::fs::Metadata> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            rep.push(Check::fail("exists", "no such file"));
            return None;
        }
        Err(e) => {
            rep.unreadable = true;
            rep.push(Check::fail("readable", format!("cannot stat: {e}")));
            return None;
        }
    };
    let modified = meta.modified().ok();
    rep.modified = modified.map(modified_rfc3339);
    let kind = if meta.is_dir() && pgdir::is_directory_dump(path) {
        "directory dump (toc.dat)"
    } else if meta.is_dir() {
        "base backup directory"
    } else {
        "regular file"
    };
    rep.push(Check::pass(
        "exists",
        format!(
            "{kind}, modified {}",
            rep.modified.clone().unwrap_or_else(|| "?".into())
        ),
    ));
    if let Some(m) = modified {
        let age = SystemTime::now()
            .duration_since(m)
            .map(|d| d.as_secs_f64())
            .unwrap_or_else(|e| -e.duration().as_secs_f64());
        rep.age_s = Some(age);
        match opts.max_age {
            Some(max) if age > max.as_secs_f64() => rep.push(Check::fail(
                "age",
                format!(
                    "{} old, older than --max-age {}",
                    fmt_age(age),
                    fmt_age(max.as_secs_f64())
                ),
            )),
            Some(max) if age < -60.0 => rep.push(Check::warn(
                "age",
                format!(
                    "modified {} in the future (clock skew?); --max-age {}",
                    fmt_age(-age),
                    fmt_age(max.as_secs_f64())
                ),
            )),
            Some(max) => rep.push(Check::pass(
                "age",
                format!(
                    "{} old (--max-age {})",
                    fmt_age(age.max(0.0)),
                    fmt_age(max.as_secs_f64())
                ),
            )),
            None => {}
        }
    }
    Some(meta)
}

fn size_check(size: u64, opts: &Options, rep: &mut FileReport) {
    let human = crate::units::Size(size);
    if size == 0 {
        rep.push(Check::fail("size", "empty: 0 bytes"));
    } else if size < opts.min_size {
        rep.push(Check::fail(
            "size",
            format!(
                "{human} ({size} bytes) is below --min-size {}",
                crate::units::Size(opts.min_size)
            ),
        ));
    } else {
        rep.push(Check::pass("size", format!("{human} ({size} bytes)")));
    }
}

fn shrink_check(opts: &Options, rep: &mut FileReport) {
    let Some(base) = &opts.baseline else { return };
    let Some(entry) = base.entry_for(&rep.file) else {
        rep.push(Check::warn(
            "shrink",
            format!(
                "no entry for this file in --baseline {}",
                base.source.display()
            ),
        ));
        return;
    };
    let keep = 1.0 - opts.max_shrink;
    let mut problems = Vec::new();
    let mut compared = Vec::new();
    if let (Some(was), Some(now)) = (entry.size, rep.size) {
        compared.push(format!("size {now} vs {was} bytes"));
        if (now as f64) < was as f64 * keep {
            problems.push(format!(
                "size dropped from {was} to {now} bytes ({:.1}% smaller)",
                100.0 * (1.0 - now as f64 / was.max(1) as f64)
            ));
        }
    }
    let now_tables = match &rep.restore {
        Some(r) if rep.tables.is_empty() => r.tables.clone(),
        _ => rep.tables.clone(),
    };
    if !entry.tables.is_empty() && !now_tables.is_empty() {
        compared.push(format!("{} tables", entry.tables.len()));
        for (t, &was) in &entry.tables {
            match now_tables.get(t) {
                None => problems.push(format!("table {t} ({was} rows before) is gone")),
                Some(&now) if (now as f64) < was as f64 * keep => {
                    problems.push(format!("table {t}: {now} rows, {was} before"))
                }
                _ => {}
            }
        }
    }
    let limit = crate::units::Ratio(opts.max_shrink);
    if problems.is_empty() {
        rep.push(Check::pass(
            "shrink",
            format!(
                "no drop beyond --max-shrink {limit} against {}: {}",
                entry.file,
                compared.join(", ")
            ),
        ));
    } else {
        rep.push(Check::fail(
            "shrink",
            format!(
                "more than --max-shrink {limit} smaller than {}: {}",
                entry.file,
                problems.join("; ")
            ),
        ));
    }
}

/// Expected digests for one file: flags, checksum lists, sidecars. Problems become checks.
fn expectations(path: &Path, opts: &Options, rep: &mut FileReport) -> Vec<Expected> {
    let mut out = opts.expected.clone();
    for list in &opts.checksum_files {
        let found = checksum::lookup(list, path);
        if found.is_empty() {
            rep.push(Check::fail(
                "checksum",
                format!("{} has no line for {}", list.path.display(), path.display()),
            ));
        }
        out.extend(found);
    }
    if opts.sidecars {
        for s in checksum::sidecars(path) {
            match s {
                Ok(e) => out.push(e),
                Err((source, msg)) => rep.push(Check::fail("checksum", format!("{source}: {msg}"))),
            }
        }
    }
    out
}

/// Verify one backup file or base-backup directory (everything but the restore).
pub fn verify(path: &Path, opts: &Options) -> FileReport {
    verify_tapped(path, opts, None)
}

/// [`verify`], also handing the decoded bytes of a single file to `tap` (a restore reading
/// along: see [`engine::tap`]).
pub fn verify_tapped(path: &Path, opts: &Options, tap: Option<engine::Tap>) -> FileReport {
    let mut rep = FileReport {
        file: path.display().to_string(),
        path: path.to_path_buf(),
        ..Default::default()
    };
    let Some(meta) = stat_checks(path, opts, &mut rep) else {
        return rep;
    };
    if meta.is_dir() && pgdir::is_directory_dump(path) {
        verify_directory_dump(path, opts, &mut rep);
        shrink_check(opts, &mut rep);
        return rep;
    }
    if meta.is_dir() {
        verify_base_backup(path, opts, &mut rep);
        shrink_check(opts, &mut rep);
        return rep;
    }
    rep.size = Some(meta.len());
    size_check(meta.len(), opts, &mut rep);
    let expected = expectations(path, opts, &mut rep);
    let mut algos: BTreeSet<Algo> = expected.iter().map(|e| e.algo).collect();
    algos.insert(Algo::Sha256);
    let hint = if opts.format == FormatHint::Auto {
        FormatHint::from_name(path)
    } else {
        opts.format
    };
    let scan = engine::scan(path, &algos, hint, tap, opts.zstd_window_log());
    match &scan.read_error {
        Some(e) => {
            rep.unreadable = true;
            rep.push(Check::fail("readable", e.clone()));
        }
        None => {
            let note = if scan.bytes != meta.len() {
                format!(
                    "; the file changed while being read ({} bytes when opened)",
                    meta.len()
                )
            } else {
                String::new()
            };
            rep.push(Check::pass(
                "readable",
                format!("read once, {} bytes{note}", scan.bytes),
            ));
        }
    }
    for (a, d) in &scan.digests {
        rep.digests.insert(a.name().to_string(), d.clone());
    }
    for e in &expected {
        let name = format!("checksum:{}", e.algo);
        match scan.digests.get(&e.algo) {
            _ if scan.read_error.is_some() => rep.push(Check::fail(
                name,
                "not verified: the file could not be read",
            )),
            Some(got) if *got == e.hex => {
                rep.push(Check::pass(name, format!("{got} matches {}", e.source)))
            }
            Some(got) => rep.push(Check::fail(
                name,
                format!("{got} does not match {} ({} expected)", e.source, e.hex),
            )),
            None => rep.push(Check::fail(name, "not computed")),
        }
    }
    match &scan.compression {
        Compression::None => rep.compression = "none".into(),
        Compression::Gzip(g) => {
            rep.compression = "gzip".into();
            rep.uncompressed = Some(g.uncompressed);
            match &g.error {
                Some(e) => rep.push(Check::fail("gzip", e.clone())),
                None => rep.push(Check::pass(
                    "gzip",
                    format!(
                        "{} member(s), every CRC-32 and length matches, {} bytes inflated, no trailing data",
                        g.members, g.uncompressed
                    ),
                )),
            }
        }
        Compression::Zstd(z) => {
            rep.compression = "zstd".into();
            rep.uncompressed = Some(z.uncompressed);
            match &z.error {
                Some(e) => rep.push(Check::fail("zstd", e.clone())),
                None if z.frames_without_checksum > 0 => rep.push(Check::warn(
                    "zstd",
                    format!(
                        "{} of {} frame(s) carry no content checksum (zstd --no-check): corruption in them cannot be detected; {} bytes decoded",
                        z.frames_without_checksum, z.frames, z.uncompressed
                    ),
                )),
                None => rep.push(Check::pass(
                    "zstd",
                    format!("{} frame(s), every content checksum matches, {} bytes decoded", z.frames, z.uncompressed),
                )),
            }
        }
    }
    rep.format = scan.format.kind.clone();
    rep.tables = scan.format.tables.clone();
    rep.push(Check {
        check: "format".into(),
        ok: scan.format.ok,
        warning: scan.format.warning,
        detail: scan.format.detail.clone(),
    });
    shrink_check(opts, &mut rep);
    rep
}

fn verify_base_backup(dir: &Path, opts: &Options, rep: &mut FileReport) {
    rep.format = "pg-basebackup".into();
    rep.compression = "none".into();
    if !manifest::is_base_backup(dir) {
        rep.push(Check::fail(
            "manifest",
            "no backup_manifest: a base backup cannot be verified without it (pg_basebackup writes one unless --no-manifest; a copied data directory has none)",
        ));
        return;
    }
    let b = manifest::verify(dir, opts.wal_dir.as_deref());
    rep.unreadable = b.unreadable.is_some();
    if let Some(e) = &b.unreadable {
        rep.push(Check::fail("readable", e.clone()));
    }
    rep.size = Some(b.bytes);
    if let Some(d) = &b.manifest_sha256 {
        rep.digests.insert("manifest-sha256".into(), d.clone());
    }
    if b.layout == "tar" {
        rep.format = "pg-basebackup-tar".into();
        rep.compression = b.compression.clone();
    }
    rep.push(Check {
        check: "manifest".into(),
        ok: b.manifest_ok,
        warning: false,
        detail: b.manifest_detail,
    });
    rep.push(Check {
        check: "files".into(),
        ok: b.files_ok,
        warning: false,
        detail: b.files_detail,
    });
    if let Some(w) = b.wal {
        rep.push(Check {
            check: "wal".into(),
            ok: w.ok,
            warning: false,
            detail: w.detail,
        });
    }
}

/// A `pg_dump -Fd` folder: `toc.dat` and every data file it names (see [`pgdir`]).
fn verify_directory_dump(dir: &Path, opts: &Options, rep: &mut FileReport) {
    rep.format = "pg-directory".into();
    let mut size = 0u64;
    let mut kinds = BTreeSet::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        size += e.metadata().map(|m| m.len()).unwrap_or(0);
        let name = e.file_name().to_string_lossy().into_owned();
        kinds.insert(if name.ends_with(".gz") {
            "gzip"
        } else if name.ends_with(".zst") {
            "zstd"
        } else if name.ends_with(".lz4") {
            "lz4"
        } else {
            "none"
        });
    }
    kinds.remove("none");
    rep.compression = if kinds.is_empty() {
        "none".into()
    } else {
        kinds.into_iter().collect::<Vec<_>>().join("+")
    };
    rep.size = Some(size);
    size_check(size, opts, rep);
    match pgdir::check(dir) {
        Ok(f) => {
            rep.tables = f.tables.clone();
            rep.push(Check {
                check: "format".into(),
                ok: f.ok,
                warning: f.warning,
                detail: f.detail,
            });
        }
        Err(e) => {
            rep.unreadable = true;
            rep.push(Check::fail("readable", format!("toc.dat: {e}")));
        }
    }
}

/// Refinement of the rerun: repeat the shrink check once restore row counts are known.
pub fn recheck_shrink(opts: &Options, rep: &mut FileReport) {
    rep.checks.retain(|c| c.check != "shrink");
    shrink_check(opts, rep);
}

fn is_sidecar_or_list(name: &str) -> bool {
    let lower = name.to_lowercase();
    lower.starts_with('.')
        || checksum::SIDECAR_EXTS
            .iter()
            .any(|e| lower.ends_with(&format!(".{e}")))
        || lower.contains("sums")
        || lower.ends_with(".json")
        || lower.ends_with(".tmp")
        || lower.ends_with(".partial")
        || lower.ends_with(".log")
}

/// The newest backup in `dir`: regular files (symlinks followed, e.g. `latest.sql.gz`) and
/// base-backup folders, by modification time; sidecars, checksum lists and hidden files skipped.
pub fn latest_in(dir: &Path) -> std::io::Result<Option<(PathBuf, SystemTime)>> {
    let mut best: Option<(PathBuf, SystemTime)> = None;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_sidecar_or_list(&name) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let mtime = if meta.is_dir() {
            match std::fs::metadata(path.join("backup_manifest")).and_then(|m| m.modified()) {
                Ok(t) => t,
                Err(_) => continue,
            }
        } else if meta.is_file() {
            match meta.modified() {
                Ok(t) => t,
                Err(_) => continue,
            }
        } else {
            continue;
        };
        let newer = match &best {
            None => true,
            // Prefer a real file over a symlink to it when both have the same time.
            Some((p, t)) => mtime > *t || (mtime == *t && p.is_symlink() && !path.is_symlink()),
        };
        if newer {
            best = Some((path, mtime));
        }
    }
    Ok(best)
}
