//! The custom-format `pg_dump` check (`pg_dump -Fc`): the `PGDMP` header, a table of contents
//! that reads to its end, and then every data block the TOC promises, walked chunk by chunk
//! and — when the archive is zlib-compressed — inflated, so a damaged or missing block is found
//! without `pg_restore`. Rows per table are counted from the COPY data on the way.
//!
//! The layout follows PostgreSQL's `pg_backup_archiver.c` (`ReadHead`, `ReadToc`) and
//! `pg_backup_custom.c` (`_ReadExtraToc`, block headers), archive versions 1.12 to 1.16.

use super::FormatReport;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead};

const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
const K_OFFSET_NO_DATA: u8 = 3;
const MAX_STR: i64 = 256 << 20;

struct Archive<'a> {
    r: &'a mut dyn BufRead,
    /// `toc.dat` of a directory dump: entries name data files, no data blocks follow.
    directory: bool,
    version: (u8, u8, u8),
    int_size: usize,
    off_size: usize,
    pos: u64,
}

impl<'a> Archive<'a> {
    /// An archive read from its first byte; sizes come from its header.
    fn new(r: &'a mut dyn BufRead, directory: bool) -> Self {
        Archive {
            r,
            directory,
            version: (0, 0, 0),
            int_size: 4,
            off_size: 8,
            pos: 0,
        }
    }
}

#[derive(Debug)]
enum Bad {
    Io(io::Error),
    Eof(&'static str),
    Corrupt(String),
}

impl From<io::Error> for Bad {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Bad::Eof("the stream")
        } else {
            Bad::Io(e)
        }
    }
}

impl Archive<'_> {
    fn at_least(&self, maj: u8, min: u8) -> bool {
        (self.version.0, self.version.1) >= (maj, min)
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, Bad> {
        let mut b = [0u8; 1];
        self.r.read_exact(&mut b).map_err(|e| match Bad::from(e) {
            Bad::Eof(_) => Bad::Eof(what),
            o => o,
        })?;
        self.pos += 1;
        Ok(b[0])
    }

    /// `ReadInt`: a sign byte, then `int_size` little-endian bytes.
    fn int(&mut self, what: &'static str) -> Result<i64, Bad> {
        let sign = self.byte(what)?;
        let mut v: i64 = 0;
        for i in 0..self.int_size {
            let b = self.byte(what)? as i64;
            if i < 8 {
                v |= b << (8 * i);
            }
        }
        Ok(if sign != 0 { -v } else { v })
    }

    /// `ReadStr`: a length (`-1` for NULL) and the bytes; `keep` false skips them.
    fn string(&mut self, what: &'static str, keep: bool) -> Result<Option<String>, Bad> {
        let len = self.int(what)?;
        if len < 0 {
            return Ok(None);
        }
        if len > MAX_STR {
            return Err(Bad::Corrupt(format!(
                "{what}: string length {len} at offset {} is not plausible",
                self.pos
            )));
        }
        if keep {
            let mut v = vec![0u8; len as usize];
            self.r.read_exact(&mut v).map_err(|e| match Bad::from(e) {
                Bad::Eof(_) => Bad::Eof(what),
                o => o,
            })?;
            self.pos += len as u64;
            Ok(Some(String::from_utf8_lossy(&v).into_owned()))
        } else {
            self.skip(len as u64, what)?;
            Ok(Some(String::new()))
        }
    }

    fn skip(&mut self, mut n: u64, what: &'static str) -> Result<(), Bad> {
        while n > 0 {
            let buf = self.r.fill_buf()?;
            if buf.is_empty() {
                return Err(Bad::Eof(what));
            }
            let k = (buf.len() as u64).min(n) as usize;
            self.r.consume(k);
            n -= k as u64;
            self.pos += k as u64;
        }
        Ok(())
    }

    /// Read a data block's chunks (`ReadInt` length, bytes; zero ends), handing each chunk on.
    fn chunks(&mut self, mut each: impl FnMut(&[u8]) -> Result<(), String>) -> Result<(), Bad> {
        loop {
            let len = self.int("a data chunk length")?;
            if len == 0 {
                return Ok(());
            }
            if !(0..=MAX_STR).contains(&len) {
                return Err(Bad::Corrupt(format!(
                    "data chunk length {len} at offset {} is not plausible",
                    self.pos
                )));
            }
            let mut left = len as u64;
            while left > 0 {
                let buf = self.r.fill_buf()?;
                if buf.is_empty() {
                    return Err(Bad::Eof("a data chunk"));
                }
                let k = (buf.len() as u64).min(left) as usize;
                each(&buf[..k]).map_err(Bad::Corrupt)?;
                self.r.consume(k);
                left -= k as u64;
                self.pos += k as u64;
            }
        }
    }
}

