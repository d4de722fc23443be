//! A `pg_basebackup` folder checked against its `backup_manifest`, natively (what
//! `pg_verifybackup` does, and for tar backups what it learned only in PostgreSQL 18): the
//! manifest's own SHA-256, then every listed file present with the listed size and checksum
//! (CRC-32C by default, or SHA-2), no file that the manifest does not list, and the WAL of its
//! `WAL-Ranges` (see [`super::wal`]).
//!
//! Two layouts: plain (`-Fp`, the data directory as files; each file read once) and tar
//! (`-Ft`: `base.tar`, tablespaces `OID.tar`, `pg_wal.tar`, each possibly `.gz`, `.zst` or
//! `.lz4`; each archive read once, its members hashed as they stream past, nothing unpacked).

use super::checksum::{Algo, Hasher};
use super::gzip::GzipReader;
use super::tar::{Kind, TarReader};
use super::wal::{self, WalCheck, WalReport};
use super::zstd::ZstdReader;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Files and folders `pg_verifybackup` does not expect in the manifest.
const IGNORED: &[&str] = &[
    "backup_manifest",
    "pg_wal",
    "postgresql.auto.conf",
    "recovery.signal",
    "standby.signal",
];

/// CRC-32C (Castagnoli), streaming; `finish` gives the value PostgreSQL writes in manifests and
/// WAL records. The `crc32c` crate uses the CPU's CRC32 instruction (SSE 4.2, ARMv8) when there
/// is one: about 4x the table-driven code this replaced, which made the file check slower than
/// `pg_verifybackup`'s.
#[derive(Clone, Copy, Debug, Default)]
pub struct Crc32c(u32);

impl Crc32c {
    pub fn update(&mut self, data: &[u8]) {
        self.0 = crc32c::crc32c_append(self.0, data);
    }
    pub fn finish(self) -> u32 {
        self.0
    }
}

/// The outcome of a base-backup check: the manifest's own check, then the files', then the WAL.
#[derive(Clone, Debug, Default)]
pub struct BaseBackupReport {
    pub manifest_ok: bool,
    pub manifest_detail: String,
    pub files_ok: bool,
    pub files_detail: String,
    pub files: usize,
    pub bytes: u64,
    /// `plain` or `tar`.
    pub layout: String,
    /// The SHA-256 of `backup_manifest` (it names every file's checksum: the backup's digest).
    pub manifest_sha256: Option<String>,
    /// Of the tar archives: `none`, `gzip`, `zstd`, `lz4`.
    pub compression: String,
    /// The WAL check (`None` when the manifest could not be trusted).
    pub wal: Option<WalReport>,
    /// The major version from `PG_VERSION`.
    pub major: Option<u32>,
    /// An I/O error that stopped the check (exit 3), as opposed to a finding.
    pub unreadable: Option<String>,
}

enum Sum {
    None,
    Crc(Crc32c),
    Sha(Box<Hasher>),
}

impl Sum {
    fn new(algo: &str) -> Sum {
        match algo {
            "CRC32C" => Sum::Crc(Crc32c::default()),
            "SHA224" => Sum::Sha(Box::new(Hasher::new(Algo::Sha224))),
            "SHA256" => Sum::Sha(Box::new(Hasher::new(Algo::Sha256))),
            "SHA384" => Sum::Sha(Box::new(Hasher::new(Algo::Sha384))),
            "SHA512" => Sum::Sha(Box::new(Hasher::new(Algo::Sha512))),
            _ => Sum::None,
        }
    }
    fn update(&mut self, data: &[u8]) {
        match self {
            Sum::None => {}
            Sum::Crc(c) => c.update(data),
            Sum::Sha(h) => h.update(data),
        }
    }
    fn hex(self) -> String {
        match self {
            Sum::None => String::new(),
            // PostgreSQL writes the CRC-32C in memory (little-endian) byte order.
            Sum::Crc(c) => hex::encode(c.finish().to_le_bytes()),
            Sum::Sha(h) => h.finish(),
        }
    }
}

