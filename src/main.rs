//! `knut`: the command line of Knutpunkt. Everything happens in the library.

fn main() -> std::process::ExitCode {
    knutpunkt::cli::main()
}