struct Entry {
    id: i64,
    desc: String,
    name: String,
    has_data: bool,
    /// The data file of a directory dump's entry.
    file: Option<String>,
}

#[derive(Default)]
struct Summary {
    version: String,
    dbname: String,
    compressed: bool,
    entries: Vec<Entry>,
    blocks: u64,
    tables: BTreeMap<String, u64>,
}

/// Inflate one zlib-compressed data block and count its lines.
struct Inflate {
    z: flate2::Decompress,
    out: Vec<u8>,
    ended: bool,
    tail: Tail,
}

/// The last bytes of a data block: COPY data in an archive ends with its own `\.` line (and,
/// from `pg_dump`, two empty lines), which are not rows.
#[derive(Default)]
pub(super) struct Tail(Vec<u8>);

impl Tail {
    pub(super) fn push(&mut self, data: &[u8]) {
        self.0
            .extend_from_slice(&data[data.len().saturating_sub(8)..]);
        let cut = self.0.len().saturating_sub(8);
        self.0.drain(..cut);
    }
    /// Lines at the end that are not rows.
    pub(super) fn not_rows(&self) -> u64 {
        let t = &self.0[..];
        for (end, n) in [(&b"\\.\n\n\n"[..], 3), (&b"\\.\n"[..], 1)] {
            if let Some(before) = t.strip_suffix(end) {
                if before.is_empty() || before.ends_with(b"\n") {
                    return n;
                }
            }
        }
        0
    }
}

impl Inflate {
    fn new() -> Self {
        Inflate {
            z: flate2::Decompress::new(true),
            out: vec![0; 64 * 1024],
            ended: false,
            tail: Tail::default(),
        }
    }
    fn feed(&mut self, mut input: &[u8], lines: &mut u64) -> Result<(), String> {
        while !input.is_empty() {
            if self.ended {
                return Err("bytes after the end of the compressed data block".into());
            }
            let (i0, o0) = (self.z.total_in(), self.z.total_out());
            let st = self
                .z
                .decompress(input, &mut self.out, flate2::FlushDecompress::None)
                .map_err(|e| format!("compressed data is corrupt ({e})"))?;
            let used = (self.z.total_in() - i0) as usize;
            let made = (self.z.total_out() - o0) as usize;
            *lines += self.out[..made].iter().filter(|&&b| b == b'\n').count() as u64;
            self.tail.push(&self.out[..made]);
            input = &input[used..];
            if st == flate2::Status::StreamEnd {
                self.ended = true;
            } else if used == 0 && made == 0 {
                return Err("compressed data stalled".into());
            }
        }
        Ok(())
    }
    /// Drain buffered output after the last input.
    fn end(&mut self, lines: &mut u64) -> Result<(), String> {
        while !self.ended {
            let o0 = self.z.total_out();
            let st = self
                .z
                .decompress(&[], &mut self.out, flate2::FlushDecompress::Finish)
                .map_err(|e| format!("compressed data is corrupt ({e})"))?;
            let made = (self.z.total_out() - o0) as usize;
            *lines += self.out[..made].iter().filter(|&&b| b == b'\n').count() as u64;
            self.tail.push(&self.out[..made]);
            if st == flate2::Status::StreamEnd {
                self.ended = true;
            } else if made == 0 {
                return Err("compressed data block is truncated".into());
            }
        }
        Ok(())
    }
}

