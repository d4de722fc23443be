//! gzip checked member by member, as `gzip -t` does and a little more: every member's header,
//! its deflate stream, its CRC-32 and length trailer, and nothing but members up to the end of
//! the file (trailing garbage fails). The reader hands out the inflated bytes through `BufRead`,
//! so the format checks read the same buffers; a damaged stream ends the output early and the
//! damage is reported by [`GzipReader::finish`].

use flate2::{Crc, Decompress, FlushDecompress, Status};
use std::io::{self, BufRead, Read};

const OUT: usize = 1024 * 1024;

enum State {
    Header,
    Body {
        inflate: Box<Decompress>,
        crc: Crc,
        start_in: u64,
    },
    Done,
}

/// The outcome of the gzip check.
#[derive(Clone, Debug, Default)]
pub struct GzipReport {
    pub members: u32,
    pub compressed: u64,
    pub uncompressed: u64,
    pub error: Option<String>,
}

/// Inflates a gzip stream read from `inner`, checking each member.
pub struct GzipReader<R> {
    inner: R,
    out: Vec<u8>,
    pos: usize,
    len: usize,
    state: State,
    report: GzipReport,
    /// Bytes of `inner` consumed so far (offsets in error messages).
    offset: u64,
}

impl<R: BufRead> GzipReader<R> {
    pub fn new(inner: R) -> Self {
        GzipReader {
            inner,
            out: vec![0; OUT],
            pos: 0,
            len: 0,
            state: State::Header,
            report: GzipReport::default(),
            offset: 0,
        }
    }

    fn fail(&mut self, msg: String) {
        if self.report.error.is_none() {
            self.report.error = Some(msg);
        }
        self.state = State::Done;
    }

    fn read_exact_inner(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.offset += buf.len() as u64;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn skip_zero_terminated(&mut self) -> io::Result<bool> {
        let mut b = [0u8; 1];
        loop {
            if !self.read_exact_inner(&mut b)? {
                return Ok(false);
            }
            if b[0] == 0 {
                return Ok(true);
            }
        }
    }

    /// Parse one member header; `Ok(false)` means the member could not start (reported).
    fn header(&mut self) -> io::Result<bool> {
        let member = self.report.members + 1;
        let at = self.offset;
        if self.inner.fill_buf()?.is_empty() {
            if self.report.members == 0 {
                self.fail("empty: no gzip member".into());
            } else {
                self.state = State::Done;
            }
            return Ok(false);
        }
        if self.report.members > 0 {
            let buf = self.inner.fill_buf()?;
            let looks_like_member = buf[0] == 0x1f && (buf.len() == 1 || buf[1] == 0x8b);
            if !looks_like_member {
                let rest = drain(&mut self.inner)?;
                self.fail(format!(
                    "trailing garbage: {rest} byte(s) after member {} at offset {at} are not a gzip member",
                    self.report.members
                ));
                return Ok(false);
            }
        }
        let mut h = [0u8; 10];
        let got = self.read_exact_inner(&mut h)?;
        if !got {
            self.fail(format!(
                "truncated: member {member} header cut short at offset {at}"
            ));
            return Ok(false);
        }
        if h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 {
            self.fail(format!(
                "member {member} at offset {at}: not a gzip/deflate header"
            ));
            return Ok(false);
        }
        let flags = h[3];
        let cut = |s: &mut Self| {
            s.fail(format!(
                "truncated: member {member} header cut short at offset {at}"
            ));
            Ok(false)
        };
        if flags & 0x04 != 0 {
            let mut x = [0u8; 2];
            if !self.read_exact_inner(&mut x)? {
                return cut(self);
            }
            let mut extra = vec![0u8; u16::from_le_bytes(x) as usize];
            if !self.read_exact_inner(&mut extra)? {
                return cut(self);
            }
        }
        for flag in [0x08, 0x10] {
            if flags & flag != 0 && !self.skip_zero_terminated()? {
                return cut(self);
            }
        }
        if flags & 0x02 != 0 {
            let mut x = [0u8; 2];
            if !self.read_exact_inner(&mut x)? {
                return cut(self);
            }
        }
        self.state = State::Body {
            inflate: Box::new(Decompress::new(false)),
            crc: Crc::new(),
            start_in: self.offset,
        };
        Ok(true)
    }

    /// Inflate until some output is ready or the member ends.
    fn body(&mut self) -> io::Result<()> {
        let member = self.report.members + 1;
        let State::Body {
            inflate,
            crc,
            start_in,
        } = &mut self.state
        else {
            return Ok(());
        };
        let input = self.inner.fill_buf()?;
        if input.is_empty() {
            let at = self.offset;
            self.fail(format!(
                "truncated: member {member} ends at offset {at} inside its deflate stream"
            ));
            return Ok(());
        }
        let (in0, out0) = (inflate.total_in(), inflate.total_out());
        let status = inflate.decompress(input, &mut self.out, FlushDecompress::None);
        let used = (inflate.total_in() - in0) as usize;
        let made = (inflate.total_out() - out0) as usize;
        self.inner.consume(used);
        self.offset += used as u64;
        match status {
            Err(e) => {
                let at = self.offset;
                self.fail(format!(
                    "member {member}: corrupt deflate data near offset {at} ({e})"
                ));
            }
            Ok(Status::StreamEnd) => {
                crc.update(&self.out[..made]);
                let (sum, amount, started) = (crc.sum(), crc.amount(), *start_in);
                self.len = made;
                self.pos = 0;
                self.report.uncompressed += made as u64;
                self.trailer(member, sum, amount, started)?;
            }
            Ok(_) => {
                if used == 0 && made == 0 {
                    let at = self.offset;
                    self.fail(format!(
                        "member {member}: deflate stream stalled at offset {at}"
                    ));
                    return Ok(());
                }
                crc.update(&self.out[..made]);
                self.len = made;
                self.pos = 0;
                self.report.uncompressed += made as u64;
            }
        }
        Ok(())
    }

    fn trailer(&mut self, member: u32, sum: u32, amount: u32, started: u64) -> io::Result<()> {
        let mut t = [0u8; 8];
        if !self.read_exact_inner(&mut t)? {
            self.fail(format!(
                "truncated: member {member} has no CRC/length trailer"
            ));
            return Ok(());
        }
        let want_crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let want_len = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        if want_crc != sum {
            self.fail(format!(
                "member {member} (from offset {started}): CRC-32 mismatch: trailer says {want_crc:08x}, data gives {sum:08x}"
            ));
        } else if want_len != amount {
            self.fail(format!(
                "member {member}: length mismatch: trailer says {want_len} (mod 2^32), data gives {amount}"
            ));
        } else {
            self.report.members += 1;
            self.state = State::Header;
        }
        Ok(())
    }

    /// The report; reads what is left so that every member is checked even if the reader of
    /// the inflated bytes stopped early.
    pub fn finish(mut self) -> io::Result<(GzipReport, R)> {
        while !self.fill_buf()?.is_empty() {
            let n = self.len - self.pos;
            self.consume(n);
        }
        self.report.compressed = self.offset;
        Ok((self.report, self.inner))
    }
}

/// Read `r` to its end, counting the bytes.
pub fn drain(r: &mut impl BufRead) -> io::Result<u64> {
    let mut n = 0u64;
    loop {
        let len = r.fill_buf()?.len();
        if len == 0 {
            return Ok(n);
        }
        r.consume(len);
        n += len as u64;
    }
}

impl<R: BufRead> Read for GzipReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        super::engine::read_buffered(self, buf)
    }
}

