//! The record of proof (`--record FILE`): one JSON line appended per backup verified — what it
//! was, its SHA-256, each check's verdict, whether a restore test proved it, and when — so a
//! later run can demand that some backup was proven restorable recently
//! (`--require-restored-within 7d`), the question a DR audit asks.

use super::{Check, FileReport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// One line of the record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The file's SHA-256; for a base-backup folder, its `backup_manifest`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub format: String,
    pub ok: bool,
    /// A restore test (logical or physical) passed.
    pub restored: bool,
    pub checks: BTreeMap<String, bool>,
    /// When it was verified (RFC 3339, UTC).
    pub at: chrono::DateTime<chrono::Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<String>,
}

impl Entry {
    pub fn of(rep: &FileReport, at: chrono::DateTime<chrono::Utc>, drill: Option<&str>) -> Entry {
        let restored = rep.restore.is_some()
            && rep.checks.iter().any(|c| c.check == "restore")
            && rep
                .checks
                .iter()
                .filter(|c| c.check == "restore")
                .all(|c| c.ok);
        Entry {
            path: rep.path.display().to_string(),
            size: rep.size,
            sha256: rep
                .digests
                .get("sha256")
                .or(rep.digests.get("manifest-sha256"))
                .cloned(),
            format: rep.format.clone(),
            ok: rep.ok,
            restored: restored && rep.ok,
            checks: rep.checks.iter().map(|c| (c.check.clone(), c.ok)).collect(),
            at,
            drill: drill.map(str::to_string),
        }
    }
}

/// Append entries, one line each, in one write (O_APPEND: concurrent runs do not tear lines).
pub fn append(path: &Path, entries: &[Entry]) -> std::io::Result<()> {
    let mut text = String::new();
    for e in entries {
        text.push_str(&serde_json::to_string(e).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_data()
}

/// Read the record; lines that do not parse (a torn last line, a newer version) are skipped.
pub fn read(path: &Path) -> std::io::Result<Vec<Entry>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// `--require-restored-within`: the newest restore-proven entry must be at most `within` old
/// at `now`.
pub fn restored_within(
    entries: &[Entry],
    within: Duration,
    now: chrono::DateTime<chrono::Utc>,
    shown_within: &str,
) -> Check {
    let newest = entries.iter().filter(|e| e.restored).max_by_key(|e| e.at);
    let Some(e) = newest else {
        return Check::fail(
            "restored-within",
            format!(
                "no backup in the record was ever proven restorable by a restore test (--require-restored-within {shown_within})"
            ),
        );
    };
    let age = (now - e.at).to_std().unwrap_or_default();
    let detail = format!(
        "newest backup proven restorable: {} at {} ({} ago; --require-restored-within {shown_within})",
        e.path,
        e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        crate::units::fmt_duration(age.as_secs_f64())
    );
    if age > within {
        Check::fail("restored-within", detail)
    } else {
        Check::pass("restored-within", detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, restored: bool, at: &str) -> Entry {
        Entry {
            path: path.into(),
            size: Some(1),
            sha256: None,
            format: "pg-plain".into(),
            ok: true,
            restored,
            checks: BTreeMap::new(),
            at: at.parse().expect("time"),
            drill: None,
        }
    }

    #[test]
    fn the_newest_restored_entry_decides() {
        let now: chrono::DateTime<chrono::Utc> = "2026-12-10T00:00:00Z".parse().expect("now");
        let week = Duration::from_secs(7 * 86400);
        let old = entry("a", true, "2026-12-01T00:00:00Z");
        let newer_unrestored = entry("b", false, "2026-12-09T00:00:00Z");
        let c = restored_within(&[old.clone(), newer_unrestored.clone()], week, now, "7d");
        assert!(!c.ok, "{}", c.detail);
        assert!(c.detail.contains("a at 2026-12-01"), "{}", c.detail);
        let fresh = entry("c", true, "2026-12-08T00:00:00Z");
        assert!(restored_within(&[old, fresh, newer_unrestored.clone()], week, now, "7d").ok);
        assert!(!restored_within(&[newer_unrestored], week, now, "7d").ok);
        assert!(!restored_within(&[], week, now, "7d").ok);
    }
}
