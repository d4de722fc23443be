//! The one-pass engine: each backup file is read once, in 1 MiB buffers, by the calling thread;
//! every buffer goes (shared, not copied) to a hashing thread and to a decode thread that
//! inflates gzip/zstd and runs the format check on the inflated bytes. Bounded channels keep at
//! most a few dozen MiB in flight whatever the file size, and hashing and inflating run on
//! different cores.

use super::checksum::{Algo, Hasher};
use super::gzip::{drain, GzipReader, GzipReport};
use super::zstd::{ZstdReader, ZstdReport};
use super::{pgcustom, pgdump, rdb, FormatHint, FormatReport};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, Read};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

const CHUNK: usize = 1 << 20;
const IN_FLIGHT: usize = 6;

type Chunk = Arc<Vec<u8>>;

/// What the compression layer found.
#[derive(Clone, Debug)]
pub enum Compression {
    None,
    Gzip(GzipReport),
    Zstd(ZstdReport),
}

/// Everything one read of a file established.
#[derive(Debug)]
pub struct Scan {
    pub bytes: u64,
    pub digests: BTreeMap<Algo, String>,
    pub compression: Compression,
    pub format: FormatReport,
    pub read_error: Option<String>,
}

/// Buffers from the reader thread, read back as one stream.
struct ChunkReader {
    rx: Receiver<Chunk>,
    cur: Option<Chunk>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.cur.as_ref().is_none_or(|c| self.pos >= c.len()) {
            match self.rx.recv() {
                Ok(c) => {
                    self.cur = Some(c);
                    self.pos = 0;
                }
                Err(_) => {
                    self.cur = None;
                    return Ok(&[]);
                }
            }
        }
        Ok(self.cur.as_ref().map(|c| &c[self.pos..]).unwrap_or(&[]))
    }
    fn consume(&mut self, amt: usize) {
        self.pos += amt;
    }
}

fn unknown(detail: &str) -> FormatReport {
    FormatReport {
        kind: "unknown".into(),
        ok: true,
        warning: true,
        detail: detail.into(),
        tables: BTreeMap::new(),
    }
}

/// Pick the format check from the first bytes (falling back on the hint) and run it.
pub fn check_format(r: &mut dyn BufRead, hint: FormatHint) -> io::Result<FormatReport> {
    let head = r.fill_buf()?;
    if head.is_empty() {
        let mut f = unknown("empty: there is nothing in the backup to check");
        f.ok = false;
        f.warning = false;
        return Ok(f);
    }
    let kind = if head.starts_with(b"PGDMP") {
        FormatHint::Custom
    } else if head.starts_with(b"REDIS") {
        FormatHint::Rdb
    } else if hint == FormatHint::Auto
        && (head.starts_with(b"--") || head.starts_with(b"\\restrict") || head.starts_with(b"SET "))
    {
        FormatHint::Plain
    } else {
        hint
    };
    match kind {
        FormatHint::Plain => pgdump::check(r),
        FormatHint::Custom => pgcustom::check(r),
        FormatHint::Rdb => rdb::check(r),
        FormatHint::Auto | FormatHint::BaseBackup => Ok(unknown(
            "not a format drillkit knows (PostgreSQL plain or custom dump, Redis RDB): only size, checksum and compression were checked",
        )),
    }
}

fn decode(rx: Receiver<Chunk>, hint: FormatHint) -> io::Result<(Compression, FormatReport)> {
    let mut raw = ChunkReader {
        rx,
        cur: None,
        pos: 0,
    };
    let head = raw.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut gz = GzipReader::new(raw);
        let f = check_format(&mut gz, hint)?;
        let (rep, mut raw) = gz.finish()?;
        drain(&mut raw)?;
        Ok((Compression::Gzip(rep), f))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let mut z = ZstdReader::new(raw);
        let f = check_format(&mut z, hint)?;
        let (rep, mut raw) = z.finish()?;
        drain(&mut raw)?;
        Ok((Compression::Zstd(rep), f))
    } else {
        let f = check_format(&mut raw, hint)?;
        drain(&mut raw)?;
        Ok((Compression::None, f))
    }
}

/// Read `path` once: hash it with every algorithm in `algos` and decode + check its format.
pub fn scan(path: &Path, algos: &BTreeSet<Algo>, hint: FormatHint) -> Scan {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            return Scan {
                bytes: 0,
                digests: BTreeMap::new(),
                compression: Compression::None,
                format: unknown("not checked: the file cannot be opened"),
                read_error: Some(format!("cannot open: {e}")),
            }
        }
    };
    let (hash_tx, hash_rx) = sync_channel::<Chunk>(IN_FLIGHT);
    let (dec_tx, dec_rx) = sync_channel::<Chunk>(IN_FLIGHT);
    std::thread::scope(|s| {
        let hasher = s.spawn(move || {
            let mut hs: Vec<(Algo, Hasher)> = algos.iter().map(|&a| (a, Hasher::new(a))).collect();
            for chunk in hash_rx {
                for (_, h) in hs.iter_mut() {
                    h.update(&chunk);
                }
            }
            hs.into_iter()
                .map(|(a, h)| (a, h.finish()))
                .collect::<BTreeMap<_, _>>()
        });
        let decoder = s.spawn(move || decode(dec_rx, hint));
        let mut bytes = 0u64;
        let mut read_error = None;
        let mut dec_tx = Some(dec_tx);
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        read_error =
                            Some(format!("read error at byte {}: {e}", bytes + filled as u64));
                        break;
                    }
                }
            }
            if filled == 0 {
                break;
            }
            buf.truncate(filled);
            bytes += filled as u64;
            let chunk = Arc::new(buf);
            if let Some(tx) = &dec_tx {
                if tx.send(Arc::clone(&chunk)).is_err() {
                    // The decoder stopped early (it failed); hashing goes on.
                    dec_tx = None;
                }
            }
            if hash_tx.send(chunk).is_err() || read_error.is_some() {
                break;
            }
        }
        drop(dec_tx);
        drop(hash_tx);
        let digests = hasher.join().unwrap_or_default();
        let (compression, format) = match decoder.join() {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => (Compression::None, unknown(&format!("not checked: {e}"))),
            Err(_) => (
                Compression::None,
                unknown("not checked: the decode thread failed"),
            ),
        };
        Scan {
            bytes,
            digests,
            compression,
            format,
            read_error,
        }
    })
}
