/// The binary's allocator (the library and its tests keep the system's): under load glibc's
/// malloc spent a seventh of the gateway's time in its own bookkeeping (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cgc_gateway::cli::main()
}
