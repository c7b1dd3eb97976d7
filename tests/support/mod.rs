//! Shared harness for the integration tests: a real signed Debian archive
//! built on the fly ([`archive`]), an HTTP/1.1 file server on loopback
//! ([`server`]) and a fault-injecting one ([`faults`], with the checks of
//! faulted builds in [`faulted`]), hand-made data tarballs for crafted
//! packages ([`crafted`]), a runner for the `xbuild` binary
//! ([`xbuild`]) and readers for what it leaves on disk ([`files`],
//! [`oci`]), OCI images crafted entry by entry for `xbuild run --image`
//! ([`image`]) and the sandbox tests' callers and probe ([`sandbox`]), a
//! diff of two builds that should be byte-identical ([`reproducible`]),
//! and the host apt's Debian mirror ([`mirror`]).
//!
//! Every test binary includes this module with `mod support;`; not every
//! binary uses every helper, hence the `dead_code` allowance.

#![allow(dead_code)]

pub mod archive;
pub mod crafted;
pub mod dates;
pub mod elf;
pub mod faulted;
pub mod faults;
pub mod files;
pub mod gpg;
pub mod image;
pub mod mirror;
pub mod oci;
pub mod podman;
pub mod reproducible;
pub mod sandbox;
pub mod server;
pub mod suites;
pub mod xbuild;

use std::path::Path;
use std::process::Command;

/// Runs a command, panicking with its full output when it cannot start or
/// exits non-zero. Returns stdout.
pub fn run_ok(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed with {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Whether `path` exists without following a final symlink.
pub fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}
