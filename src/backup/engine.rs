//! The one-pass engine: each backup file is read once, in 1 MiB buffers, by the calling thread;
//! every buffer goes (shared, not copied) to a hashing thread and to a decode thread that
//! inflates gzip/zstd; the inflated buffers go (handed over, not copied) to a third thread that
//! runs the format check. Bounded channels keep a few dozen MiB in flight whatever the file
//! size, buffers go back to a pool when the last thread lets go of them, and hashing,
//! inflating and checking run on whatever cores the machine has.

use super::checksum::{Algo, Hasher};
use super::gzip::{drain, GzipReader, GzipReport};
use super::zstd::{ZstdReader, ZstdReport};
use super::{pgcustom, pgdump, rdb, FormatHint, FormatReport};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, Read};
use std::ops::Deref;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

const CHUNK: usize = 1 << 20;
const IN_FLIGHT: usize = 6;

/// A buffer on its way between threads; its bytes go back to their pool when dropped.
pub struct Buf {
    data: Vec<u8>,
    home: SyncSender<Vec<u8>>,
}

impl Deref for Buf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // A full pool (or one whose owner has gone) just frees the buffer.
        let _ = self.home.try_send(std::mem::take(&mut self.data));
    }
}

/// A shared, read-only buffer of file or decoded bytes.
pub type Chunk = Arc<Buf>;

/// How the pass ended, as the tap's reader learns it at the end of the stream.
type Verdict = Arc<Mutex<Option<Result<(), String>>>>;

/// The sending end of a tap, given to [`scan`].
pub struct Tap {
    tx: SyncSender<Chunk>,
    verdict: Verdict,
}

impl Tap {
    /// Record how the pass ended; the stream closes when the last sender (this one) goes.
    fn finish(self, verdict: Result<(), String>) {
        if let Ok(mut v) = self.verdict.lock() {
            *v = Some(verdict);
        }
    }
}

/// The decoded stream as a second consumer reads it. Its end is a clean end of file only when
/// the pass found the file whole: a CRC mismatch, a truncated stream or a read error ends it
/// with that error (the bytes before it were already handed out), and so does a pass that
/// stopped without a verdict.
pub struct TapReader {
    inner: ChunkReader,
    verdict: Verdict,
}

/// A second consumer of the decoded stream (a restore reads the dump from the verification pass
/// instead of reading and inflating the file again). Its reader hanging up never stops the checks.
pub fn tap() -> (Tap, TapReader) {
    let (tx, rx) = sync_channel(IN_FLIGHT);
    let verdict = Verdict::default();
    (
        Tap {
            tx,
            verdict: Arc::clone(&verdict),
        },
        TapReader {
            inner: ChunkReader::new(rx),
            verdict,
        },
    )
}

impl Read for TapReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, buf)
    }
}

impl BufRead for TapReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.inner.fill_buf()?.is_empty() {
            let verdict = self.verdict.lock().ok().and_then(|v| v.clone());
            return match verdict {
                Some(Ok(())) => Ok(&[]),
                Some(Err(e)) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                None => Err(io::Error::other(
                    "the verification pass stopped before the end of the file",
                )),
            };
        }
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
    }
}

/// Buffers of one size, reused: once the pipeline runs, no allocation per buffer (a returned
/// buffer that was only partly filled has its tail zeroed again).
struct Pool {
    home: SyncSender<Vec<u8>>,
    spare: Receiver<Vec<u8>>,
    size: usize,
}

impl Pool {
    fn new(size: usize) -> Pool {
        let (home, spare) = sync_channel(IN_FLIGHT + 2);
        Pool { home, spare, size }
    }

    /// A buffer `size` bytes long: a returned one when there is one.
    fn get(&self) -> Vec<u8> {
        match self.spare.try_recv() {
            Ok(mut v) => {
                v.resize(self.size, 0);
                v
            }
            Err(_) => vec![0; self.size],
        }
    }

    /// Share the first `len` bytes of `v` (which came from [`Pool::get`]).
    fn share(&self, mut v: Vec<u8>, len: usize) -> Chunk {
        v.truncate(len);
        Arc::new(Buf {
            data: v,
            home: self.home.clone(),
        })
    }
}

/// `Read::read` for a reader whose real interface is `BufRead` (the stage readers here).
pub fn read_buffered(r: &mut impl BufRead, buf: &mut [u8]) -> io::Result<usize> {
    let avail = r.fill_buf()?;
    let n = avail.len().min(buf.len());
    buf[..n].copy_from_slice(&avail[..n]);
    r.consume(n);
    Ok(n)
}

