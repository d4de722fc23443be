//! What can go wrong while planning, applying or reverting a fault, and the one place that says
//! which exit code each kind is (DESIGN: 2 = asked wrongly, nothing touched; 3 = the environment
//! stopped the tool).

use crate::exit::{Code, Failure};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The fault was asked for in a way that cannot work (wrong target kind for the action,
    /// options that contradict each other, a value out of range). Nothing was touched.
    #[error("{0}")]
    Invalid(String),
    /// The target is not there, or not in a state the fault applies to.
    #[error("{0}")]
    Target(String),
    /// A tool drillkit shells out to (iptables, tc, nsenter) is missing or failed, or the
    /// kernel lacks what the fault needs.
    #[error("{0}")]
    Tool(String),
    /// The Docker engine refused or could not be reached.
    #[error(transparent)]
    Docker(#[from] crate::docker::Error),
    /// A system call or file operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The journal could not be written: without its record a fault is never applied.
    #[error("cannot write the journal: {0}")]
    Journal(#[from] std::io::Error),
}

impl Error {
    /// The exit-code table, for every fault error.
    pub fn code(&self) -> Code {
        match self {
            Error::Invalid(_) => Code::BadInput,
            Error::Target(_) | Error::Tool(_) | Error::Io { .. } | Error::Journal(_) => {
                Code::Environment
            }
            Error::Docker(e) => e.code(),
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::new(e.code(), e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
