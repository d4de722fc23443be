//! Processes on this host, read from /proc: enough to signal the right one and never a
//! recycled pid (the start time is recorded with the pid and checked before any signal).

use nix::sys::signal::Signal;
use nix::unistd::Pid;

#[derive(Clone, Debug, PartialEq)]
pub struct ProcInfo {
    pub comm: String,
    /// Field 22 of /proc/PID/stat: start time in clock ticks since boot.
    pub start_time: u64,
    /// Field 3: R, S, D, T (stopped), Z…
    pub state: char,
    /// Field 4: the parent's pid.
    pub ppid: i32,
}

pub fn info(pid: i32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm is in parentheses and may itself contain ") ", so split at the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    let start_time = rest.get(19)?.parse().ok()?;
    let ppid = rest.get(1)?.parse().ok()?;
    Some(ProcInfo {
        comm,
        start_time,
        state,
        ppid,
    })
}

pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// True when `pid` is the same process as recorded (not a recycled pid) and not a zombie.
pub fn is_same(pid: i32, start_time: u64) -> bool {
    info(pid).is_some_and(|i| i.start_time == start_time && i.state != 'Z')
}

pub fn signal(pid: i32, sig: Signal) -> Result<(), String> {
    nix::sys::signal::kill(Pid::from_raw(pid), sig)
        .map_err(|e| format!("cannot send {sig} to pid {pid}: {e}"))
}

/// Parse `KILL`, `SIGKILL`, `9`, `term`…
pub fn parse_signal(s: &str) -> Result<Signal, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("unknown signal number {n}"));
    }
    let up = t.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>()
        .map_err(|_| format!("unknown signal '{t}' (e.g. SIGKILL, TERM, 9)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id() as i32;
        let i = info(me).expect("self in /proc");
        assert!(i.start_time > 0);
        assert!(is_same(me, i.start_time));
        assert!(!is_same(me, i.start_time + 1));
    }

    #[test]
    fn signals_parse_in_every_spelling() {
        assert_eq!(parse_signal("KILL"), Ok(Signal::SIGKILL));
        assert_eq!(parse_signal("sigterm"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("9"), Ok(Signal::SIGKILL));
        assert!(parse_signal("SIGNOPE").is_err());
    }
}
