//! The `trawl` binary: see the `trawl` library and README.md.

fn main() -> std::process::ExitCode {
    trawl::main()
}
