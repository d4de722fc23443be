//! `verify-backup` flags (owned by the verify-backup work).
