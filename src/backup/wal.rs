//! The WAL a base backup needs: the manifest's `WAL-Ranges` (timeline, start LSN, end LSN)
//! must be covered by segments in the backup (`pg_wal/`, `pg_wal.tar*`) or a WAL archive
//! (`--wal-dir`). Every segment of each range must be there; every page header from the start
//! LSN's page to the end LSN's is checked (the magic number of the backup's major version, long
//! header on a segment's first page with the segment and block sizes, timeline, page address);
//! every record in the range is walked — its length, its `xl_prev` link and its CRC-32C — as
//! PostgreSQL's own reader does during recovery. A backup that passes here has the WAL it needs
//! to reach consistency.
//!
//! Segments are fed in any order as they are found (a tar stream, a folder); each range's walker
//! consumes them in LSN order and a segment is dropped once no walker needs it, so memory holds
//! only segments that arrived early.

use super::manifest::Crc32c;
use std::collections::BTreeMap;

const BLCKSZ: u64 = 8192;
const SHORT_HEADER: u64 = 24;
const LONG_HEADER: u64 = 40;
const RECORD_HEADER: u32 = 24;
const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
const XLP_LONG_HEADER: u16 = 0x0002;
const XLOG_SWITCH: u8 = 0x40;
const DEFAULT_SEG_SIZE: u64 = 16 << 20;

/// `XLOG_PAGE_MAGIC` of each major version (src/include/access/xlog_internal.h).
pub fn page_magic(major: u32) -> Option<u16> {
    Some(match major {
        10 => 0xD097,
        11 => 0xD098,
        12 => 0xD101,
        13 => 0xD106,
        14 => 0xD10D,
        15 => 0xD110,
        16 => 0xD113,
        17 => 0xD116,
        18 => 0xD118,
        _ => return None,
    })
}

/// One `WAL-Ranges` entry of a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub tli: u32,
    pub start: u64,
    pub end: u64,
}

/// `0/2000028` → 0x2000028.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

pub fn fmt_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// A segment file name: `TTTTTTTTXXXXXXXXYYYYYYYY` (a `.partial` suffix allowed).
pub fn parse_segment_name(name: &str) -> Option<(u32, u64, u64)> {
    let base = name.strip_suffix(".partial").unwrap_or(name);
    if base.len() != 24 || !base.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((
        u32::from_str_radix(&base[0..8], 16).ok()?,
        u64::from_str_radix(&base[8..16], 16).ok()?,
        u64::from_str_radix(&base[16..24], 16).ok()?,
    ))
}

