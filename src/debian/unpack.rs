//! Unpacking a `.deb`'s data tarball into a directory, safely: entry paths
//! are normalised, `..` is refused, and nothing is ever written through a
//! symlink, whether the tarball made it a moment ago or an earlier unpack
//! into the same directory did: every parent of every entry must be a real
//! directory. Modes (less setuid/setgid), modification times, symlinks and
//! hard links (inside the destination) are kept; FIFOs are skipped;
//! ownership is never changed. Maintainer scripts do not run. A `.deb` is
//! also held to [`crate::debian::entry_policy`], as in an image layer: a
//! device node, a `.wh.` name or an entry under the package's own symlink
//! refuses the package (a plain tarball, [`unpack_tar`], skips device
//! nodes instead).
//!
//! Several archives can be unpacked into one directory at the same time
//! ([`SharedUnpack`], one thread each): the result is the one of unpacking
//! them one after another in a given order, or an error where that order
//! would make a difference.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::debian::deb::{DebArchive, DebError};
use crate::debian::entry_policy::{EntryPolicy, UnsafeEntry};

/// Mode bits kept from the archive: permissions and the sticky bit; setuid
/// and setgid are dropped so that an unpacked tree never holds set-id
/// programs owned by whoever ran xbuild.
const KEPT_MODE_BITS: u32 = 0o1777;

/// What an unpack wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Regular files written.
    pub files: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Directory entries of the archive (directories created implicitly
    /// for other entries are not counted).
    pub directories: u64,
    pub symlinks: u64,
    pub hard_links: u64,
    /// FIFOs, device nodes of a plain tarball and other entries that were
    /// not created.
    pub skipped: u64,
}

impl std::ops::AddAssign for UnpackStats {
    fn add_assign(&mut self, other: UnpackStats) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.directories += other.directories;
        self.symlinks += other.symlinks;
        self.hard_links += other.hard_links;
        self.skipped += other.skipped;
    }
}

/// Everything that can go wrong while unpacking. `archive` is the `.deb` (or
/// the label given to [`unpack_tar`]); `entry` is the path as the tarball
/// spells it.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot open the package {archive}")]
    Open {
        archive: PathBuf,
        #[source]
        source: DebError,
    },
    #[error("cannot read the data tarball of {archive}")]
    Read {
        archive: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{archive}: entry `{entry}` is unsafe: {reason}")]
    UnsafePath {
        archive: PathBuf,
        entry: String,
        reason: &'static str,
    },
    /// An entry no Debian package needs: the package is refused.
    #[error("{archive}: entry `{entry}` {problem}")]
    Refused {
        archive: PathBuf,
        entry: String,
        problem: UnsafeEntry,
    },
    #[error("{archive}: entry `{entry}` would be written through the symlink {symlink}")]
    ThroughSymlink {
        archive: PathBuf,
        entry: String,
        symlink: PathBuf,
    },
    #[error("{archive}: entry `{entry}` conflicts with {path}: {reason}")]
    Conflict {
        archive: PathBuf,
        entry: String,
        path: PathBuf,
        reason: &'static str,
    },
    #[error("{archive}: cannot write {path}")]
    Write {
        archive: PathBuf,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Only from a [`SharedUnpack`]: another archive has the same path, or
    /// a hard link names a file this archive did not write, so the order
    /// of the archives would decide the result.
    #[error(
        "{archive}: entry `{entry}` meets {path}, of another archive unpacked into the same directory"
    )]
    Overlap {
        archive: PathBuf,
        entry: String,
        path: PathBuf,
    },
}

impl UnpackError {
    /// The archive (or label) the error is about.
    pub fn archive(&self) -> &Path {
        match self {
            UnpackError::Open { archive, .. }
            | UnpackError::Read { archive, .. }
            | UnpackError::UnsafePath { archive, .. }
            | UnpackError::Refused { archive, .. }
            | UnpackError::ThroughSymlink { archive, .. }
            | UnpackError::Conflict { archive, .. }
            | UnpackError::Write { archive, .. }
            | UnpackError::Overlap { archive, .. } => archive,
        }
    }

    /// Whether the archive itself is unsafe (an entry refused, or one that
    /// would land outside the destination), as opposed to failing I/O.
    pub fn is_unsafe_archive(&self) -> bool {
        matches!(
            self,
            UnpackError::Refused { .. }
                | UnpackError::UnsafePath { .. }
                | UnpackError::ThroughSymlink { .. }
        )
    }
}

