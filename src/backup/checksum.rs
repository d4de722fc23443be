//! Expected checksums and where they come from: `--sha256`/`--md5` flags, sidecar files found
//! next to the backup (`FILE.sha256`, `FILE.sha256sum`, `FILE.md5`, ...) and `--checksum-file`
//! lists in GNU coreutils (`hex  name`, `hex *name`, `\`-escaped names) or BSD
//! (`SHA256 (name) = hex`) form. Also the streaming hashers the one-pass engine feeds.

use sha2::Digest;
use std::fmt;
use std::path::{Path, PathBuf};

/// A digest algorithm users put in checksum files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algo {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Algo {
    pub fn name(self) -> &'static str {
        match self {
            Algo::Md5 => "md5",
            Algo::Sha1 => "sha1",
            Algo::Sha224 => "sha224",
            Algo::Sha256 => "sha256",
            Algo::Sha384 => "sha384",
            Algo::Sha512 => "sha512",
        }
    }

    /// The algorithm a GNU checksum line uses, told by its hex length.
    pub fn from_hex_len(len: usize) -> Option<Algo> {
        match len {
            32 => Some(Algo::Md5),
            40 => Some(Algo::Sha1),
            56 => Some(Algo::Sha224),
            64 => Some(Algo::Sha256),
            96 => Some(Algo::Sha384),
            128 => Some(Algo::Sha512),
            _ => None,
        }
    }

    /// The algorithm a BSD tag (`SHA256`, `SHA2-256`, `MD5`) names.
    pub fn from_tag(tag: &str) -> Option<Algo> {
        match tag.to_ascii_uppercase().replace('-', "").as_str() {
            "MD5" => Some(Algo::Md5),
            "SHA1" => Some(Algo::Sha1),
            "SHA224" | "SHA2224" => Some(Algo::Sha224),
            "SHA256" | "SHA2256" => Some(Algo::Sha256),
            "SHA384" | "SHA2384" => Some(Algo::Sha384),
            "SHA512" | "SHA2512" => Some(Algo::Sha512),
            _ => None,
        }
    }

    pub fn hex_len(self) -> usize {
        match self {
            Algo::Md5 => 32,
            Algo::Sha1 => 40,
            Algo::Sha224 => 56,
            Algo::Sha256 => 64,
            Algo::Sha384 => 96,
            Algo::Sha512 => 128,
        }
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A streaming hasher for one algorithm. SHA-256/384/512 use ring (its assembly picks AVX or
/// SHA-NI at run time; 1.6x the portable sha2 code for SHA-256 on the benchmark machine, see
/// bench/RESULTS.md); MD5, SHA-1 and SHA-224 the RustCrypto crates.
pub enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Ring(ring::digest::Context),
}

impl Hasher {
    pub fn new(algo: Algo) -> Hasher {
        use ring::digest::{Context, SHA256, SHA384, SHA512};
        match algo {
            Algo::Md5 => Hasher::Md5(md5::Md5::new()),
            Algo::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algo::Sha224 => Hasher::Sha224(sha2::Sha224::new()),
            Algo::Sha256 => Hasher::Ring(Context::new(&SHA256)),
            Algo::Sha384 => Hasher::Ring(Context::new(&SHA384)),
            Algo::Sha512 => Hasher::Ring(Context::new(&SHA512)),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha224(h) => h.update(data),
            Hasher::Ring(h) => h.update(data),
        }
    }

    /// The digest as lowercase hex.
    pub fn finish(self) -> String {
        match self {
            Hasher::Md5(h) => hex::encode(h.finalize()),
            Hasher::Sha1(h) => hex::encode(h.finalize()),
            Hasher::Sha224(h) => hex::encode(h.finalize()),
            Hasher::Ring(h) => hex::encode(h.finish()),
        }
    }
}

/// One digest a file is expected to have, and where the expectation comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Expected {
    pub algo: Algo,
    pub hex: String,
    /// `--sha256`, `sidecar backup.sql.gz.sha256`, `SHA256SUMS:3`.
    pub source: String,
}

/// One entry of a checksum list.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub algo: Algo,
    pub hex: String,
    pub name: String,
    pub line: usize,
}

