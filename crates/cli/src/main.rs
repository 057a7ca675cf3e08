//! The `trawl` command line (placeholder until the engine issue).

fn main() {
    eprintln!("trawl: not yet implemented");
    std::process::exit(2);
}