/// Extracts the data tarball of the `.deb` at `deb` into `dest` (created if
/// missing). Files of an earlier unpack are replaced by same-named files of
/// this one, as dpkg does; a directory is never replaced.
pub fn unpack_deb(deb: &Path, dest: &Path) -> Result<UnpackStats, UnpackError> {
    let mut archive = open_deb(deb)?;
    let tarball = data_of(&mut archive, deb)?;
    unpack_into(tarball, dest, deb, Some(EntryPolicy::new()))
}

fn open_deb(deb: &Path) -> Result<DebArchive, UnpackError> {
    DebArchive::open(deb).map_err(|source| UnpackError::Open {
        archive: deb.to_owned(),
        source,
    })
}

/// The data tarball of an opened `.deb`.
fn data_of<'a>(
    archive: &'a mut DebArchive,
    deb: &Path,
) -> Result<tar::Archive<Box<dyn Read + 'a>>, UnpackError> {
    archive.data().map_err(|source| UnpackError::Open {
        archive: deb.to_owned(),
        source,
    })
}

/// Extracts a plain tar stream (a source tarball) into `dest` with the
/// rules of [`unpack_deb`] but for the package checks: device nodes are
/// skipped, not refused. `label` names the archive in errors.
pub fn unpack_tar<R: Read>(
    tarball: tar::Archive<R>,
    dest: &Path,
    label: &Path,
) -> Result<UnpackStats, UnpackError> {
    unpack_into(tarball, dest, label, None)
}

fn unpack_into<R: Read>(
    tarball: tar::Archive<R>,
    dest: &Path,
    label: &Path,
    policy: Option<EntryPolicy>,
) -> Result<UnpackStats, UnpackError> {
    let (stats, modes) = unpack_entries(tarball, dest, label, false, policy)?;
    // Directory modes last, deepest first, so that a read-only directory
    // does not stop its own contents from being written.
    set_directory_modes(modes.into_iter().map(|(path, mode)| (path, mode, label)))?;
    Ok(stats)
}

/// Writes every entry of `tarball` under `dest` and returns what was
/// written with the directory modes still to set (in archive order).
/// `policy`: the data tarball of a `.deb`, held to its checks.
fn unpack_entries<R: Read>(
    mut tarball: tar::Archive<R>,
    dest: &Path,
    label: &Path,
    shared: bool,
    policy: Option<EntryPolicy>,
) -> Result<(UnpackStats, Vec<(PathBuf, u32)>), UnpackError> {
    let mut unpacker = Unpacker {
        dest,
        label,
        shared,
        policy,
        known_directories: HashSet::new(),
        written: HashSet::new(),
        directory_modes: Vec::new(),
        stats: UnpackStats::default(),
    };
    fs_err::create_dir_all(dest).map_err(|source| unpacker.write_error(dest, source))?;
    let read_error = |source| UnpackError::Read {
        archive: label.to_owned(),
        source,
    };
    for entry in tarball.entries().map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        unpacker.entry(entry)?;
    }
    Ok((unpacker.stats, unpacker.directory_modes))
}

/// Sets directory modes, deepest directories first; each error names the
/// archive the mode came from.
fn set_directory_modes<'a>(
    modes: impl IntoIterator<Item = (PathBuf, u32, &'a Path)>,
) -> Result<(), UnpackError> {
    let mut modes: Vec<_> = modes.into_iter().collect();
    modes.sort_by_key(|(path, _, _)| std::cmp::Reverse(path.components().count()));
    for (path, mode, archive) in modes {
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(
            |source| UnpackError::Write {
                archive: archive.to_owned(),
                path: path.clone(),
                source,
            },
        )?;
    }
    Ok(())
}

/// Unpacks into one directory from several threads at once. Each archive
/// is given its `order`; the result is the one of [`unpack_tar`] on each
/// archive in that order, or an [`UnpackError::Overlap`] from an archive
/// whose result would depend on it: an archive never replaces a file or
/// symlink that another one wrote, and its hard links name only its own
/// files. Directories are shared; their modes are set by
/// [`SharedUnpack::finish`], from the last archive in order that lists
/// them (so no archive makes a directory read-only under another).
#[derive(Debug)]
pub struct SharedUnpack {
    dest: PathBuf,
    /// Directory path → the mode to give it, from the archive of the
    /// highest order that lists it.
    directory_modes: Mutex<HashMap<PathBuf, DirectoryMode>>,
}

