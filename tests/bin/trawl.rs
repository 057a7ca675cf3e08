//! The `trawl` program, for the end-to-end tests to run as a process.

fn main() -> std::process::ExitCode {
    trawl::main()
}
