fn main() -> std::process::ExitCode {
    cgc_gateway::cli::main()
}