/// A decompressing reader that can hand its filled output buffer over instead of copying it.
pub trait HandOff: BufRead {
    /// The size of the reader's output buffer.
    const OUT: usize;
    /// The next decoded bytes as `(buffer, length)`, with `spare` (`OUT` bytes long) taking the
    /// buffer's place; `None` at the end of the stream.
    fn hand_off(&mut self, spare: Vec<u8>) -> io::Result<Option<(Vec<u8>, usize)>>;
}

/// [`HandOff::hand_off`] over a reader's `out[pos..len]` window, once it has been filled.
pub fn swap_out(
    out: &mut Vec<u8>,
    pos: &mut usize,
    len: &mut usize,
    spare: Vec<u8>,
) -> (Vec<u8>, usize) {
    let (from, to) = (*pos, *len);
    let mut taken = std::mem::replace(out, spare);
    (*pos, *len) = (0, 0);
    if from > 0 {
        taken.copy_within(from..to, 0);
    }
    (taken, to - from)
}

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

/// Buffers from another thread, read back as one stream.
pub struct ChunkReader {
    rx: Receiver<Chunk>,
    cur: Option<Chunk>,
    pos: usize,
}

impl ChunkReader {
    fn new(rx: Receiver<Chunk>) -> ChunkReader {
        ChunkReader {
            rx,
            cur: None,
            pos: 0,
        }
    }