#[derive(Debug)]
struct DirectoryMode {
    order: usize,
    mode: u32,
    archive: PathBuf,
}

impl SharedUnpack {
    /// Unpacks into `dest` (created if missing).
    pub fn new(dest: &Path) -> SharedUnpack {
        SharedUnpack {
            dest: dest.to_owned(),
            directory_modes: Mutex::new(HashMap::new()),
        }
    }

    /// [`unpack_deb`] of the archive of rank `order`, concurrently with the
    /// others.
    pub fn unpack_deb(&self, order: usize, deb: &Path) -> Result<UnpackStats, UnpackError> {
        let mut archive = open_deb(deb)?;
        let tarball = data_of(&mut archive, deb)?;
        self.unpack_tar(order, tarball, deb)
    }

    /// The unpack of the data tarball of the `.deb` `label` (already
    /// opened), as [`SharedUnpack::unpack_deb`] does it.
    pub fn unpack_tar<R: Read>(
        &self,
        order: usize,
        tarball: tar::Archive<R>,
        label: &Path,
    ) -> Result<UnpackStats, UnpackError> {
        let policy = Some(EntryPolicy::new());
        let (stats, modes) = unpack_entries(tarball, &self.dest, label, true, policy)?;
        let mut directory_modes = self
            .directory_modes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (path, mode) in modes {
            let wanted = DirectoryMode {
                order,
                mode,
                archive: label.to_owned(),
            };
            match directory_modes.entry(path) {
                Entry::Occupied(existing) if existing.get().order > order => {}
                Entry::Occupied(mut existing) => {
                    existing.insert(wanted);
                }
                Entry::Vacant(vacant) => {
                    vacant.insert(wanted);
                }
            }
        }
        Ok(stats)
    }

    /// Sets the directory modes once every archive is unpacked.
    pub fn finish(self) -> Result<(), UnpackError> {
        let modes = self
            .directory_modes
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        set_directory_modes(
            modes
                .iter()
                .map(|(path, mode)| (path.clone(), mode.mode, mode.archive.as_path())),
        )
    }
}

