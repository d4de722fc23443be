//! `report` → GitHub, against a local mock of the REST API (GitHub itself cannot be reached from
//! here). The mock checks every request — method, path, token, Accept and User-Agent, JSON body,
//! GitHub's 65,536-character limit — and records it, so each test asserts the exact sequence.

use crate::support::cmd::Bin;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "ghs_MockToken0123456789abcdefXYZ";

// ---------------------------------------------------------------------------------------------
// The mock

#[derive(Clone, Debug)]
struct Req {
    method: String,
    path: String,
    body: String,
}

/// A scripted failure: status, extra headers, message.
type Fail = (u16, Vec<(String, String)>, String);

#[derive(Default)]
struct State {
    reqs: Vec<Req>,
    /// (issue number, comment json)
    comments: Vec<(u64, Value)>,
    issues: Vec<Value>,
    fail: VecDeque<Fail>,
    next_id: u64,
    problems: Vec<String>,
    /// Where the API is served (GHES: `/api/v3`); requests outside it are 404 and a problem.
    prefix: String,
}

struct Mock {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl Mock {
    fn start() -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State {
            next_id: 1000,
            ..Default::default()
        }));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve(conn, st));
            }
        });
        Mock { port, state }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seq(&self) -> Vec<String> {
        let s = self.state.lock().expect("lock");
        s.reqs
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    fn reqs(&self) -> Vec<Req> {
        self.state.lock().expect("lock").reqs.clone()
    }

    fn clear(&self) {
        self.state.lock().expect("lock").reqs.clear();
    }

    fn fail_next(&self, f: Fail) {
        self.state.lock().expect("lock").fail.push_back(f);
    }

    fn comments(&self, issue: u64) -> Vec<Value> {
        let s = self.state.lock().expect("lock");
        s.comments
            .iter()
            .filter(|(i, _)| *i == issue)
            .map(|(_, c)| c.clone())
            .collect()
    }

    fn issues(&self) -> Vec<Value> {
        self.state.lock().expect("lock").issues.clone()
    }

    fn add_comment(&self, issue: u64, body: &str) {
        let mut s = self.state.lock().expect("lock");
        s.next_id += 1;
        let id = s.next_id;
        s.comments.push((issue, json!({"id": id, "body": body})));
    }

    fn add_issue(&self, number: u64, title: &str, pr: bool) {
        let mut s = self.state.lock().expect("lock");
        let mut v =
            json!({"number": number, "title": title, "body": "", "state": "open", "labels": []});
        if pr {
            v["pull_request"] = json!({"url": "x"});
        }
        s.issues.push(v);
    }

    /// Every request the mock found wrong; must be empty.
    fn assert_clean(&self) {
        let s = self.state.lock().expect("lock");
        assert!(
            s.problems.is_empty(),
            "mock saw bad requests: {:#?}",
            s.problems
        );
    }
}

fn serve(conn: TcpStream, st: Arc<Mutex<State>>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let parts: Vec<&str> = line.trim_end().split(' ').collect();
        if parts.len() < 3 {
            return;
        }
        let (method, path) = (parts[0].to_string(), parts[1].to_string());
        let mut headers: Vec<(String, String)> = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        let (status, extra, resp) = handle(&st, &method, &path, &headers, &body);
        let text = resp.to_string();
        let mut head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            text.len()
        );
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if out.write_all(head.as_bytes()).is_err() || out.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

