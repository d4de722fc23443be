//! A streaming tar reader for the archives `pg_basebackup -Ft` writes (ustar; also GNU long
//! names and pax `path`/`size` records, which GNU tar writes when a backup is repacked). It
//! hands out one member at a time as a reader limited to the member's bytes, so a caller hashes
//! each file as it passes: an archive is read once, never unpacked to disk.

use std::io::{self, Read};

const BLOCK: usize = 512;

/// What a member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Link,
    Other,
}

/// One member's header.
#[derive(Clone, Debug)]
pub struct Member {
    pub path: String,
    pub size: u64,
    pub kind: Kind,
}

/// Reads members in order from a decoded archive stream.
pub struct TarReader<R> {
    inner: R,
    /// Bytes of the current member not yet read, and the padding after them.
    left: u64,
    pad: u64,
    /// Offset in the decoded stream (for messages).
    pub offset: u64,
    done: bool,
}

fn octal(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // GNU base-256 for sizes over 8 GiB.
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(n);
    }
    let s: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            left: 0,
            pad: 0,
            offset: 0,
            done: false,
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            let n = self.inner.read(&mut buf[got..])?;
            if n == 0 {
                if got == 0 {
                    return Ok(false);
                }
                return Err(bad(format!(
                    "the archive ends inside a header at byte {} (truncated)",
                    self.offset + got as u64
                )));
            }
            got += n;
        }
        self.offset += buf.len() as u64;
        Ok(true)
    }

    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let k = (n as usize).min(buf.len());
            let r = self.inner.read(&mut buf[..k])?;
            if r == 0 {
                return Err(bad(format!(
                    "the archive ends inside a member at byte {} (truncated)",
                    self.offset
                )));
            }
            self.offset += r as u64;
            n -= r as u64;
        }
        Ok(())
    }

    fn read_body(&mut self, size: u64) -> io::Result<Vec<u8>> {
        let mut v = vec![0u8; size.min(1 << 20) as usize];
        if !self.fill(&mut v)? {
            return Err(bad("the archive ends inside an extended header".into()));
        }
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        self.skip(size - v.len() as u64 + pad)?;
        Ok(v)
    }

    /// The next member (after skipping what is left of the current one); `None` at the end
    /// marker. A stream that ends without one is an error (a truncated archive).
    pub fn next_member(&mut self) -> io::Result<Option<Member>> {
        if self.done {
            return Ok(None);
        }
        let rest = self.left + self.pad;
        self.left = 0;
        self.pad = 0;
        self.skip(rest)?;
        let mut long_name: Option<String> = None;
        let mut pax_size: Option<u64> = None;
        loop {
            let mut h = [0u8; BLOCK];
            let at = self.offset;
            if !self.fill(&mut h)? {
                return Err(bad(format!(
                    "the archive ends at byte {at} without its end-of-archive marker (truncated)"
                )));
            }
            if h.iter().all(|&b| b == 0) {
                self.done = true;
                return Ok(None);
            }
            let stored = octal(&h[148..156])
                .ok_or_else(|| bad(format!("unreadable header checksum at byte {at}")))?;
            let sum: u64 = h
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u64::from(b)
                    }
                })
                .sum();
            if sum != stored {
                return Err(bad(format!(
                    "tar header at byte {at} fails its checksum (damaged archive)"
                )));
            }
            let size =
                octal(&h[124..136]).ok_or_else(|| bad(format!("unreadable size at byte {at}")))?;
            let flag = h[156];
            match flag {
                b'L' => {
                    let body = self.read_body(size)?;
                    long_name = Some(text(&body));
                    continue;
                }
                b'x' => {
                    let body = self.read_body(size)?;
                    for rec in String::from_utf8_lossy(&body).lines() {
                        // "LEN key=value"
                        let Some((_, kv)) = rec.split_once(' ') else {
                            continue;
                        };
                        if let Some(p) = kv.strip_prefix("path=") {
                            long_name = Some(p.to_string());
                        } else if let Some(s) = kv.strip_prefix("size=") {
                            pax_size = s.parse().ok();
                        }
                    }
                    continue;
                }
                b'g' | b'K' => {
                    self.read_body(size)?;
                    continue;
                }
                _ => {}
            }
            let ustar = &h[257..262] == b"ustar";
            let mut path = match long_name.take() {
                Some(p) => p,
                None => {
                    let name = text(&h[0..100]);
                    let prefix = if ustar && &h[257..263] == b"ustar\0" {
                        text(&h[345..500])
                    } else {
                        String::new()
                    };
                    if prefix.is_empty() {
                        name
                    } else {
                        format!("{prefix}/{name}")
                    }
                }
            };
            let size = pax_size.take().unwrap_or(size);
            let kind = match flag {
                b'0' | 0 | b'7' => Kind::File,
                b'5' => Kind::Dir,
                b'1' | b'2' => Kind::Link,
                _ => Kind::Other,
            };
            while let Some(p) = path.strip_prefix("./") {
                path = p.to_string();
            }
            if kind == Kind::Dir {
                while path.ends_with('/') {
                    path.pop();
                }
            }
            let body = if matches!(kind, Kind::File | Kind::Other) {
                size
            } else {
                0
            };
            self.left = body;
            self.pad = (BLOCK as u64 - body % BLOCK as u64) % BLOCK as u64;
            return Ok(Some(Member { path, size, kind }));
        }
    }

    /// After the end marker: is anything but zero padding left? (`tar` pads to a record.)
    pub fn trailing_garbage(&mut self) -> io::Result<Option<u64>> {
        let mut buf = [0u8; 8192];
        let mut extra = 0u64;
        let mut nonzero = false;
        loop {
            let n = self.inner.read(&mut buf)?;
            if n == 0 {
                break;
            }
            nonzero |= buf[..n].iter().any(|&b| b != 0);
            extra += n as u64;
        }
        Ok(nonzero.then_some(extra))
    }
}

impl<R: Read> Read for TarReader<R> {
    /// The current member's bytes; 0 at its end.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let k = (self.left.min(buf.len() as u64)) as usize;
        let n = self.inner.read(&mut buf[..k])?;
        if n == 0 {
            return Err(bad(format!(
                "the archive ends inside a member at byte {} (truncated)",
                self.offset
            )));
        }
        self.left -= n as u64;
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, size: u64, flag: u8) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = flag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    #[test]
    fn members_in_order_and_truncation_is_an_error() {
        let mut a = Vec::new();
        a.extend(header("dir/", 0, b'5'));
        a.extend(header("dir/f", 3, b'0'));
        a.extend(b"abc");
        a.extend([0u8; 509]);
        a.extend([0u8; 1024]);
        let mut t = TarReader::new(&a[..]);
        let d = t.next_member().expect("dir").expect("member");
        assert_eq!((d.path.as_str(), d.kind), ("dir", Kind::Dir));
        let f = t.next_member().expect("file").expect("member");
        assert_eq!((f.path.as_str(), f.size), ("dir/f", 3));
        let mut s = String::new();
        t.read_to_string(&mut s).expect("body");
        assert_eq!(s, "abc");
        assert!(t.next_member().expect("end").is_none());
        let cut = &a[..512 + 512 + 2];
        let mut t = TarReader::new(cut);
        t.next_member().expect("dir");
        t.next_member().expect("file");
        let mut s = Vec::new();
        assert!(t.read_to_end(&mut s).is_err());
        let mut t = TarReader::new(&a[..1024 + 512]);
        t.next_member().expect("dir");
        t.next_member().expect("file");
        assert!(t.next_member().is_err(), "no end marker");
    }
}
