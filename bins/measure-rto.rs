fn main() -> std::process::ExitCode {
    drillkit::cli::measure_rto::main()
}
