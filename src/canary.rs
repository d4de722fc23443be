//! Canary writer for measured RPO (owned by the PostgreSQL work).
