//! A `pg_basebackup` directory checked against its `backup_manifest`, natively (what
//! `pg_verifybackup` does, minus WAL parsing): the manifest's own SHA-256, then every listed
//! file present with the listed size and checksum (CRC-32C by default, or SHA-2), and no file
//! on disk that the manifest does not list. Each file is read once.

use super::checksum::{Algo, Hasher};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Files and folders `pg_verifybackup` does not expect in the manifest.
const IGNORED: &[&str] = &[
    "backup_manifest",
    "pg_wal",
    "postgresql.auto.conf",
    "recovery.signal",
    "standby.signal",
];

const CASTAGNOLI_REFLECTED: u32 = 0x82F6_3B78;

fn crc32c_tables() -> &'static [[u32; 256]; 8] {
    static T: std::sync::OnceLock<[[u32; 256]; 8]> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = [[0u32; 256]; 8];
        for (i, slot) in t[0].iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ CASTAGNOLI_REFLECTED
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        #[allow(clippy::needless_range_loop)]
        for i in 0..256 {
            for k in 1..8 {
                let p = t[k - 1][i];
                t[k][i] = (p >> 8) ^ t[0][(p & 0xff) as usize];
            }
        }
        t
    })
}

/// CRC-32C (Castagnoli), streaming; `finish` gives the value PostgreSQL writes in manifests.
#[derive(Clone, Copy, Debug)]
pub struct Crc32c(u32);

impl Default for Crc32c {
    fn default() -> Self {
        Crc32c(0xFFFF_FFFF)
    }
}

impl Crc32c {
    pub fn update(&mut self, data: &[u8]) {
        let t = crc32c_tables();
        let mut crc = self.0;
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let lo = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
            crc = t[7][(lo & 0xff) as usize]
                ^ t[6][((lo >> 8) & 0xff) as usize]
                ^ t[5][((lo >> 16) & 0xff) as usize]
                ^ t[4][(lo >> 24) as usize]
                ^ t[3][(hi & 0xff) as usize]
                ^ t[2][((hi >> 8) & 0xff) as usize]
                ^ t[1][((hi >> 16) & 0xff) as usize]
                ^ t[0][(hi >> 24) as usize];
        }
        for &b in chunks.remainder() {
            crc = t[0][((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
        }
        self.0 = crc;
    }
    pub fn finish(self) -> u32 {
        !self.0
    }
}

/// The outcome of a base-backup check: the manifest's own check, then the files'.
#[derive(Clone, Debug, Default)]
pub struct BaseBackupReport {
    pub manifest_ok: bool,
    pub manifest_detail: String,
    pub files_ok: bool,
    pub files_detail: String,
    pub files: usize,
    pub bytes: u64,
    /// An I/O error that stopped the check (exit 3), as opposed to a finding.
    pub unreadable: Option<String>,
}

enum Sum {
    None,
    Crc(Crc32c),
    Sha(Box<Hasher>),
}

struct Listed {
    path: String,
    size: u64,
    algo: String,
    checksum: String,
}

fn parse_manifest(text: &[u8]) -> Result<(Vec<Listed>, String), String> {
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
    Ok((out, computed))
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
    let mut sum = match algo {
        "CRC32C" => Sum::Crc(Crc32c::default()),
        "SHA224" => Sum::Sha(Box::new(Hasher::new(Algo::Sha224))),
        "SHA256" => Sum::Sha(Box::new(Hasher::new(Algo::Sha256))),
        "SHA384" => Sum::Sha(Box::new(Hasher::new(Algo::Sha384))),
        "SHA512" => Sum::Sha(Box::new(Hasher::new(Algo::Sha512))),
        _ => Sum::None,
    };
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += k as u64;
        match &mut sum {
            Sum::None => {}
            Sum::Crc(c) => c.update(&buf[..k]),
            Sum::Sha(h) => h.update(&buf[..k]),
        }
    }
    let hex = match sum {
        Sum::None => String::new(),
        // PostgreSQL writes the CRC-32C in memory (little-endian) byte order.
        Sum::Crc(c) => hex::encode(c.finish().to_le_bytes()),
        Sum::Sha(h) => h.finish(),
    };
    Ok((n, hex))
}

/// Is `dir` a base backup (a folder holding `backup_manifest`)?
pub fn is_base_backup(dir: &Path) -> bool {
    dir.join("backup_manifest").is_file()
}

/// Verify a base-backup directory against its manifest.
pub fn verify(dir: &Path) -> BaseBackupReport {
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
    let (listed, digest) = match parse_manifest(&text) {
        Ok(x) => x,
        Err(e) => {
            rep.manifest_detail = e;
            rep.files_detail = "not checked: the manifest cannot be trusted".into();
            return rep;
        }
    };
    rep.manifest_ok = true;
    rep.manifest_detail = format!(
        "backup_manifest sha256 {digest} matches its Manifest-Checksum, {} files listed",
        listed.len()
    );
    let mut on_disk = BTreeSet::new();
    if let Err(e) = walk(dir, Path::new(""), &mut on_disk) {
        rep.unreadable = Some(format!("cannot list {}: {e}", dir.display()));
        rep.files_detail = format!("cannot list the backup: {e}");
        return rep;
    }
    let mut problems: Vec<String> = Vec::new();
    let mut count_problems = 0usize;
    let mut note = |p: String, problems: &mut Vec<String>| {
        count_problems += 1;
        if problems.len() < 10 {
            problems.push(p);
        }
    };
    let mut no_checksum = 0usize;
    for l in &listed {
        on_disk.remove(&l.path);
        let full: PathBuf = dir.join(&l.path);
        match std::fs::metadata(&full) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                note(format!("{}: missing", l.path), &mut problems);
                continue;
            }
            Err(e) => {
                rep.unreadable
                    .get_or_insert(format!("{}: {e}", full.display()));
                note(format!("{}: cannot read ({e})", l.path), &mut problems);
                continue;
            }
            Ok(m) if m.len() != l.size => {
                note(
                    format!(
                        "{}: size {} but the manifest says {}",
                        l.path,
                        m.len(),
                        l.size
                    ),
                    &mut problems,
                );
                continue;
            }
            Ok(_) => {}
        }
        match checksum_file(&full, &l.algo) {
            Err(e) => {
                rep.unreadable
                    .get_or_insert(format!("{}: {e}", full.display()));
                note(format!("{}: cannot read ({e})", l.path), &mut problems);
            }
            Ok((n, hex)) => {
                rep.bytes += n;
                rep.files += 1;
                if l.algo == "NONE" || hex.is_empty() {
                    no_checksum += 1;
                } else if hex != l.checksum {
                    note(
                        format!(
                            "{}: {} checksum {hex}, the manifest says {}",
                            l.path, l.algo, l.checksum
                        ),
                        &mut problems,
                    );
                }
            }
        }
    }
    for extra in &on_disk {
        note(
            format!("{extra}: present on disk but not in the manifest"),
            &mut problems,
        );
    }
    rep.files_ok = count_problems == 0;
    rep.files_detail = if rep.files_ok {
        format!(
            "{} files, {} bytes: all present with the listed size and checksum, none unlisted{}",
            rep.files,
            rep.bytes,
            if no_checksum > 0 {
                format!(" ({no_checksum} listed without a checksum)")
            } else {
                String::new()
            }
        )
    } else {
        format!("{count_problems} problem(s): {}", problems.join("; "))
    };
    rep
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
