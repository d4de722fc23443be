//! drillkit: disaster-recovery drills from CI.
//!
//! One module per concept; the binaries in `bins/` are thin mains over `cli`.

pub mod backup;
pub mod canary;
pub mod cli;
pub mod demo;
pub mod docker;
pub mod drill;
pub mod exit;
pub mod faults;
pub mod github;
pub mod guard;
pub mod journal;
pub mod measure;
pub mod negative;
pub mod pg;
pub mod phase;
pub mod probe;
pub mod process;
pub mod progress;
pub mod redact;
pub mod report;
pub mod scenario;
pub mod schedule;
pub mod signal;
pub mod tabletop;
pub mod trends;
pub mod units;
pub mod wait;
pub mod watch;
