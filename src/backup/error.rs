//! What can stop `verify-backup` from doing its job, and the one place that says which exit
//! code each kind is. A backup that fails a check is not an error: it is a failed [`Check`]
//! (exit 1, decided from the reports); these are the cases where the tool could not judge.
//!
//! [`Check`]: super::Check

use crate::exit::{Code, Failure};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Asked wrongly (a path, a URL, options that contradict each other): exit 2, nothing
    /// was read or restored.
    #[error("{0}")]
    Invalid(String),
    /// The restore server refused us or could not be reached; `code` comes from the
    /// connection layer (3, or 2 for a connection string that cannot work).
    #[error("{message}")]
    Server { message: String, code: Code },
    /// The environment stopped the work: a tool is missing (pg_restore, a PostgreSQL server
    /// of the backup's major version), a file or folder cannot be read or written, the scratch
    /// database cannot be created.
    #[error("{0}")]
    Environment(String),
    /// The backup did not restore. Inside the restore this becomes a failed `restore` check;
    /// it never reaches `main` as an error.
    #[error("{0}")]
    Restore(String),
    /// A signal arrived; the scratch database was dropped / the scratch server stopped.
    #[error("{0}")]
    Interrupted(String),
    /// The journal could not be written: every check is recorded there, so the run stops.
    #[error("cannot write the journal {path}: {source}")]
    Journal {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The exit-code table, for every backup error.
    pub fn code(&self) -> Code {
        match self {
            Error::Invalid(_) => Code::BadInput,
            Error::Server { code, .. } => *code,
            Error::Environment(_) | Error::Journal { .. } => Code::Environment,
            Error::Restore(_) => Code::DrillFailed,
            Error::Interrupted(_) => Code::Interrupted,
        }
    }

    /// A connection-layer error with what we were doing when it happened.
    pub(crate) fn server(context: impl std::fmt::Display, e: &crate::pg::Error) -> Error {
        Error::Server {
            message: format!("{context}: {e}"),
            code: e.code(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::new(e.code(), e)
    }
}