fn segment_name(tli: u32, segno: u64, seg_size: u64) -> String {
    let per = 0x1_0000_0000 / seg_size;
    format!("{tli:08X}{:08X}{:08X}", segno / per, segno % per)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

struct Record {
    start: u64,
    tot_len: u32,
    have: u32,
    head: [u8; RECORD_HEADER as usize],
    crc: Crc32c,
}

/// Walks one range's records across its segments.
struct Walker {
    range: Range,
    next_seg: Option<u64>,
    pos: u64,
    rec: Option<Record>,
    prev: Option<u64>,
    done: bool,
    error: Option<String>,
    records: u64,
    pages: u64,
    segments: Vec<String>,
}

/// What the WAL check found.
#[derive(Clone, Debug, Default)]
pub struct WalReport {
    pub ok: bool,
    pub detail: String,
}

/// The WAL check of one backup: feed it every segment found, then [`WalCheck::finish`].
pub struct WalCheck {
    magic: Option<u16>,
    major: Option<u32>,
    seen_magic: Option<u16>,
    seg_size: Option<u64>,
    walkers: Vec<Walker>,
    pending: BTreeMap<(u32, u64), (String, Vec<u8>)>,
    /// Bad segments that no walker could use (wrong size, unreadable header).
    problems: Vec<String>,
}

impl WalCheck {
    /// `major`: the backup's PostgreSQL major version (from `PG_VERSION`), for the page magic.
    pub fn new(ranges: &[Range], major: Option<u32>) -> WalCheck {
        WalCheck {
            magic: major.and_then(page_magic),
            major,
            seen_magic: None,
            seg_size: None,
            walkers: ranges
                .iter()
                .map(|&range| Walker {
                    range,
                    next_seg: None,
                    pos: range.start,
                    rec: None,
                    prev: None,
                    done: range.start >= range.end,
                    error: None,
                    records: 0,
                    pages: 0,
                    segments: Vec::new(),
                })
                .collect(),
            pending: BTreeMap::new(),
            problems: Vec::new(),
        }
    }

    /// The major version is known only once `PG_VERSION` has been read (in a tar, it may come
    /// after the WAL).
    pub fn set_major(&mut self, major: u32) {
        self.major = Some(major);
        self.magic = page_magic(major);
    }

    fn seg_size(&self) -> u64 {
        self.seg_size.unwrap_or(DEFAULT_SEG_SIZE)
    }

    /// Is a segment of this name one the ranges need (so its bytes are worth reading)?
    pub fn wants(&self, name: &str) -> bool {
        let Some((tli, hi, lo)) = parse_segment_name(name) else {
            return false;
        };
        let seg = self.seg_size();
        let segno = hi * (0x1_0000_0000 / seg) + lo;
        self.walkers.iter().any(|w| {
            !w.done
                && w.range.tli == tli
                && segno >= w.range.start / seg
                && segno <= w.range.end.saturating_sub(1) / seg
        })
    }

    /// One segment file's bytes (`where_` says where it was found, for messages).
    pub fn add(&mut self, name: &str, where_: &str, bytes: Vec<u8>) {
        let Some((tli, hi, lo)) = parse_segment_name(name) else {
            return;
        };
        if bytes.len() < LONG_HEADER as usize {
            self.problems.push(format!(
                "{where_}: {} bytes, not a WAL segment",
                bytes.len()
            ));
            return;
        }
        let seg_size = u64::from(u32_at(&bytes, 32));
        if !seg_size.is_power_of_two() || !(1 << 20..=1 << 30).contains(&seg_size) {
            self.problems.push(format!(
                "{where_}: its first page header gives no valid segment size"
            ));
            return;
        }
        if let Some(s) = self.seg_size {
            if s != seg_size {
                self.problems.push(format!(
                    "{where_}: segment size {seg_size}, other segments have {s}"
                ));
                return;
            }
        }
        self.seg_size = Some(seg_size);
        if (bytes.len() as u64) < seg_size {
            self.problems.push(format!(
                "{where_}: {} bytes, a WAL segment has {seg_size} (truncated)",
                bytes.len()
            ));
            return;
        }
        let segno = hi * (0x1_0000_0000 / seg_size) + lo;
        self.pending
            .entry((tli, segno))
            .or_insert((where_.to_string(), bytes));
        self.advance();
    }

    fn advance(&mut self) {
        let seg_size = self.seg_size();
        loop {
            let mut progressed = false;
            for i in 0..self.walkers.len() {
                let w = &self.walkers[i];
                if w.done {
                    continue;
                }
                let want = w.next_seg.unwrap_or(w.range.start / seg_size);
                let key = (w.range.tli, want);
                let Some((where_, bytes)) = self.pending.remove(&key) else {
                    continue;
                };
                let magic = self.magic.or(self.seen_magic);
                let seen =
                    walk_segment(&mut self.walkers[i], want, seg_size, magic, &where_, &bytes);
                if self.seen_magic.is_none() {
                    self.seen_magic = seen;
                }
                // Another range may need it too; the sweep below drops it otherwise.
                self.pending.insert(key, (where_, bytes));
                progressed = true;
            }
            // Drop segments no walker will ask for again.
            let walkers = &self.walkers;
            self.pending.retain(|&(tli, segno), _| {
                walkers.iter().any(|w| {
                    !w.done
                        && w.range.tli == tli
                        && segno >= w.next_seg.unwrap_or(w.range.start / seg_size)
                })
            });
            if !progressed {
                return;
            }
        }
    }

    /// The verdict once every source has been fed.
    pub fn finish(mut self) -> WalReport {
        self.advance();
        let seg_size = self.seg_size();
        let mut problems = std::mem::take(&mut self.problems);
        let mut records = 0;
        let mut pages = 0;
        let mut segments = Vec::new();
        for w in &self.walkers {
            records += w.records;
            pages += w.pages;
            segments.extend(w.segments.iter().cloned());
            let span = format!(
                "timeline {} {}–{}",
                w.range.tli,
                fmt_lsn(w.range.start),
                fmt_lsn(w.range.end)
            );
            if let Some(e) = &w.error {
                problems.push(format!("{e} (needed for {span})"));
            } else if !w.done {
                let segno = w.next_seg.unwrap_or(w.range.start / seg_size);
                problems.push(format!(
                    "WAL segment {} is missing: needed for {span}, the backup cannot reach consistency without it",
                    segment_name(w.range.tli, segno, seg_size)
                ));
            }
        }
        let magic = match (self.major, self.magic) {
            (Some(v), Some(m)) => format!("page magic {m:#06X} of PostgreSQL {v}"),
            (Some(v), None) => {
                format!("page magic not known for PostgreSQL {v}: checked for consistency only")
            }
            (None, _) => "page magic checked for consistency (PG_VERSION not read)".to_string(),
        };
        if problems.is_empty() {
            WalReport {
                ok: true,
                detail: format!(
                    "{} segment(s) ({}) cover the backup's WAL-Ranges: {pages} page headers valid ({magic}), {records} records with valid CRC-32C",
                    segments.len(),
                    segments.join(", ")
                ),
            }
        } else {
            WalReport {
                ok: false,
                detail: problems.join("; "),
            }
        }
    }
}

/// Walk one segment of a range: page headers from the range's page on, records until the end
/// LSN. Returns the page magic seen on its first page.
fn walk_segment(
    w: &mut Walker,
    segno: u64,
    seg_size: u64,
    magic: Option<u16>,
    where_: &str,
    seg: &[u8],
) -> Option<u16> {
    let seg_start = segno * seg_size;
    w.next_seg = Some(segno + 1);
    w.segments.push(
        std::path::Path::new(where_)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| where_.to_string()),
    );
    let first_magic = Some(u16_at(seg, 0));
    let expect_magic = magic.or(first_magic);
    let mut page = if w.pos > seg_start {
        (w.pos - seg_start) / BLCKSZ * BLCKSZ
    } else {
        0
    };
    let fail = |w: &mut Walker, msg: String| {
        w.error = Some(format!("{where_}: {msg}"));
        w.done = true;
    };
    while page < seg_size && !w.done {
        let page_lsn = seg_start + page;
        if w.rec.is_none() && w.pos >= w.range.end {
            w.done = true;
            break;
        }
        let h = &seg[page as usize..(page + BLCKSZ) as usize];
        let (m, info, tli, addr, rem) = (
            u16_at(h, 0),
            u16_at(h, 2),
            u32_at(h, 4),
            u64_at(h, 8),
            u32_at(h, 16),
        );
        w.pages += 1;
        if Some(m) != expect_magic {
            let want = expect_magic
                .map(|x| format!("{x:#06X}"))
                .unwrap_or_default();
            return {
                fail(
                    w,
                    format!(
                        "page at {} has magic {m:#06X}, expected {want} (not WAL of this version, or damaged)",
                        fmt_lsn(page_lsn)
                    ),
                );
                first_magic
            };
        }
        if addr != page_lsn {
            fail(
                w,
                format!(
                    "page at {} says it is page {} (a recycled or misplaced segment)",
                    fmt_lsn(page_lsn),
                    fmt_lsn(addr)
                ),
            );
            return first_magic;
        }
        if tli == 0 || tli > w.range.tli {
            fail(
                w,
                format!(
                    "page at {} is on timeline {tli}, the backup's is {}",
                    fmt_lsn(page_lsn),
                    w.range.tli
                ),
            );
            return first_magic;
        }
        let long = info & XLP_LONG_HEADER != 0;
        if long != (page == 0) {
            fail(
                w,
                format!("page at {} has a wrong header kind", fmt_lsn(page_lsn)),
            );
            return first_magic;
        }
        if long && (u64::from(u32_at(h, 32)) != seg_size || u64::from(u32_at(h, 36)) != BLCKSZ) {
            fail(
                w,
                format!(
                    "segment header at {} gives segment size {} and block size {}",
                    fmt_lsn(page_lsn),
                    u32_at(h, 32),
                    u32_at(h, 36)
                ),
            );
            return first_magic;
        }
        let header = if long { LONG_HEADER } else { SHORT_HEADER };
        if let Some(r) = &w.rec {
            let left = r.tot_len - r.have;
            if info & XLP_FIRST_IS_CONTRECORD == 0 || rem != left {
                fail(
                    w,
                    format!(
                        "page at {} does not continue the record at {} ({left} bytes expected, the page says {})",
                        fmt_lsn(page_lsn),
                        fmt_lsn(r.start),
                        if info & XLP_FIRST_IS_CONTRECORD == 0 { "none".to_string() } else { rem.to_string() }
                    ),
                );
                return first_magic;
            }
        }
        let page_end = page_lsn + BLCKSZ;
        let mut cur = (page_lsn + header).max(if w.rec.is_none() { w.pos } else { 0 });
        let mut switched = false;
        while cur < page_end {
            if w.rec.is_none() {
                if w.pos >= w.range.end {
                    w.done = true;
                    break;
                }
                cur = cur.max(w.pos);
                if cur >= page_end {
                    break;
                }
                let at = (cur - seg_start) as usize;
                let tot_len = u32_at(seg, at);
                if tot_len == 0 {
                    fail(
                        w,
                        format!(
                            "no WAL record at {}: the WAL ends before the backup's end LSN",
                            fmt_lsn(cur)
                        ),
                    );
                    return first_magic;
                }
                if tot_len < RECORD_HEADER {
                    fail(
                        w,
                        format!("record at {} has an invalid length {tot_len}", fmt_lsn(cur)),
                    );
                    return first_magic;
                }
                w.rec = Some(Record {
                    start: cur,
                    tot_len,
                    have: 0,
                    head: [0; RECORD_HEADER as usize],
                    crc: Crc32c::default(),
                });
            }
            let Some(r) = w.rec.as_mut() else { break };
            let take = u64::from(r.tot_len - r.have).min(page_end - cur) as u32;
            let at = (cur - seg_start) as usize;
            let bytes = &seg[at..at + take as usize];
            let mut i = 0usize;
            while r.have < RECORD_HEADER && i < bytes.len() {
                r.head[r.have as usize] = bytes[i];
                r.have += 1;
                i += 1;
            }
            r.crc.update(&bytes[i..]);
            r.have += (bytes.len() - i) as u32;
            cur += u64::from(take);
            if r.have < r.tot_len {
                continue;
            }
            let Some(mut r) = w.rec.take() else { break };
            r.crc.update(&r.head[..20]);
            let stored = u32_at(&r.head, 20);
            let computed = r.crc.finish();
            if stored != computed {
                fail(
                    w,
                    format!(
                        "record at {} fails its CRC-32C ({computed:08x}, the record says {stored:08x})",
                        fmt_lsn(r.start)
                    ),
                );
                return first_magic;
            }
            let prev = u64_at(&r.head, 8);
            if let Some(p) = w.prev {
                if prev != p {
                    fail(
                        w,
                        format!(
                            "record at {} links back to {}, the previous record is at {}",
                            fmt_lsn(r.start),
                            fmt_lsn(prev),
                            fmt_lsn(p)
                        ),
                    );
                    return first_magic;
                }
            }
            w.prev = Some(r.start);
            w.records += 1;
            w.pos = (r.start + u64::from(r.tot_len) + 7) & !7;
            cur = cur.max(w.pos);
            let (rmid, info) = (r.head[17], r.head[16]);
            if rmid == 0 && info & 0xF0 == XLOG_SWITCH {
                // The rest of the segment is unused: the next record starts the next segment.
                w.pos = seg_start + seg_size;
                switched = true;
                break;
            }
        }
        if switched {
            break;
        }
        page += BLCKSZ;
    }
    if w.rec.is_none() && w.pos >= w.range.end {
        w.done = true;
    }
    first_magic
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_and_segment_names() {
        assert_eq!(parse_lsn("0/2000028"), Some(0x2000028));
        assert_eq!(parse_lsn("1/A"), Some((1 << 32) | 0xA));
        assert_eq!(fmt_lsn(0x2000028), "0/2000028");
        assert_eq!(
            segment_name(1, 2, DEFAULT_SEG_SIZE),
            "000000010000000000000002"
        );
        assert_eq!(
            segment_name(3, 256 + 5, DEFAULT_SEG_SIZE),
            "000000030000000100000005"
        );
        assert_eq!(
            parse_segment_name("000000010000000000000002.partial"),
            Some((1, 0, 2))
        );
        assert_eq!(parse_segment_name("00000002.history"), None);
    }
}
