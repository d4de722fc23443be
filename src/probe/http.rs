//! HTTP probe: a GET that must answer with the expected status (default: any 2xx/3xx, as
//! `curl -f`) and, optionally, contain a string.

use super::Outcome;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct HttpProbe {
    url: reqwest::Url,
    status: Option<u16>,
    body_contains: Option<String>,
    client: reqwest::Client,
}

impl HttpProbe {
    pub fn new(
        url: &str,
        status: Option<u16>,
        body_contains: Option<String>,
    ) -> Result<HttpProbe, String> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| format!("invalid HTTP URL '{url}': {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "HTTP probe URL must start with http:// or https://, got '{url}'"
            ));
        }
        if let Some(s) = status {
            if !(100..=599).contains(&s) {
                return Err(format!("HTTP status {s} is not a status code (100-599)"));
            }
        }
        let client = reqwest::Client::builder()
            // A fresh connection per request: a probe must see a server that went away, not a
            // pooled socket that happens to be half-open.
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(HttpProbe {
            url: parsed,
            status,
            body_contains,
            client,
        })
    }

    pub fn describe(&self) -> String {
        let mut s = format!("http {}", self.url);
        if let Some(st) = self.status {
            s.push_str(&format!(" status={st}"));
        }
        if let Some(b) = &self.body_contains {
            s.push_str(&format!(" body~{b:?}"));
        }
        s
    }

    pub async fn check(&self, timeout: Duration) -> Outcome {
        let start = Instant::now();
        let resp = match self
            .client
            .get(self.url.clone())
            .timeout(timeout)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return Outcome::fail(describe_error(&e, timeout), start.elapsed()),
        };
        let code = resp.status();
        let status_ok = match self.status {
            Some(want) => code.as_u16() == want,
            None => code.is_success() || code.is_redirection(),
        };
        let detail = code.to_string();
        if !status_ok {
            return Outcome::fail(format!("HTTP {detail}"), start.elapsed());
        }
        if let Some(needle) = &self.body_contains {
            match resp.text().await {
                Ok(body) if body.contains(needle.as_str()) => {}
                Ok(_) => {
                    return Outcome::fail(
                        format!("HTTP {detail}, body lacks {needle:?}"),
                        start.elapsed(),
                    )
                }
                Err(e) => {
                    return Outcome::fail(
                        format!("HTTP {detail}, body unreadable: {e}"),
                        start.elapsed(),
                    )
                }
            }
        }
        Outcome::pass(format!("HTTP {detail}"), start.elapsed())
    }
}

fn describe_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {}", crate::units::Dur(timeout));
    }
    // The innermost cause says the most ("Connection refused (os error 111)").
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let root = cause.to_string();
    if e.is_connect() {
        format!("connect failed: {root}")
    } else {
        root
    }
}