fn handle(
    st: &Arc<Mutex<State>>,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> (u16, Vec<(String, String)>, Value) {
    let mut s = st.lock().expect("lock");
    s.reqs.push(Req {
        method: method.into(),
        path: path.into(),
        body: body.into(),
    });
    let h = |name: &str| {
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let mut problems = Vec::new();
    if h("authorization") != [format!("Bearer {TOKEN}")] {
        problems.push(format!(
            "{method} {path}: Authorization {:?}",
            h("authorization")
        ));
    }
    if !h("accept")
        .iter()
        .any(|a| a.contains("application/vnd.github+json"))
    {
        problems.push(format!("{method} {path}: Accept {:?}", h("accept")));
    }
    if h("user-agent").iter().all(|u| u.is_empty()) {
        problems.push(format!("{method} {path}: no User-Agent"));
    }
    if h("x-github-api-version").is_empty() {
        problems.push(format!("{method} {path}: no X-GitHub-Api-Version"));
    }
    let json: Value = if method == "GET" {
        if !body.is_empty() {
            problems.push(format!("GET {path} with a body"));
        }
        Value::Null
    } else {
        if !h("content-type")
            .iter()
            .any(|c| c.starts_with("application/json"))
        {
            problems.push(format!(
                "{method} {path}: content-type {:?}",
                h("content-type")
            ));
        }
        match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{method} {path}: body is not JSON: {e}"));
                Value::Null
            }
        }
    };
    if let Some(b) = json.get("body").and_then(|b| b.as_str()) {
        let n = b.chars().count();
        if n > 65_536 {
            problems.push(format!("{method} {path}: body of {n} characters"));
        }
    }
    if !problems.is_empty() {
        s.problems.extend(problems);
        return (401, vec![], json!({"message": "Bad credentials"}));
    }
    if let Some((status, extra, message)) = s.fail.pop_front() {
        return (status, extra, json!({"message": message}));
    }
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let prefix = s.prefix.clone();
    let Some(route) = route.strip_prefix(prefix.as_str()) else {
        s.problems
            .push(format!("{method} {path}: outside the API root {prefix}"));
        return (404, vec![], json!({"message": "Not Found"}));
    };
    let q = |k: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .map(String::from)
    };
    let page: usize = q("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let per: usize = q("per_page").and_then(|p| p.parse().ok()).unwrap_or(30);
    let segs: Vec<&str> = route.trim_start_matches('/').split('/').collect();
    let expect_keys = |s: &mut State, v: &Value, keys: &[&str]| {
        let mut got: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(|k| k.as_str()).collect())
            .unwrap_or_default();
        got.sort();
        let mut want = keys.to_vec();
        want.sort();
        if got != want {
            s.problems.push(format!(
                "{method} {path}: body keys {got:?}, expected {want:?}"
            ));
        }
    };
    match (method, segs.as_slice()) {
        ("GET", ["repos", "o", "r", "issues", n, "comments"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let all: Vec<Value> = s
                .comments
                .iter()
                .filter(|(i, _)| *i == n)
                .map(|(_, c)| c.clone())
                .collect();
            let pageful: Vec<Value> = all.into_iter().skip((page - 1) * per).take(per).collect();
            (200, vec![], Value::Array(pageful))
        }
        ("POST", ["repos", "o", "r", "issues", n, "comments"]) => {
            expect_keys(&mut s, &json, &["body"]);
            let n: u64 = n.parse().unwrap_or(0);
            s.next_id += 1;
            let id = s.next_id;
            let c = json!({"id": id, "body": json["body"], "html_url": format!("https://github.example/o/r/issues/{n}#issuecomment-{id}")});
            s.comments.push((n, c.clone()));
            (201, vec![], c)
        }
        ("PATCH", ["repos", "o", "r", "issues", "comments", id]) => {
            expect_keys(&mut s, &json, &["body"]);
            let id: u64 = id.parse().unwrap_or(0);
            match s.comments.iter_mut().find(|(_, c)| c["id"] == json!(id)) {
                Some((_, c)) => {
                    c["body"] = json["body"].clone();
                    let c = c.clone();
                    (200, vec![], c)
                }
                None => (404, vec![], json!({"message": "Not Found"})),
            }
        }
        ("GET", ["repos", "o", "r", "issues"]) => {
            let state = q("state").unwrap_or_else(|| "open".into());
            let label = q("labels");
            let all: Vec<Value> = s
                .issues
                .iter()
                .filter(|i| state == "all" || i["state"] == json!(state))
                .filter(|i| match &label {
                    None => true,
                    Some(l) => i["labels"]
                        .as_array()
                        .is_some_and(|ls| ls.iter().any(|x| x["name"] == json!(l))),
                })
                .cloned()
                .collect();
            let pageful: Vec<Value> = all.into_iter().skip((page - 1) * per).take(per).collect();
            (200, vec![], Value::Array(pageful))
        }
        ("POST", ["repos", "o", "r", "issues"]) => {
            expect_keys(&mut s, &json, &["title", "body", "labels"]);
            let labels: Vec<String> = json["labels"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if !labels.iter().any(|l| l == "dr-drill") {
                s.problems
                    .push(format!("POST {path}: labels {labels:?} lack dr-drill"));
            }
            let number = 100 + s.issues.len() as u64;
            let v = json!({
                "number": number,
                "title": json["title"],
                "body": json["body"],
                "state": "open",
                "labels": labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
                "html_url": format!("https://github.example/o/r/issues/{number}"),
            });
            s.issues.push(v.clone());
            (201, vec![], v)
        }
        _ => {
            s.problems
                .push(format!("unexpected request {method} {path}"));
            (404, vec![], json!({"message": "Not Found"}))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures

fn ts(secs: f64) -> String {
    let base = chrono::DateTime::parse_from_rfc3339("2025-10-06T10:00:00Z")
        .expect("base")
        .with_timezone(&chrono::Utc);
    (base + chrono::Duration::microseconds((secs * 1e6) as i64))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A journal with one drill of `scenario` whose RTO is `rto` seconds against a 5 s objective.
fn journal(dir: &Path, drill: &str, scenario: &str, rto: f64, extra: &[Value]) -> PathBuf {
    let path = dir.join("journal.jsonl");
    let ev = |t: f64, v: Value| {
        let mut v = v;
        v["ts"] = json!(ts(t));
        v["drill"] = json!(drill);
        v["by"] = json!("drill");
        v.to_string()
    };
    let mut lines = vec![
        ev(
            0.0,
            json!({"event": "drill_started", "name": scenario, "scenario": scenario, "environment": "staging",
            "objectives": {"rto_s": 5.0}, "roles": [["incident_commander", "@alice"], ["application_lead", "@bob"]]}),
        ),
        ev(
            0.5,
            json!({"event": "fault_planned", "id": "f1", "action": "crash", "target": "api", "undo": {"kind": "nothing", "reason": "restart policy"}}),
        ),
        ev(1.0, json!({"event": "fault_applied", "id": "f1"})),
        // A fault with nothing to undo is closed as it is applied (as `inject-fault` records it).
        ev(
            1.0,
            json!({"event": "fault_reverted", "id": "f1", "how": "nothing to undo"}),
        ),
        ev(
            1.0,
            json!({"event": "recovery_started", "probes": ["http://api/health"], "consecutive": 3, "timeout_s": 60.0}),
        ),
        ev(
            1.0 + rto + 0.5,
            json!({"event": "recovery_stable", "recovered_at": ts(1.0 + rto), "uncertainty_s": 0.1,
            "latency": {"count": 10, "p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 4.0}}),
        ),
    ];
    let mut t = 2.0 + rto;
    for e in extra {
        t += 0.01;
        lines.push(ev(t, e.clone()));
    }
    lines.push(ev(
        t + 1.0,
        json!({"event": "drill_finished", "outcome": "finished"}),
    ));
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    text.push_str(&(lines.join("\n") + "\n"));
    std::fs::write(&path, text).expect("write journal");
    path
}

fn report(mock_url: &str, j: &Path) -> Bin {
    Bin::new("report")
        .journal(j)
        .env("GITHUB_API_URL", mock_url)
        .env("GITHUB_REPOSITORY", "o/r")
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_SERVER_URL", "https://github.example")
        .env("GITHUB_RUN_ID", "4242")
        .env("DRILL_GITHUB_BACKOFF_MS", "20")
}

fn outputs(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for f in ["report.md", "junit.xml", "summary.json"] {
        v.push(
            "--".to_string()
                + match f {
                    "report.md" => "markdown",
                    "junit.xml" => "junit",
                    _ => "summary-json",
                },
        );
        v.push(dir.join(f).display().to_string());
    }
    v
}

fn assert_no_token(texts: &[(&str, &str)]) {
    for (what, t) in texts {
        assert!(!t.contains(TOKEN), "the token leaked into {what}");
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn first_report_creates_one_comment_second_updates_it() {
    let mock = Mock::start();
    mock.add_comment(7, "an unrelated comment");
    mock.add_comment(
        7,
        "<!-- drillkit:drill=other-drill scenario=x -->\nsomeone else's drill",
    );
    let dir = tempfile::tempdir().expect("tmp");
    let j = journal(dir.path(), "d-111", "api-service-failure", 2.0, &[]);

    let r = report(&mock.url(), &j)
        .args(["--github-issue", "7"])
        .args(outputs(dir.path()))
        .succeeds();
    mock.assert_clean();
    assert_eq!(
        mock.seq(),
        [
            "GET /repos/o/r/issues/7/comments?per_page=100&page=1",
            "POST /repos/o/r/issues/7/comments"
        ]
    );
    let comments = mock.comments(7);
    assert_eq!(comments.len(), 3);
    let mine = comments[2]["body"].as_str().expect("body").to_string();
    assert!(
        mine.starts_with("<!-- drillkit:drill=d-111 scenario=api-service-failure -->"),
        "{mine}"
    );
    assert!(mine.contains("# DR Drill Report"), "{mine}");
    assert!(
        mine.contains("https://github.example/o/r/actions/runs/4242"),
        "{mine}"
    );
    r.stderr_has("report comment created on issue #7");

    // The same drill reports again: its own comment is updated, nothing is added.
    mock.clear();
    report(&mock.url(), &j)
        .args(["--github-issue", "7", "--markdown"])
        .arg(dir.path().join("report.md"))
        .succeeds()
        .stderr_has("report comment updated");
    mock.assert_clean();
    let id = comments[2]["id"].as_u64().expect("id");
    assert_eq!(
        mock.seq(),
        [
            "GET /repos/o/r/issues/7/comments?per_page=100&page=1".to_string(),
            format!("PATCH /repos/o/r/issues/comments/{id}")
        ]
    );
    assert_eq!(mock.comments(7).len(), 3);
    assert_eq!(
        mock.comments(7)[1]["body"],
        json!("<!-- drillkit:drill=other-drill scenario=x -->\nsomeone else's drill")
    );

    // A new drill of the same scenario gets its own comment.
    mock.clear();
    let j2 = journal(dir.path(), "d-222", "api-service-failure", 2.0, &[]);
    report(&mock.url(), &j2)
        .args(["--github-issue", "7", "--markdown"])
        .arg(dir.path().join("report2.md"))
        .succeeds();
    assert_eq!(mock.seq()[1], "POST /repos/o/r/issues/7/comments");
    assert_eq!(mock.comments(7).len(), 4);
    mock.assert_clean();
}

#[test]
fn comments_are_found_on_later_pages() {
    let mock = Mock::start();
    for i in 0..150 {
        mock.add_comment(9, &format!("comment {i}"));
    }
    let dir = tempfile::tempdir().expect("tmp");
    let j = journal(dir.path(), "d-pages", "api-service-failure", 2.0, &[]);
    let run = || {
        report(&mock.url(), &j)
            .args(["--github-issue", "9", "--markdown"])
            .arg(dir.path().join("r.md"))
            .succeeds()
    };
    run();
    mock.clear();
    run();
    let seq = mock.seq();
    assert_eq!(
        seq[0],
        "GET /repos/o/r/issues/9/comments?per_page=100&page=1"
    );
    assert_eq!(
        seq[1],
        "GET /repos/o/r/issues/9/comments?per_page=100&page=2"
    );
    assert!(
        seq[2].starts_with("PATCH /repos/o/r/issues/comments/"),
        "{seq:?}"
    );
    assert_eq!(mock.comments(9).len(), 151);
    mock.assert_clean();
}

#[test]
fn issue_title_finds_the_open_issue_or_creates_it() {
    let mock = Mock::start();
    mock.add_issue(3, "DR drills", true); // a pull request with that title does not count
    let dir = tempfile::tempdir().expect("tmp");
    let j = journal(dir.path(), "d-t1", "redis-cache-failure", 2.0, &[]);
    report(&mock.url(), &j)
        .args(["--github-issue-title", "DR drills", "--markdown"])
        .arg(dir.path().join("r.md"))
        .succeeds()
        .stderr_has("issue #101 created");
    mock.assert_clean();
    assert_eq!(
        mock.seq(),
        [
            "GET /repos/o/r/issues?state=open&per_page=100&page=1",
            "POST /repos/o/r/issues",
            "GET /repos/o/r/issues/101/comments?per_page=100&page=1",
            "POST /repos/o/r/issues/101/comments",
        ]
    );
    let created = &mock.issues()[1];
    assert_eq!(created["title"], json!("DR drills"));
    assert_eq!(created["labels"], json!([{"name": "dr-drill"}]));

    // Next drill: the issue is found, not created again.
    mock.clear();
    let j = journal(dir.path(), "d-t2", "redis-cache-failure", 2.0, &[]);
    report(&mock.url(), &j)
        .args(["--github-issue-title", "DR drills", "--markdown"])
        .arg(dir.path().join("r.md"))
        .succeeds()
        .stderr_has("issue #101 found");
    assert_eq!(
        mock.seq(),
        [
            "GET /repos/o/r/issues?state=open&per_page=100&page=1",
            "GET /repos/o/r/issues/101/comments?per_page=100&page=1",
            "POST /repos/o/r/issues/101/comments",
        ]
    );
    assert_eq!(mock.issues().len(), 2);
    mock.assert_clean();
}

#[test]
fn server_errors_and_secondary_rate_limits_are_retried_with_backoff() {
    let mock = Mock::start();
    mock.fail_next((502, vec![], "Bad Gateway".into()));
    mock.fail_next((
        403,
        vec![("retry-after".into(), "1".into())],
        "You have exceeded a secondary rate limit".into(),
    ));
    let dir = tempfile::tempdir().expect("tmp");
    let j = journal(dir.path(), "d-retry", "api-service-failure", 2.0, &[]);
    let started = std::time::Instant::now();
    let r = report(&mock.url(), &j)
        .env("DRILL_GITHUB_BACKOFF_MS", "200")
        .args(["--github-issue", "5", "--markdown"])
        .arg(dir.path().join("r.md"))
        .succeeds();
    let took = started.elapsed();
    mock.assert_clean();
    assert_eq!(
        mock.seq(),
        [
            "GET /repos/o/r/issues/5/comments?per_page=100&page=1",
            "GET /repos/o/r/issues/5/comments?per_page=100&page=1",
            "GET /repos/o/r/issues/5/comments?per_page=100&page=1",
            "POST /repos/o/r/issues/5/comments",
        ]
    );
    // 200 ms backoff after the 502, then the Retry-After of 1 s.
    assert!(took >= std::time::Duration::from_millis(1150), "{took:?}");
    r.stderr_has("GitHub answered 502")
        .stderr_has("retrying in")
        .stderr_has("secondary rate limit");
    assert_eq!(mock.comments(5).len(), 1);
}

#[test]
fn a_refusal_is_not_retried_and_exits_3() {
    let mock = Mock::start();
    mock.fail_next((404, vec![], "Not Found".into()));
    let dir = tempfile::tempdir().expect("tmp");
    let j = journal(dir.path(), "d-404", "api-service-failure", 2.0, &[]);
    report(&mock.url(), &j)
        .args(["--github-issue", "5"])
        .args(outputs(dir.path()))
        .code(3)
        .stderr_has("GitHub answered 404");
    assert_eq!(mock.seq().len(), 1);
    assert!(dir.path().join("report.md").is_file());
}

#[test]
fn bodies_over_65536_characters_are_cut_with_a_link_to_the_run() {
    let mock = Mock::start();
    let dir = tempfile::tempdir().expect("tmp");
    // 1500 timed phases make a report far over GitHub's limit.
    let mut extra = Vec::new();
    for i in 0..1500 {
        extra.push(json!({"event": "phase_started", "name": format!("step number {i} of a very long drill")}));
        extra.push(json!({"event": "phase_finished", "name": format!("step number {i} of a very long drill"), "ok": true}));
    }
    let j = journal(dir.path(), "d-long", "api-service-failure", 2.0, &extra);
    report(&mock.url(), &j)
        .args(["--github-issue", "11"])
        .args(outputs(dir.path()))
        .succeeds();
    mock.assert_clean(); // the mock rejects bodies over 65,536 characters
    let local = std::fs::read_to_string(dir.path().join("report.md")).expect("report");
    assert!(
        local.chars().count() > 65_536,
        "the local report is complete"
    );
    let sent = mock.comments(11)[0]["body"]
        .as_str()
        .expect("body")
        .to_string();
    assert!(sent.chars().count() <= 65_536);
    assert!(
        sent.chars().count() > 60_000,
        "cut near the limit, not far below it"
    );
    assert!(sent.starts_with("<!-- drillkit:drill=d-long "));
    assert!(
        sent.trim_end()
            .ends_with("[the workflow run](https://github.example/o/r/actions/runs/4242)."),
        "{}",
        &sent[sent.len() - 300..]
    );
}

#[test]
fn the_token_never_appears_in_any_output() {
    let mock = Mock::start();
    let dir = tempfile::tempdir().expect("tmp");
    // Even when the token found its way into the journal (a failed phase's detail)…
    let extra = [
        json!({"event": "phase_started", "name": "notify"}),
        json!({"event": "phase_finished", "name": "notify", "ok": false, "detail": format!("curl -H 'Authorization: token {TOKEN}' failed")}),
    ];
    let j = journal(dir.path(), "d-secret", "api-service-failure", 9.0, &extra);
    let r = report(&mock.url(), &j)
        .args([
            "--github-issue",
            "12",
            "--json",
            "--open-issue-on-failure",
            "--file-action-items",
        ])
        .args(outputs(dir.path()))
        .succeeds();
    mock.assert_clean();
    let mut texts: Vec<(String, String)> = vec![
        ("stdout".into(), r.stdout.clone()),
        ("stderr".into(), r.stderr.clone()),
    ];
    for f in ["report.md", "junit.xml", "summary.json"] {
        texts.push((
            f.into(),
            std::fs::read_to_string(dir.path().join(f)).expect(f),
        ));
    }
    for req in mock.reqs() {
        texts.push((format!("{} {}", req.method, req.path), req.body.clone()));
    }
    let refs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_no_token(&refs);
    assert!(
        texts[2].1.contains("Authorization: token ***"),
        "redacted, not dropped"
    );
}

#[test]
fn github_down_exits_3_and_loses_nothing() {
    // A port nothing listens on.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let dir = tempfile::tempdir().expect("tmp");
    let j = journal(dir.path(), "d-down", "api-service-failure", 2.0, &[]);
    let r = report(&format!("http://127.0.0.1:{port}"), &j)
        .args(["--github-issue", "7"])
        .args(outputs(dir.path()))
        .code(3);
    r.stderr_has("cannot reach GitHub");
    for f in ["report.md", "junit.xml", "summary.json"] {
        let t = std::fs::read_to_string(dir.path().join(f)).expect(f);
        assert!(t.contains("d-down"), "{f} was written");
    }
    assert!(!r.stderr.contains(TOKEN) && !r.stdout.contains(TOKEN));

    // 5xx every time: retried five times, then exit 3.
    let mock = Mock::start();
    for _ in 0..5 {
        mock.fail_next((503, vec![], "unavailable".into()));
    }
    report(&mock.url(), &j)
        .args(["--github-issue", "7", "--markdown"])
        .arg(dir.path().join("again.md"))
        .code(3)
        .stderr_has("GitHub answered 503");
    assert_eq!(mock.seq().len(), 5);
    assert!(dir.path().join("again.md").is_file());
}

#[test]
fn missing_token_is_bad_input_after_the_files_are_written() {
    let dir = tempfile::tempdir().expect("tmp");
    let j = journal(dir.path(), "d-notoken", "api-service-failure", 2.0, &[]);
    Bin::new("report")
        .journal(&j)
        .env("GITHUB_REPOSITORY", "o/r")
        .args(["--github-issue", "7"])
        .args(outputs(dir.path()))
        .code(2)
        .stderr_has("--github-issue needs GITHUB_TOKEN");
    assert!(dir.path().join("report.md").is_file());
    Bin::new("report")
        .journal(&j)
        .args(["--github-issue", "seven"])
        .code(2)
        .stderr_has("--github-issue");
}

#[test]
fn a_failed_drill_opens_an_issue_and_files_each_action_item_once() {
    let mock = Mock::start();
    let dir = tempfile::tempdir().expect("tmp");
    let j = journal(dir.path(), "d-fail1", "api-service-failure", 9.0, &[]); // RTO 9 s > 5 s
    let run = |j: &Path| {
        report(&mock.url(), j)
            .args([
                "--open-issue-on-failure",
                "--file-action-items",
                "--markdown",
            ])
            .arg(dir.path().join("r.md"))
            .succeeds()
    };
    let r = run(&j);
    mock.assert_clean();
    assert_eq!(
        mock.seq(),
        [
            "GET /repos/o/r/issues?state=open&per_page=100&page=1",
            "POST /repos/o/r/issues",
            "GET /repos/o/r/issues/100/comments?per_page=100&page=1",
            "POST /repos/o/r/issues/100/comments",
            "GET /repos/o/r/issues?state=all&labels=dr-action-item&per_page=100&page=1",
            "POST /repos/o/r/issues",
        ]
    );
    r.stderr_has("failure issue #100 opened")
        .stderr_has("action item #101 filed");
    let issues = mock.issues();
    assert_eq!(
        issues[0]["title"],
        json!("DR drill failed: api-service-failure")
    );
    assert!(issues[0]["body"]
        .as_str()
        .expect("body")
        .contains("RTO ≤ 5s missed"));
    let item = &issues[1];
    assert_eq!(
        item["title"],
        json!("DR action item: RTO ≤ 5s missed (api-service-failure)")
    );
    assert_eq!(
        item["labels"],
        json!([{"name": "dr-drill"}, {"name": "dr-action-item"}])
    );
    let body = item["body"].as_str().expect("body");
    assert!(body.starts_with("<!-- drillkit:action-item="), "{body}");
    assert!(
        body.contains("| Item | Owner | Due Date | Priority |"),
        "{body}"
    );
    assert!(
        body.contains("@bob"),
        "owner from the scenario's roles: {body}"
    );

    // Next month the same objective is missed again (different number): no second issue.
    mock.clear();
    let j2 = journal(dir.path(), "d-fail2", "api-service-failure", 12.0, &[]);
    run(&j2).stderr_has("already filed");
    assert_eq!(mock.issues().len(), 2);
    assert!(
        !mock.seq().iter().any(|s| s == "POST /repos/o/r/issues"),
        "{:?}",
        mock.seq()
    );
    mock.assert_clean();
}

#[test]
fn a_passed_drill_opens_no_issue() {
    let mock = Mock::start();
    let dir = tempfile::tempdir().expect("tmp");
    let j = journal(dir.path(), "d-ok", "api-service-failure", 2.0, &[]);
    report(&mock.url(), &j)
        .args([
            "--open-issue-on-failure",
            "--file-action-items",
            "--markdown",
        ])
        .arg(dir.path().join("r.md"))
        .succeeds();
    mock.assert_clean();
    assert!(mock.seq().is_empty(), "{:?}", mock.seq());
}

#[test]
fn enterprise_server_api_path_is_kept() {
    // GHES serves the API under /api/v3; the mock answers only there.
    let mock = Mock::start();
    mock.state.lock().expect("lock").prefix = "/api/v3".into();
    let dir = tempfile::tempdir().expect("tmp");
    let j = journal(dir.path(), "d-ghes", "api-service-failure", 2.0, &[]);
    report(&format!("{}/api/v3", mock.url()), &j)
        .args(["--github-issue", "7", "--markdown"])
        .arg(dir.path().join("r.md"))
        .succeeds()
        .stderr_has("report comment created on issue #7");
    mock.assert_clean();
    assert_eq!(
        mock.seq(),
        [
            "GET /api/v3/repos/o/r/issues/7/comments?per_page=100&page=1",
            "POST /api/v3/repos/o/r/issues/7/comments"
        ]
    );
}

#[test]
fn tabletop_opens_the_quarters_issue_once() {
    let mock = Mock::start();
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/tabletop-database-corruption.yaml"
    );
    let run = || {
        Bin::new("report")
            .env("GITHUB_API_URL", mock.url())
            .env("GITHUB_REPOSITORY", "o/r")
            .env("GITHUB_TOKEN", TOKEN)
            .env("DRILL_GITHUB_BACKOFF_MS", "20")
            .args(["tabletop", scenario, "--open-issue", "--date", "2025-11-03"])
            .succeeds()
    };
    run().stderr_has("tabletop issue #100 opened");
    assert_eq!(
        mock.seq(),
        [
            "GET /repos/o/r/issues?state=open&per_page=100&page=1",
            "POST /repos/o/r/issues"
        ]
    );
    let issue = &mock.issues()[0];
    assert_eq!(
        issue["title"],
        json!("DR tabletop exercise 2025-Q4: tabletop-database-corruption")
    );
    assert_eq!(
        issue["labels"],
        json!([{"name": "dr-drill"}, {"name": "dr-tabletop"}])
    );
    let body = issue["body"].as_str().expect("body");
    assert!(body.contains("type: database_corruption"), "{body}");
    assert!(
        body.contains("| 2 | Scenario Walkthrough | 1 h 30 min |"),
        "{body}"
    );
    run().stderr_has("already open");
    assert_eq!(mock.issues().len(), 1);
    mock.assert_clean();
}
