//! GitHub from a drill: one comment per drill on a tracking issue (found again by a hidden
//! marker and updated, never duplicated), tracking issues found by title or created, one issue
//! per action item. Requests go through octocrab's raw methods; retries (5xx, secondary rate
//! limits, transport errors) are ours, with exponential backoff and jitter, because octocrab's
//! own retry layer retries 5xx immediately (see docs/github.md).
//!
//! Configuration is the runner's environment: `GITHUB_REPOSITORY`, `GITHUB_TOKEN`,
//! `GITHUB_API_URL` (GitHub Enterprise Server), `GITHUB_SERVER_URL`, `GITHUB_RUN_ID`. The token
//! is masked (`::add-mask::`) and registered for redaction before anything is sent.

use crate::exit::{Code, Failure};
use octocrab::service::middleware::retry::RetryConfig;
use octocrab::Octocrab;
use serde_json::{json, Value};
use std::time::Duration;

/// GitHub refuses issue and comment bodies longer than this many characters.
pub const BODY_LIMIT: usize = 65_536;
/// The label on every issue drillkit opens.
pub const DRILL_LABEL: &str = "dr-drill";
/// The extra label on action-item issues.
pub const ACTION_ITEM_LABEL: &str = "dr-action-item";
/// Pages of 100 read at most when looking for a comment or an issue.
const MAX_PAGES: u32 = 30;

/// Where and as whom to talk to GitHub, from the runner's environment.
#[derive(Clone)]
pub struct Env {
    pub api_url: String,
    pub owner: String,
    pub repo: String,
    pub token: String,
    pub server_url: String,
    pub run_id: Option<String>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("api_url", &self.api_url)
            .field("owner", &self.owner)
            .field("repo", &self.repo)
            .field("token", &"***")
            .finish()
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl Env {
    /// Read the environment; `flag` names the option that needs GitHub (for the error).
    /// The token is registered with [`crate::redact`] at once; the caller also masks it in the
    /// Actions log.
    pub fn from_env(flag: &str) -> Result<Env, Error> {
        let token = var("GITHUB_TOKEN").ok_or_else(|| {
            Error::Config(format!(
                "{flag} needs GITHUB_TOKEN in the environment (in a workflow: env: GITHUB_TOKEN: ${{{{ github.token }}}})"
            ))
        })?;
        crate::redact::register_secret(&token);
        if !token.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::Config(
                "GITHUB_TOKEN contains characters that cannot be sent in an HTTP header".into(),
            ));
        }
        let repository = var("GITHUB_REPOSITORY").ok_or_else(|| {
            Error::Config(format!(
                "{flag} needs GITHUB_REPOSITORY (owner/name) in the environment"
            ))
        })?;
        let (owner, repo) = split_repository(&repository).ok_or_else(|| {
            Error::Config(format!(
                "GITHUB_REPOSITORY must be owner/name, got {repository:?}"
            ))
        })?;
        Ok(Env {
            api_url: var("GITHUB_API_URL")
                .unwrap_or_else(|| "https://api.github.com".into())
                .trim_end_matches('/')
                .to_string(),
            owner,
            repo,
            token,
            server_url: server_url(),
            run_id: var("GITHUB_RUN_ID"),
        })
    }

    /// The link to this workflow run, when running under Actions.
    pub fn run_url(&self) -> Option<String> {
        self.run_id.as_ref().map(|id| {
            format!(
                "{}/{}/{}/actions/runs/{id}",
                self.server_url, self.owner, self.repo
            )
        })
    }
}

fn server_url() -> String {
    var("GITHUB_SERVER_URL")
        .unwrap_or_else(|| "https://github.com".into())
        .trim_end_matches('/')
        .to_string()
}

/// The run link from the environment alone (no token needed), for reports written locally.
pub fn run_url_from_env() -> Option<String> {
    let repo = var("GITHUB_REPOSITORY")?;
    let id = var("GITHUB_RUN_ID")?;
    Some(format!("{}/{repo}/actions/runs/{id}", server_url()))
}

fn split_repository(s: &str) -> Option<(String, String)> {
    let (o, r) = s.split_once('/')?;
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (ok(o) && ok(r)).then(|| (o.to_string(), r.to_string()))
}

