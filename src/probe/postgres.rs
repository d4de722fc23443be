//! PostgreSQL probe (owned by the PostgreSQL work).
