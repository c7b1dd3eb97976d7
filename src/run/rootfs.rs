//! An image's layers applied in order into one directory: the root
//! filesystem `xbuild run` mounts. OCI whiteouts are honoured (`.wh.NAME`
//! removes NAME of the layers below, `.wh..wh..opq` empties a directory of
//! what the layers below put there); modes, symlinks and hard links are
//! kept. No entry reads, writes or removes anything outside the root:
//! paths with `..` are refused, every directory on the way to an entry is
//! resolved inside the root (a symlink `bin -> /usr/bin` leads to
//! `ROOT/usr/bin`, never to the host's, and `up -> ../..` stays at
//! `ROOT`), and a whiteout whose name is `.wh.` alone, `.wh..`, `.wh...` or
//! another reserved `.wh..wh.` name is refused, naming its layer.
//!
//! The tree lives on the host's disk, in the cache, where local users may
//! reach it, so it never holds what would hand them privileges: device
//! nodes are left out (the sandbox's `/dev` has what commands need), and
//! set-user-ID and set-group-ID bits are taken off, recorded in
//! [`Applied::set_id`] for the sandbox to put back inside its own overlay.
//! Owners are the caller's, or, when the caller is root, the image's ids
//! shifted into the sandbox's subordinate range ([`Ownership`]): no file
//! of an image is owned by the host's root.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
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
    #[error("layer {} has a whiteout {path:?} that {reason}; it is refused", layer.display())]
    Whiteout {
        layer: PathBuf,
        path: String,
        reason: &'static str,
    },
    #[error(
        "layer {} has an entry {path:?} owned by {uid}:{gid}, beyond the {uids} uids and {gids} gids the sandbox maps",
        layer.display()
    )]
    Owner {
        layer: PathBuf,
        path: String,
        uid: u64,
        gid: u64,
        uids: u32,
        gids: u32,
    },
    #[error("cannot set the modes and owners of {} (after the last layer)", path.display())]
    Finish {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {} (from layer {})", path.display(), layer.display())]
    Write {
        layer: PathBuf,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl RootfsError {
    pub fn hint(&self) -> Option<String> {
        match self {
            RootfsError::Whiteout { .. } | RootfsError::Escape { .. } => Some(
                "the image was crafted or damaged: rebuild it, or ask whoever made it; xbuild run never applies such an entry".into(),
            ),
            RootfsError::Owner { .. } => Some(
                "give root a larger range in /etc/subuid and /etc/subgid (a line `root:START:COUNT` in each)".into(),
            ),
            _ => None,
        }
    }
}

/// A range of host ids: `start`, `start + 1`, … `start + count - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub start: u32,
    pub count: u32,
}

/// Who owns the files of a root filesystem on the host's disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ownership {
    /// Everything is the caller's (`uid`:`gid`, a user other than root,
    /// who cannot give files away): root's inside the sandbox.
    Caller { uid: u32, gid: u32 },
    /// The caller is root: the image's uid N is `uids.start + N` on disk,
    /// its gid N `gids.start + N`, the ids the sandbox maps to 0….
    Shifted { uids: IdRange, gids: IdRange },
}

impl Ownership {
    /// Its part of the cache key of a root filesystem: a tree made for one
    /// ownership is never mounted for another.
    pub fn key_text(&self) -> String {
        match self {
            Ownership::Caller { uid, gid } => format!("caller {uid}:{gid}"),
            Ownership::Shifted { uids, gids } => format!(
                "shifted uids {}+{} gids {}+{}",
                uids.start, uids.count, gids.start, gids.count
            ),
        }
    }
}

/// A file or directory of the image with a set-user-ID or set-group-ID
/// bit: on disk without it, given back inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetId {
    /// Relative to the root, `/`-separated, every component a real
    /// directory of the tree.
    pub path: String,
    /// The image's mode (permission bits, with the set-id ones).
    pub mode: u32,
}

/// What [`apply_layers`] did.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Entries applied (files, directories, links, whiteouts).
    pub entries: u64,
    /// Entries whose set-id bits were taken off, sorted by path.
    pub set_id: Vec<SetId>,
    /// Device nodes of the layers, left out.
    pub devices_skipped: u64,
}

/// Symlinks followed on the way to one entry at most (as the kernel's 40).
const MAX_LINKS: usize = 40;

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
const SET_ID_BITS: u32 = 0o6000;

