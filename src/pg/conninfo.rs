//! libpq's connection options that tokio-postgres does not know: `sslmode` (all six),
//! `sslrootcert`, `passfile`, the `key=value` form with quotes, and the `PGHOST`, `PGPORT`,
//! `PGUSER`, `PGDATABASE` defaults.

use super::SslMode;
use std::path::PathBuf;

#[derive(Debug, Default, PartialEq)]
pub(super) struct LibpqOnly {
    pub mode: Option<SslMode>,
    pub rootcert: Option<PathBuf>,
    pub passfile: Option<PathBuf>,
}

/// Take `sslmode`, `sslrootcert` and `passfile` out of the connection string (tokio-postgres
/// rejects `verify-ca`/`verify-full` and does not know the others) and refuse client
/// certificates, which are not supported.
pub(super) fn split_libpq_only(conn: &str) -> Result<(String, LibpqOnly), String> {
    let mut only = LibpqOnly::default();
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => only.mode = Some(value.parse()?),
            "sslrootcert" if value == "system" => {
                return Err(
                    "sslrootcert=system (the OS trust store) is not supported; give a PEM file"
                        .into(),
                )
            }
            "sslrootcert" => only.rootcert = Some(PathBuf::from(value)),
            "passfile" => only.passfile = Some(PathBuf::from(value)),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(format!(
                    "{key} (client certificates, CRLs) is not supported"
                ))
            }
            "sslsni" | "sslcompression" | "gssencmode" | "requiressl" => {}
            _ => return Ok(false),
        }
        Ok(true)
    };
    if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        let Some((base, query)) = conn.split_once('?') else {
            return Ok((conn.to_string(), only));
        };
        let mut kept: Vec<&str> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let value: String = url::form_urlencoded::parse(format!("v={v}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            if !take(k, &value)? {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok((rest, only))
    } else {
        let pairs = parse_key_values(conn)?;
        let mut rest = String::new();
        for (k, v) in pairs {
            if !take(&k, &v)? {
                let quoted = v.replace('\\', "\\\\").replace('\'', "\\'");
                rest.push_str(&format!("{k}='{quoted}' "));
            }
        }
        Ok((rest.trim_end().to_string(), only))
    }
}

/// libpq `key = value` pairs; values may be single-quoted with `\'` and `\\` escapes.
fn parse_key_values(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!(
                "invalid PostgreSQL connection string: expected '=' after '{key}'"
            ));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => {
                            return Err(
                                "invalid PostgreSQL connection string: unterminated quote".into()
                            )
                        }
                    },
                    Some(c) => value.push(c),
                    None => {
                        return Err(
                            "invalid PostgreSQL connection string: unterminated quote".into()
                        )
                    }
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

/// libpq's environment defaults for what the string leaves out.
pub(super) fn apply_env_defaults(config: &mut tokio_postgres::Config) {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if config.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(|| env("USER"))
            .or_else(|| env("LOGNAME"))
            .unwrap_or_else(|| "postgres".into());
        config.user(user);
    }
    if config.get_dbname().is_none() {
        if let Some(db) = env("PGDATABASE") {
            config.dbname(db);
        }
    }
    if config.get_hosts().is_empty() {
        match env("PGHOST") {
            Some(hosts) => {
                for h in hosts.split(',') {
                    config.host(h);
                }
            }
            None => {
                config.host("localhost");
            }
        }
    }
    if config.get_ports().is_empty() {
        if let Some(port) = env("PGPORT").and_then(|p| p.parse::<u16>().ok()) {
            config.port(port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn libpq_only_options_are_taken_out() {
        let (rest, only) =
            split_libpq_only("postgres://u:p@h:1,h2:2/db?sslmode=verify-full&target_session_attrs=read-write&sslrootcert=%2Ftmp%2Fca.pem")
                .expect("split");
        assert_eq!(
            rest,
            "postgres://u:p@h:1,h2:2/db?target_session_attrs=read-write"
        );
        assert_eq!(only.mode, Some(SslMode::VerifyFull));
        assert_eq!(only.rootcert.as_deref(), Some(Path::new("/tmp/ca.pem")));
        let (rest, only) =
            split_libpq_only("host=h port = 5 password='a b\\'c' sslmode=require").expect("kv");
        assert_eq!(rest, "host='h' port='5' password='a b\\'c'");
        assert_eq!(only.mode, Some(SslMode::Require));
        assert!(split_libpq_only("postgres://h/db?sslmode=bogus").is_err());
        assert!(split_libpq_only("postgres://h/db?sslcert=x").is_err());
    }
}
