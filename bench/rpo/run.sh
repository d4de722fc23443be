#!/bin/sh
# RPO resolution, RTO precision of a promotion, canary write rate and CPU, against real
# PostgreSQL 15 clusters made by the test fixture (tests/suite/support/pg.rs). Needs root (or the
# postgres user) and /usr/lib/postgresql/15/bin. Prints Markdown tables; takes about a minute.
set -eu
cd "$(dirname "$0")/../.."
cargo test --release --test suite canary_rpo::bench_rpo -- --ignored --nocapture --test-threads 1 2>/dev/null \
  | sed -n '/^## /,$p' | grep -v '^test \|^test result\|^ok$'