/// Applies `layers` (tar, gzip or zstd tar files), lowest first, into the
/// empty directory `root`, owned as `ownership` says (see the module doc
/// for what is left out and taken off).
pub fn apply_layers(
    root: &Path,
    layers: &[PathBuf],
    ownership: &Ownership,
) -> Result<Applied, RootfsError> {
    let mut state = State {
        root,
        ownership,
        directory_modes: BTreeMap::new(),
        applied: Applied::default(),
    };
    for layer in layers {
        state.apply_layer(layer)?;
    }
    let wrote = |path: &Path| {
        let path = path.to_owned();
        move |source| RootfsError::Finish { path, source }
    };
    let mut set_id = strip_set_id_files(root, ownership).map_err(wrote(root))?;
    // Modes of directories last, deepest first: a read-only directory
    // still took its children.
    for (path, mode) in state.directory_modes.iter().rev() {
        let metadata = fs::symlink_metadata(path).map_err(wrote(path))?;
        if !metadata.is_dir() {
            continue;
        }
        if mode & SET_ID_BITS != 0
            && let Some(relative) = relative_text(root, path)
        {
            set_id.push(SetId {
                path: relative,
                mode: *mode,
            });
        }
        fs::set_permissions(path, fs::Permissions::from_mode(mode & !SET_ID_BITS))
            .map_err(wrote(path))?;
    }
    set_id.sort_by(|a, b| a.path.cmp(&b.path));
    state.applied.set_id = set_id;
    Ok(state.applied)
}

/// `path` relative to `root`, as text (`None` for a name that is not
/// UTF-8: such an entry keeps its bits off).
fn relative_text(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    relative.to_str().map(str::to_owned)
}

/// Takes the set-id bits off every regular file under `root` (symlinks
/// are not followed), returning what they were; gives the directories
/// xbuild made on the way (owned by the host's root) to the sandbox's
/// root when the ids are shifted.
fn strip_set_id_files(root: &Path, ownership: &Ownership) -> io::Result<Vec<SetId>> {
    let mut found = Vec::new();
    // One inode, several hard links: each path keeps the image's mode.
    let mut modes: HashMap<(u64, u64), u32> = HashMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = fs::symlink_metadata(&path)?;
        if let Ownership::Shifted { uids, gids } = ownership
            && !metadata.file_type().is_symlink()
            && (metadata.uid() == 0 || metadata.gid() == 0)
        {
            let uid = if metadata.uid() == 0 {
                uids.start
            } else {
                metadata.uid()
            };
            let gid = if metadata.gid() == 0 {
                gids.start
            } else {
                metadata.gid()
            };
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
        }
        if metadata.is_dir() {
            for child in fs::read_dir(&path)? {
                pending.push(child?.path());
            }
        } else if metadata.is_file() {
            let key = (metadata.dev(), metadata.ino());
            let mode = match modes.get(&key) {
                Some(mode) => *mode,
                None if metadata.mode() & SET_ID_BITS != 0 => {
                    let mode = metadata.mode() & 0o7777;
                    fs::set_permissions(&path, fs::Permissions::from_mode(mode & !SET_ID_BITS))?;
                    modes.insert(key, mode);
                    mode
                }
                None => continue,
            };
            if let Some(relative) = relative_text(root, &path) {
                found.push(SetId {
                    path: relative,
                    mode,
                });
            }
        }
    }
    Ok(found)
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

/// Why a whiteout's name is refused, if it is: the name it hides must be
/// one entry of its directory (not the directory itself, nor its parent),
/// and `.wh..wh.` names other than the opaque marker are reserved.
fn bad_whiteout(hidden: &[u8]) -> Option<&'static str> {
    match hidden {
        b"" => Some("hides no name (`.wh.` alone)"),
        b"." => Some("would hide its own directory (`.wh..`)"),
        b".." => Some("would hide the directory above it (`.wh...`)"),
        _ if hidden.starts_with(WHITEOUT.as_bytes()) => {
            Some("has a reserved `.wh..wh.` name other than the opaque marker `.wh..wh..opq`")
        }
        _ => None,
    }
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

/// The layers being applied.
struct State<'a> {
    root: &'a Path,
    ownership: &'a Ownership,
    directory_modes: BTreeMap<PathBuf, u32>,
    applied: Applied,
}

