//! GitHub Actions conventions: `GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`, `::group::`, annotations,
//! `::add-mask::`. Outside Actions every function is a no-op or prints plain lines.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Annotations per step are capped so a flapping probe cannot flood the run page.
const MAX_ANNOTATIONS: usize = 10;
static ANNOTATIONS: AtomicUsize = AtomicUsize::new(0);

/// True when running as a GitHub Actions step.
pub fn active() -> bool {
    std::env::var("GITHUB_ACTIONS")
        .map(|v| v == "true")
        .unwrap_or(false)
}

/// Escape data for a workflow command (`%`, CR, LF).
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a property value (also `:` and `,`).
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn annotate(level: &str, msg: &str) {
    if !active() || ANNOTATIONS.fetch_add(1, Ordering::Relaxed) >= MAX_ANNOTATIONS {
        return;
    }
    println!("::{level}::{}", escape_data(&crate::redact::redact(msg)));
}

pub fn error_annotation(msg: &str) {
    annotate("error", msg);
}

pub fn warning_annotation(msg: &str) {
    annotate("warning", msg);
}

/// Mask a secret in the Actions log and in everything drillkit writes.
pub fn add_mask(secret: &str) {
    crate::redact::register_secret(secret);
    if active() && !secret.is_empty() {
        println!("::add-mask::{}", escape_data(secret));
    }
}

/// Open a collapsible group in the Actions log (nothing elsewhere); [`group_end`] closes it.
pub fn group_start(title: &str) {
    if active() {
        println!("::group::{}", escape_data(title));
    }
}

pub fn group_end() {
    if active() {
        println!("::endgroup::");
    }
}

fn env_file(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Write `name=value` pairs to `GITHUB_OUTPUT`; multi-line values use a random delimiter that
/// does not occur in the value. Returns false when not under Actions.
pub fn set_outputs(pairs: &[(&str, String)]) -> std::io::Result<bool> {
    let Some(path) = env_file("GITHUB_OUTPUT") else {
        return Ok(false);
    };
    let mut buf = String::new();
    for (name, value) in pairs {
        buf.push_str(&format_output(name, value));
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    f.write_all(buf.as_bytes())?;
    Ok(true)
}

/// One `GITHUB_OUTPUT` entry in the syntax the runner reads.
pub fn format_output(name: &str, value: &str) -> String {
    if value.contains('\n') || value.contains('\r') {
        let mut delim;
        loop {
            delim = format!("ghadelimiter_{:016x}", rand::random::<u64>());
            if !value.contains(&delim) {
                break;
            }
        }
        format!("{name}<<{delim}\n{value}\n{delim}\n")
    } else {
        format!("{name}={value}\n")
    }
}

/// The step summary is limited to 1 MiB by the runner.
pub const SUMMARY_LIMIT: usize = 1024 * 1024;

/// Append Markdown to `GITHUB_STEP_SUMMARY`, cut to stay under the runner's 1 MiB limit.
/// Returns false when not under Actions.
pub fn append_summary(markdown: &str) -> std::io::Result<bool> {
    let Some(path) = env_file("GITHUB_STEP_SUMMARY") else {
        return Ok(false);
    };
    let existing = std::fs::metadata(&path)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let room = SUMMARY_LIMIT.saturating_sub(existing).saturating_sub(256);
    let text = if markdown.len() > room {
        let mut cut = room;
        while cut > 0 && !markdown.is_char_boundary(cut) {
            cut -= 1;
        }
        format!(
            "{}\n\n… (cut: the step summary is limited to 1 MiB; see the report artifact)\n",
            &markdown[..cut]
        )
    } else {
        markdown.to_string()
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_use_the_runner_syntax() {
        assert_eq!(format_output("rto-seconds", "12.5"), "rto-seconds=12.5\n");
        let multi = format_output("report", "a\nb");
        let first = multi.lines().next().expect("line");
        let delim = first.strip_prefix("report<<").expect("heredoc");
        assert_eq!(multi, format!("report<<{delim}\na\nb\n{delim}\n"));
    }

    #[test]
    fn workflow_command_escaping() {
        assert_eq!(escape_data("50%\nnext"), "50%25%0Anext");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
    }
}