impl<R: BufRead> BufRead for GzipReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos >= self.len {
            match self.state {
                State::Done => return Ok(&[]),
                State::Header => {
                    self.header()?;
                }
                State::Body { .. } => self.body()?,
            }
        }
        Ok(&self.out[self.pos..self.len])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.len);
    }
}

impl<R: BufRead> super::engine::HandOff for GzipReader<R> {
    const OUT: usize = OUT;
    fn hand_off(&mut self, spare: Vec<u8>) -> io::Result<Option<(Vec<u8>, usize)>> {
        if self.fill_buf()?.is_empty() {
            return Ok(None);
        }
        let taken = super::engine::swap_out(&mut self.out, &mut self.pos, &mut self.len, spare);
        Ok(Some(taken))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("write");
        e.finish().expect("finish")
    }

    fn check(bytes: &[u8]) -> (Vec<u8>, GzipReport) {
        let mut r = GzipReader::new(bytes);
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("read");
        let (rep, _) = r.finish().expect("finish");
        (out, rep)
    }

    #[test]
    fn multi_member_streams_inflate_whole() {
        let mut two = gz(b"hello ");
        two.extend(gz(b"world"));
        let (out, rep) = check(&two);
        assert_eq!(out, b"hello world");
        assert_eq!(rep.members, 2);
        assert!(rep.error.is_none(), "{:?}", rep.error);
    }

    #[test]
    fn damage_is_named() {
        let good = gz(&b"some text that compresses ".repeat(1000));
        let (_, rep) = check(&good[..good.len() - 3]);
        assert!(rep.error.expect("err").contains("truncated"));
        let mut garbage = good.clone();
        garbage.extend_from_slice(b"junk");
        let (_, rep) = check(&garbage);
        assert!(rep.error.expect("err").contains("trailing garbage"));
        let mut crc = good.clone();
        let n = crc.len();
        crc[n - 6] ^= 1;
        let (_, rep) = check(&crc);
        assert!(rep.error.expect("err").contains("CRC"));
        let (_, rep) = check(b"");
        assert!(rep.error.expect("err").contains("empty"));
    }
}
