//! Shared test support: run the real binaries, make real services.
#![allow(dead_code)]

pub mod cmd;
pub mod docker;
pub mod netns;
pub mod pg;
