//! An image's layers applied in order into one directory: the root
//! filesystem `xbuild run` mounts. OCI whiteouts are honoured (`.wh.NAME`
//! removes NAME of the layers below, `.wh..wh..opq` empties a directory of
//! what the layers below put there); modes, symlinks and hard links are
//! kept, owners too when running as root. No entry writes outside the
//! root: paths with `..` are refused, and every directory on the way to an
//! entry is resolved inside the root (a symlink `bin -> /usr/bin` leads to
//! `ROOT/usr/bin`, never to the host's).

use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("cannot read layer {}", layer.display())]
    Read {
        layer: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer {} has an entry {path:?} that leaves the root filesystem", layer.display())]
    Escape { layer: PathBuf, path: String },
    #[error("cannot write {} (from layer {})", path.display(), layer.display())]
    Write {
        layer: PathBuf,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Symlinks followed on the way to one entry at most (as the kernel's 40).
const MAX_LINKS: usize = 40;

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Applies `layers` (tar, gzip or zstd tar files), lowest first, into the
/// empty directory `root`. `as_root`: set owners and device nodes (which
/// need privileges); otherwise everything belongs to the caller, and
/// device nodes are left out. Returns the number of entries applied.
pub fn apply_layers(root: &Path, layers: &[PathBuf], as_root: bool) -> Result<u64, RootfsError> {
    let mut directory_modes = BTreeMap::new();
    let mut count = 0;
    for layer in layers {
        count += apply_layer(root, layer, as_root, &mut directory_modes)?;
    }
    // Modes of directories last, deepest first: a read-only directory
    // still took its children.
    for (path, mode) in directory_modes.iter().rev() {
        fs::set_permissions(path, fs::Permissions::from_mode(*mode)).map_err(|source| {
            RootfsError::Write {
                layer: PathBuf::new(),
                path: path.clone(),
                source,
            }
        })?;
    }
    Ok(count)
}

fn open_layer(layer: &Path) -> io::Result<Box<dyn Read>> {
    let mut file = io::BufReader::new(fs::File::open(layer)?);
    let magic = {
        use io::BufRead;
        file.fill_buf()?.get(..4).map(<[u8]>::to_vec)
    };
    Ok(match magic.as_deref() {
        Some([0x1f, 0x8b, ..]) => Box::new(flate2::read::GzDecoder::new(file)),
        Some([0x28, 0xb5, 0x2f, 0xfd]) => Box::new(zstd::Decoder::with_buffer(file)?),
        _ => Box::new(file),
    })
}

/// The components of an entry's path (`./usr/bin/`, `/etc/x`), or `None`
/// if one is `..`.
fn components(path: &[u8]) -> Option<Vec<OsString>> {
    let mut out = Vec::new();
    for part in path.split(|byte| *byte == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return None,
            name => out.push(OsStr::from_bytes(name).to_owned()),
        }
    }
    Some(out)
}

/// The host path of the directory `parents` inside `root`, symlinks
/// resolved inside the root. Missing directories are created (mode 0755)
/// when `create`, else `None` is returned.
pub fn resolve_dir(root: &Path, parents: &[OsString], create: bool) -> io::Result<Option<PathBuf>> {
    let mut pending: Vec<OsString> = parents.iter().rev().cloned().collect();
    let mut stack: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == "." || part.is_empty() {
            continue;
        }
        if part == ".." {
            stack.pop();
            continue;
        }
        let mut here = root.to_path_buf();
        here.extend(&stack);
        here.push(&part);
        match fs::symlink_metadata(&here) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::other(format!(
                        "too many symlinks on the way to {}",
                        here.display()
                    )));
                }
                let target = fs::read_link(&here)?;
                let bytes = target.as_os_str().as_bytes();
                if bytes.starts_with(b"/") {
                    stack.clear();
                }
                for piece in bytes.split(|byte| *byte == b'/').rev() {
                    pending.push(OsStr::from_bytes(piece).to_owned());
                }
            }
            Ok(metadata) if metadata.is_dir() => stack.push(part),
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{} is not a directory", here.display()),
                ));
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                if !create {
                    return Ok(None);
                }
                fs::create_dir(&here)?;
                stack.push(part);
            }
            Err(error) => return Err(error),
        }
    }
    let mut here = root.to_path_buf();
    here.extend(&stack);
    Ok(Some(here))
}

/// Removes whatever is at `path` (not following a symlink there).
fn remove(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => {
            make_writable(path)?;
            fs::remove_dir_all(path)
        }
        Ok(_) => fs::remove_file(path),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Gives the owner write access to `path` and the directories in it, so
/// they can be emptied.
fn make_writable(path: &Path) -> io::Result<()> {
    let metadata = fs::symlink_metadata(path)?;
    if metadata.is_dir() {
        let mode = metadata.permissions().mode();
        if mode & 0o700 != 0o700 {
            fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o700))?;
        }
        for child in fs::read_dir(path)? {
            make_writable(&child?.path())?;
        }
    }
    Ok(())
}

