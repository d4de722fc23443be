//! The SQLSTATE codes drillkit decides on (PostgreSQL's Appendix A), compared with
//! [`super::sqlstate`] of an error.

/// 28P01: wrong password.
pub const INVALID_PASSWORD: &str = "28P01";
/// 28000: no such role, or pg_hba.conf refuses the connection.
pub const INVALID_AUTHORIZATION: &str = "28000";
/// 42P01: the table does not exist.
pub const UNDEFINED_TABLE: &str = "42P01";
/// 42P04: `CREATE DATABASE` of a name that exists.
pub const DUPLICATE_DATABASE: &str = "42P04";
/// 42601: syntax error (e.g. `DROP DATABASE … WITH (FORCE)` before PostgreSQL 13).
pub const SYNTAX_ERROR: &str = "42601";
/// 57P01: the server is shutting down (admin shutdown).
pub const ADMIN_SHUTDOWN: &str = "57P01";
/// 57P03: the server is starting up or in recovery and cannot take connections yet.
pub const CANNOT_CONNECT_NOW: &str = "57P03";
