//! The `xbuild` binary: parse arguments, call the library, render errors.

// See lib.rs: errors are large on purpose, and only on the failure path.
#![allow(clippy::result_large_err)]

mod cli;

fn main() {
    // The sandbox helper of `xbuild run`, first thing: it must still have
    // one thread.
    #[cfg(target_os = "linux")]
    if let Some(config) = std::env::var_os(xbuild::run::HELPER_VARIABLE) {
        std::process::exit(xbuild::run::sandbox::helper(&config));
    }
    std::process::exit(cli::run());
}
