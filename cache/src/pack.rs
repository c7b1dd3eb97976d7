//! A tree as one deterministic archive, and back.
//!
//! Packing writes a tar stream (GNU headers) of everything under a
//! directory, compressed with zstd at [`ZSTD_LEVEL`] on one thread:
//! - entries in sorted order (by name bytes, each directory before what
//!   it holds), paths relative to the tree;
//! - owner and group 0 with no names; permission bits (`0o7777`) and
//!   modification times (whole seconds) as in the tree; symlinks kept as
//!   symlinks with mode `0o777` and time 0 (a symlink's own time cannot be
//!   set portably, so it is not part of the tree);
//! - files with several links inside the tree as one file and hard links
//!   to its first path.
//!
//! The same tree gives the same bytes, hence the same digest, on every
//! host (with the same bundled zstd). Unpacking recreates exactly that,
//! and refuses an archive holding an absolute path, a `..`, a path
//! through a symlink, a hard link to anything but an earlier file, or an
//! entry of another type; the archive's digest is computed while it is
//! read and checked before the tree is used.

use crate::hash::{HashingReader, HashingWriter, Sha256Digest};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

/// zstd's level for packed trees: fixed, so digests are too. Level 3
/// (zstd's default) compresses a toolchain at well over 100 MB/s on one
/// core, about 4× smaller.
pub const ZSTD_LEVEL: i32 = 3;

/// Why packing failed.
#[derive(Debug)]
pub enum PackError {
    Io(PathBuf, io::Error),
    Unsupported(PathBuf, &'static str),
}

/// What packing wrote.
pub struct Packed {
    /// Digest and size of the compressed archive (the blob).
    pub digest: Sha256Digest,
    pub size: u64,
    /// Digest of the uncompressed tar stream: what the tree on disk must
    /// still produce to be the same tree.
    pub tar_digest: Sha256Digest,
}

/// Packs the tree at `root` into `out`.
pub fn pack(root: &Path, out: impl Write) -> Result<Packed, PackError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |error| PackError::Io(path, error)
    };
    let compressed = HashingWriter::new(out);
    let encoder = zstd::Encoder::new(compressed, ZSTD_LEVEL).map_err(io(root))?;
    let tar_stream = HashingWriter::new(encoder);
    let tar_stream = write_tar(root, tar_stream)?;
    let (encoder, tar_digest, _) = tar_stream.finish();
    let compressed = encoder.finish().map_err(io(root))?;
    let (mut out, digest, size) = compressed.finish();
    out.flush().map_err(io(root))?;
    Ok(Packed {
        digest,
        size,
        tar_digest,
    })
}

/// The digest of the tar stream [`pack`] would compress for `root`,
/// without compressing anything.
pub fn tar_digest(root: &Path) -> Result<Sha256Digest, PackError> {
    let stream = write_tar(root, HashingWriter::new(io::sink()))?;
    Ok(stream.finish().1)
}

fn write_tar<W: Write>(root: &Path, out: W) -> Result<W, PackError> {
    let mut builder = tar::Builder::new(out);
    let mut first_links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut pending = vec![PathBuf::new()];
    // Depth first, sorted: a directory's entry, then its contents.
    while let Some(relative) = pending.pop() {
        let dir = root.join(&relative);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .and_then(|entries| entries.map(|entry| Ok(entry?.file_name())).collect())
            .map_err(|error| PackError::Io(dir.clone(), error))?;
        names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        let mut subdirectories = Vec::new();
        for name in names {
            let relative = relative.join(&name);
            let path = root.join(&relative);
            let metadata =
                fs::symlink_metadata(&path).map_err(|error| PackError::Io(path.clone(), error))?;
            let kind = metadata.file_type();
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mode(metadata.permissions().mode() & 0o7777);
            header.set_mtime(metadata.mtime().max(0) as u64);
            header.set_size(0);
            let written = if kind.is_dir() {
                header.set_entry_type(tar::EntryType::Directory);
                subdirectories.push(relative.clone());
                builder.append_data(&mut header, &relative, io::empty())
            } else if kind.is_symlink() {
                let target =
                    fs::read_link(&path).map_err(|error| PackError::Io(path.clone(), error))?;
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_mtime(0);
                builder.append_link(&mut header, &relative, &target)
            } else if kind.is_file() {
                let identity = (metadata.dev(), metadata.ino());
                match first_links.get(&identity) {
                    Some(first) if metadata.nlink() > 1 => {
                        header.set_entry_type(tar::EntryType::Link);
                        builder.append_link(&mut header, &relative, first)
                    }
                    _ => {
                        if metadata.nlink() > 1 {
                            first_links.insert(identity, relative.clone());
                        }
                        header.set_entry_type(tar::EntryType::Regular);
                        header.set_size(metadata.len());
                        let file = File::open(&path)
                            .map_err(|error| PackError::Io(path.clone(), error))?;
                        builder.append_data(&mut header, &relative, file.take(metadata.len()))
                    }
                }
            } else {
                return Err(PackError::Unsupported(
                    path,
                    "it is neither a file, a directory nor a symlink",
                ));
            };
            written.map_err(|error| PackError::Io(path.clone(), error))?;
        }
        // Popped in reverse: the first name comes first.
        pending.extend(subdirectories.into_iter().rev());
    }
    builder
        .into_inner()
        .map_err(|error| PackError::Io(root.to_owned(), error))
}