/// A parsed `--checksum-file`.
#[derive(Clone, Debug)]
pub struct ChecksumFile {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

/// Parse a hex digest given on the command line for `algo`; the error names the flag.
pub fn parse_hex_flag(flag: &str, algo: Algo, value: &str) -> Result<Expected, String> {
    let hex = value.trim().to_ascii_lowercase();
    if hex.len() != algo.hex_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{flag} expects {} hex digits for {algo}, got '{value}'",
            algo.hex_len()
        ));
    }
    Ok(Expected {
        algo,
        hex,
        source: flag.to_string(),
    })
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Undo GNU coreutils' escaping of a file name (`\\`, `\n`, `\r`).
fn unescape_gnu(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('\\') => out.push('\\'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parse one line in GNU (`hex  name`, `hex *name`, `\hex  esc\\name`) or BSD
/// (`SHA256 (name) = hex`) form. Blank lines and `#` comments give `Ok(None)`.
pub fn parse_line(line: &str, line_no: usize) -> Result<Option<Entry>, String> {
    let raw = line.trim_end_matches(['\r', '\n']);
    if raw.trim().is_empty() || raw.trim_start().starts_with('#') {
        return Ok(None);
    }
    let (escaped, body) = match raw.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    // BSD: TAG (name) = hex
    if let Some(open) = body.find(" (") {
        let tag = &body[..open];
        if let (Some(algo), Some(close)) = (Algo::from_tag(tag), body.rfind(") = ")) {
            let name = &body[open + 2..close];
            let hex = body[close + 4..].trim().to_ascii_lowercase();
            if hex.len() != algo.hex_len() || !is_hex(&hex) {
                return Err(format!("line {line_no}: '{hex}' is not a {algo} digest"));
            }
            let name = if escaped {
                unescape_gnu(name)
            } else {
                name.to_string()
            };
            return Ok(Some(Entry {
                algo,
                hex,
                name,
                line: line_no,
            }));
        }
    }
    // GNU: hex, one space, then ' ' (text) or '*' (binary), then the name.
    let Some(space) = body.find(' ') else {
        return Err(format!(
            "line {line_no}: expected 'HEX  NAME' or 'ALGO (NAME) = HEX'"
        ));
    };
    let hex = body[..space].to_ascii_lowercase();
    let Some(algo) = Algo::from_hex_len(hex.len()).filter(|_| is_hex(&hex)) else {
        return Err(format!(
            "line {line_no}: '{hex}' is not an md5/sha1/sha2 digest"
        ));
    };
    let rest = &body[space + 1..];
    let name = rest
        .strip_prefix(' ')
        .or_else(|| rest.strip_prefix('*'))
        .unwrap_or(rest);
    if name.is_empty() {
        return Err(format!("line {line_no}: no file name after the digest"));
    }
    let name = if escaped {
        unescape_gnu(name)
    } else {
        name.to_string()
    };
    Ok(Some(Entry {
        algo,
        hex,
        name,
        line: line_no,
    }))
}

/// Parse a whole checksum list.
pub fn parse_list(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(e) = parse_line(line, i + 1)? {
            out.push(e);
        }
    }
    Ok(out)
}

/// Read and parse `--checksum-file F`.
pub fn read_checksum_file(path: &Path) -> Result<ChecksumFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--checksum-file {}: {e}", path.display()))?;
    let entries =
        parse_list(&text).map_err(|e| format!("--checksum-file {}: {e}", path.display()))?;
    if entries.is_empty() {
        return Err(format!(
            "--checksum-file {}: no checksum lines in it",
            path.display()
        ));
    }
    Ok(ChecksumFile {
        path: path.to_path_buf(),
        entries,
    })
}

