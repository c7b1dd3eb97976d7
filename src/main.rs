//! The `xbuild` binary: parse arguments, call the library, render errors.

mod cli;

fn main() {
    std::process::exit(cli::run());
}