/// Cut `body` to GitHub's limit, ending with a note and the link to the run (where the full
/// report is an artifact). Counts characters, as GitHub does; never cuts inside a character.
pub fn fit_body(body: &str, run_url: Option<&str>) -> String {
    if body.chars().count() <= BODY_LIMIT {
        return body.to_string();
    }
    let note = match run_url {
        Some(u) => format!(
            "\n\n---\n> ✂️ This report was cut to fit GitHub's {BODY_LIMIT}-character limit. The full report is in the artifacts of [the workflow run]({u})."
        ),
        None => format!(
            "\n\n---\n> ✂️ This report was cut to fit GitHub's {BODY_LIMIT}-character limit. The full report is in the drill's report.md."
        ),
    };
    let keep = BODY_LIMIT.saturating_sub(note.chars().count());
    let mut cut: String = body.chars().take(keep).collect();
    // Do not leave half a table row or an unclosed code fence behind.
    if let Some(i) = cut.rfind('\n') {
        cut.truncate(i);
    }
    if cut.matches("```").count() % 2 == 1 {
        cut.push_str("\n```");
    }
    let mut out = cut;
    out.push_str(&note);
    // The fence fix-up can add 4 characters; the newline cut removed at least 0: re-check.
    if out.chars().count() > BODY_LIMIT {
        out = out.chars().take(BODY_LIMIT).collect();
    }
    out
}

/// How often and how patiently to retry.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// 5 attempts from 1 s doubling, at most 60 s apart; `DRILL_GITHUB_BACKOFF_MS` sets the first
    /// delay (tests use a few milliseconds).
    pub fn from_env() -> Backoff {
        let base_ms = var("DRILL_GITHUB_BACKOFF_MS")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1000);
        Backoff {
            attempts: 5,
            base: Duration::from_millis(base_ms),
            max: Duration::from_secs(60).max(Duration::from_millis(base_ms)),
        }
    }

    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(r) = retry_after {
            return r.min(self.max);
        }
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let jitter_ms = rand::random::<u64>() % (self.base.as_millis() as u64 / 2 + 1);
        (exp + Duration::from_millis(jitter_ms)).min(self.max)
    }
}

/// Why talking to GitHub failed (all map to exit 3: the environment stopped the tool).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("GitHub answered {status} to {method} {path}: {message}")]
    Status {
        status: u16,
        method: &'static str,
        path: String,
        message: String,
    },
    #[error("cannot reach GitHub at {api} ({method} {path}): {detail}")]
    Transport {
        api: String,
        method: &'static str,
        path: String,
        detail: String,
    },
    #[error("unexpected answer from GitHub to {method} {path}: {detail}")]
    Decode {
        method: &'static str,
        path: String,
        detail: String,
    },
    #[error("cannot set up the GitHub client for {api}: {detail}")]
    Setup { api: String, detail: String },
    /// The environment does not say how to reach GitHub (token, repository).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The exit-code table for GitHub errors: a missing setting is bad input, anything GitHub
    /// (or the way to it) did is the environment's.
    pub fn code(&self) -> Code {
        match self {
            Error::Config(_) => Code::BadInput,
            Error::Status { .. }
            | Error::Transport { .. }
            | Error::Decode { .. }
            | Error::Setup { .. } => Code::Environment,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::new(
            e.code(),
            anyhow::anyhow!(crate::redact::redact(&e.to_string())),
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Method {
    Get,
    Post,
    Patch,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
        }
    }
}

/// What [`Client::upsert_comment`] did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CommentOutcome {
    pub issue: u64,
    pub comment_id: u64,
    pub url: Option<String>,
    /// "created" or "updated".
    pub action: &'static str,
}

/// An issue found or created.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct IssueRef {
    pub number: u64,
    pub url: Option<String>,
    pub created: bool,
}

pub struct Client {
    oc: Octocrab,
    env: Env,
    backoff: Backoff,
    obs: crate::progress::Sink,
}

impl Client {
    pub fn new(env: Env) -> Result<Client, Error> {
        Client::with_backoff(env, Backoff::from_env())
    }

