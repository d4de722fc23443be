//! The directory-format `pg_dump` check (`pg_dump -Fd`, the format of parallel dumps): `toc.dat`
//! is read like a custom archive's table of contents (see [`super::pgcustom`]), then every data
//! file it names must be in the folder (`N.dat`, or `N.dat.gz` / `.zst` / `.lz4` as `pg_dump -Z`
//! writes it) and decode to its end; rows per table are counted from the COPY data. Restored by
//! `pg_restore -j`, which reads the folder itself.

use super::pgcustom::{self, Tail};
use super::FormatReport;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Is `dir` a directory-format dump (it holds `toc.dat`)?
pub fn is_directory_dump(dir: &Path) -> bool {
    dir.join("toc.dat").is_file()
}

/// The data file a TOC entry names, as it is on disk (with the suffix its compression adds).
fn data_file(dir: &Path, name: &str) -> Option<PathBuf> {
    ["", ".gz", ".zst", ".lz4"]
        .iter()
        .map(|ext| dir.join(format!("{name}{ext}")))
        .find(|p| p.is_file())
}

/// Decode one data file to its end: (bytes, COPY rows), or what is wrong with it.
fn decode(path: &Path) -> Result<(u64, u64), String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut src = BufReader::with_capacity(1 << 20, f);
    let head = src
        .fill_buf()
        .map_err(|e| format!("cannot read: {e}"))?
        .to_vec();
    let mut r: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(src))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(src).map_err(|e| e.to_string())?)
    } else if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        Box::new(lz4_flex::frame::FrameDecoder::new(src))
    } else {
        Box::new(src)
    };
    let mut buf = vec![0u8; 1 << 20];
    let (mut bytes, mut lines) = (0u64, 0u64);
    let mut tail = Tail::default();
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| format!("does not decode: {e}"))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        tail.push(&buf[..n]);
    }
    Ok((bytes, lines.saturating_sub(tail.not_rows())))
}

/// Check a directory-format dump.
pub fn check(dir: &Path) -> std::io::Result<FormatReport> {
    let toc_path = dir.join("toc.dat");
    let mut r = BufReader::new(std::fs::File::open(&toc_path)?);
    let toc = match pgcustom::read_dir_toc(&mut r) {
        Ok(t) => t,
        Err(e) => {
            return Ok(FormatReport {
                kind: "pg-directory".into(),
                ok: false,
                warning: false,
                detail: format!("directory dump: toc.dat: {e}"),
                tables: BTreeMap::new(),
            })
        }
    };
    let mut errors = Vec::new();
    let mut tables = BTreeMap::new();
    let (mut files, mut bytes) = (0usize, 0u64);
    for e in &toc.entries {
        let Some(name) = &e.file else { continue };
        let Some(path) = data_file(dir, name) else {
            errors.push(format!("{name} ({} {}): missing", e.desc, e.name));
            continue;
        };
        let shown = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match decode(&path) {
            Ok((n, rows)) => {
                files += 1;
                bytes += n;
                if e.desc == "TABLE DATA" {
                    *tables.entry(e.name.clone()).or_insert(0) += rows;
                }
            }
            Err(m) => errors.push(format!("{shown} ({} {}): {m}", e.desc, e.name)),
        }
    }
    let summary = format!(
        "archive {} of '{}', {} TOC entries, {files} data files, {bytes} bytes decoded ({} rows in {} tables)",
        toc.version,
        toc.dbname,
        toc.entries.len(),
        tables.values().sum::<u64>(),
        tables.len()
    );
    let ok = errors.is_empty();
    let detail = if ok {
        format!("directory dump: toc.dat ok, every data file present and decoded, {summary}")
    } else {
        let n = errors.len();
        errors.truncate(10);
        format!(
            "directory dump: {n} problem(s): {} ({summary})",
            errors.join("; ")
        )
    };
    Ok(FormatReport {
        kind: "pg-directory".into(),
        ok,
        warning: false,
        detail,
        tables,
    })
}
