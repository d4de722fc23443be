//! zstd checked frame by frame: every frame decodes, its content checksum (XXH64) matches when
//! the frame carries one, and the file ends on a frame boundary. Frames written without a
//! checksum (`zstd --no-check`) are a warning: corruption in them may go unnoticed. Like
//! [`super::gzip`], the decoded bytes go out through `BufRead` to the format checks.

use std::io::{self, BufRead, Read};
use zstd::stream::raw::{DParameter, Decoder, Operation};

const OUT: usize = 256 * 1024;

/// The largest frame window decoded by default: 2^27 = 128 MiB, the `zstd` tool's own limit.
pub const WINDOW_LOG_MAX: u32 = 27;
/// The largest window `--zstd-max-window` can allow: 2 GiB (`zstd --long=31`).
pub const WINDOW_LOG_LIMIT: u32 = 31;

/// The window a frame declares, from its first bytes (magic, descriptor, window descriptor,
/// dictionary id, content size); `None` until enough of them are there.
fn frame_window(h: &[u8]) -> Option<u64> {
    if !h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return None;
    }
    let fhd = *h.get(4)?;
    let single = fhd & 0x20 != 0;
    if !single {
        let wd = *h.get(5)?;
        let base = 1u64 << (10 + u32::from(wd >> 3));
        return Some(base + base / 8 * u64::from(wd & 7));
    }
    // A single-segment frame's window is its content size.
    let did = [0, 1, 2, 4][usize::from(fhd & 3)];
    let fcs = [1, 2, 4, 8][usize::from(fhd >> 6)];
    let at = 5 + did;
    let b = h.get(at..at + fcs)?;
    let mut v = [0u8; 8];
    v[..fcs].copy_from_slice(b);
    let n = u64::from_le_bytes(v);
    Some(if fcs == 2 { n + 256 } else { n })
}

/// Bytes of a frame header that [`frame_window`] may need.
const HEAD: usize = 18;

/// The outcome of the zstd check.
#[derive(Clone, Debug, Default)]
pub struct ZstdReport {
    pub frames: u32,
    pub frames_without_checksum: u32,
    pub skippable: u32,
    pub compressed: u64,
    pub uncompressed: u64,
    pub error: Option<String>,
}

pub struct ZstdReader<R> {
    inner: R,
    dec: Option<Decoder<'static>>,
    out: Vec<u8>,
    pos: usize,
    len: usize,
    /// Header bytes of the frame being started (magic, descriptors, content size).
    head: Vec<u8>,
    window_log_max: u32,
    at_frame_start: bool,
    done: bool,
    report: ZstdReport,
    offset: u64,
}

impl<R: BufRead> ZstdReader<R> {
    /// A reader that decodes frames with windows up to 2^`window_log_max` bytes. The window
    /// is memory every decoder must hold; [`WINDOW_LOG_MAX`] allows what `zstd -d` allows
    /// without flags (128 MiB: `--long`, `--ultra -22`).
    pub fn new(inner: R, window_log_max: u32) -> Self {
        let mut report = ZstdReport::default();
        let window_log_max = window_log_max.clamp(10, WINDOW_LOG_LIMIT);
        let dec = match Decoder::new() {
            Ok(mut d) => {
                let _ = d.set_parameter(DParameter::WindowLogMax(window_log_max));
                Some(d)
            }
            Err(e) => {
                report.error = Some(format!("cannot start a zstd decoder: {e}"));
                None
            }
        };
        let done = dec.is_none();
        ZstdReader {
            inner,
            dec,
            out: vec![0; OUT],
            pos: 0,
            len: 0,
            head: Vec::with_capacity(HEAD),
            window_log_max,
            at_frame_start: true,
            done,
            report,
            offset: 0,
        }
    }

    fn fail(&mut self, msg: String) {
        if self.report.error.is_none() {
            self.report.error = Some(msg);
        }
        self.done = true;
    }

    /// Note the frame header's checksum flag (and keep what tells its window) as its first
    /// bytes go by.
    fn observe_header(&mut self, input: &[u8]) {
        let need = HEAD.saturating_sub(self.head.len());
        self.head.extend_from_slice(&input[..need.min(input.len())]);
        if self.head.len() < 5 || !self.at_frame_start {
            return;
        }
        self.at_frame_start = false;
        let magic = u32::from_le_bytes([self.head[0], self.head[1], self.head[2], self.head[3]]);
        if magic == 0xFD2F_B528 {
            self.report.frames += 1;
            if self.head[4] & 0x04 == 0 {
                self.report.frames_without_checksum += 1;
            }
        } else if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
            self.report.skippable += 1;
        }
    }

    fn step(&mut self) -> io::Result<()> {
        if self.inner.fill_buf()?.is_empty() {
            let at = self.offset;
            if self.report.frames + self.report.skippable == 0 {
                self.fail("empty: no zstd frame".into());
            } else if !self.at_frame_start || !self.head.is_empty() {
                self.fail(format!(
                    "truncated: the stream ends at offset {at} inside frame {}",
                    self.report.frames + self.report.skippable
                ));
            } else {
                self.done = true;
            }
            return Ok(());
        }
        let input = self.inner.fill_buf()?;
        let head_needed = self.head.len() < HEAD && (self.at_frame_start || !self.head.is_empty());
        let snapshot: [u8; HEAD] = {
            let mut s = [0u8; HEAD];
            let n = input.len().min(HEAD);
            s[..n].copy_from_slice(&input[..n]);
            s
        };
        let avail = input.len();
        let Some(dec) = self.dec.as_mut() else {
            self.done = true;
            return Ok(());
        };
        let status = dec.run_on_buffers(input, &mut self.out);
        if head_needed {
            self.observe_header(&snapshot[..avail.min(HEAD)]);
        }
        match status {
            Err(e) => {
                let at = self.offset;
                let frame = self.report.frames.max(1);
                let limit = 1u64 << self.window_log_max;
                let window = frame_window(&self.head).filter(|&w| w > limit);
                if window.is_some() || e.to_string().contains("too much memory") {
                    let needs = window.map_or_else(
                        || "bigger".to_string(),
                        |w| crate::units::Size(w).to_string(),
                    );
                    self.fail(format!(
                        "frame {frame} needs a {needs} window, over the {} allowed: not \
                         decoded (a window is memory every decoder must hold); allow it with \
                         --zstd-max-window, as `zstd -d` needs --long=31 or --memory",
                        crate::units::Size(limit)
                    ));
                } else {
                    self.fail(format!("frame {frame}: {e} (near offset {at})"));
                }
            }
            Ok(st) => {
                self.inner.consume(st.bytes_read);
                self.offset += st.bytes_read as u64;
                self.pos = 0;
                self.len = st.bytes_written;
                self.report.uncompressed += st.bytes_written as u64;
                if st.remaining == 0 {
                    // A frame ended (and all its output is out): the next byte starts another.
                    self.at_frame_start = true;
                    self.head.clear();
                } else if st.bytes_read == 0 && st.bytes_written == 0 {
                    let at = self.offset;
                    self.fail(format!("stalled at offset {at}"));
                }
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<(ZstdReport, R)> {
        while !self.fill_buf()?.is_empty() {
            let n = self.len - self.pos;
            self.consume(n);
        }
        self.report.compressed = self.offset;
        Ok((self.report, self.inner))
    }
}

impl<R: BufRead> Read for ZstdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        super::engine::read_buffered(self, buf)
    }
}