    pub fn with_backoff(env: Env, backoff: Backoff) -> Result<Client, Error> {
        let setup = |detail: String| Error::Setup {
            api: env.api_url.clone(),
            detail,
        };
        let oc = Octocrab::builder()
            .base_uri(env.api_url.as_str())
            .map_err(|e| setup(format!("GITHUB_API_URL is not a URL: {e}")))?
            .add_retry_config(RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)))
            .add_header(
                reqwest::header::ACCEPT,
                "application/vnd.github+json".to_string(),
            )
            .personal_token(env.token.clone())
            .build()
            .map_err(|e| setup(e.to_string()))?;
        Ok(Client {
            oc,
            env,
            backoff,
            obs: crate::progress::silent(),
        })
    }

    /// Tell `obs` about retries.
    pub fn with_observer(mut self, obs: crate::progress::Sink) -> Client {
        self.obs = obs;
        self
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.env.owner, self.env.repo)
    }

    /// One API call with retries. Returns the decoded JSON body (Null when empty).
    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, Error> {
        // A base URL with a path (GHES: https://host/api/v3) keeps it: octocrab joins them.
        // Nothing leaves with a secret in it, whoever built the body.
        let redacted = body.map(|b| crate::redact::redact_json(b.clone()));
        let body = redacted.as_ref();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let res = match method {
                Method::Get => self.oc._get(path).await,
                Method::Post => self.oc._post(path, body).await,
                Method::Patch => self.oc._patch(path, body).await,
            };
            let (retry_after, why) = match res {
                Err(e) => (None, crate::redact::redact(&e.to_string())),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    let text = self.oc.body_to_string(resp).await.unwrap_or_default();
                    if (200..300).contains(&status) {
                        if text.trim().is_empty() {
                            return Ok(Value::Null);
                        }
                        return serde_json::from_str(&text).map_err(|e| Error::Decode {
                            method: method.as_str(),
                            path: path.to_string(),
                            detail: e.to_string(),
                        });
                    }
                    let message = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
                        .unwrap_or_else(|| text.chars().take(200).collect());
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(|s| s.trim().to_string())
                    };
                    let retry_after = header("retry-after")
                        .and_then(|s| s.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let primary_limit = header("x-ratelimit-remaining").as_deref() == Some("0");
                    let wait_reset = if primary_limit {
                        header("x-ratelimit-reset")
                            .and_then(|s| s.parse::<i64>().ok())
                            .map(|reset| {
                                Duration::from_secs(
                                    (reset - chrono::Utc::now().timestamp()).max(1) as u64
                                )
                            })
                    } else {
                        None
                    };
                    let secondary = message.to_lowercase().contains("secondary rate limit")
                        || message.to_lowercase().contains("abuse");
                    let retryable = status >= 500
                        || status == 429
                        || (status == 403 && (retry_after.is_some() || primary_limit || secondary));
                    let err = Error::Status {
                        status,
                        method: method.as_str(),
                        path: path.to_string(),
                        message: crate::redact::redact(&message),
                    };
                    if !retryable || attempt >= self.backoff.attempts {
                        return Err(err);
                    }
                    // A primary limit that resets later than we are willing to wait is final.
                    if wait_reset.is_some_and(|w| w > self.backoff.max) {
                        return Err(err);
                    }
                    (retry_after.or(wait_reset), err.to_string())
                }
            };
            if attempt >= self.backoff.attempts {
                return Err(Error::Transport {
                    api: self.env.api_url.clone(),
                    method: method.as_str(),
                    path: path.to_string(),
                    detail: why,
                });
            }
            let d = self.backoff.delay(attempt, retry_after);
            self.obs.progress(crate::progress::Progress::GitHubRetry {
                why,
                delay_s: d.as_secs_f64(),
                attempt: attempt + 1,
                attempts: self.backoff.attempts,
            });
            tokio::time::sleep(d).await;
        }
    }

    /// Every item of a paginated list (pages of 100, at most [`MAX_PAGES`]), stopping early
    /// when `stop` says the wanted item was seen.
    async fn list_until(
        &self,
        path: &str,
        mut stop: impl FnMut(&Value) -> bool,
    ) -> Result<Option<Value>, Error> {
        let sep = if path.contains('?') { '&' } else { '?' };
        for page in 1..=MAX_PAGES {
            let v = self
                .send(
                    Method::Get,
                    &format!("{path}{sep}per_page=100&page={page}"),
                    None,
                )
                .await?;
            let items = v.as_array().cloned().unwrap_or_default();
            for item in &items {
                if stop(item) {
                    return Ok(Some(item.clone()));
                }
            }
            if items.len() < 100 {
                break;
            }
        }
        Ok(None)
    }

    /// Post `body` on issue `issue`, or update this drill's earlier comment there (the one whose
    /// body holds `marker`) instead of adding another.
    pub async fn upsert_comment(
        &self,
        issue: u64,
        marker: &str,
        body: &str,
    ) -> Result<CommentOutcome, Error> {
        let body = fit_body(body, self.env.run_url().as_deref());
        let existing = self
            .list_until(&self.repo_path(&format!("/issues/{issue}/comments")), |c| {
                c.get("body")
                    .and_then(|b| b.as_str())
                    .is_some_and(|b| b.contains(marker))
            })
            .await?;
        let payload = json!({ "body": body });
        let (method, path, action) = match existing
            .as_ref()
            .and_then(|c| c.get("id"))
            .and_then(|i| i.as_u64())
        {
            Some(id) => (Method::Patch, format!("/issues/comments/{id}"), "updated"),
            None => (Method::Post, format!("/issues/{issue}/comments"), "created"),
        };
        let v = self
            .send(method, &self.repo_path(&path), Some(&payload))
            .await?;
        Ok(CommentOutcome {
            issue,
            comment_id: v.get("id").and_then(|i| i.as_u64()).unwrap_or(0),
            url: v.get("html_url").and_then(|u| u.as_str()).map(String::from),
            action,
        })
    }

    /// The open issue titled `title` (pull requests excluded), or a new one with `body` and the
    /// `dr-drill` label (plus `extra_labels`).
    pub async fn find_or_create_issue(
        &self,
        title: &str,
        body: &str,
        extra_labels: &[&str],
    ) -> Result<IssueRef, Error> {
        let want = title.trim();
        let found = self
            .list_until(&self.repo_path("/issues?state=open"), |i| {
                i.get("pull_request").is_none()
                    && i.get("title").and_then(|t| t.as_str()).map(str::trim) == Some(want)
            })
            .await?;
        if let Some(i) = found {
            return Ok(IssueRef {
                number: i.get("number").and_then(|n| n.as_u64()).unwrap_or(0),
                url: i.get("html_url").and_then(|u| u.as_str()).map(String::from),
                created: false,
            });
        }
        self.create_issue(want, body, extra_labels).await
    }

    async fn create_issue(
        &self,
        title: &str,
        body: &str,
        extra_labels: &[&str],
    ) -> Result<IssueRef, Error> {
        let mut labels = vec![DRILL_LABEL];
        labels.extend(extra_labels.iter().copied().filter(|l| *l != DRILL_LABEL));
        let payload = json!({
            "title": title,
            "body": fit_body(body, self.env.run_url().as_deref()),
            "labels": labels,
        });
        let v = self
            .send(Method::Post, &self.repo_path("/issues"), Some(&payload))
            .await?;
        let number = v
            .get("number")
            .and_then(|n| n.as_u64())
            .ok_or_else(|| Error::Decode {
                method: "POST",
                path: self.repo_path("/issues"),
                detail: "no issue number in the answer".into(),
            })?;
        Ok(IssueRef {
            number,
            url: v.get("html_url").and_then(|u| u.as_str()).map(String::from),
            created: true,
        })
    }

    /// Open an issue for an action item unless one (open or closed) already carries its
    /// marker: an item is never filed twice.
    pub async fn file_action_item(
        &self,
        title: &str,
        marker: &str,
        body: &str,
    ) -> Result<IssueRef, Error> {
        let found = self
            .list_until(
                &self.repo_path(&format!("/issues?state=all&labels={ACTION_ITEM_LABEL}")),
                |i| {
                    i.get("body")
                        .and_then(|b| b.as_str())
                        .is_some_and(|b| b.contains(marker))
                },
            )
            .await?;
        if let Some(i) = found {
            return Ok(IssueRef {
                number: i.get("number").and_then(|n| n.as_u64()).unwrap_or(0),
                url: i.get("html_url").and_then(|u| u.as_str()).map(String::from),
                created: false,
            });
        }
        let body = format!("{marker}\n{body}");
        self.create_issue(title, &body, &[ACTION_ITEM_LABEL]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_bodies_are_cut_with_a_link() {
        let body = format!("<!-- m -->\n{}", "ä|".repeat(40_000));
        let out = fit_body(&body, Some("https://github.com/o/r/actions/runs/7"));
        assert!(out.chars().count() <= BODY_LIMIT);
        assert!(out.starts_with("<!-- m -->"));
        assert!(out.ends_with("[the workflow run](https://github.com/o/r/actions/runs/7)."));
        assert_eq!(fit_body("short", None), "short");
    }

    #[test]
    fn repository_must_be_owner_slash_name() {
        assert_eq!(split_repository("o/r.s"), Some(("o".into(), "r.s".into())));
        assert_eq!(split_repository("o/r/x"), None);
        assert_eq!(split_repository("nope"), None);
    }
}