/// Why unpacking failed.
#[derive(Debug)]
pub enum UnpackError {
    /// The archive is malformed (or I/O failed writing the tree).
    Io(io::Error),
    Unsafe(String, &'static str),
    /// The archive is whole and safe, but its digest is another.
    Digest(Sha256Digest, u64),
}

impl From<io::Error> for UnpackError {
    fn from(error: io::Error) -> Self {
        UnpackError::Io(error)
    }
}

/// What unpacking produced: the tree's tar stream digest, its files'
/// bytes and its entry count.
pub struct Unpacked {
    pub tar_digest: Sha256Digest,
    pub bytes: u64,
    pub entries: u64,
}

/// What an archive may hold, checked entry by entry (in the order of the
/// archive): relative paths of normal components, each inside a
/// directory the archive made before (so never through a symlink), hard
/// links only to earlier files.
#[derive(Default)]
struct Validator {
    seen: HashSet<PathBuf>,
    directories: HashSet<PathBuf>,
    files: HashSet<PathBuf>,
}

/// One checked entry of an archive.
enum Checked {
    Directory(PathBuf),
    File(PathBuf),
    Symlink(PathBuf, PathBuf),
    HardLink(PathBuf, PathBuf),
}

impl Validator {
    fn check<R: Read>(&mut self, entry: &tar::Entry<'_, R>) -> Result<Checked, UnpackError> {
        let raw_path = entry.path()?.into_owned();
        let shown = || raw_path.display().to_string();
        let relative = safe_relative(&raw_path)?;
        let parent = relative.parent().unwrap_or(Path::new(""));
        if !parent.as_os_str().is_empty() && !self.directories.contains(parent) {
            return Err(UnpackError::Unsafe(
                shown(),
                "is not inside a directory of the archive (a path through a symlink, or out of order)",
            ));
        }
        if !self.seen.insert(relative.clone()) {
            return Err(UnpackError::Unsafe(shown(), "is in the archive twice"));
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                self.directories.insert(relative.clone());
                Ok(Checked::Directory(relative))
            }
            tar::EntryType::Regular => {
                self.files.insert(relative.clone());
                Ok(Checked::File(relative))
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| UnpackError::Unsafe(shown(), "is a symlink to nothing"))?;
                Ok(Checked::Symlink(relative, target.into_owned()))
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| UnpackError::Unsafe(shown(), "is a hard link to nothing"))?;
                let target = safe_relative(&target)?;
                if !self.files.contains(&target) {
                    return Err(UnpackError::Unsafe(
                        shown(),
                        "is a hard link to something that is not an earlier file of the archive",
                    ));
                }
                Ok(Checked::HardLink(relative, target))
            }
            _ => Err(UnpackError::Unsafe(
                shown(),
                "is neither a file, a directory nor a link",
            )),
        }
    }
}

