//! The command-line edge: clap definitions and thin `run` functions per binary, kept apart from
//! the domain modules so the domain can be used and tested without clap.

pub mod canary;
pub mod common;
pub mod verify_backup;