fn read_archive(a: &mut Archive<'_>, s: &mut Summary) -> Result<(), Bad> {
    let mut magic = [0u8; 5];
    a.r.read_exact(&mut magic)
        .map_err(|_| Bad::Corrupt("no PGDMP header".into()))?;
    if &magic != b"PGDMP" {
        return Err(Bad::Corrupt("no PGDMP header".into()));
    }
    a.pos = 5;
    let maj = a.byte("the header")?;
    let min = a.byte("the header")?;
    let rev = a.byte("the header")?;
    a.version = (maj, min, rev);
    s.version = format!("{maj}.{min}.{rev}");
    if !a.at_least(1, 12) || maj > 1 || min > 16 {
        return Err(Bad::Corrupt(format!(
            "archive version {} is not supported",
            s.version
        )));
    }
    a.int_size = a.byte("the header")? as usize;
    a.off_size = a.byte("the header")? as usize;
    if !(1..=16).contains(&a.int_size) || !(1..=16).contains(&a.off_size) {
        return Err(Bad::Corrupt(format!(
            "implausible integer sizes {}/{} in the header",
            a.int_size, a.off_size
        )));
    }
    let format = a.byte("the header")?;
    let want = if a.directory { 3 } else { 1 };
    if format != want {
        return Err(Bad::Corrupt(format!(
            "archive format {format} is not the {} format ({want})",
            if a.directory { "directory" } else { "custom" }
        )));
    }
    s.compressed = if a.at_least(1, 15) {
        a.byte("the header")? != 0
    } else {
        a.int("the header")? != 0
    };
    for _ in 0..7 {
        a.int("the header timestamp")?;
    }
    s.dbname = a.string("the header", true)?.unwrap_or_default();
    a.string("the header", false)?;
    a.string("the header", false)?;
    let count = a.int("the TOC")?;
    if !(0..=10_000_000).contains(&count) {
        return Err(Bad::Corrupt(format!(
            "TOC entry count {count} is not plausible"
        )));
    }
    for i in 0..count {
        let id = a.int("a TOC entry")?;
        if id <= 0 {
            return Err(Bad::Corrupt(format!(
                "TOC entry {i}: id {id} out of range (corrupt TOC)"
            )));
        }
        a.int("a TOC entry")?; // hadDumper
        a.string("a TOC entry", false)?; // tableoid
        a.string("a TOC entry", false)?; // oid
        let tag = a.string("a TOC entry", true)?.unwrap_or_default();
        let desc = a.string("a TOC entry", true)?.unwrap_or_default();
        a.int("a TOC entry")?; // section
        a.string("a TOC entry", false)?; // defn
        a.string("a TOC entry", false)?; // dropStmt
        a.string("a TOC entry", false)?; // copyStmt
        let namespace = a.string("a TOC entry", true)?.unwrap_or_default();
        a.string("a TOC entry", false)?; // tablespace
        if a.at_least(1, 14) {
            a.string("a TOC entry", false)?; // tableam
        }
        if a.at_least(1, 16) {
            a.int("a TOC entry")?; // relkind
        }
        a.string("a TOC entry", false)?; // owner
        a.string("a TOC entry", false)?; // withOids
        while a.string("a TOC entry dependency", false)?.is_some() {}
        let (has_data, file) = if a.directory {
            // An entry without data names no file (an empty string).
            let file = a
                .string("a TOC entry file name", true)?
                .filter(|f| !f.is_empty());
            (file.is_some(), file)
        } else {
            let flag = a.byte("a TOC entry offset")?;
            a.skip(a.off_size as u64, "a TOC entry offset")?;
            (flag != K_OFFSET_NO_DATA, None)
        };
        let name = if namespace.is_empty() {
            tag
        } else {
            format!("{namespace}.{tag}")
        };
        s.entries.push(Entry {
            id,
            desc,
            name,
            has_data,
            file,
        });
    }
    if a.directory {
        return Ok(());
    }
    // Data blocks, in file order, to the end of the stream.
    loop {
        if a.r.fill_buf()?.is_empty() {
            return Ok(());
        }
        let kind = a.byte("a block header")?;
        let id = a.int("a block header")?;
        let entry = s.entries.iter().position(|e| e.id == id);
        let Some(idx) = entry else {
            return Err(Bad::Corrupt(format!(
                "data block at offset {} names TOC entry {id}, which the TOC does not have",
                a.pos
            )));
        };
        let mut lines = 0u64;
        let compressed = s.compressed;
        let feed_block = |a: &mut Archive<'_>, lines: &mut u64| -> Result<(), Bad> {
            let mut z = Inflate::new();
            a.chunks(|chunk| {
                if compressed {
                    z.feed(chunk, lines)
                } else {
                    *lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
                    z.tail.push(chunk);
                    Ok(())
                }
            })?;
            if compressed {
                z.end(lines).map_err(Bad::Corrupt)?;
            }
            *lines = lines.saturating_sub(z.tail.not_rows());
            Ok(())
        };
        match kind {
            BLK_DATA => feed_block(a, &mut lines)?,
            BLK_BLOBS => loop {
                let oid = a.int("a large object header")?;
                if oid == 0 {
                    break;
                }
                let mut ignored = 0;
                feed_block(a, &mut ignored)?;
            },
            other => {
                return Err(Bad::Corrupt(format!(
                    "unknown block type {other} at offset {}",
                    a.pos
                )))
            }
        }
        s.blocks += 1;
        let e = &mut s.entries[idx];
        if e.desc == "TABLE DATA" {
            *s.tables.entry(e.name.clone()).or_insert(0) += lines;
        }
        e.has_data = false;
    }
}

