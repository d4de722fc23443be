//! Secrets stay secret: passwords in URLs, tokens and masked values never reach logs or reports.

use std::sync::{Mutex, OnceLock};

fn extra() -> &'static Mutex<Vec<String>> {
    static EXTRA: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    EXTRA.get_or_init(|| Mutex::new(Vec::new()))
}

/// Register a value (a token, a password) that must never be printed. Under GitHub Actions the
/// caller should also emit `::add-mask::` for it (`cli::actions::add_mask` does).
pub fn register_secret(value: &str) {
    if value.len() < 4 {
        return;
    }
    if let Ok(mut v) = extra().lock() {
        if !v.iter().any(|s| s == value) {
            v.push(value.to_string());
        }
    }
}

/// Replace every `scheme://user:password@` password with `***`, `password=...` in key/value
/// connection strings, and every registered secret.
pub fn redact(text: &str) -> String {
    let mut out = redact_url_passwords(text);
    out = redact_kv_passwords(&out);
    if let Ok(secrets) = extra().lock() {
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
    }
    out
}

/// Redact every string inside a JSON value.
pub fn redact_json(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(redact(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(redact_json).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, redact_json(v))).collect())
        }
        other => other,
    }
}

fn redact_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace, quote or end; the userinfo at its last '@'.
        let end = tail
            .find(|c: char| {
                c == '/'
                    || c.is_whitespace()
                    || c == '"'
                    || c == '\''
                    || c == '<'
                    || c == '>'
                    || c == '`'
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn redact_kv_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("password=") {
        let (head, tail) = rest.split_at(pos + "password=".len());
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '&' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        if end > 0 {
            out.push_str("***");
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_hidden() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/x and redis://:pw@r:6379"),
            "postgres://app:***@db:5432/x and redis://:***@r:6379"
        );
        assert_eq!(redact("http://host/path?q=1"), "http://host/path?q=1");
        assert_eq!(redact("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(
            redact("host=db password=hunter2 user=x"),
            "host=db password=*** user=x"
        );
        assert_eq!(
            redact("postgres://u:p%40ss@h/db?password=abc&x=1"),
            "postgres://u:***@h/db?password=***&x=1"
        );
    }

    #[test]
    fn registered_secrets_are_hidden() {
        register_secret("ghp_abcdefgh");
        assert_eq!(redact("token ghp_abcdefgh used"), "token *** used");
    }
}
