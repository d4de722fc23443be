//! Redis probe, speaking RESP directly: AUTH (from the URL), SELECT, PING must answer PONG and,
//! with `min_keys`, DBSIZE must reach N (a warm cache).

use super::Outcome;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Clone, Debug)]
pub struct RedisProbe {
    addr: String,
    user: Option<String>,
    password: Option<String>,
    db: u32,
    min_keys: Option<u64>,
    shown: String,
}

impl RedisProbe {
    pub fn new(url: &str, min_keys: Option<u64>) -> Result<RedisProbe, String> {
        let u = url::Url::parse(url)
            .map_err(|e| format!("invalid Redis URL '{}': {e}", crate::redact::redact(url)))?;
        if u.scheme() != "redis" {
            return Err(format!(
                "Redis URL must start with redis://, got '{}'",
                crate::redact::redact(url)
            ));
        }
        let host = u
            .host_str()
            .ok_or_else(|| "Redis URL has no host".to_string())?;
        let port = u.port().unwrap_or(6379);
        let db = match u.path().trim_start_matches('/') {
            "" => 0,
            n => n
                .parse()
                .map_err(|_| format!("Redis database must be a number, got '{n}'"))?,
        };
        let decode = |s: &str| percent_decode(s);
        let password = u.password().map(decode);
        let user = Some(u.username()).filter(|s| !s.is_empty()).map(decode);
        Ok(RedisProbe {
            addr: format!("{host}:{port}"),
            user,
            password,
            db,
            min_keys,
            shown: crate::redact::redact(url),
        })
    }

    pub fn describe(&self) -> String {
        match self.min_keys {
            Some(n) => format!("redis {} keys>={n}", self.shown),
            None => format!("redis {}", self.shown),
        }
    }

    pub async fn check(&self, timeout: Duration) -> Outcome {
        let start = Instant::now();
        match tokio::time::timeout(timeout, self.talk()).await {
            Ok(Ok(detail)) => Outcome::pass(detail, start.elapsed()),
            Ok(Err(e)) => Outcome::fail(e, start.elapsed()),
            Err(_) => Outcome::fail(
                format!("no answer within {}", crate::units::Dur(timeout)),
                start.elapsed(),
            ),
        }
    }

    async fn talk(&self) -> Result<String, String> {
        let stream = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|e| format!("connect failed: {e}"))?;
        let mut conn = BufReader::new(stream);
        if let Some(pw) = &self.password {
            let mut args = vec!["AUTH"];
            if let Some(u) = &self.user {
                args.push(u);
            }
            args.push(pw);
            expect_ok(command(&mut conn, &args).await?, "AUTH")?;
        }
        if self.db != 0 {
            let db = self.db.to_string();
            expect_ok(command(&mut conn, &["SELECT", &db]).await?, "SELECT")?;
        }
        match command(&mut conn, &["PING"]).await? {
            Reply::Simple(s) if s == "PONG" => {}
            other => return Err(format!("PING answered {other}")),
        }
        let Some(min) = self.min_keys else {
            return Ok("PONG".into());
        };
        match command(&mut conn, &["DBSIZE"]).await? {
            Reply::Int(n) if n >= min as i64 => Ok(format!("PONG, {n} keys")),
            Reply::Int(n) => Err(format!("cache cold: {n} keys < {min}")),
            other => Err(format!("DBSIZE answered {other}")),
        }
    }
}

#[derive(Debug)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Other(String),
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Simple(s) => write!(f, "+{s}"),
            Reply::Error(e) => write!(f, "error {e}"),
            Reply::Int(n) => write!(f, "{n}"),
            Reply::Other(s) => write!(f, "{s:?}"),
        }
    }
}

fn expect_ok(r: Reply, what: &str) -> Result<(), String> {
    match r {
        Reply::Simple(s) if s == "OK" => Ok(()),
        Reply::Error(e) => Err(format!("{what} refused: {e}")),
        other => Err(format!("{what} answered {other}")),
    }
}

async fn command(
    conn: &mut BufReader<tokio::net::TcpStream>,
    args: &[&str],
) -> Result<Reply, String> {
    let mut req = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        req.extend_from_slice(a.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    conn.get_mut()
        .write_all(&req)
        .await
        .map_err(|e| format!("write failed: {e}"))?;
    let mut line = String::new();
    let n = conn
        .read_line(&mut line)
        .await
        .map_err(|e| format!("read failed: {e}"))?;
    if n == 0 {
        return Err("connection closed by server".into());
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (tag, rest) = line.split_at(line.len().min(1));
    Ok(match tag {
        "+" => Reply::Simple(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Int(
            rest.parse()
                .map_err(|_| format!("bad integer reply {rest:?}"))?,
        ),
        _ => Reply::Other(line.to_string()),
    })
}

/// Decode `%XX` escapes in URL userinfo.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
