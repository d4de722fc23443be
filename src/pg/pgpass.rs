//! `~/.pgpass` (or `PGPASSFILE`, or `passfile=` in the string), read as libpq reads it.

use std::path::{Path, PathBuf};
use tokio_postgres::config::Host;

/// The password for the first host of `config` that has a `.pgpass` entry. The file is
/// `passfile` from the string, else `PGPASSFILE`, else `~/.pgpass`; as libpq does, a file that
/// group or others can read is ignored (with a warning).
pub(super) fn password(config: &tokio_postgres::Config, passfile: Option<&Path>) -> Option<String> {
    let path = passfile
        .map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os("PGPASSFILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
    let meta = std::fs::metadata(&path).ok()?;
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "password file {} has group or world access; permissions should be u=rw (0600) or less; ignored",
                path.display()
            );
            return None;
        }
    }
    let content = std::fs::read_to_string(&path).ok()?;
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    let ports = config.get_ports();
    for (i, host) in config.get_hosts().iter().enumerate() {
        let host = match host {
            Host::Tcp(h) => h.clone(),
            // libpq matches a Unix-socket connection against "localhost".
            Host::Unix(_) => "localhost".into(),
        };
        let port = ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(5432);
        if let Some(pw) = pgpass_lookup(&content, &host, port, db, user) {
            return Some(pw);
        }
    }
    None
}

/// Look up `host:port:database:user:password` lines; `*` matches anything, `\:` and `\\` are
/// escapes, `#` starts a comment line. The first match wins.
pub fn pgpass_lookup(content: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    for line in content.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass_line(line);
        if fields.len() < 5 {
            continue;
        }
        let want = [host, port.as_str(), db, user];
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

/// Split on unescaped ':' into at most five fields (the password keeps any further ':').
fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if let Some(f) = fields.last_mut() {
                        f.push(n);
                    }
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_matches_wildcards_and_escapes() {
        let file = "# comment\n\
                    db1:5432:app:app:first\n\
                    *:5433:*:app:pa\\:ss:word\n\
                    127.0.0.1:*:*:*:fallback\\\\x\n";
        assert_eq!(
            pgpass_lookup(file, "db1", 5432, "app", "app").as_deref(),
            Some("first")
        );
        assert_eq!(
            pgpass_lookup(file, "db2", 5433, "x", "app").as_deref(),
            Some("pa:ss:word")
        );
        assert_eq!(
            pgpass_lookup(file, "127.0.0.1", 9, "d", "u").as_deref(),
            Some("fallback\\x")
        );
        assert_eq!(pgpass_lookup(file, "db1", 5432, "other", "app"), None);
    }
}
