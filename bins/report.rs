fn main() -> std::process::ExitCode {
    drillkit::cli::report::main()
}