/// One entry of a directory dump's table of contents.
pub struct DirEntry {
    pub desc: String,
    pub name: String,
    pub file: Option<String>,
}

/// A directory dump's `toc.dat`.
pub struct DirToc {
    pub version: String,
    pub dbname: String,
    pub entries: Vec<DirEntry>,
}

/// Read a directory dump's `toc.dat` (the custom format's header and TOC, entries naming
/// data files). `Err` says what is wrong with it.
pub fn read_dir_toc(r: &mut dyn BufRead) -> Result<DirToc, String> {
    let mut a = Archive::new(r, true);
    let mut s = Summary::default();
    match read_archive(&mut a, &mut s) {
        Ok(()) => {}
        Err(Bad::Io(e)) => return Err(format!("cannot read: {e}")),
        Err(Bad::Eof(what)) => {
            return Err(format!(
                "truncated: it ends at byte {} inside {what}",
                a.pos
            ))
        }
        Err(Bad::Corrupt(m)) => return Err(m),
    }
    Ok(DirToc {
        version: s.version,
        dbname: s.dbname,
        entries: s
            .entries
            .into_iter()
            .map(|e| DirEntry {
                desc: e.desc,
                name: e.name,
                file: e.file,
            })
            .collect(),
    })
}

/// Check a custom-format archive to its end.
pub fn check(r: &mut dyn BufRead) -> io::Result<FormatReport> {
    let mut a = Archive::new(r, false);
    let mut s = Summary::default();
    let result = read_archive(&mut a, &mut s);
    let pos = a.pos;
    let mut errors = Vec::new();
    match result {
        Ok(()) => {}
        Err(Bad::Io(e)) => return Err(e),
        Err(Bad::Eof(what)) => errors.push(format!(
            "truncated: the archive ends at byte {pos} inside {what}"
        )),
        Err(Bad::Corrupt(m)) => errors.push(m),
    }
    if errors.is_empty() {
        let missing: BTreeSet<&str> = s
            .entries
            .iter()
            .filter(|e| e.has_data && e.desc != "BLOB COMMENTS")
            .map(|e| e.name.as_str())
            .collect();
        if !missing.is_empty() {
            let list: Vec<&str> = missing.iter().take(5).copied().collect();
            errors.push(format!(
                "{} data block(s) promised by the TOC are missing: {}",
                missing.len(),
                list.join(", ")
            ));
        }
    }
    let ok = errors.is_empty();
    let summary = format!(
        "archive {} of '{}', {} TOC entries, {} data blocks{} ({} rows in {} tables)",
        s.version,
        s.dbname,
        s.entries.len(),
        s.blocks,
        if s.compressed { " inflated" } else { "" },
        s.tables.values().sum::<u64>(),
        s.tables.len()
    );
    let detail = if ok {
        format!("custom dump: PGDMP header ok, {summary}")
    } else {
        format!("custom dump: {} ({summary})", errors.join("; "))
    };
    Ok(FormatReport {
        kind: "pg-custom".into(),
        ok,
        warning: false,
        detail,
        tables: s.tables,
    })
}