struct Listed {
    path: String,
    size: u64,
    algo: String,
    checksum: String,
}

struct Manifest {
    files: Vec<Listed>,
    digest: String,
    ranges: Vec<wal::Range>,
}

fn parse_manifest(text: &[u8]) -> Result<Manifest, String> {
    // The checksum covers everything up to and including the newline before its own line.
    let key = b"\"Manifest-Checksum\"";
    let at = text
        .windows(key.len())
        .rposition(|w| w == key)
        .ok_or("no Manifest-Checksum in backup_manifest")?;
    let nl = text[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .ok_or("malformed backup_manifest")?;
    let mut h = Hasher::new(Algo::Sha256);
    h.update(&text[..=nl]);
    let computed = h.finish();
    let v: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format!("backup_manifest is not JSON: {e}"))?;
    let stored = v
        .get("Manifest-Checksum")
        .and_then(|c| c.as_str())
        .unwrap_or("")
        .to_lowercase();
    if stored != computed {
        return Err(format!(
            "manifest checksum mismatch: says {stored}, content gives {computed} (the manifest was altered)"
        ));
    }
    let files = v
        .get("Files")
        .and_then(|f| f.as_array())
        .ok_or("backup_manifest lists no Files")?;
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let path = match (
            f.get("Path").and_then(|p| p.as_str()),
            f.get("Encoded-Path"),
        ) {
            (Some(p), _) => p.to_string(),
            (None, Some(e)) => {
                let bytes = hex::decode(e.as_str().unwrap_or("")).map_err(|e| e.to_string())?;
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => return Err("a manifest entry has no Path".into()),
        };
        out.push(Listed {
            path,
            size: f.get("Size").and_then(|s| s.as_u64()).unwrap_or(0),
            algo: f
                .get("Checksum-Algorithm")
                .and_then(|a| a.as_str())
                .unwrap_or("NONE")
                .to_string(),
            checksum: f
                .get("Checksum")
                .and_then(|c| c.as_str())
                .unwrap_or("")
                .to_lowercase(),
        });
    }
    let mut ranges = Vec::new();
    for r in v
        .get("WAL-Ranges")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
    {
        let lsn = |k: &str| r.get(k).and_then(|x| x.as_str()).and_then(wal::parse_lsn);
        match (
            r.get("Timeline").and_then(|t| t.as_u64()),
            lsn("Start-LSN"),
            lsn("End-LSN"),
        ) {
            (Some(tli), Some(start), Some(end)) => ranges.push(wal::Range {
                tli: tli as u32,
                start,
                end,
            }),
            _ => return Err(format!("a WAL-Ranges entry is malformed: {r}")),
        }
    }
    Ok(Manifest {
        files: out,
        digest: computed,
        ranges,
    })
}

fn walk(root: &Path, rel: &Path, out: &mut BTreeSet<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relp = rel.join(&name);
        let rels = relp.to_string_lossy().into_owned();
        if rel.as_os_str().is_empty() && IGNORED.contains(&name.as_str()) {
            continue;
        }
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(root, &relp, out)?;
        } else {
            out.insert(rels);
        }
    }
    Ok(())
}

fn checksum_file(path: &Path, algo: &str) -> std::io::Result<(u64, String)> {
    let mut sum = Sum::new(algo);
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += k as u64;
        sum.update(&buf[..k]);
    }
    Ok((n, sum.hex()))
}

/// Problems found, the first ten kept for the message.
#[derive(Default)]
struct Tally {
    shown: Vec<String>,
    count: usize,
    no_checksum: usize,
}

