//! drillkit: disaster-recovery drills from CI.
//!
//! One module per concept; the binaries in `bins/` are thin mains over `cli`.

pub mod actions;
pub mod backup;
pub mod canary;
pub mod cli;
pub mod demo;
pub mod docker;
pub mod drill;
pub mod exit;
pub mod fault;
pub mod journal;
pub mod measure;
pub mod phase;
pub mod probe;
pub mod process;
pub mod redact;
pub mod report;
pub mod scenario;
pub mod signal;
pub mod target;
pub mod units;
pub mod wait;
pub mod watch;
