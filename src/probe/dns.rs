//! DNS probe: NAME resolves, and (with `expect`) one of its addresses is ADDRESS — how a regional
//! failover is seen from outside. The system resolver by default; with `resolver`, an A and an
//! AAAA query over UDP straight to that server (no cache between us and the answer).

use super::Outcome;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct DnsProbe {
    name: String,
    expect: Option<IpAddr>,
    resolver: Option<SocketAddr>,
}

impl DnsProbe {
    pub fn new(
        name: &str,
        expect: Option<&str>,
        resolver: Option<&str>,
    ) -> Result<DnsProbe, String> {
        let name = name.trim().trim_end_matches('.');
        if name.is_empty()
            || name.len() > 253
            || name.split('.').any(|l| l.is_empty() || l.len() > 63)
        {
            return Err(format!("'{name}' is not a DNS name"));
        }
        let expect = expect
            .map(|e| {
                e.parse::<IpAddr>()
                    .map_err(|_| format!("expected address '{e}' is not an IP address"))
            })
            .transpose()?;
        let resolver = resolver
            .map(|r| {
                r.parse::<SocketAddr>()
                    .or_else(|_| r.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| format!("resolver '{r}' must be IP or IP:PORT"))
            })
            .transpose()?;
        Ok(DnsProbe {
            name: name.to_string(),
            expect,
            resolver,
        })
    }

    pub fn describe(&self) -> String {
        let mut s = format!("dns {}", self.name);
        if let Some(e) = self.expect {
            s.push_str(&format!(" → {e}"));
        }
        if let Some(r) = self.resolver {
            s.push_str(&format!(" @{r}"));
        }
        s
    }

    pub async fn check(&self, timeout: Duration) -> Outcome {
        let start = Instant::now();
        let answer = match self.resolver {
            None => tokio::time::timeout(timeout, system_lookup(&self.name)).await,
            Some(server) => tokio::time::timeout(timeout, query(server, &self.name)).await,
        };
        let addrs = match answer {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => return Outcome::fail(e, start.elapsed()),
            Err(_) => {
                return Outcome::fail(
                    format!("no answer within {}", crate::units::Dur(timeout)),
                    start.elapsed(),
                )
            }
        };
        let shown = addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        match self.expect {
            _ if addrs.is_empty() => Outcome::fail("no addresses", start.elapsed()),
            Some(e) if !addrs.contains(&e) => {
                Outcome::fail(format!("answers {shown}, not {e}"), start.elapsed())
            }
            _ => Outcome::pass(shown, start.elapsed()),
        }
    }
}

async fn system_lookup(name: &str) -> Result<Vec<IpAddr>, String> {
    let mut addrs: Vec<IpAddr> = tokio::net::lookup_host((name, 0))
        .await
        .map_err(|e| format!("lookup failed: {e}"))?
        .map(|a| a.ip())
        .collect();
    addrs.sort();
    addrs.dedup();
    Ok(addrs)
}

/// Ask one server for A and AAAA records.
async fn query(server: SocketAddr, name: &str) -> Result<Vec<IpAddr>, String> {
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    sock.connect(server)
        .await
        .map_err(|e| format!("cannot reach resolver {server}: {e}"))?;
    let mut out = Vec::new();
    for qtype in [1u16, 28u16] {
        let id: u16 = rand::random();
        sock.send(&encode_query(id, name, qtype))
            .await
            .map_err(|e| format!("send to {server}: {e}"))?;
        let mut buf = [0u8; 1500];
        loop {
            let n = sock
                .recv(&mut buf)
                .await
                .map_err(|e| format!("resolver {server}: {e}"))?;
            match decode_answer(&buf[..n], id) {
                Ok(Some(mut a)) => {
                    out.append(&mut a);
                    break;
                }
                Ok(None) => continue, // someone else's answer
                Err(e) => return Err(format!("resolver {server}: {e}")),
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn encode_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; 1 question
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // IN
    q
}

/// `Ok(None)` for a reply to another id; NXDOMAIN is an empty answer, other rcodes errors.
pub(crate) fn decode_answer(m: &[u8], id: u16) -> Result<Option<Vec<IpAddr>>, String> {
    let be16 = |i: usize| {
        m.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or("short DNS reply")
    };
    if be16(0)? != id {
        return Ok(None);
    }
    let flags = be16(2)?;
    match flags & 0x000f {
        0 | 3 => {}
        2 => return Err("SERVFAIL".into()),
        5 => return Err("REFUSED".into()),
        r => return Err(format!("rcode {r}")),
    }
    let (qd, an) = (be16(4)? as usize, be16(6)? as usize);
    let mut i = 12;
    let skip_name = |mut i: usize| -> Result<usize, String> {
        loop {
            let len = *m.get(i).ok_or("truncated name")? as usize;
            if len == 0 {
                return Ok(i + 1);
            }
            if len & 0xc0 == 0xc0 {
                return Ok(i + 2);
            }
            i += 1 + len;
        }
    };
    for _ in 0..qd {
        i = skip_name(i)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        i = skip_name(i)?;
        let (rtype, rdlen) = (be16(i)?, be16(i + 8)? as usize);
        let data = m.get(i + 10..i + 10 + rdlen).ok_or("truncated record")?;
        match (rtype, rdlen) {
            (1, 4) => out.push(IpAddr::from([data[0], data[1], data[2], data[3]])),
            (28, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(data);
                out.push(IpAddr::from(b));
            }
            _ => {} // CNAMEs and the like: their targets' records follow
        }
        i += 10 + rdlen;
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_decoded() {
        // A reply to `a.example` with a CNAME-less A record 10.0.2.5, name compressed.
        let mut m = encode_query(7, "a.example", 1);
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 1; // ancount
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 2, 5]);
        assert_eq!(
            decode_answer(&m, 7),
            Ok(Some(vec![IpAddr::from([10, 0, 2, 5])]))
        );
        assert_eq!(decode_answer(&m, 8), Ok(None));
        m[3] = 0x82;
        assert_eq!(decode_answer(&m, 7), Err("SERVFAIL".into()));
    }

    #[test]
    fn names_and_resolvers_are_checked() {
        assert!(DnsProbe::new("api.example.com", Some("10.0.2.5"), Some("127.0.0.1:5353")).is_ok());
        assert!(DnsProbe::new("bad..name", None, None).is_err());
        assert!(DnsProbe::new("a.b", Some("not-an-ip"), None).is_err());
        assert!(DnsProbe::new("a.b", None, Some("resolver")).is_err());
    }
}
