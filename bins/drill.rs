fn main() -> std::process::ExitCode {
    drillkit::cli::drill::main()
}
