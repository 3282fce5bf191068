//! `knut`: the command line of Knutpunkt. Everything happens in the library.

/// mimalloc: a route worker makes many small, short-lived allocations per message (XML
/// events, JSON and jq values, envelopes), where the system allocator took about a third
/// of the worker's CPU time in the relay benchmark. Set here, not in the library, so a
/// program embedding Knutpunkt keeps its own choice.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    knutpunkt::cli::main()
}