    /// The unread part of the stream a buffer at a time, shared rather than copied.
    fn next_chunk(&mut self) -> Option<Chunk> {
        match self.cur.take() {
            Some(c) if self.pos == 0 => Some(c),
            Some(c) if self.pos < c.len() => {
                let (home, _) = sync_channel(0);
                Some(Arc::new(Buf {
                    data: c[self.pos..].to_vec(),
                    home,
                }))
            }
            _ => self.rx.recv().ok(),
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, buf)
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

/// Where decoded buffers go: the format check, and the tap when there is one, each until it
/// has seen enough and hangs up.
struct Pass(Vec<SyncSender<Chunk>>);

impl Pass {
    fn send(&mut self, c: Chunk) {
        self.0.retain(|tx| tx.send(Arc::clone(&c)).is_ok());
    }
}

/// Decode `r` to its end, handing every output buffer to `pass`.
fn pump<R: HandOff>(r: &mut R, pass: &mut Pass) -> io::Result<()> {
    let pool = Pool::new(R::OUT);
    while let Some((buf, len)) = r.hand_off(pool.get())? {
        pass.send(pool.share(buf, len));
    }
    Ok(())
}

/// Undo the compression of the raw stream (checking it as it goes) and pass the decoded bytes
/// to the format check on `out`.
fn decode(
    rx: Receiver<Chunk>,
    out: SyncSender<Chunk>,
    tap: Option<SyncSender<Chunk>>,
    zstd_window_log: u32,
) -> io::Result<Compression> {
    let mut raw = ChunkReader::new(rx);
    let head = raw.fill_buf()?;
    let mut pass = Pass(std::iter::once(out).chain(tap).collect());
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut gz = GzipReader::new(raw);
        pump(&mut gz, &mut pass)?;
        drop(pass);
        let (rep, mut raw) = gz.finish()?;
        drain(&mut raw)?;
        Ok(Compression::Gzip(rep))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let mut z = ZstdReader::new(raw, zstd_window_log);
        pump(&mut z, &mut pass)?;
        drop(pass);
        let (rep, mut raw) = z.finish()?;
        drain(&mut raw)?;
        Ok(Compression::Zstd(rep))
    } else {
        while let Some(c) = raw.next_chunk() {
            pass.send(c);
        }
        Ok(Compression::None)
    }
}

/// Read `path` once: hash it with every algorithm in `algos` and decode + check its format
/// (zstd frames with windows up to 2^`zstd_window_log`); the decoded bytes also go to `tap`
/// when given (see [`tap`]).
pub fn scan(
    path: &Path,
    algos: &BTreeSet<Algo>,
    hint: FormatHint,
    tap: Option<Tap>,
    zstd_window_log: u32,
) -> Scan {
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
    let (check_tx, check_rx) = sync_channel::<Chunk>(IN_FLIGHT);
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
        let tap_tx = tap.as_ref().map(|t| t.tx.clone());
        let decoder = s.spawn(move || decode(dec_rx, check_tx, tap_tx, zstd_window_log));
        // The check may stop reading early (a custom dump's table of contents, an RDB's
        // header…); dropping its reader then tells the decoder to stop passing buffers.
        let checker = s.spawn(move || check_format(&mut ChunkReader::new(check_rx), hint));
        let pool = Pool::new(CHUNK);
        let mut bytes = 0u64;
        let mut read_error = None;
        let mut dec_tx = Some(dec_tx);
        loop {
            let mut buf = pool.get();
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
            bytes += filled as u64;
            let chunk = pool.share(buf, filled);
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
        let decoded = decoder.join();
        let format = match checker.join() {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => unknown(&format!("not checked: {e}")),
            Err(_) => unknown("not checked: the format check thread failed"),
        };
        let (compression, format, decode_error) = match decoded {
            Ok(Ok(c)) => (c, format, None),
            Ok(Err(e)) => (
                Compression::None,
                unknown(&format!("not checked: {e}")),
                Some(e.to_string()),
            ),
            Err(_) => (
                Compression::None,
                unknown("not checked: the decode thread failed"),
                Some("the decode thread failed".to_string()),
            ),
        };
        if let Some(tap) = tap {
            let damage = match &compression {
                Compression::Gzip(g) => g.error.as_ref().map(|e| format!("gzip: {e}")),
                Compression::Zstd(z) => z.error.as_ref().map(|e| format!("zstd: {e}")),
                Compression::None => None,
            };
            tap.finish(match read_error.clone().or(decode_error).or(damage) {
                Some(e) => Err(e),
                None => Ok(()),
            });
        }
        Scan {
            bytes,
            digests,
            compression,
            format,
            read_error,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    #[test]
    fn handing_off_keeps_only_the_unread_bytes() {
        let mut out = b"headbody".to_vec();
        let (mut pos, mut len) = (4, 8);
        let (taken, n) = swap_out(&mut out, &mut pos, &mut len, vec![0; 8]);
        assert_eq!(&taken[..n], b"body");
        assert_eq!((out.len(), pos, len), (8, 0, 0));
    }

    #[test]
    fn buffers_return_to_their_pool() {
        let pool = Pool::new(16);
        let a = pool.share(pool.get(), 3);
        assert_eq!(a.len(), 3);
        let b = Arc::clone(&a);
        drop(a);
        assert!(
            pool.spare.try_recv().is_err(),
            "still held by another thread"
        );
        drop(b);
        let back = pool.spare.try_recv().expect("returned");
        assert_eq!(back.capacity(), 16);
        // A returned buffer is full size again when handed out.
        let home = pool.home.clone();
        home.try_send(back).expect("room");
        assert_eq!(pool.get().len(), 16);
    }

    #[test]
    fn gzip_plain_dump_in_two_members_is_scanned_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.sql.gz");
        let mut text =
            b"--\n-- PostgreSQL database dump\n--\n\nCOPY public.t (a, b) FROM stdin;\n".to_vec();
        for i in 0..200_000 {
            text.extend_from_slice(format!("{i}\tvalue {i}\n").as_bytes());
        }
        text.extend_from_slice(b"\\.\n\n--\n-- PostgreSQL database dump complete\n--\n");
        let mut file = Vec::new();
        let half = text.len() / 2;
        for part in [&text[..half], &text[half..]] {
            let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).expect("write");
            file.extend(e.finish().expect("finish"));
        }
        std::fs::write(&path, &file).expect("write file");
        let algos = BTreeSet::from([Algo::Sha256, Algo::Md5]);
        let scan = scan(
            &path,
            &algos,
            FormatHint::Auto,
            None,
            crate::backup::zstd::WINDOW_LOG_MAX,
        );
        assert_eq!(scan.bytes, file.len() as u64);
        assert!(scan.read_error.is_none());
        let mut h = Hasher::new(Algo::Sha256);
        h.update(&file);
        assert_eq!(scan.digests.get(&Algo::Sha256), Some(&h.finish()));
        match &scan.compression {
            Compression::Gzip(g) => {
                assert_eq!((g.members, g.uncompressed), (2, text.len() as u64));
                assert!(g.error.is_none(), "{:?}", g.error);
            }
            other => panic!("not gzip: {other:?}"),
        }
        assert!(scan.format.ok, "{}", scan.format.detail);
        assert_eq!(scan.format.tables.get("public.t"), Some(&200_000));
    }
}
