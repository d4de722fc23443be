//! degrade, measured from inside a namespace: the delay proxy raises the round trip by the set
//! delay, the iptables `statistic` rule drops about the set share of packets, `tbf` holds the
//! rate near the set one; after revert the namespace's rules and qdiscs are exactly as before and
//! no proxy runs. netem's absence is detected and refused with the kernel option's name.

use crate::support::netns;

use crate::support::cmd::Bin;

fn proxies() -> usize {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    std::fs::read(e.path().join("cmdline"))
                        .map(|c| String::from_utf8_lossy(&c).contains("__degrade-proxy"))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

/// Where the kernel has netem (the library's own check decides), `--method netem` applies its
/// qdisc and revert removes it; where it lacks it, the method is a clear exit 3 naming the kernel
/// option and the methods that work. Either way the namespace ends as it began.
#[test]
fn netem_applies_where_the_kernel_has_it_and_is_a_clear_exit_3_where_not() {
    let _host = crate::support::host_room("degrade_methods");
    require!(Netns);
    let ns = netns::Ns::new(3);
    let before = ns.state();
    let dir = tempfile::tempdir().expect("tmp");
    let j = dir.path().join("j.jsonl");
    let degrade = Bin::new("inject-fault")
        .args([
            "degrade", "--netns", &ns.name, "--loss", "10%", "--method", "netem",
        ])
        .journal(&j);
    match drillkit::faults::degrade::netem_available() {
        Ok(()) => {
            degrade.succeeds();
            assert!(
                ns.state().contains("netem"),
                "no netem qdisc: {}",
                ns.state()
            );
            Bin::new("inject-fault")
                .args(["revert"])
                .journal(&j)
                .succeeds();
        }
        Err(_) => {
            degrade
                .code(3)
                .stderr_has("CONFIG_NET_SCH_NETEM")
                .stderr_has("--method iptables or proxy");
        }
    }
    assert_eq!(ns.state(), before);
}

#[test]
fn proxy_delay_raises_the_round_trip_by_the_delay_and_revert_removes_everything() {
    let _host = crate::support::host_room("degrade_methods");
    require!(Netns);
    let ns = netns::Ns::new(4);
    let echo = netns::Echo::start(&ns.host_ip);
    let to = echo.addr.to_string();
    let base: f64 = ns.probe(&format!("rtt {to} 5")).parse().expect("ms");
    let before = ns.state();
    let procs = proxies();
    let dir = tempfile::tempdir().expect("tmp");
    let j = dir.path().join("j.jsonl");
    let r = Bin::new("inject-fault")
        .args([
            "degrade", "--netns", &ns.name, "--delay", "200ms", "--to", &to, "--method", "proxy",
        ])
        .journal(&j)
        .succeeds();
    r.stderr_has("REDIRECT --to-ports");
    let slow: f64 = ns.probe(&format!("rtt {to} 5")).parse().expect("ms");
    let added = slow - base;
    assert!(
        (170.0..=400.0).contains(&added),
        "delay 200ms added {added:.1}ms (base {base:.1}, now {slow:.1})"
    );
    Bin::new("inject-fault")
        .args(["revert"])
        .journal(&j)
        .succeeds();
    assert_eq!(ns.state(), before, "revert left rules or qdiscs");
    assert_eq!(proxies(), procs, "the proxy still runs");
    let after: f64 = ns.probe(&format!("rtt {to} 5")).parse().expect("ms");
    assert!(
        after < base + 50.0,
        "round trip still {after:.1}ms after revert (base {base:.1})"
    );
}

#[test]
fn iptables_loss_drops_about_the_set_share() {
    let _host = crate::support::host_room("degrade_methods");
    require!(Netns);
    let ns = netns::Ns::new(5);
    let sink = netns::Sink::start(&ns.host_ip);
    let before = ns.state();
    let dir = tempfile::tempdir().expect("tmp");
    let j = dir.path().join("j.jsonl");
    Bin::new("inject-fault")
        .args([
            "degrade",
            "--netns",
            &ns.name,
            "--loss",
            "30%",
            "--to",
            &ns.host_ip,
            "--method",
            "iptables",
        ])
        .journal(&j)
        .succeeds();
    let n = 2000;
    ns.probe(&format!("udp {} {n}", sink.addr));
    // Datagrams still in flight land within a few polls: read once the count stops moving.
    let mut got = sink.count.load(std::sync::atomic::Ordering::SeqCst);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = sink.count.load(std::sync::atomic::Ordering::SeqCst);
        if now == got {
            break;
        }
        got = now;
    }
    let got = got as f64;
    let loss = 1.0 - got / n as f64;
    assert!(
        (0.24..=0.36).contains(&loss),
        "loss 30% measured {:.1}%",
        loss * 100.0
    );
    Bin::new("inject-fault")
        .args(["revert"])
        .journal(&j)
        .succeeds();
    assert_eq!(ns.state(), before);
}

#[test]
fn tbf_rate_holds_throughput_near_the_set_rate() {
    let _host = crate::support::host_room("degrade_methods");
    require!(Netns);
    let ns = netns::Ns::new(6);
    let echo = netns::Echo::start(&ns.host_ip);
    let to = echo.addr.to_string();
    let before = ns.state();
    let dir = tempfile::tempdir().expect("tmp");
    let j = dir.path().join("j.jsonl");
    Bin::new("inject-fault")
        .args([
            "degrade", "--netns", &ns.name, "--rate", "4mbit", "--method", "iptables",
        ])
        .journal(&j)
        .succeeds();
    let during = ns.state();
    assert!(during.contains("tbf dd17:"), "no tbf qdisc:\n{during}");
    let bytes = 1_000_000;
    let r = ns.probe(&format!("bulk {to} {bytes}"));
    let ms: f64 = r
        .split_whitespace()
        .nth(1)
        .and_then(|m| m.parse().ok())
        .expect("ms");
    let mbit = bytes as f64 * 8.0 / (ms / 1000.0) / 1e6;
    assert!(
        (2.8..=5.0).contains(&mbit),
        "rate 4mbit measured {mbit:.2}mbit ({r})"
    );
    Bin::new("inject-fault")
        .args(["revert"])
        .journal(&j)
        .succeeds();
    assert_eq!(
        ns.state(),
        before,
        "previous root qdisc not restored exactly"
    );
}
