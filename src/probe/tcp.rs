//! TCP probe: a connection to HOST:PORT is accepted.

use super::Outcome;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct TcpProbe {
    addr: String,
}

impl TcpProbe {
    pub fn new(addr: &str) -> Result<TcpProbe, String> {
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("TCP probe needs HOST:PORT, got '{addr}'"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!(
                "TCP probe needs HOST:PORT with a port 1-65535, got '{addr}'"
            ));
        }
        Ok(TcpProbe {
            addr: addr.to_string(),
        })
    }

    pub fn describe(&self) -> String {
        format!("tcp {}", self.addr)
    }

    pub async fn check(&self, timeout: Duration) -> Outcome {
        let start = Instant::now();
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&self.addr)).await {
            Ok(Ok(_)) => Outcome::pass("connected", start.elapsed()),
            Ok(Err(e)) => Outcome::fail(format!("connect failed: {e}"), start.elapsed()),
            Err(_) => Outcome::fail(
                format!("no answer within {}", crate::units::Dur(timeout)),
                start.elapsed(),
            ),
        }
    }
}
