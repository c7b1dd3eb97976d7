//! The `xbuild` binary: parse arguments, call the library, render errors.

// See lib.rs: errors are large on purpose, and only on the failure path.
#![allow(clippy::result_large_err)]

mod cli;

fn main() {
    std::process::exit(cli::run());
}
