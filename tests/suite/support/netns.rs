//! Network namespaces for the network-fault tests: a namespace joined to the host by a veth pair
//! on a private /30 (10.231.N.0/30: host .1, namespace .2), removed on drop; servers on the host
//! side; and probes run *inside* the namespace by re-running this test binary there
//! (`nsenter --net=… <test exe> --exact __netns_helper`), so no client tool is needed.
//! Traffic never leaves these addresses.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A namespace with a veth link to the host.
pub struct Ns {
    pub name: String,
    pub host_if: String,
    pub ns_if: String,
    pub host_ip: String,
    pub ns_ip: String,
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Ns {
    /// `ip netns add`, a veth pair, addresses, links up. `n` picks the /30 (unique per test).
    pub fn new(n: u8) -> Ns {
        let pid = std::process::id() % 10000;
        let name = format!("dkt-{pid}-{n}");
        let host_if = format!("dkh{pid}x{n}");
        let ns_if = format!("dkn{pid}x{n}");
        let third = (pid % 200) as u8;
        let host_ip = format!("10.231.{third}.{}", n * 4 + 1);
        let ns_ip = format!("10.231.{third}.{}", n * 4 + 2);
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &host_if]).output();
        sh(&["ip", "netns", "add", &name]);
        let ns = Ns {
            name,
            host_if,
            ns_if,
            host_ip,
            ns_ip,
        };
        sh(&[
            "ip",
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns.ns_if,
        ]);
        sh(&["ip", "link", "set", &ns.ns_if, "netns", &ns.name]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", ns.host_ip),
            "dev",
            &ns.host_if,
        ]);
        sh(&["ip", "link", "set", &ns.host_if, "up"]);
        ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", ns.ns_ip),
            "dev",
            &ns.ns_if,
        ]);
        ns.exec(&["ip", "link", "set", &ns.ns_if, "up"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Run a command inside the namespace; panics on failure.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// What a later inspection compares: iptables rules (all tables, v4 and v6) and qdiscs.
    pub fn state(&self) -> String {
        let mut s = String::new();
        for t in ["filter", "nat", "mangle"] {
            s.push_str(&self.exec(&["iptables", "-t", t, "-S"]));
            s.push_str(&self.exec(&["ip6tables", "-t", t, "-S"]));
        }
        s.push_str(&self.exec(&["tc", "qdisc", "show"]));
        s
    }

    /// Run the probe `mode` inside the namespace (see [`helper`]); its RESULT line.
    pub fn probe(&self, mode: &str) -> String {
        let exe = std::env::current_exe().expect("test exe");
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.name))
            .arg("--")
            .arg(exe)
            .args([
                "--exact",
                "__netns_helper",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("DK_NETNS_HELPER", mode)
            .output()
            .expect("nsenter the helper");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.find("RESULT ").map(|i| l[i + 7..].trim().to_string()))
            .unwrap_or_else(|| {
                panic!(
                    "helper {mode} printed no RESULT:\n{text}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}

/// A TCP echo server on the host side; stops on drop.
pub struct Echo {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Echo {
    pub fn start(ip: &str) -> Echo {
        let l = TcpListener::bind((ip, 0)).expect("bind echo");
        let addr = l.local_addr().expect("addr");
        l.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 65536];
                            loop {
                                match s.read(&mut buf) {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => {
                                        if s.write_all(&buf[..n]).is_err() {
                                            return;
                                        }
                                    }
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Echo { addr, stop }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A UDP sink on the host side counting datagrams.
pub struct Sink {
    pub addr: SocketAddr,
    pub count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Sink {
    pub fn start(ip: &str) -> Sink {
        let s = UdpSocket::bind((ip, 0)).expect("bind udp");
        s.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let addr = s.local_addr().expect("addr");
        let count = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, st) = (count.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !st.load(Ordering::SeqCst) {
                if s.recv(&mut buf).is_ok() {
                    c.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Sink { addr, count, stop }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The body of the `__netns_helper` test: runs only when DK_NETNS_HELPER is set, inside the
/// namespace, and prints `RESULT …`:
/// - `connect ADDR` → `ok` or `err KIND`
/// - `rtt ADDR N` → the median request/response time in ms over N one-byte round trips
/// - `udp ADDR N` → sends N datagrams, `sent K`
/// - `bulk ADDR BYTES` → sends BYTES, waits for them echoed, `ms T`
pub fn helper() {
    let Ok(mode) = std::env::var("DK_NETNS_HELPER") else {
        return;
    };
    let w: Vec<&str> = mode.split_whitespace().collect();
    let addr: SocketAddr = w[1].parse().expect("addr");
    let result = match w[0] {
        "connect" => match TcpStream::connect_timeout(&addr, Duration::from_millis(1500)) {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("err {:?}", e.kind()),
        },
        "rtt" => {
            let n: usize = w[2].parse().expect("n");
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut times = Vec::new();
            for _ in 0..n {
                let t = Instant::now();
                s.write_all(b"x").expect("write");
                let mut b = [0u8; 1];
                s.read_exact(&mut b).expect("read");
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(|a, b| a.total_cmp(b));
            format!("{:.2}", times[times.len() / 2])
        }
        "udp" => {
            let n: usize = w[2].parse().expect("n");
            let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
            let mut sent = 0;
            for _ in 0..n {
                if s.send_to(b"payload", addr).is_ok() {
                    sent += 1;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            format!("sent {sent}")
        }
        "bulk" => {
            let bytes: usize = w[2].parse().expect("bytes");
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
            let mut r = s.try_clone().expect("clone");
            let t = Instant::now();
            let reader = std::thread::spawn(move || {
                let mut got = 0;
                let mut buf = [0u8; 65536];
                while got < bytes {
                    match r.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                }
                got
            });
            let mut s = s;
            let chunk = vec![7u8; 16384];
            let mut left = bytes;
            while left > 0 {
                let k = left.min(chunk.len());
                s.write_all(&chunk[..k]).expect("write");
                left -= k;
            }
            let got = reader.join().expect("reader");
            format!("ms {:.0} got {got}", t.elapsed().as_secs_f64() * 1000.0)
        }
        other => format!("unknown mode {other}"),
    };
    println!("RESULT {result}");
}
