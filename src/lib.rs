//! drillkit: disaster-recovery drills from CI.
//!
//! One module per concept; the binaries in `bins/` are thin mains over `cli`.

pub mod actions;
pub mod backup;
pub mod cli;
pub mod exit;
pub mod journal;
pub mod redact;
pub mod units;
