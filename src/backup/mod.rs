//! Backup verification (see verify-backup).
