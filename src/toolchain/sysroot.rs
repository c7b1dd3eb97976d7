//! A target sysroot (`sysroots-v3/<key>`): the target architecture's own
//! packages — `libc6-dev` and its closure, plus the `-dev` packages a build
//! names — unpacked into one directory laid out like the target's root:
//!
//! - merged `/usr`: `bin`, `sbin`, `lib` and `lib64` are symlinks into
//!   `usr/`, whatever the suite (bookworm's packages still ship `/lib`, so
//!   their files are moved under `usr/`), so the absolute paths in glibc's
//!   linker scripts (`/lib/<multiarch>/libc.so.6`, ppc64el's
//!   `/lib64/ld64.so.2`) resolve inside it whichever suite it holds;
//! - absolute symlinks (`libz.so -> /lib/…`) made relative, so nothing
//!   leads into the build machine's root.
//!
//! It depends only on the packages, never on the build machine or the
//! compiler: every toolchain of the target shares it, and its key is the
//! packages' digests.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ToolchainError, io_error, relativize_symlinks};
use crate::debian::unpack::unpack_deb;
use crate::platform::Platform;

/// Version of the layout above: part of every sysroot key.
pub const LAYOUT: &str = "sysroot-merged-usr-v1";

/// The file describing a finished sysroot.
const DESCRIPTION_FILE: &str = "xbuild-sysroot.json";

/// Top-level directories that are symlinks into `usr/`.
const MERGED: [&str; 6] = ["bin", "sbin", "lib", "lib64", "lib32", "libx32"];

/// What `xbuild-sysroot.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Description {
    /// `name version` of every package, in unpack order.
    packages: Vec<String>,
}

/// Whether `root` holds a finished sysroot.
pub fn is_complete(root: &Path) -> bool {
    root.join(DESCRIPTION_FILE).is_file()
}

/// Unpacks `debs` (in order, the later winning where two ship one path)
/// into `work`, an empty directory (the cache renames it into place), as
/// the sysroot of `target`, and checks that the C library is there.
/// `packages` names them for the description.
pub fn assemble(
    debs: &[PathBuf],
    packages: &[String],
    target: &Platform,
    work: &Path,
) -> Result<(), ToolchainError> {
    for deb in debs {
        unpack_deb(deb, work).map_err(|source| ToolchainError::Unpack {
            deb: deb.clone(),
            source,
        })?;
    }
    merge_usr(work)?;
    relativize_symlinks(work, work)?;
    let missing = |what| ToolchainError::Missing {
        root: work.to_owned(),
        triple: target.gnu_triple.clone(),
        what,
    };
    let library = work.join("usr/lib").join(&target.multiarch);
    for (path, what) in [
        (
            work.join("usr/include/stdio.h"),
            "C library headers (libc6-dev)",
        ),
        (library.join("crt1.o"), "C start files (libc6-dev)"),
        (library.join("libc.so.6"), "C library (libc6)"),
    ] {
        if !path.exists() {
            return Err(missing(what));
        }
    }
    if let Some(interpreter) = &target.elf_interpreter
        && !work.join(interpreter.trim_start_matches('/')).exists()
    {
        return Err(missing("dynamic loader (libc6)"));
    }
    let description = work.join(DESCRIPTION_FILE);
    let json = serde_json::to_vec_pretty(&Description {
        packages: packages.to_vec(),
    })
    .expect("a description always serializes");
    fs_err::write(&description, json).map_err(|source| io_error(&description, source))
}

/// Moves what the packages put in `/bin`, `/sbin`, `/lib`… under `usr/`
/// and makes those directories symlinks there.
fn merge_usr(work: &Path) -> Result<(), ToolchainError> {
    for name in MERGED {
        let top = work.join(name);
        let usr = work.join("usr").join(name);
        match fs_err::symlink_metadata(&top) {
            Ok(metadata) if metadata.is_dir() => {
                merge_into(&top, &usr)?;
                fs_err::remove_dir_all(&top).map_err(|source| io_error(&top, source))?;
            }
            Ok(_) => {
                // A symlink already (a merged-/usr package), or a file.
                fs_err::remove_file(&top).map_err(|source| io_error(&top, source))?;
            }
            Err(_) if !usr.exists() && !["bin", "sbin", "lib", "lib64"].contains(&name) => {
                continue;
            }
            Err(_) => {}
        }
        fs_err::os::unix::fs::symlink(format!("usr/{name}"), &top)
            .map_err(|source| io_error(&top, source))?;
    }
    Ok(())
}

/// Moves every entry of `from` into `to` (created if missing), merging
/// directories; where both have a file, `to`'s is kept.
fn merge_into(from: &Path, to: &Path) -> Result<(), ToolchainError> {
    fs_err::create_dir_all(to).map_err(|source| io_error(to, source))?;
    for entry in fs_err::read_dir(from).map_err(|source| io_error(from, source))? {
        let entry = entry.map_err(|source| io_error(from, source))?;
        let source_path = entry.path();
        let destination = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|source| io_error(&source_path, source))?;
        match fs_err::symlink_metadata(&destination) {
            Err(_) => fs_err::rename(&source_path, &destination)
                .map_err(|source| io_error(&destination, source))?,
            Ok(existing) if existing.is_dir() && kind.is_dir() => {
                merge_into(&source_path, &destination)?
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fs_err as fs;

    #[test]
    fn top_level_directories_are_merged_into_usr() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path();
        fs::create_dir_all(work.join("lib/aarch64-linux-gnu")).unwrap();
        fs::write(work.join("lib/aarch64-linux-gnu/libc.so.6"), "libc").unwrap();
        fs::create_dir_all(work.join("usr/lib/aarch64-linux-gnu")).unwrap();
        fs::write(work.join("usr/lib/aarch64-linux-gnu/libc.so"), "script").unwrap();
        fs::create_dir_all(work.join("lib64")).unwrap();
        std::os::unix::fs::symlink("/lib/aarch64-linux-gnu/libc.so.6", work.join("lib64/ld.so"))
            .unwrap();
        merge_usr(work).unwrap();
        relativize_symlinks(work, work).unwrap();
        for name in ["bin", "sbin", "lib", "lib64"] {
            assert_eq!(
                fs::read_link(work.join(name)).unwrap(),
                PathBuf::from(format!("usr/{name}"))
            );
        }
        assert!(!work.join("lib32").exists());
        assert_eq!(
            fs::read(work.join("lib/aarch64-linux-gnu/libc.so.6")).unwrap(),
            b"libc"
        );
        assert_eq!(
            fs::read(work.join("usr/lib/aarch64-linux-gnu/libc.so")).unwrap(),
            b"script"
        );
        // The loader link moved to usr/lib64 and still resolves inside.
        assert_eq!(fs::read(work.join("lib64/ld.so")).unwrap(), b"libc");
    }
}
