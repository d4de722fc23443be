fn main() -> std::process::ExitCode {
    drillkit::cli::common::built_from(option_env!("DRILLKIT_COMMIT"));
    drillkit::cli::drill::main()
}
