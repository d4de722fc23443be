//! One exit-code table for every binary, and the error type that carries its code to `main`.
//!
//! A CI user must tell "the system failed the drill" (1) from "the tool could not run" (2, 3).

use std::fmt;

/// Exit codes shared by all drillkit binaries (documented in the README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Everything passed.
    Ok = 0,
    /// The drill found a problem: objective missed, not recovered in time, backup invalid.
    DrillFailed = 1,
    /// Bad input (flags, scenario file); nothing was touched.
    BadInput = 2,
    /// The environment stopped the tool: Docker or a database unreachable, target not found, permission.
    Environment = 3,
    /// Interrupted by a signal; injected faults were reverted.
    Interrupted = 4,
}

/// An error that knows which exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(code: Code, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code,
            error: error.into(),
        }
    }
    pub fn bad_input(error: impl Into<anyhow::Error>) -> Self {
        Self::new(Code::BadInput, error)
    }
    pub fn env(error: impl Into<anyhow::Error>) -> Self {
        Self::new(Code::Environment, error)
    }
    pub fn drill_failed(error: impl Into<anyhow::Error>) -> Self {
        Self::new(Code::DrillFailed, error)
    }
    pub fn interrupted(error: impl Into<anyhow::Error>) -> Self {
        Self::new(Code::Interrupted, error)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

/// Errors that were not classified are the environment's: the tool could not do its job.
impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::env(error)
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Failure::env(error)
    }
}

pub type Result<T, E = Failure> = std::result::Result<T, E>;

/// Attach an exit code to any error.
pub trait Classify<T> {
    fn or_bad_input(self) -> Result<T>;
    fn or_env(self) -> Result<T>;
}

impl<T, E: Into<anyhow::Error>> Classify<T> for std::result::Result<T, E> {
    fn or_bad_input(self) -> Result<T> {
        self.map_err(Failure::bad_input)
    }
    fn or_env(self) -> Result<T> {
        self.map_err(Failure::env)
    }
}
