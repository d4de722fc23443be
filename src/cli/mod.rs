//! The command-line edge: clap definitions and thin `run` functions per binary, kept apart from
//! the domain modules so the domain can be used and tested without clap.

pub mod actions;
pub mod canary;
pub mod common;
pub mod drill;
pub mod inject_fault;
pub mod measure_rto;
pub mod probes;
pub mod report;
pub mod verify_backup;
pub mod wait_recovery;