fn apply_layer(
    root: &Path,
    layer: &Path,
    as_root: bool,
    directory_modes: &mut BTreeMap<PathBuf, u32>,
) -> Result<u64, RootfsError> {
    let read = |source| RootfsError::Read {
        layer: layer.to_owned(),
        source,
    };
    let mut archive = tar::Archive::new(open_layer(layer).map_err(read)?);
    // What this layer made: an opaque directory keeps those.
    let mut made: HashSet<PathBuf> = HashSet::new();
    let mut count = 0;
    for entry in archive.entries().map_err(read)? {
        let mut entry = entry.map_err(read)?;
        let raw = entry.path_bytes().into_owned();
        let escape = || RootfsError::Escape {
            layer: layer.to_owned(),
            path: String::from_utf8_lossy(&raw).into_owned(),
        };
        let Some(mut parts) = components(&raw) else {
            return Err(escape());
        };
        let Some(name) = parts.pop() else {
            continue; // the root itself
        };
        let write = |path: &Path, source| RootfsError::Write {
            layer: layer.to_owned(),
            path: path.to_owned(),
            source,
        };
        if let Some(hidden) = name.as_bytes().strip_prefix(WHITEOUT.as_bytes()) {
            let Some(dir) = resolve_dir(root, &parts, false).map_err(|e| write(root, e))? else {
                continue;
            };
            if name == OPAQUE {
                for child in fs::read_dir(&dir).map_err(|e| write(&dir, e))? {
                    let child = child.map_err(|e| write(&dir, e))?.path();
                    if !made.contains(&child) {
                        remove(&child).map_err(|e| write(&child, e))?;
                        directory_modes.retain(|path, _| !path.starts_with(&child));
                    }
                }
            } else {
                let gone = dir.join(OsStr::from_bytes(hidden));
                remove(&gone).map_err(|e| write(&gone, e))?;
                directory_modes.retain(|path, _| !path.starts_with(&gone));
            }
            count += 1;
            continue;
        }
        let dir = resolve_dir(root, &parts, true)
            .map_err(|e| write(root, e))?
            .expect("created");
        let path = dir.join(&name);
        let header = entry.header();
        let mode = header.mode().map_err(read)? & 0o7777;
        let kind = header.entry_type();
        let owner = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
        let existing = fs::symlink_metadata(&path).ok();
        let keep_dir = kind.is_dir() && existing.as_ref().is_some_and(|m| m.is_dir());
        if !keep_dir && existing.is_some() {
            remove(&path).map_err(|e| write(&path, e))?;
            directory_modes.retain(|dir, _| !dir.starts_with(&path));
        }
        match kind {
            tar::EntryType::Directory => {
                if !keep_dir {
                    fs::create_dir(&path).map_err(|e| write(&path, e))?;
                }
                directory_modes.insert(path.clone(), mode);
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut file = fs::File::create(&path).map_err(|e| write(&path, e))?;
                io::copy(&mut entry, &mut file).map_err(read)?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(escape)?.into_owned();
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .map_err(|e| write(&path, e))?;
            }
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().ok_or_else(escape)?.into_owned();
                let mut target_parts = components(&target).ok_or_else(escape)?;
                let target_name = target_parts.pop().ok_or_else(escape)?;
                let target_dir = resolve_dir(root, &target_parts, false)
                    .map_err(|e| write(&path, e))?
                    .ok_or_else(|| write(&path, io::ErrorKind::NotFound.into()))?;
                fs::hard_link(target_dir.join(target_name), &path).map_err(|e| write(&path, e))?;
            }
            tar::EntryType::Fifo => {
                make_node(&path, libc_mode(kind) | mode, 0).map_err(|e| write(&path, e))?
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                if !as_root {
                    continue;
                }
                let device = device_number(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                make_node(&path, libc_mode(kind) | mode, device).map_err(|e| write(&path, e))?;
            }
            _ => continue,
        }
        if as_root {
            std::os::unix::fs::lchown(&path, Some(owner.0 as u32), Some(owner.1 as u32))
                .map_err(|e| write(&path, e))?;
        }
        if matches!(
            kind,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Fifo
        ) {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .map_err(|e| write(&path, e))?;
        }
        made.insert(path);
        count += 1;
    }
    Ok(count)
}

#[cfg(target_os = "linux")]
fn libc_mode(kind: tar::EntryType) -> u32 {
    match kind {
        tar::EntryType::Char => libc::S_IFCHR,
        tar::EntryType::Block => libc::S_IFBLK,
        _ => libc::S_IFIFO,
    }
}

#[cfg(target_os = "linux")]
fn device_number(major: u32, minor: u32) -> u64 {
    libc::makedev(major, minor)
}

#[cfg(target_os = "linux")]
fn make_node(path: &Path, mode: u32, device: u64) -> io::Result<()> {
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: a valid C string; mknod reads nothing else.
    if unsafe { libc::mknod(path.as_ptr(), mode, device) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn libc_mode(_: tar::EntryType) -> u32 {
    0
}

#[cfg(not(target_os = "linux"))]
fn device_number(_: u32, _: u32) -> u64 {
    0
}

#[cfg(not(target_os = "linux"))]
fn make_node(_: &Path, _: u32, _: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
#[path = "rootfs_tests.rs"]
mod tests;
