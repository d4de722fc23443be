//! drillkit: disaster-recovery drills from CI.
//!
//! One module per concept; the binaries in `bins/` are thin mains over `cli`.

pub mod actions;
pub mod backup;
pub mod canary;
pub mod cli;
pub mod degrade;
pub mod demo;
pub mod docker;
pub mod doctor;
pub mod drill;
pub mod exit;
pub mod fault;
pub mod fill;
pub mod github;
pub mod journal;
pub mod measure;
pub mod netfault;
pub mod netns;
pub mod phase;
pub mod probe;
pub mod process;
pub mod redact;
pub mod report;
pub mod scenario;
pub mod schedule;
pub mod signal;
pub mod tabletop;
pub mod target;
pub mod trends;
pub mod units;
pub mod wait;
pub mod watch;