impl Tally {
    fn note(&mut self, p: String) {
        self.count += 1;
        if self.shown.len() < 10 {
            self.shown.push(p);
        }
    }
    /// Compare what was read of a listed file with its entry.
    fn compare(&mut self, l: &Listed, size: u64, hex: &str) {
        if size != l.size {
            self.note(format!(
                "{}: size {size} but the manifest says {}",
                l.path, l.size
            ));
        } else if l.algo == "NONE" || hex.is_empty() {
            self.no_checksum += 1;
        } else if hex != l.checksum {
            self.note(format!(
                "{}: {} checksum {hex}, the manifest says {}",
                l.path, l.algo, l.checksum
            ));
        }
    }
}

/// Is `dir` a base backup (a folder holding `backup_manifest`)?
pub fn is_base_backup(dir: &Path) -> bool {
    dir.join("backup_manifest").is_file()
}

/// Does `dir` look like a base backup or a data directory, with or without a manifest
/// (`PG_VERSION`, `backup_manifest` or a `base.tar*`)? Such a folder is verified (and fails
/// without its manifest) rather than refused as bad input.
pub fn looks_like_base_backup(dir: &Path) -> bool {
    is_base_backup(dir) || dir.join("PG_VERSION").is_file() || !archives(dir).is_empty()
}

/// What a tar archive of a base backup holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Base,
    Tablespace(String),
    Wal,
}

/// The archives of a tar-format backup: `base.tar*`, `OID.tar*`, `pg_wal.tar*`, base first.
fn archives(dir: &Path) -> Vec<(Part, PathBuf)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.lz4"]
            .iter()
            .find_map(|ext| name.strip_suffix(ext))
        else {
            continue;
        };
        let part = match stem {
            "base" => Part::Base,
            "pg_wal" => Part::Wal,
            oid if !oid.is_empty() && oid.bytes().all(|b| b.is_ascii_digit()) => {
                Part::Tablespace(oid.to_string())
            }
            _ => continue,
        };
        out.push((part, e.path()));
    }
    out.sort();
    out
}

/// Records the first error of the underlying file (as opposed to a decoding error: a damaged
/// archive is a finding, an unreadable disk is the environment's).
struct Src {
    inner: BufReader<std::fs::File>,
    error: Arc<Mutex<Option<String>>>,
}

impl Read for Src {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if let Ok(mut g) = self.error.lock() {
                g.get_or_insert(e.to_string());
            }
        })
    }
}

impl BufRead for Src {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let error = Arc::clone(&self.error);
        self.inner.fill_buf().inspect_err(|e| {
            if let Ok(mut g) = error.lock() {
                g.get_or_insert(e.to_string());
            }
        })
    }
    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
    }
}

/// A decoded archive (or WAL file): compression told from the first bytes.
enum Decoded {
    Plain(Src),
    Gzip(GzipReader<Src>),
    Zstd(ZstdReader<Src>),
    Lz4(Box<lz4_flex::frame::FrameDecoder<Src>>),
}

impl Decoded {
    fn open(path: &Path, error: &Arc<Mutex<Option<String>>>) -> io::Result<Decoded> {
        let mut src = Src {
            inner: BufReader::with_capacity(1 << 20, std::fs::File::open(path)?),
            error: Arc::clone(error),
        };
        let head = src.fill_buf()?;
        Ok(if head.starts_with(&[0x1f, 0x8b]) {
            Decoded::Gzip(GzipReader::new(src))
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Decoded::Zstd(ZstdReader::new(src, super::zstd::WINDOW_LOG_MAX))
        } else if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
            Decoded::Lz4(Box::new(lz4_flex::frame::FrameDecoder::new(src)))
        } else {
            Decoded::Plain(src)
        })
    }
    fn name(&self) -> &'static str {
        match self {
            Decoded::Plain(_) => "none",
            Decoded::Gzip(_) => "gzip",
            Decoded::Zstd(_) => "zstd",
            Decoded::Lz4(_) => "lz4",
        }
    }
    /// The compression's own verdict once the stream has been read (CRCs, trailing data).
    fn finish(self) -> Option<String> {
        match self {
            Decoded::Plain(_) | Decoded::Lz4(_) => None,
            Decoded::Gzip(g) => g
                .finish()
                .map_err(|e| e.to_string())
                .and_then(|(r, _)| r.error.map_or(Ok(()), Err))
                .err()
                .map(|e| format!("gzip: {e}")),
            Decoded::Zstd(z) => z
                .finish()
                .map_err(|e| e.to_string())
                .and_then(|(r, _)| r.error.map_or(Ok(()), Err))
                .err()
                .map(|e| format!("zstd: {e}")),
        }
    }
}

