//! Toolchains that run on the build machine and emit code for the target.
//! A glibc target's compiler is made of Debian's binary packages
//! ([`gcc`]): the compiler programs for the (build, target) pair, native or
//! cross, joined with a sysroot of the target's own packages
//! ([`sysroot`]). When Debian has no compiler for the pair (musl targets),
//! one is built from Debian's source packages ([`source`]). Rust target
//! libraries come from rustup ([`rust`]). Every part is a directory that
//! can be moved or shared through the cache: wrapper scripts find
//! everything relative to themselves, a sysroot is laid out like the
//! target's root file system, and a compiler's identity
//! ([`CrossGcc::version`]) names the Debian sources and versions it is made
//! of, not the machine it was unpacked on.

pub mod gcc;
pub mod rust;
pub mod source;
pub mod sysroot;

pub use gcc::{CrossGcc, Programs, compose, debian_packages};

use std::io;
use std::path::{Path, PathBuf};

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
    #[error(
        "building a toolchain from source needs `{tool}` on this machine ({reason}); install it (Debian: apt-get install {package})"
    )]
    HostTool {
        tool: &'static str,
        package: &'static str,
        reason: String,
    },
    #[error(
        "{compiler} would search the {what} {directory}, which is outside its toolchain and sysroot: host files must never reach a cross build"
    )]
    HostPathUsed {
        compiler: PathBuf,
        directory: PathBuf,
        what: &'static str,
    },
    #[error("{path} is not a toolchain description xbuild wrote")]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io_error(path: &Path, source: io::Error) -> ToolchainError {
    ToolchainError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How [`copy_tree`] copies regular files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFiles {
    /// Hard links where the file system allows (for trees never written
    /// in place), copies otherwise.
    HardLink,
    Copy,
}

/// Copies a directory tree into `to` (created if missing), recreating
/// symlinks as they are.
pub fn copy_tree(from: &Path, to: &Path, files: CopyFiles) -> Result<(), ToolchainError> {
    fs_err::create_dir_all(to).map_err(|source| io_error(to, source))?;
    for entry in fs_err::read_dir(from).map_err(|source| io_error(from, source))? {
        let entry = entry.map_err(|source| io_error(from, source))?;
        let source_path = entry.path();
        let destination = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|source| io_error(&source_path, source))?;
        if kind.is_dir() {
            copy_tree(&source_path, &destination, files)?;
        } else if kind.is_symlink() {
            let link =
                fs_err::read_link(&source_path).map_err(|source| io_error(&source_path, source))?;
            std::os::unix::fs::symlink(&link, &destination)
                .map_err(|source| io_error(&destination, source))?;
        } else if files == CopyFiles::Copy || fs_err::hard_link(&source_path, &destination).is_err()
        {
            fs_err::copy(&source_path, &destination)
                .map_err(|source| io_error(&destination, source))?;
        }
    }
    Ok(())
}

/// Calls `visit` with every entry below `directory` that is not a
/// directory (recursively, symlinks not followed) and its type.
pub fn walk_entries(
    directory: &Path,
    visit: &mut dyn FnMut(&Path, std::fs::FileType) -> Result<(), ToolchainError>,
) -> Result<(), ToolchainError> {
    for entry in fs_err::read_dir(directory).map_err(|source| io_error(directory, source))? {
        let entry = entry.map_err(|source| io_error(directory, source))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|source| io_error(&path, source))?;
        if kind.is_dir() {
            walk_entries(&path, visit)?;
        } else {
            visit(&path, kind)?;
        }
    }
    Ok(())
}

/// Rewrites every absolute symlink under `directory` to a relative one that
/// points to the same path inside `root` (a sysroot: `libz.so -> /lib/…`
/// must not lead into the build machine's root).
pub fn relativize_symlinks(root: &Path, directory: &Path) -> Result<(), ToolchainError> {
    walk_entries(directory, &mut |path, kind| {
        if !kind.is_symlink() {
            return Ok(());
        }
        let target = fs_err::read_link(path).map_err(|source| io_error(path, source))?;
        if let Ok(inside) = target.strip_prefix("/") {
            let depth = path
                .parent()
                .and_then(|parent| parent.strip_prefix(root).ok())
                .map(|relative| relative.components().count())
                .unwrap_or(0);
            let mut relative = PathBuf::new();
            for _ in 0..depth {
                relative.push("..");
            }
            relative.push(inside);
            fs_err::remove_file(path).map_err(|source| io_error(path, source))?;
            std::os::unix::fs::symlink(&relative, path).map_err(|source| io_error(path, source))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fs_err as fs;

    #[test]
    fn absolute_symlinks_become_sysroot_relative() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("usr/lib/aarch64-linux-gnu");
        fs::create_dir_all(&lib).unwrap();
        fs::create_dir_all(dir.path().join("lib/aarch64-linux-gnu")).unwrap();
        fs::write(dir.path().join("lib/aarch64-linux-gnu/libfoo.so.1"), "elf").unwrap();
        std::os::unix::fs::symlink("/lib/aarch64-linux-gnu/libfoo.so.1", lib.join("libfoo.so"))
            .unwrap();
        std::os::unix::fs::symlink("libfoo.so", lib.join("libbar.so")).unwrap();
        relativize_symlinks(dir.path(), dir.path()).unwrap();
        assert_eq!(
            fs::read_link(lib.join("libfoo.so")).unwrap(),
            PathBuf::from("../../../lib/aarch64-linux-gnu/libfoo.so.1")
        );
        assert_eq!(fs::read(lib.join("libfoo.so")).unwrap(), b"elf");
        assert_eq!(
            fs::read_link(lib.join("libbar.so")).unwrap(),
            PathBuf::from("libfoo.so")
        );
    }
}