impl State<'_> {
    /// Removes `path` (strictly inside the root) and forgets the modes of
    /// the directories it held.
    fn remove(&mut self, path: &Path) -> io::Result<()> {
        if path == self.root || !path.starts_with(self.root) {
            return Err(io::Error::other(format!(
                "{} is not inside the root {}",
                path.display(),
                self.root.display()
            )));
        }
        remove(path)?;
        self.directory_modes
            .retain(|directory, _| !directory.starts_with(path));
        Ok(())
    }

    /// The host ids of an entry owned by `uid`:`gid` in the image.
    fn owner(&self, uid: u64, gid: u64) -> Option<Option<(u32, u32)>> {
        match self.ownership {
            Ownership::Caller { .. } => Some(None),
            Ownership::Shifted { uids, gids } => {
                if uid >= u64::from(uids.count) || gid >= u64::from(gids.count) {
                    return None;
                }
                Some(Some((uids.start + uid as u32, gids.start + gid as u32)))
            }
        }
    }

    fn apply_layer(&mut self, layer: &Path) -> Result<(), RootfsError> {
        let root = self.root;
        let read = |source| RootfsError::Read {
            layer: layer.to_owned(),
            source,
        };
        let mut archive = tar::Archive::new(open_layer(layer).map_err(read)?);
        // What this layer made: an opaque directory keeps those.
        let mut made: HashSet<PathBuf> = HashSet::new();
        for entry in archive.entries().map_err(read)? {
            let mut entry = entry.map_err(read)?;
            let raw = entry.path_bytes().into_owned();
            let text = String::from_utf8_lossy(&raw).into_owned();
            let escape = || RootfsError::Escape {
                layer: layer.to_owned(),
                path: text.clone(),
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
                if name != OPAQUE
                    && let Some(reason) = bad_whiteout(hidden)
                {
                    return Err(RootfsError::Whiteout {
                        layer: layer.to_owned(),
                        path: text,
                        reason,
                    });
                }
                let Some(dir) = resolve_dir(root, &parts, false).map_err(|e| write(root, e))?
                else {
                    continue;
                };
                if name == OPAQUE {
                    for child in fs::read_dir(&dir).map_err(|e| write(&dir, e))? {
                        let child = child.map_err(|e| write(&dir, e))?.path();
                        if !made.contains(&child) {
                            self.remove(&child).map_err(|e| write(&child, e))?;
                        }
                    }
                } else {
                    let gone = dir.join(OsStr::from_bytes(hidden));
                    self.remove(&gone).map_err(|e| write(&gone, e))?;
                }
                self.applied.entries += 1;
                continue;
            }
            let header = entry.header();
            let kind = header.entry_type();
            if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
                self.applied.devices_skipped += 1;
                continue;
            }
            let mode = header.mode().map_err(read)? & 0o7777;
            let (uid, gid) = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
            // A hard link has its target's owner.
            let owner = if kind == tar::EntryType::Link {
                Some(None)
            } else {
                self.owner(uid, gid)
            };
            let Some(owner) = owner else {
                let (uids, gids) = match self.ownership {
                    Ownership::Shifted { uids, gids } => (uids.count, gids.count),
                    Ownership::Caller { .. } => (0, 0),
                };
                return Err(RootfsError::Owner {
                    layer: layer.to_owned(),
                    path: text,
                    uid,
                    gid,
                    uids,
                    gids,
                });
            };
            let dir = resolve_dir(root, &parts, true)
                .map_err(|e| write(root, e))?
                .expect("created");
            let path = dir.join(&name);
            let existing = fs::symlink_metadata(&path).ok();
            let keep_dir = kind.is_dir() && existing.as_ref().is_some_and(|m| m.is_dir());
            if !keep_dir && existing.is_some() {
                self.remove(&path).map_err(|e| write(&path, e))?;
            }
            match kind {
                tar::EntryType::Directory => {
                    if !keep_dir {
                        fs::create_dir(&path).map_err(|e| write(&path, e))?;
                    }
                    self.directory_modes.insert(path.clone(), mode);
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    // A new file, never through a symlink.
                    let mut file = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(&path)
                        .map_err(|e| write(&path, e))?;
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
                    // link(2) does not follow a symlink there: the new
                    // name is a link to the symlink itself, inside the root.
                    fs::hard_link(target_dir.join(target_name), &path)
                        .map_err(|e| write(&path, e))?;
                }
                tar::EntryType::Fifo => make_fifo(&path, mode).map_err(|e| write(&path, e))?,
                _ => continue,
            }
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
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
            self.applied.entries += 1;
        }
        Ok(())
    }
}

fn make_fifo(path: &Path, mode: u32) -> io::Result<()> {
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: a valid C string; mkfifo reads nothing else.
    if unsafe { libc::mkfifo(path.as_ptr(), (mode & 0o777) as libc::mode_t) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
#[path = "rootfs_tests.rs"]
mod tests;
