//! `verify-backup`: check backup files in one read each and prove a dump restores.
fn main() -> std::process::ExitCode {
    drillkit::cli::common::built_from(option_env!("DRILLKIT_COMMIT"));
    drillkit::cli::verify_backup::main()
}