impl Read for Decoded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoded::Plain(r) => r.read(buf),
            Decoded::Gzip(r) => r.read(buf),
            Decoded::Zstd(r) => r.read(buf),
            Decoded::Lz4(r) => r.read(buf),
        }
    }
}

fn read_all(r: &mut impl Read, size: u64) -> io::Result<Vec<u8>> {
    let mut v = Vec::with_capacity(size.min(1 << 30) as usize);
    r.read_to_end(&mut v)?;
    Ok(v)
}

fn major_of(text: &[u8]) -> Option<u32> {
    String::from_utf8_lossy(text)
        .trim()
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Verify a base-backup folder (plain or tar) against its manifest, with the WAL it needs
/// from the backup itself or from `wal_dir` (a WAL archive).
pub fn verify(dir: &Path, wal_dir: Option<&Path>) -> BaseBackupReport {
    let mut rep = BaseBackupReport::default();
    let manifest_path = dir.join("backup_manifest");
    let text = match std::fs::read(&manifest_path) {
        Ok(t) => t,
        Err(e) => {
            rep.unreadable = Some(format!("cannot read {}: {e}", manifest_path.display()));
            rep.manifest_detail = format!("cannot read backup_manifest: {e}");
            rep.files_detail = "not checked: no manifest".into();
            return rep;
        }
    };
    let manifest = match parse_manifest(&text) {
        Ok(x) => x,
        Err(e) => {
            rep.manifest_detail = e;
            rep.files_detail = "not checked: the manifest cannot be trusted".into();
            return rep;
        }
    };
    rep.manifest_ok = true;
    rep.manifest_sha256 = Some(manifest.digest.clone());
    rep.manifest_detail = format!(
        "backup_manifest sha256 {} matches its Manifest-Checksum, {} files listed",
        manifest.digest,
        manifest.files.len()
    );
    let tars = archives(dir);
    let mut wal = WalCheck::new(&manifest.ranges, None);
    let mut tally = Tally::default();
    if tars.is_empty() {
        rep.layout = "plain".into();
        rep.compression = "none".into();
        verify_plain(dir, &manifest, &mut wal, &mut tally, &mut rep);
    } else {
        rep.layout = "tar".into();
        verify_tar(&tars, &manifest, &mut wal, &mut tally, &mut rep);
    }
    if let Some(w) = wal_dir {
        feed_wal_dir(w, &mut wal, &mut rep);
    }
    rep.wal = Some(if manifest.ranges.is_empty() {
        WalReport {
            ok: false,
            detail: "the manifest has no WAL-Ranges: the WAL the backup needs cannot be checked"
                .into(),
        }
    } else {
        wal.finish()
    });
    rep.files_ok = tally.count == 0;
    let archive_note = if rep.layout == "tar" {
        format!(
            " in {} archive(s) ({})",
            tars.len(),
            tars.iter()
                .filter_map(|(_, p)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        String::new()
    };
    rep.files_detail = if rep.files_ok {
        format!(
            "{} files, {} bytes{archive_note}: all present with the listed size and checksum, none unlisted{}",
            rep.files,
            rep.bytes,
            if tally.no_checksum > 0 {
                format!(" ({} listed without a checksum)", tally.no_checksum)
            } else {
                String::new()
            }
        )
    } else {
        format!("{} problem(s): {}", tally.count, tally.shown.join("; "))
    };
    rep
}

fn verify_plain(
    dir: &Path,
    manifest: &Manifest,
    wal: &mut WalCheck,
    tally: &mut Tally,
    rep: &mut BaseBackupReport,
) {
    rep.major = std::fs::read(dir.join("PG_VERSION"))
        .ok()
        .and_then(|t| major_of(&t));
    if let Some(v) = rep.major {
        wal.set_major(v);
    }
    let mut on_disk = BTreeSet::new();
    if let Err(e) = walk(dir, Path::new(""), &mut on_disk) {
        rep.unreadable = Some(format!("cannot list {}: {e}", dir.display()));
        tally.note(format!("cannot list the backup: {e}"));
        return;
    }
    for l in &manifest.files {
        on_disk.remove(&l.path);
        let full: PathBuf = dir.join(&l.path);
        match std::fs::metadata(&full) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tally.note(format!("{}: missing", l.path));
                continue;
            }
            Err(e) => {
                rep.unreadable
                    .get_or_insert(format!("{}: {e}", full.display()));
                tally.note(format!("{}: cannot read ({e})", l.path));
                continue;
            }
            Ok(m) if m.len() != l.size => {
                tally.compare(l, m.len(), "");
                continue;
            }
            Ok(_) => {}
        }
        match checksum_file(&full, &l.algo) {
            Err(e) => {
                rep.unreadable
                    .get_or_insert(format!("{}: {e}", full.display()));
                tally.note(format!("{}: cannot read ({e})", l.path));
            }
            Ok((n, hex)) => {
                rep.bytes += n;
                rep.files += 1;
                tally.compare(l, n, &hex);
            }
        }
    }
    for extra in &on_disk {
        tally.note(format!("{extra}: present on disk but not in the manifest"));
    }
    // The WAL in pg_wal/, in name (= LSN) order.
    let mut names: Vec<String> = std::fs::read_dir(dir.join("pg_wal"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        if !wal.wants(&name) {
            continue;
        }
        let path = dir.join("pg_wal").join(&name);
        match std::fs::read(&path) {
            Ok(bytes) => wal.add(&name, &format!("pg_wal/{name}"), bytes),
            Err(e) => {
                rep.unreadable
                    .get_or_insert(format!("{}: {e}", path.display()));
            }
        }
    }
}

/// Segments from a WAL archive folder (plain, or compressed as `archive_command` often does).
fn feed_wal_dir(dir: &Path, wal: &mut WalCheck, rep: &mut BaseBackupReport) {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => {
            rep.unreadable
                .get_or_insert(format!("--wal-dir {}: {e}", dir.display()));
            return;
        }
    };
    names.sort();
    for name in names {
        let seg = [".gz", ".zst", ".lz4"]
            .iter()
            .find_map(|ext| name.strip_suffix(ext))
            .unwrap_or(&name);
        if !wal.wants(seg) {
            continue;
        }
        let path = dir.join(&name);
        let error = Arc::new(Mutex::new(None));
        let read = Decoded::open(&path, &error).and_then(|mut d| {
            let bytes = read_all(&mut d, 16 << 20)?;
            match d.finish() {
                Some(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                None => Ok(bytes),
            }
        });
        match read {
            Ok(bytes) => wal.add(seg, &path.display().to_string(), bytes),
            Err(e) => {
                if let Some(io) = error.lock().ok().and_then(|g| g.clone()) {
                    rep.unreadable
                        .get_or_insert(format!("{}: {io}", path.display()));
                }
                tracing::warn!("{}: {e}", path.display());
            }
        }
    }
}

fn verify_tar(
    tars: &[(Part, PathBuf)],
    manifest: &Manifest,
    wal: &mut WalCheck,
    tally: &mut Tally,
    rep: &mut BaseBackupReport,
) {
    let listed: BTreeMap<&str, &Listed> = manifest
        .files
        .iter()
        .map(|l| (l.path.as_str(), l))
        .collect();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    if !tars.iter().any(|(p, _)| *p == Part::Base) {
        tally.note("no base.tar* in the folder (the data directory's archive)".into());
    }
    let mut kinds = BTreeSet::new();
    let mut buf = vec![0u8; 1 << 20];
    for (part, path) in tars {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let error = Arc::new(Mutex::new(None));
        let mut decoded = match Decoded::open(path, &error) {
            Ok(d) => d,
            Err(e) => {
                rep.unreadable
                    .get_or_insert(format!("{}: {e}", path.display()));
                tally.note(format!("{file}: cannot read ({e})"));
                continue;
            }
        };
        kinds.insert(decoded.name());
        let prefix = match part {
            Part::Tablespace(oid) => format!("pg_tblspc/{oid}/"),
            _ => String::new(),
        };
        let mut tar = TarReader::new(&mut decoded);
        let outcome: io::Result<()> = (|| {
            while let Some(m) = tar.next_member()? {
                if m.kind != Kind::File {
                    continue;
                }
                let name = format!("{prefix}{}", m.path);
                let wal_name = match part {
                    Part::Wal => Some(m.path.rsplit('/').next().unwrap_or("").to_string()),
                    _ => name
                        .strip_prefix("pg_wal/")
                        .map(|n| n.rsplit('/').next().unwrap_or("").to_string()),
                };
                if let Some(seg) = wal_name {
                    if wal.wants(&seg) {
                        let bytes = read_all(&mut tar, m.size)?;
                        wal.add(&seg, &format!("{file}:{seg}"), bytes);
                    }
                    continue;
                }
                let Some(l) = listed.get(name.as_str()) else {
                    // As for a plain backup: what the server adds or rewrites is not listed.
                    let top = name.split('/').next().unwrap_or("");
                    if !(*part == Part::Base && IGNORED.contains(&top)) {
                        tally.note(format!(
                            "{file}: {name}: in the archive but not in the manifest"
                        ));
                    }
                    continue;
                };
                let mut sum = Sum::new(&l.algo);
                let mut n = 0u64;
                let keep = name == "PG_VERSION";
                let mut kept = Vec::new();
                loop {
                    let k = tar.read(&mut buf)?;
                    if k == 0 {
                        break;
                    }
                    sum.update(&buf[..k]);
                    if keep {
                        kept.extend_from_slice(&buf[..k]);
                    }
                    n += k as u64;
                }
                if keep {
                    rep.major = major_of(&kept);
                    if let Some(v) = rep.major {
                        wal.set_major(v);
                    }
                }
                seen.insert(name.clone());
                rep.files += 1;
                rep.bytes += n;
                tally.compare(l, n, &sum.hex());
            }
            if let Some(extra) = tar.trailing_garbage()? {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{extra} bytes of data after the end of the archive"),
                ));
            }
            Ok(())
        })();
        let codec = decoded.finish();
        if let Some(e) = error.lock().ok().and_then(|g| g.clone()) {
            rep.unreadable
                .get_or_insert(format!("{}: {e}", path.display()));
        }
        match (codec, outcome) {
            (Some(c), _) => tally.note(format!("{file}: {c}")),
            (None, Err(e)) => tally.note(format!("{file}: {e}")),
            (None, Ok(())) => {}
        }
    }
    rep.compression = kinds.into_iter().collect::<Vec<_>>().join("+");
    let in_tablespaces: BTreeSet<&str> = tars
        .iter()
        .filter_map(|(p, _)| match p {
            Part::Tablespace(oid) => Some(oid.as_str()),
            _ => None,
        })
        .collect();
    for l in &manifest.files {
        if !seen.contains(&l.path) {
            let hint = match l
                .path
                .strip_prefix("pg_tblspc/")
                .and_then(|r| r.split('/').next())
            {
                Some(oid) if !in_tablespaces.contains(oid) => {
                    format!(" (no {oid}.tar* in the folder)")
                }
                _ => String::new(),
            };
            tally.note(format!("{}: missing{hint}", l.path));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        let mut c = Crc32c::default();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xe306_9283);
    }
}
