fn main() -> std::process::ExitCode {
    drillkit::cli::wait_recovery::main()
}
