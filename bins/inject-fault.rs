fn main() -> std::process::ExitCode {
    drillkit::cli::inject_fault::main()
}
