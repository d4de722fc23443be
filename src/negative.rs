//! Negative controls (`drill run --negative-control`): a drill that has only ever been seen
//! green is no evidence, so the scenario is run once with a planted defect it must catch. The
//! defect planted here: the recovery probes point at a port nothing answers, so the service can
//! never be seen to recover and the wait must time out. The journal records the defect and the
//! finding expected (`negative_control`); `measure` passes the run only if the drill failed with
//! that finding.

use crate::probe::ProbeSpec;
use crate::scenario::Scenario;

/// The finding that proves a dead recovery probe was caught (see `measure`).
pub const RECOVERY_TIMEOUT: &str = "recovery_timeout";

/// What was planted and what must catch it.
#[derive(Clone, Debug, PartialEq)]
pub struct Planted {
    pub defect: String,
    pub expected: String,
    pub catch: &'static str,
}

/// Plant the defect in the scenario: every recovery probe that names an address (http, tcp,
/// postgres, redis) is pointed at `127.0.0.1:<port>` where nothing listens. Errors (a scenario
/// with no such probe) say why no control can be made.
pub fn plant(s: &mut Scenario) -> Result<Planted, String> {
    let Some(r) = s.recovery.as_mut() else {
        return Err("the scenario has no recovery section: a negative control points its recovery probes at a dead port".into());
    };
    let port = dead_port().map_err(|e| format!("cannot find a free port: {e}"))?;
    let mut moved = Vec::new();
    for p in r.probes.iter_mut() {
        if let Some((from, to)) = repoint(p, port) {
            moved.push(format!("{from} → {to}"));
        }
    }
    if moved.is_empty() {
        return Err("no recovery probe names an address (http, tcp, postgres, redis) that a negative control could point at a dead port".into());
    }
    Ok(Planted {
        defect: format!(
            "recovery probes pointed at 127.0.0.1:{port}, where nothing answers ({})",
            crate::redact::redact(&moved.join(", "))
        ),
        expected: format!(
            "the recovery wait times out after {} instead of seeing the service recover",
            humantime::format_duration(r.timeout.0)
        ),
        catch: RECOVERY_TIMEOUT,
    })
}

/// A loopback port nothing listens on: bound by the kernel's choice, then released.
fn dead_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Point one probe at 127.0.0.1:port; (old, new) when it was moved.
fn repoint(p: &mut ProbeSpec, port: u16) -> Option<(String, String)> {
    if let Some(t) = p.tcp.as_mut() {
        let old = t.clone();
        *t = format!("127.0.0.1:{port}");
        return Some((old, t.clone()));
    }
    let u = [p.http.as_mut(), p.postgres.as_mut(), p.redis.as_mut()]
        .into_iter()
        .flatten()
        .next()?;
    let old = u.clone();
    let mut parsed = url::Url::parse(u).ok()?;
    parsed.set_host(Some("127.0.0.1")).ok()?;
    parsed.set_port(Some(port)).ok()?;
    *u = parsed.to_string();
    Some((old, u.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_probes_are_pointed_at_a_dead_port() {
        // http probes build a client, which needs the process's one crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut s = crate::scenario::parse(
            "s.yaml",
            "name: x\nrecovery:\n  timeout: 5s\n  probes:\n    - http: http://shop:8080/health\n    - tcp: db:5432\n    - command: true\n",
        )
        .expect("scenario");
        let p = plant(&mut s).expect("planted");
        let probes = &s.recovery.as_ref().expect("recovery").probes;
        let http = probes[0].http.clone().unwrap_or_default();
        assert!(http.starts_with("http://127.0.0.1:"), "{http}");
        assert!(http.ends_with("/health"), "{http}");
        assert!(probes[1]
            .tcp
            .as_deref()
            .is_some_and(|t| t.starts_with("127.0.0.1:")));
        assert_eq!(probes[2].command.as_deref(), Some("true"));
        assert!(
            p.defect.contains("http://shop:8080/health →"),
            "{}",
            p.defect
        );
        assert!(p.expected.contains("5s"), "{}", p.expected);
        let mut none = crate::scenario::parse("s.yaml", "name: x\n").expect("scenario");
        assert!(plant(&mut none).is_err());
    }
}
