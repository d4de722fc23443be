//! PostgreSQL probe: "does this server answer, with the right answer, and does it take writes?"
//!
//! Used by `wait-recovery --postgres` and `measure-rto watch`. It connects through
//! [`crate::pg::Target`] (passwords, `sslmode`, multi-host URLs: the one connection layer) and
//! never panics: a wrong password, an unreachable host or a timeout is a failed [`Outcome`]
//! whose detail is the server's message.

use crate::pg::{error_message, Target};
use crate::probe::Outcome;
use crate::redact::redact;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The probe `wait-recovery --postgres` and `measure-rto watch` ask again and again.
#[derive(Clone, Debug)]
pub struct PostgresProbe {
    target: Target,
    query: Option<String>,
    expect: Option<String>,
    writable: bool,
    max_lag: Option<Duration>,
}

impl PostgresProbe {
    /// `url`: a `postgres://` URL (multi-host too) or a `key=value` string. `Err` is a message
    /// for the user: a bad URL, `--expect` without `--query`, an unsupported TLS option.
    pub fn new(
        url: &str,
        query: Option<String>,
        expect: Option<String>,
        writable: bool,
        max_replication_lag: Option<Duration>,
    ) -> Result<PostgresProbe, String> {
        if expect.is_some() && query.is_none() {
            return Err(
                "--expect needs --query (the value is compared with the query's first column)"
                    .into(),
            );
        }
        if query.as_deref().is_some_and(|q| q.trim().is_empty()) {
            return Err("--query is empty".into());
        }
        let target = Target::parse(url).map_err(|e| e.to_string())?;
        Ok(PostgresProbe {
            target,
            query,
            expect,
            writable,
            max_lag: max_replication_lag,
        })
    }

    /// e.g. `postgres postgres://app:***@127.0.0.1:5432/app writable`.
    pub fn describe(&self) -> String {
        let mut s = format!("postgres {}", self.target.shown());
        if let Some(q) = &self.query {
            s.push_str(&format!(" query {q:?}"));
            if let Some(e) = &self.expect {
                s.push_str(&format!(" expect {e:?}"));
            }
        }
        if self.writable {
            s.push_str(" writable");
        }
        if let Some(l) = self.max_lag {
            s.push_str(&format!(
                " max-lag {}",
                crate::units::fmt_duration(l.as_secs_f64())
            ));
        }
        s
    }

    /// One probe request, bounded by `timeout` as a whole (connect, query, write, lag).
    pub async fn check(&self, timeout: Duration) -> Outcome {
        let start = Instant::now();
        let stage: Mutex<&'static str> = Mutex::new("connecting");
        let result = tokio::time::timeout(timeout, self.check_inner(timeout, &stage)).await;
        let latency = start.elapsed();
        match result {
            Ok(Ok(detail)) => Outcome::pass(detail, latency),
            Ok(Err(msg)) => Outcome::fail(redact(&msg), latency),
            Err(_) => {
                let stage = stage.lock().map(|s| *s).unwrap_or("probing");
                Outcome::fail(
                    format!(
                        "timed out after {} while {stage}",
                        crate::units::fmt_duration(timeout.as_secs_f64())
                    ),
                    latency,
                )
            }
        }
    }

    async fn check_inner(
        &self,
        timeout: Duration,
        stage: &Mutex<&'static str>,
    ) -> Result<String, String> {
        let set = |s: &'static str| {
            if let Ok(mut g) = stage.lock() {
                *g = s;
            }
        };
        let client = self
            .target
            .connect(timeout)
            .await
            .map_err(|e| e.to_string())?;
        let mut seen: Vec<String> = Vec::new();
        if let Some(q) = &self.query {
            set("running the query");
            let value = first_value(&client, q).await?;
            let shown = value.clone().unwrap_or_else(|| "NULL".into());
            match &self.expect {
                Some(want) if !matches_expected(value.as_deref(), want) => {
                    return Err(format!("query returned {shown:?}, expected {want:?}"));
                }
                _ => seen.push(format!("query returned {shown:?}")),
            }
        }
        if self.writable {
            set("proving the server takes writes");
            prove_writable(&client).await?;
            seen.push("accepts writes".into());
        }
        if let Some(max) = self.max_lag {
            set("reading the replication lag");
            seen.push(check_lag(&client, max).await?);
        }
        if seen.is_empty() {
            seen.push("connected".into());
        }
        Ok(seen.join("; "))
    }
}

