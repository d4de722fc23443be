//! The DNS probe through the real binary: the system resolver answers `localhost`, a wrong
//! expected address fails with what was answered, and a resolver that does not answer times out.

use crate::support::cmd::Bin;

#[test]
fn dns_names_resolve_to_the_expected_address() {
    let r = Bin::new("wait-recovery")
        .args([
            "--dns",
            "localhost",
            "--expect",
            "127.0.0.1",
            "--timeout",
            "5s",
            "--consecutive",
            "1",
            "--json",
        ])
        .env(
            "DRILL_JOURNAL",
            tempfile::tempdir().expect("tmp").path().join("j.jsonl"),
        )
        .succeeds();
    assert_eq!(r.json()["recovered"], true);
}

#[test]
fn a_wrong_address_and_a_silent_resolver_fail_with_the_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let j = dir.path().join("j.jsonl");
    let r = Bin::new("wait-recovery")
        .args([
            "--dns",
            "localhost",
            "--expect",
            "10.9.9.9",
            "--timeout",
            "1s",
            "--interval",
            "200ms",
        ])
        .journal(&j)
        .code(1);
    assert!(r.stderr.contains("not 10.9.9.9"), "{}", r.stderr);
    // A UDP port on loopback with nobody behind it: the query gets no answer.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let port = silent.local_addr().expect("addr").port();
    let r = Bin::new("wait-recovery")
        .args([
            "--dns",
            "db.example",
            "--resolver",
            &format!("127.0.0.1:{port}"),
            "--timeout",
            "1s",
            "--request-timeout",
            "300ms",
        ])
        .journal(&j)
        .code(1);
    assert!(r.stderr.contains("no answer within"), "{}", r.stderr);
    let r = Bin::new("wait-recovery")
        .args(["--resolver", "127.0.0.1", "--tcp", "127.0.0.1:1"])
        .journal(&j)
        .code(2);
    assert!(r.stderr.contains("--resolver needs --dns"), "{}", r.stderr);
}