struct Unpacker<'a> {
    dest: &'a Path,
    label: &'a Path,
    /// Whether other archives are unpacked into `dest` at the same time
    /// (see [`SharedUnpack`]).
    shared: bool,
    /// The checks of a `.deb`'s data tarball; `None` for a plain tarball.
    policy: Option<EntryPolicy>,
    /// Directories (relative to `dest`) checked or created in this unpack:
    /// real directories, never symlinks. Nothing in an unpack (nor in a
    /// concurrent one) turns a directory into something else, so the check
    /// holds until the end.
    known_directories: HashSet<PathBuf>,
    /// When `shared`: the files, symlinks and hard links (relative to
    /// `dest`) this unpack wrote, the only ones it may replace or link to.
    written: HashSet<PathBuf>,
    directory_modes: Vec<(PathBuf, u32)>,
    stats: UnpackStats,
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let entry_name = String::from_utf8_lossy(&raw).into_owned();
        let relative = self.normalise(&entry_name, Path::new(OsStr::from_bytes(&raw)))?;
        let kind = entry.header().entry_type();
        let Some(relative) = relative else {
            // The archive root (`./`): `dest` itself, whose mode is the caller's.
            if kind.is_dir() {
                self.stats.directories += 1;
            }
            return Ok(());
        };
        let mode = entry.header().mode().map_err(|source| UnpackError::Read {
            archive: self.label.to_owned(),
            source,
        })? & KEPT_MODE_BITS;
        if let Some(policy) = &mut self.policy {
            policy
                .check(relative.as_os_str().as_bytes(), kind)
                .map_err(|problem| UnpackError::Refused {
                    archive: self.label.to_owned(),
                    entry: entry_name.clone(),
                    problem,
                })?;
        }
        let target = self.dest.join(&relative);
        match kind {
            tar::EntryType::Directory => {
                self.directory(&entry_name, &relative)?;
                self.directory_modes.push((target, mode));
                self.stats.directories += 1;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                self.parents(&entry_name, &relative)?;
                self.make_room(&entry_name, &relative, &target)?;
                let mut file = fs_err::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(|source| self.create_error(&entry_name, &target, source))?;
                self.wrote(&relative);
                let written =
                    io::copy(&mut entry, &mut file).map_err(|source| UnpackError::Read {
                        archive: self.label.to_owned(),
                        source,
                    })?;
                file.set_permissions(std::fs::Permissions::from_mode(mode))
                    .map_err(|source| self.write_error(&target, source))?;
                if let Ok(seconds) = entry.header().mtime() {
                    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
                    file.file()
                        .set_modified(time)
                        .map_err(|source| self.write_error(&target, source))?;
                }
                self.stats.files += 1;
                self.stats.bytes += written;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(|source| UnpackError::Read {
                        archive: self.label.to_owned(),
                        source,
                    })?
                    .ok_or_else(|| self.unsafe_path(&entry_name, "a symlink without a target"))?
                    .into_owned();
                if link.as_os_str().is_empty() {
                    return Err(self.unsafe_path(&entry_name, "a symlink without a target"));
                }
                self.parents(&entry_name, &relative)?;
                self.make_room(&entry_name, &relative, &target)?;
                // The target is stored as written and never followed here.
                fs_err::os::unix::fs::symlink(&link, &target)
                    .map_err(|source| self.create_error(&entry_name, &target, source))?;
                self.wrote(&relative);
                self.stats.symlinks += 1;
            }
            tar::EntryType::Link => {
                let link_bytes = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.unsafe_path(&entry_name, "a hard link without a target"))?
                    .into_owned();
                let link_name = String::from_utf8_lossy(&link_bytes).into_owned();
                let Some(existing) =
                    self.normalise(&link_name, Path::new(OsStr::from_bytes(&link_bytes)))?
                else {
                    return Err(self.unsafe_path(&entry_name, "a hard link to the archive root"));
                };
                if let Some(policy) = &self.policy {
                    policy
                        .check_hard_link(existing.as_os_str().as_bytes())
                        .map_err(|problem| UnpackError::Refused {
                            archive: self.label.to_owned(),
                            entry: entry_name.clone(),
                            problem,
                        })?;
                }
                // The linked file must be a regular file reached through real
                // directories only.
                self.check_existing_parents(&entry_name, &existing)?;
                let existing_path = self.dest.join(&existing);
                if self.shared && !self.written.contains(&existing) {
                    return Err(self.overlap(&entry_name, &existing_path));
                }
                match fs_err::symlink_metadata(&existing_path) {
                    Ok(metadata) if metadata.file_type().is_file() => {}
                    Ok(_) => {
                        return Err(self.conflict(
                            &entry_name,
                            &existing_path,
                            "a hard link must name a regular file",
                        ));
                    }
                    Err(source) => return Err(self.write_error(&existing_path, source)),
                }
                self.parents(&entry_name, &relative)?;
                if existing_path == target {
                    return Ok(());
                }
                self.make_room(&entry_name, &relative, &target)?;
                fs_err::hard_link(&existing_path, &target)
                    .map_err(|source| self.create_error(&entry_name, &target, source))?;
                self.wrote(&relative);
                self.stats.hard_links += 1;
            }
            _ => self.stats.skipped += 1,
        }
        Ok(())
    }

    /// `name` as a path relative to `dest`: leading `/` and `.` components
    /// dropped, `..` refused. `None` for the archive root.
    fn normalise(&self, name: &str, path: &Path) -> Result<Option<PathBuf>, UnpackError> {
        if name.as_bytes().contains(&0) {
            return Err(self.unsafe_path(name, "the path contains a NUL byte"));
        }
        let mut relative = PathBuf::new();
        for component in path.components() {
            match component {
                Component::Normal(part) => relative.push(part),
                Component::CurDir | Component::RootDir => {}
                Component::ParentDir => {
                    return Err(self.unsafe_path(name, "the path contains `..`"));
                }
                Component::Prefix(_) => {
                    return Err(self.unsafe_path(name, "the path has a prefix"));
                }
            }
        }
        Ok((!relative.as_os_str().is_empty()).then_some(relative))
    }

    /// Makes every parent of `relative` a real directory, creating missing
    /// ones, and refuses a parent that is a symlink or a file.
    fn parents(&mut self, entry: &str, relative: &Path) -> Result<(), UnpackError> {
        match relative.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => self.directory(entry, parent),
            _ => Ok(()),
        }
    }

    /// Makes `relative` and its parents real directories.
    fn directory(&mut self, entry: &str, relative: &Path) -> Result<(), UnpackError> {
        if self.known_directories.contains(relative) {
            return Ok(());
        }
        let mut current = PathBuf::new();
        for component in relative.components() {
            current.push(component);
            if self.known_directories.contains(&current) {
                continue;
            }
            let path = self.dest.join(&current);
            if !self.existing_directory(entry, &path)? {
                match fs_err::create_dir(&path) {
                    Ok(()) => {}
                    // Made a moment ago by a concurrent unpack: as good as
                    // ours if it is a real directory, refused as before if not.
                    Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                        if !self.existing_directory(entry, &path)? {
                            return Err(self.write_error(&path, error));
                        }
                    }
                    Err(source) => return Err(self.write_error(&path, source)),
                }
            }
            self.known_directories.insert(current.clone());
        }
        Ok(())
    }

    /// Checks, without creating anything, that every parent of `relative` is
    /// a real directory.
    fn check_existing_parents(&self, entry: &str, relative: &Path) -> Result<(), UnpackError> {
        let mut current = PathBuf::new();
        let Some(parent) = relative.parent() else {
            return Ok(());
        };
        for component in parent.components() {
            current.push(component);
            if self.known_directories.contains(&current) {
                continue;
            }
            let path = self.dest.join(&current);
            if !self.existing_directory(entry, &path)? {
                let missing = io::Error::from(io::ErrorKind::NotFound);
                return Err(self.write_error(&path, missing));
            }
        }
        Ok(())
    }

    /// Whether `path` is a real directory (`false`: nothing is there). A
    /// symlink there is refused, never followed; anything else is a conflict.
    fn existing_directory(&self, entry: &str, path: &Path) -> Result<bool, UnpackError> {
        match fs_err::symlink_metadata(path) {
            Ok(metadata) if metadata.file_type().is_dir() => Ok(true),
            Ok(metadata) if metadata.file_type().is_symlink() => Err(UnpackError::ThroughSymlink {
                archive: self.label.to_owned(),
                entry: entry.to_owned(),
                symlink: path.to_owned(),
            }),
            Ok(_) => Err(self.conflict(entry, path, "a directory is needed there")),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(self.write_error(path, source)),
        }
    }

    /// Removes a file or symlink at `path` (`relative` to `dest`) so a new
    /// entry can take its place; a directory there is a conflict, and so is,
    /// when `shared`, anything this unpack did not write.
    fn make_room(&self, entry: &str, relative: &Path, path: &Path) -> Result<(), UnpackError> {
        match fs_err::symlink_metadata(path) {
            Ok(metadata) if metadata.file_type().is_dir() => Err(self.conflict(
                entry,
                path,
                "a directory is there and would not be replaced",
            )),
            Ok(_) if self.shared && !self.written.contains(relative) => {
                Err(self.overlap(entry, path))
            }
            Ok(_) => fs_err::remove_file(path).map_err(|source| self.write_error(path, source)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(self.write_error(path, source)),
        }
    }

    /// Records a path this unpack wrote, when that matters (`shared`).
    fn wrote(&mut self, relative: &Path) {
        if self.shared {
            self.written.insert(relative.to_owned());
        }
    }

    /// The error of creating `path`: when `shared`, something already
    /// there was written by a concurrent unpack a moment ago.
    fn create_error(&self, entry: &str, path: &Path, source: io::Error) -> UnpackError {
        if self.shared && source.kind() == io::ErrorKind::AlreadyExists {
            self.overlap(entry, path)
        } else {
            self.write_error(path, source)
        }
    }

    fn overlap(&self, entry: &str, path: &Path) -> UnpackError {
        UnpackError::Overlap {
            archive: self.label.to_owned(),
            entry: entry.to_owned(),
            path: path.to_owned(),
        }
    }

    fn unsafe_path(&self, entry: &str, reason: &'static str) -> UnpackError {
        UnpackError::UnsafePath {
            archive: self.label.to_owned(),
            entry: entry.to_owned(),
            reason,
        }
    }

    fn conflict(&self, entry: &str, path: &Path, reason: &'static str) -> UnpackError {
        UnpackError::Conflict {
            archive: self.label.to_owned(),
            entry: entry.to_owned(),
            path: path.to_owned(),
            reason,
        }
    }

    fn write_error(&self, path: &Path, source: io::Error) -> UnpackError {
        UnpackError::Write {
            archive: self.label.to_owned(),
            path: path.to_owned(),
            source,
        }
    }
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;
