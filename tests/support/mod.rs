//! Shared test support: run the real binaries, make real services.
#![allow(dead_code)]

pub mod cmd;
pub mod docker;
pub mod engine;
pub mod netns;
pub mod pg;

/// Tests skip (with a line on stderr) when an engine or server they need is missing — unless
/// `DRILLKIT_REQUIRE_FIXTURES` is set, as `scripts/test.sh` does after installing them all: there a
/// missing fixture is a failed test, so a broken install step cannot hide behind skips.
pub fn fixture(what: &str, present: bool) -> bool {
    if !present && std::env::var_os("DRILLKIT_REQUIRE_FIXTURES").is_some() {
        panic!(
            "{what} is missing and DRILLKIT_REQUIRE_FIXTURES is set: failing instead of skipping"
        );
    }
    present
}