/// Does a name from a checksum list refer to `file`? Either the same base name, or the same file
/// once resolved against the list's folder.
fn names_file(list_dir: &Path, name: &str, file: &Path) -> bool {
    let base = file.file_name().map(|b| b.to_string_lossy().into_owned());
    if base.as_deref() == Some(name) || Path::new(name) == file {
        return true;
    }
    let candidate = list_dir.join(name);
    match (candidate.canonicalize(), file.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The entries of a checksum list that name `file`.
pub fn lookup(list: &ChecksumFile, file: &Path) -> Vec<Expected> {
    let dir = list.path.parent().unwrap_or(Path::new("."));
    list.entries
        .iter()
        .filter(|e| names_file(dir, &e.name, file))
        .map(|e| Expected {
            algo: e.algo,
            hex: e.hex.clone(),
            source: format!("{}:{}", list.path.display(), e.line),
        })
        .collect()
}

/// Extensions of sidecar files, in the order they are looked for.
pub const SIDECAR_EXTS: &[&str] = &[
    "sha256",
    "sha256sum",
    "sha512",
    "sha512sum",
    "sha1",
    "sha1sum",
    "md5",
    "md5sum",
];

fn algo_of_ext(ext: &str) -> Algo {
    match ext.trim_end_matches("sum") {
        "sha512" => Algo::Sha512,
        "sha1" => Algo::Sha1,
        "md5" => Algo::Md5,
        _ => Algo::Sha256,
    }
}

/// Sidecars next to `file` (`FILE.sha256`, ...): their expectations, or an error naming the
/// sidecar when it cannot be read or says nothing about `file`.
pub fn sidecars(file: &Path) -> Vec<Result<Expected, (String, String)>> {
    let mut out = Vec::new();
    for ext in SIDECAR_EXTS {
        let mut os = file.as_os_str().to_os_string();
        os.push(".");
        os.push(ext);
        let side = PathBuf::from(os);
        if !side.is_file() {
            continue;
        }
        let source = format!("sidecar {}", side.display());
        let text = match std::fs::read_to_string(&side) {
            Ok(t) => t,
            Err(e) => {
                out.push(Err((source, format!("cannot read: {e}"))));
                continue;
            }
        };
        out.push(
            parse_sidecar(&text, algo_of_ext(ext), file)
                .map_err(|e| (source.clone(), e))
                .map(|(algo, hex)| Expected {
                    algo,
                    hex,
                    source: source.clone(),
                }),
        );
    }
    out
}

/// A sidecar holds a bare digest, or checksum lines of which one names the file (or the only
/// line names nothing we can match, e.g. a path from the machine that made it).
fn parse_sidecar(text: &str, ext_algo: Algo, file: &Path) -> Result<(Algo, String), String> {
    let trimmed = text.trim();
    let first = trimmed.split_whitespace().next().unwrap_or("");
    if trimmed.split_whitespace().count() == 1 && is_hex(first) {
        let algo = Algo::from_hex_len(first.len()).unwrap_or(ext_algo);
        if algo != ext_algo {
            return Err(format!("holds a {algo} digest, expected {ext_algo}"));
        }
        return Ok((algo, first.to_ascii_lowercase()));
    }
    let entries = parse_list(text)?;
    let base = file
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    let matching: Vec<&Entry> = entries
        .iter()
        .filter(|e| {
            e.name == base
                || Path::new(&e.name).file_name().map(|n| n.to_string_lossy())
                    == Some(base.as_str().into())
        })
        .collect();
    match (matching.first(), entries.as_slice()) {
        (Some(e), _) => Ok((e.algo, e.hex.clone())),
        (None, [only]) => Ok((only.algo, only.hex.clone())),
        (None, []) => Err("holds no digest".into()),
        (None, _) => Err(format!("has no line for '{base}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn gnu_and_bsd_lines() {
        let e = parse_line(&format!("{H}  backup.sql.gz"), 1)
            .expect("ok")
            .expect("entry");
        assert_eq!((e.algo, e.name.as_str()), (Algo::Sha256, "backup.sql.gz"));
        let e = parse_line(&format!("{H} *b.bin"), 2)
            .expect("ok")
            .expect("entry");
        assert_eq!(e.name, "b.bin");
        let e = parse_line(&format!("\\{H}  a\\nb\\\\c"), 3)
            .expect("ok")
            .expect("entry");
        assert_eq!(e.name, "a\nb\\c");
        let e = parse_line(&format!("SHA256 (my file.gz) = {H}"), 4)
            .expect("ok")
            .expect("entry");
        assert_eq!((e.algo, e.name.as_str()), (Algo::Sha256, "my file.gz"));
        let e = parse_line("MD5 (x) = d41d8cd98f00b204e9800998ecf8427e", 5)
            .expect("ok")
            .expect("e");
        assert_eq!(e.algo, Algo::Md5);
        assert!(parse_line("# comment", 6).expect("ok").is_none());
        assert!(parse_line("zzz  name", 7).is_err());
    }

    #[test]
    fn hashers_match_known_vectors() {
        let mut h = Hasher::new(Algo::Sha256);
        h.update(b"test");
        assert_eq!(h.finish(), H);
        let mut h = Hasher::new(Algo::Md5);
        h.update(b"");
        assert_eq!(h.finish(), "d41d8cd98f00b204e9800998ecf8427e");
        // FIPS 180 "abc" vectors, fed in two pieces so the streaming state is exercised.
        let abc = [
            (Algo::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (Algo::Sha224, "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"),
            (Algo::Sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (Algo::Sha384, "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"),
            (Algo::Sha512, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"),
        ];
        for (algo, want) in abc {
            let mut h = Hasher::new(algo);
            h.update(b"a");
            h.update(b"bc");
            assert_eq!(h.finish(), want, "{algo}");
        }
    }

    #[test]
    fn sidecar_forms() {
        let f = Path::new("/x/backup.sql.gz");
        assert_eq!(parse_sidecar(H, Algo::Sha256, f).expect("bare").1, H);
        let t = format!("{H}  /other/host/backup.sql.gz\n");
        assert_eq!(parse_sidecar(&t, Algo::Sha256, f).expect("gnu").1, H);
        assert!(parse_sidecar("d41d8cd98f00b204e9800998ecf8427e", Algo::Sha256, f).is_err());
    }
}
