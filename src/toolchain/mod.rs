//! Toolchains that run on the build machine and emit code for the target.
//! The cross GCC ([`gcc`]) is assembled from Debian's prebuilt cross
//! packages, never built from source. A toolchain is a directory that can
//! be moved or shared through the cache: its wrapper scripts find
//! everything relative to themselves, its sysroot is laid out like the
//! target's root file system, and its identity ([`CrossGcc::version`]) names
//! the compiler and package versions, not the machine it was unpacked on.

pub mod gcc;
pub mod rust;

pub use gcc::{CrossGcc, assemble, cross_packages};

use std::io;
use std::path::PathBuf;

use crate::debian::deb::DebError;
use crate::debian::unpack::UnpackError;

/// Everything that can go wrong while assembling or opening a toolchain.
#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    #[error("cannot unpack {deb} into the toolchain")]
    Unpack {
        deb: PathBuf,
        #[source]
        source: UnpackError,
    },
    #[error("cannot read the control file of {deb}")]
    Control {
        deb: PathBuf,
        #[source]
        source: DebError,
    },
    #[error("cannot write or read {path} while assembling the toolchain")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the packages unpacked into {root} have no {what} for {triple}; is a package missing from the list?"
    )]
    Missing {
        root: PathBuf,
        triple: String,
        what: &'static str,
    },
    #[error("{root} already exists; remove it or open it instead of assembling again")]
    RootExists { root: PathBuf },
    #[error("cannot run {program}")]
    Run {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: PathBuf,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("{path} is not a toolchain description xbuild wrote")]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}