/// The archive's reading chain: hashed as read (the blob's digest), then
/// decompressed, then hashed again (the tar stream's digest).
type Chain<R> = HashingReader<zstd::Decoder<'static, BufReader<HashingReader<BufReader<R>>>>>;

fn open_chain<R: Read>(packed: R) -> Result<tar::Archive<Chain<R>>, UnpackError> {
    let hashing = HashingReader::new(BufReader::with_capacity(256 * 1024, packed));
    Ok(tar::Archive::new(HashingReader::new(zstd::Decoder::new(
        hashing,
    )?)))
}

/// Reads the rest of the chain (tar's end blocks, the end of the frame,
/// anything after it: all part of the digest) and checks the blob's
/// digest; returns the tar stream's.
fn close_chain<R: Read>(
    archive: tar::Archive<Chain<R>>,
    expected: &Sha256Digest,
) -> Result<Sha256Digest, UnpackError> {
    let mut tar_stream = archive.into_inner();
    io::copy(&mut tar_stream, &mut io::sink())?;
    let (decoder, tar_digest, _) = tar_stream.into_parts();
    let mut rest = decoder.finish();
    io::copy(&mut rest, &mut io::sink())?;
    let (_, digest, size) = rest.into_inner().into_parts();
    if digest != *expected {
        return Err(UnpackError::Digest(digest, size));
    }
    Ok(tar_digest)
}

/// Unpacks the archive `packed` into the empty directory `into`, checking
/// that it hashes to `expected` (the digest is computed while reading; on
/// any error `into` holds a partial tree the caller discards).
pub fn unpack(
    packed: impl Read,
    expected: &Sha256Digest,
    into: &Path,
) -> Result<Unpacked, UnpackError> {
    let mut archive = open_chain(packed)?;
    let mut validator = Validator::default();
    let mut directories: Vec<(PathBuf, u32, u64)> = Vec::new();
    let (mut bytes, mut entries) = (0, 0);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let checked = validator.check(&entry)?;
        let mode = entry.header().mode()? & 0o7777;
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(entry.header().mtime()?);
        entries += 1;
        match checked {
            Checked::Directory(relative) => {
                let path = into.join(relative);
                fs::create_dir(&path)?;
                directories.push((path, mode, entry.header().mtime()?));
            }
            Checked::File(relative) => {
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(into.join(relative))?;
                bytes += io::copy(&mut entry, &mut file)?;
                file.set_permissions(fs::Permissions::from_mode(mode))?;
                file.set_modified(time)?;
            }
            Checked::Symlink(relative, target) => {
                std::os::unix::fs::symlink(&target, into.join(relative))?;
            }
            Checked::HardLink(relative, target) => {
                fs::hard_link(into.join(target), into.join(relative))?;
            }
        }
    }
    // Directories last, deepest first: their times and modes (a read-only
    // one) after everything inside is written.
    for (path, mode, mtime) in directories.into_iter().rev() {
        File::open(&path)?.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
    }
    let tar_digest = close_chain(archive, expected)?;
    Ok(Unpacked {
        tar_digest,
        bytes,
        entries,
    })
}

/// Checks the archive `packed` as [`unpack`] would, writing nothing:
/// returns its tar stream's digest.
pub fn check(packed: impl Read, expected: &Sha256Digest) -> Result<Sha256Digest, UnpackError> {
    let mut archive = open_chain(packed)?;
    let mut validator = Validator::default();
    for entry in archive.entries()? {
        let mut entry = entry?;
        validator.check(&entry)?;
        io::copy(&mut entry, &mut io::sink())?;
    }
    close_chain(archive, expected)
}

/// `path` as a relative path of normal components; anything else (an
/// absolute path, `..`) is refused.
fn safe_relative(path: &Path) -> Result<PathBuf, UnpackError> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => relative.push(name),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(UnpackError::Unsafe(
                    path.display().to_string(),
                    "is an absolute path",
                ));
            }
            Component::ParentDir => {
                return Err(UnpackError::Unsafe(
                    path.display().to_string(),
                    "climbs out with `..`",
                ));
            }
        }
    }
    if relative.as_os_str().is_empty() {
        return Err(UnpackError::Unsafe(
            path.display().to_string(),
            "names the tree itself",
        ));
    }
    Ok(relative)
}
