//! The demo service a scenario asks drillkit to run: where its address is already taken (a demo
//! drill still running, any other program), the drill stops before anything is touched, naming
//! the address, instead of crashing its own worker and measuring the other program.

use crate::support::cmd::Bin;

#[test]
fn a_demo_service_whose_address_is_taken_stops_the_drill_before_any_fault() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Another program answering HTTP on the address (what a second demo drill would find).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let answer = std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in taken.incoming().flatten() {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n",
            );
            if head.starts_with(b"GET /stop") {
                return;
            }
        }
    });
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/demo.yaml"))
        .expect("demo.yaml")
        .replace("127.0.0.1:18080", &format!("127.0.0.1:{port}"));
    std::fs::write(dir.path().join("demo.yaml"), text).expect("write");
    let r = Bin::new("drill")
        .args(["run", "demo.yaml"])
        .current_dir(dir.path())
        .run();
    assert_eq!(r.code, 3, "an environment error: {}", r.stderr);
    r.stderr_has(&format!("127.0.0.1:{port} is already in use"));
    assert!(!r.stderr.contains("SIGTERM"), "{}", r.stderr);
    // Nothing was applied: no fault in the journal, and the other program still answers.
    let journal = dir.path().join(".drill/journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap_or_default();
    assert!(!text.contains("\"fault_applied\""), "{text}");
    assert!(!dir.path().join(".drill/demo-api.pid").exists());
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("still answering");
    use std::io::{Read, Write};
    s.write_all(b"GET /stop HTTP/1.1\r\n\r\n").expect("write");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    assert!(body.ends_with("ok\n"), "{body}");
    answer.join().expect("answer thread");
}
