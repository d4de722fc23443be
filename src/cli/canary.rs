//! `measure-rto canary` flags (owned by the PostgreSQL work).
