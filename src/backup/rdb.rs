//! Redis RDB snapshots: the `REDIS0nnn` magic, the EOF opcode, and the CRC-64 trailer Redis
//! writes over everything before it (CRC-64/Jones, reflected, polynomial 0xad93d23594c935a9,
//! as in Redis' `crc64.c`). A trailer of zero means the snapshot was saved with
//! `rdbchecksum no`: reported as a warning, since corruption then goes unnoticed.

use super::FormatReport;
use std::collections::BTreeMap;
use std::io::{self, BufRead};

const POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;

/// Slicing-by-8 tables for CRC-64/Jones.
struct Tables([[u64; 256]; 8]);

fn tables() -> &'static Tables {
    static T: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = [[0u64; 256]; 8];
        for (i, slot) in t[0].iter_mut().enumerate() {
            let mut crc = i as u64;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ POLY_REFLECTED
                } else {
                    crc >> 1
                };
            }
            *slot = crc;
        }
        #[allow(clippy::needless_range_loop)]
        for i in 0..256 {
            for k in 1..8 {
                let prev = t[k - 1][i];
                t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            }
        }
        Tables(t)
    })
}

/// CRC-64/Jones (the one Redis uses for RDB files), streaming.
#[derive(Clone, Copy, Debug, Default)]
pub struct Crc64(u64);

impl Crc64 {
    pub fn update(&mut self, data: &[u8]) {
        let t = &tables().0;
        let mut crc = self.0;
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            let v = crc ^ u64::from_le_bytes(a);
            crc = t[7][(v & 0xff) as usize]
                ^ t[6][((v >> 8) & 0xff) as usize]
                ^ t[5][((v >> 16) & 0xff) as usize]
                ^ t[4][((v >> 24) & 0xff) as usize]
                ^ t[3][((v >> 32) & 0xff) as usize]
                ^ t[2][((v >> 40) & 0xff) as usize]
                ^ t[1][((v >> 48) & 0xff) as usize]
                ^ t[0][(v >> 56) as usize];
        }
        for &b in chunks.remainder() {
            crc = t[0][((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
        }
        self.0 = crc;
    }
    pub fn value(self) -> u64 {
        self.0
    }
}

/// Check an RDB stream: magic, EOF opcode, CRC-64 trailer.
pub fn check(r: &mut dyn BufRead) -> io::Result<FormatReport> {
    let mut crc = Crc64::default();
    // The last 8 bytes seen are held back: they are the trailer if the stream ends here.
    let mut held: Vec<u8> = Vec::with_capacity(16);
    let mut magic: Vec<u8> = Vec::with_capacity(9);
    let mut total = 0u64;
    let mut last_crc_byte: Option<u8> = None;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        total += n as u64;
        if magic.len() < 9 {
            let need = 9 - magic.len();
            magic.extend_from_slice(&buf[..need.min(n)]);
        }
        if n >= 8 {
            crc.update(&held);
            if let Some(&b) = held.last() {
                last_crc_byte = Some(b);
            }
            crc.update(&buf[..n - 8]);
            if n > 8 {
                last_crc_byte = Some(buf[n - 9]);
            }
            held.clear();
            held.extend_from_slice(&buf[n - 8..]);
        } else {
            held.extend_from_slice(buf);
            if held.len() > 8 {
                let extra = held.len() - 8;
                crc.update(&held[..extra]);
                last_crc_byte = Some(held[extra - 1]);
                held.drain(..extra);
            }
        }
        r.consume(n);
    }
    let report = |ok: bool, warning: bool, detail: String| FormatReport {
        kind: "redis-rdb".into(),
        ok,
        warning,
        detail,
        tables: BTreeMap::new(),
    };
    if magic.len() < 9 || &magic[..5] != b"REDIS" {
        return Ok(report(
            false,
            false,
            "RDB: no REDIS magic at the start".into(),
        ));
    }
    let version: u32 = std::str::from_utf8(&magic[5..9])
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if held.len() < 8 || total < 18 {
        return Ok(report(
            false,
            false,
            format!("RDB v{version}: truncated ({total} bytes)"),
        ));
    }
    if version < 5 {
        let ok = held.last() == Some(&0xff);
        return Ok(report(
            ok,
            true,
            format!("RDB v{version}: too old to carry a CRC-64"),
        ));
    }
    if last_crc_byte != Some(0xff) {
        return Ok(report(
            false,
            false,
            format!(
                "RDB v{version}: no EOF opcode (0xFF) before the trailer: truncated or damaged"
            ),
        ));
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&held);
    let stored = u64::from_le_bytes(a);
    let computed = crc.value();
    Ok(if stored == 0 {
        report(
            true,
            true,
            format!("RDB v{version}: saved with rdbchecksum no; corruption cannot be detected"),
        )
    } else if stored == computed {
        report(
            true,
            false,
            format!("RDB v{version}: CRC-64 {computed:016x} matches, {total} bytes"),
        )
    } else {
        report(
            false,
            false,
            format!("RDB v{version}: CRC-64 mismatch: trailer says {stored:016x}, data gives {computed:016x}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_jones_check_value() {
        let mut c = Crc64::default();
        c.update(b"123456789");
        assert_eq!(c.value(), 0xe9c6_d914_c4b8_d9ca);
        let mut split = Crc64::default();
        split.update(b"1234");
        split.update(b"56789");
        assert_eq!(split.value(), c.value());
    }

    #[test]
    fn trailer_is_checked() {
        let mut body = b"REDIS0011\xfa\x09redis-ver\x057.0.0\xfe\x00\xfb\x00\x00\xff".to_vec();
        let mut c = Crc64::default();
        c.update(&body);
        body.extend_from_slice(&c.value().to_le_bytes());
        for chunk in [1usize, 3, 8, 9, 100] {
            let mut r = std::io::BufReader::with_capacity(chunk, &body[..]);
            let rep = check(&mut r).expect("check");
            assert!(rep.ok && !rep.warning, "chunk {chunk}: {}", rep.detail);
        }
        body[12] ^= 1;
        let rep = check(&mut &body[..]).expect("check");
        assert!(!rep.ok && rep.detail.contains("mismatch"), "{}", rep.detail);
    }
}