/// The first column of the first row, as text exactly as psql shows it (`t`/`f` for booleans);
/// `None` for SQL NULL. A query without rows is an error.
async fn first_value(client: &tokio_postgres::Client, sql: &str) -> Result<Option<String>, String> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| error_message(&e))?;
    for m in messages {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = m {
            return row
                .try_get(0)
                .map(|v| v.map(str::to_string))
                .map_err(|e| error_message(&e));
        }
    }
    Err("query returned no rows".into())
}

/// `expect` matches the text value; `true`/`false` (any case) also match `t`/`f`. An empty
/// `expect` matches NULL (psql shows NULL as nothing).
pub fn matches_expected(value: Option<&str>, expect: &str) -> bool {
    let Some(v) = value else {
        return expect.is_empty() || expect.eq_ignore_ascii_case("null");
    };
    if v == expect {
        return true;
    }
    match v {
        "t" => expect.eq_ignore_ascii_case("true"),
        "f" => expect.eq_ignore_ascii_case("false"),
        _ => false,
    }
}

/// A write that leaves nothing behind: a temporary table created and filled inside a transaction
/// that is rolled back. A hot standby refuses it ("cannot execute CREATE TABLE in a read-only
/// transaction"), and so does a primary with `default_transaction_read_only = on` — exactly
/// what an application's writes would meet. (`SELECT txid_current()` is not used: it proves an
/// xid can be assigned, not that a statement may write.)
async fn prove_writable(client: &tokio_postgres::Client) -> Result<(), String> {
    let sql = "BEGIN; \
               CREATE TEMP TABLE drillkit_writable_probe (x int) ON COMMIT DROP; \
               INSERT INTO drillkit_writable_probe VALUES (1); \
               ROLLBACK";
    match client.batch_execute(sql).await {
        Ok(()) => Ok(()),
        Err(e) => {
            // Leave the session usable for a caller that keeps it (the probe drops it anyway).
            let _ = client.batch_execute("ROLLBACK").await;
            Err(format!("not writable: {}", error_message(&e)))
        }
    }
}

/// Replication lag of a standby: 0 when it has replayed everything it received from a streaming
/// WAL receiver, otherwise `now() - pg_last_xact_replay_timestamp()`. A standby with no WAL
/// receiver (the primary is gone) or that has replayed nothing yet fails: its lag is unknown.
/// A primary has no lag and passes.
async fn check_lag(client: &tokio_postgres::Client, max: Duration) -> Result<String, String> {
    let sql = "SELECT pg_is_in_recovery()::text, \
                      (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming')::text, \
                      (pg_last_wal_receive_lsn() IS NOT NULL AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn())::text, \
                      extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8::text";
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| error_message(&e))?;
    let row = messages
        .into_iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .ok_or("replication lag query returned no rows")?;
    let col = |i: usize| row.try_get(i).ok().flatten().map(str::to_string);
    if col(0).as_deref() != Some("true") {
        return Ok("not a standby (no replication lag)".into());
    }
    if col(1).as_deref() == Some("0") {
        return Err(
            "standby is not streaming from a primary (no WAL receiver); lag unknown".into(),
        );
    }
    let lag = if col(2).as_deref() == Some("true") {
        0.0
    } else {
        match col(3).and_then(|s| s.parse::<f64>().ok()) {
            Some(s) => s.max(0.0),
            None => return Err("standby has not replayed any transaction yet; lag unknown".into()),
        }
    };
    let shown = crate::units::fmt_duration(lag);
    if lag > max.as_secs_f64() {
        Err(format!(
            "replication lag {shown} exceeds {}",
            crate::units::fmt_duration(max.as_secs_f64())
        ))
    } else {
        Ok(format!("replication lag {shown}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_values_compare_like_psql_shows_them() {
        assert!(matches_expected(Some("f"), "f"));
        assert!(matches_expected(Some("f"), "false"));
        assert!(matches_expected(Some("t"), "TRUE"));
        assert!(!matches_expected(Some("t"), "f"));
        assert!(matches_expected(Some("42"), "42"));
        assert!(matches_expected(None, ""));
        assert!(!matches_expected(None, "0"));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(
            PostgresProbe::new("postgres://h/db", None, Some("f".into()), false, None).is_err()
        );
        assert!(PostgresProbe::new("", None, None, false, None).is_err());
        assert!(PostgresProbe::new("postgres://h:notaport/db", None, None, false, None).is_err());
        let p = PostgresProbe::new(
            "postgres://app:secret@127.0.0.1:5432/app",
            None,
            None,
            true,
            None,
        )
        .expect("probe");
        assert_eq!(
            p.describe(),
            "postgres postgres://app:***@127.0.0.1:5432/app writable"
        );
    }
}