impl<R: BufRead> BufRead for ZstdReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos >= self.len {
            if self.done {
                return Ok(&[]);
            }
            self.step()?;
        }
        Ok(&self.out[self.pos..self.len])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.len);
    }
}

impl<R: BufRead> super::engine::HandOff for ZstdReader<R> {
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

    fn check(bytes: &[u8]) -> (Vec<u8>, ZstdReport) {
        let mut r = ZstdReader::new(bytes, WINDOW_LOG_MAX);
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("read");
        let (rep, _) = r.finish().expect("finish");
        (out, rep)
    }

    #[test]
    fn frames_and_checksums() {
        let data = b"zstd test data ".repeat(5000);
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).expect("enc");
        enc.include_checksum(true).expect("checksum");
        std::io::Write::write_all(&mut enc, &data).expect("write");
        let mut z = enc.finish().expect("finish");
        let (out, rep) = check(&z);
        assert_eq!(out, data);
        assert_eq!((rep.frames, rep.frames_without_checksum), (1, 0));
        assert!(rep.error.is_none(), "{:?}", rep.error);
        let plain = zstd::encode_all(&data[..], 3).expect("enc");
        let (_, rep) = check(&plain);
        assert_eq!(rep.frames_without_checksum, 1);
        let (_, rep) = check(&z[..z.len() - 5]);
        assert!(rep.error.expect("err").contains("truncated"));
        let n = z.len();
        z[n - 2] ^= 0x10;
        let (_, rep) = check(&z);
        assert!(rep.error.is_some());
    }

    #[test]
    fn a_window_over_the_limit_is_refused_by_name() {
        use zstd::stream::raw::CParameter;
        let data = b"long window ".repeat(50_000);
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).expect("enc");
        enc.set_parameter(CParameter::EnableLongDistanceMatching(true))
            .expect("ldm");
        enc.set_parameter(CParameter::WindowLog(WINDOW_LOG_MAX + 1))
            .expect("window");
        std::io::Write::write_all(&mut enc, &data).expect("write");
        let z = enc.finish().expect("finish");
        assert_eq!(frame_window(&z[..6]), Some(256 << 20));
        let (_, rep) = check(&z);
        let err = rep.error.expect("a window of 256 MiB is refused");
        assert!(
            err.contains("needs a 256.0 MiB window, over the 128.0 MiB allowed"),
            "{err}"
        );
        // Allowed when asked for.
        let mut r = ZstdReader::new(&z[..], WINDOW_LOG_MAX + 1);
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("read");
        let (rep, _) = r.finish().expect("finish");
        assert!(rep.error.is_none(), "{:?}", rep.error);
        assert_eq!(out, data);
        // The same data with the largest allowed window decodes.
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).expect("enc");
        enc.set_parameter(CParameter::WindowLog(WINDOW_LOG_MAX))
            .expect("window");
        std::io::Write::write_all(&mut enc, &data).expect("write");
        let (out, rep) = check(&enc.finish().expect("finish"));
        assert!(rep.error.is_none(), "{:?}", rep.error);
        assert_eq!(out, data);
    }

    #[test]
    fn window_sizes_from_frame_headers() {
        // Window descriptor: exponent 17 (2^27), mantissa 0 / 3.
        assert_eq!(
            frame_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x04, 17 << 3]),
            Some(1 << 27)
        );
        assert_eq!(
            frame_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x04, (17 << 3) | 3]),
            Some((1 << 27) + (1 << 24) * 3)
        );
        // Single segment, 4-byte content size: the window is the content size.
        let mut h = vec![0x28, 0xb5, 0x2f, 0xfd, 0xa0];
        h.extend_from_slice(&300_000_000u32.to_le_bytes());
        assert_eq!(frame_window(&h), Some(300_000_000));
        // Single segment, 2-byte content size (+256), after a 1-byte dictionary id.
        assert_eq!(
            frame_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x61, 9, 0x10, 0x00]),
            Some(16 + 256)
        );
        assert_eq!(frame_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x04]), None);
    }
}
