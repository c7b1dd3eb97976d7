//! Image layers from Debian packages: each package's data tarball is streamed
//! entry by entry into one gzip-compressed tar, with paths normalised,
//! ownership and mtimes fixed, shared parent directories written once, and a
//! `var/lib/dpkg/status.d/<package>` record added per package. Entries
//! under `/bin`, `/sbin` and `/lib*` move under `/usr` (see
//! [`super::usrmerge`]); the dpkg records keep the packages' own paths, as
//! on a system `usrmerge` converted. Both the uncompressed (diff_id) and
//! compressed (digest) streams are hashed on the way; nothing is unpacked
//! to disk and no file is held in memory.
//!
//! Every entry is held to [`crate::debian::entry_policy`] (no device
//! nodes, no `.wh.` names, nothing under the package's own symlinks); a
//! `..` component, a hard link to what the layer does not hold and an
//! unknown entry type are refused the same way. A refused package fails
//! the layer, naming its name, version and architecture and the entry.

use super::filter::{EntryKind, PathFilter};
use super::usrmerge::{MergedPath, merged_link_destination, merged_symlink_target};
use crate::debian::deb::{DebArchive, DebError};
use crate::debian::entry_policy::{EntryPolicy, UnsafeEntry};
use crate::hash::{HashingWriter, Sha256Digest};
use merge::{DeferredLink, WrittenFile, merged_root};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

/// Directory that holds one dpkg status paragraph per installed package, as
/// read by distroless images and container scanners.
const STATUS_DIRECTORY: &str = "var/lib/dpkg/status.d/";

/// One package to put into a layer.
#[derive(Debug, Clone, Copy)]
pub struct LayerPackage<'a> {
    /// The Debian package name; it must match the `.deb`'s `Package:` field.
    pub name: &'a str,
    pub deb: &'a Path,
}

/// How a layer is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerOptions {
    /// `SOURCE_DATE_EPOCH`: every mtime is clamped to at most this. `None`
    /// keeps the times the files have in the `.deb` (fixed bytes already,
    /// so a package's layer is the same whatever the build's time), and
    /// gives generated files the newest time of their package's files.
    pub epoch: Option<u64>,
    /// gzip level, 0–9.
    pub compression_level: u32,
    /// What of the packages' files is left out (package layers only: a
    /// directory layer, the user's own files, keeps everything).
    pub filter: PathFilter,
    /// Whether entries under `/bin`, `/sbin` and `/lib*` move under `/usr`
    /// (every image layer; not the merged-/usr symlink layer itself).
    pub merged_usr: bool,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerOutput {
    /// sha256 of the uncompressed tar.
    pub diff_id: Sha256Digest,
    /// sha256 of the gzip stream.
    pub digest: Sha256Digest,
    /// Bytes of the gzip stream.
    pub size: u64,
    /// Bytes of the uncompressed tar.
    pub uncompressed_size: u64,
    /// Tar entries written (files, directories, links, status records).
    pub entries: u64,
    /// Maintainer scripts present and not run, per package.
    pub skipped_scripts: Vec<(String, Vec<String>)>,
    /// Bytes of the files the filter left out (documentation, locales).
    pub left_out_bytes: u64,
    /// Entries the filter left out (files, symlinks, hard links).
    pub left_out_entries: u64,
}

/// Everything that can go wrong while writing a layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("`{package}` is not a valid package name for a layer")]
    InvalidPackageName { package: String },
    #[error("cannot read the .deb of package {package}")]
    Deb {
        package: String,
        #[source]
        source: DebError,
    },
    #[error("package {package}: {deb} contains package `{declared}`")]
    PackageNameMismatch {
        package: String,
        deb: PathBuf,
        declared: String,
    },
    #[error("package {package}: cannot read the data tarball of {deb}")]
    ReadData {
        package: String,
        deb: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("package {package}: cannot read `{path}` from {deb}")]
    ReadEntry {
        package: String,
        deb: PathBuf,
        path: String,
        #[source]
        source: io::Error,
    },
    /// An entry no Debian package needs (see
    /// [`crate::debian::entry_policy`]): the package is refused whole.
    #[error("package {package} {version} ({architecture}): `{path}` {problem}")]
    UnsafeEntry {
        package: String,
        version: String,
        architecture: String,
        /// The entry's path as the package spells it.
        path: String,
        problem: UnsafeEntry,
    },
    #[error(
        "package {package}: `{path}` and `{other_path}` of package {other_package} are both `{merged}` in a merged-/usr image"
    )]
    MergedUsrCollision {
        package: String,
        path: String,
        other_package: String,
        other_path: String,
        merged: String,
    },
    #[error(
        "package {package}: `{path}` is `{merged}` in a merged-/usr image, where the layer has a directory"
    )]
    MergedUsrOverDirectory {
        package: String,
        path: String,
        merged: String,
    },
    #[error(
        "package {package}: `{path}` is a {kind}, but in a merged-/usr image `/{path}` is the symlink to usr/{path}"
    )]
    MergedUsrRoot {
        package: String,
        path: String,
        kind: String,
    },
    #[error("package {package}: cannot write `{path}` to the layer")]
    Write {
        package: String,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot finish writing the layer")]
    Finish {
        #[source]
        source: io::Error,
    },
}

impl LayerError {
    /// The output-side I/O error when writing the layer itself failed (a
    /// full disk, say), as opposed to reading or checking a package; the
    /// error unchanged otherwise. The caller knows the file and names it.
    pub fn into_write_error(self) -> Result<io::Error, LayerError> {
        match self {
            LayerError::Write { source, .. } | LayerError::Finish { source } => Ok(source),
            other => Err(other),
        }
    }
}

type LayerStream<W> = HashingWriter<flate2::write::GzEncoder<HashingWriter<W>>>;

/// Writes one layer holding `packages`, in the order given, to `out`.
pub fn write_layer<W: Write>(
    packages: &[LayerPackage],
    options: &LayerOptions,
    out: W,
) -> Result<LayerOutput, LayerError> {
    let gzip = flate2::GzBuilder::new().mtime(0).write(
        HashingWriter::new(out),
        flate2::Compression::new(options.compression_level.min(9)),
    );
    let mut builder = tar::Builder::new(HashingWriter::new(gzip));
    let mut layer = LayerState {
        epoch: options.epoch,
        merged_usr: options.merged_usr,
        written_directories: HashSet::new(),
        written_files: HashMap::new(),
        package_names: Vec::new(),
        deferred_links: Vec::new(),
        entries: 0,
        newest: 0,
        filter: &options.filter,
        left_out: HashSet::new(),
        left_out_bytes: 0,
        package: PackageLabel::default(),
        policy: EntryPolicy::new(),
    };
    let mut skipped_scripts = Vec::new();
    for package in packages {
        let scripts = layer.add_package(&mut builder, package)?;
        if !scripts.is_empty() {
            skipped_scripts.push((package.name.to_owned(), scripts));
        }
    }
    let finish_error = |source| LayerError::Finish { source };
    let uncompressed = builder.into_inner().map_err(finish_error)?;
    let (gzip, diff_id, uncompressed_size) = uncompressed.finish();
    let compressed = gzip.finish().map_err(finish_error)?;
    let (mut out, digest, size) = compressed.finish();
    out.flush().map_err(finish_error)?;
    Ok(LayerOutput {
        diff_id,
        digest,
        size,
        uncompressed_size,
        entries: layer.entries,
        skipped_scripts,
        left_out_bytes: layer.left_out_bytes,
        left_out_entries: layer.left_out.len() as u64,
    })
}

/// What has been written so far in the layer.
struct LayerState<'a> {
    epoch: Option<u64>,
    merged_usr: bool,
    /// The newest file time of the package being written.
    newest: u64,
    /// Normalised directory paths, with their trailing `/`.
    written_directories: HashSet<Vec<u8>>,
    /// Normalised paths of everything else, for hard link and merged-/usr
    /// collision checks.
    written_files: HashMap<Vec<u8>, WrittenFile>,
    /// The packages written so far, in order.
    package_names: Vec<String>,
    /// The moved symlinks of the package being written.
    deferred_links: Vec<DeferredLink>,
    entries: u64,
    filter: &'a PathFilter,
    /// Normalised paths the filter left out, for hard links to them.
    left_out: HashSet<Vec<u8>>,
    /// Bytes of the files left out.
    left_out_bytes: u64,
    /// The package being written, as its control file names it.
    package: PackageLabel,
    /// What the package being written may hold.
    policy: EntryPolicy,
}

/// Name, version and architecture of a package, for its errors.
#[derive(Debug, Default)]
struct PackageLabel {
    name: String,
    version: String,
    architecture: String,
}

impl PackageLabel {
    /// The refusal of the entry at `path` (as the package spells it).
    fn refuse(&self, path: &str, problem: UnsafeEntry) -> LayerError {
        LayerError::UnsafeEntry {
            package: self.name.clone(),
            version: self.version.clone(),
            architecture: self.architecture.clone(),
            path: path.to_owned(),
            problem,
        }
    }
}

impl LayerState<'_> {
    /// Streams one package into the layer; returns its skipped scripts.
    fn add_package<W: Write>(
        &mut self,
        builder: &mut tar::Builder<LayerStream<W>>,
        package: &LayerPackage,
    ) -> Result<Vec<String>, LayerError> {
        let name = package.name;
        if name.is_empty()
            || name.contains('/')
            || name.starts_with('.')
            || name.contains(char::is_whitespace)
        {
            return Err(LayerError::InvalidPackageName {
                package: name.to_owned(),
            });
        }
        let deb_error = |source| LayerError::Deb {
            package: name.to_owned(),
            source,
        };
        let mut deb = DebArchive::open(package.deb).map_err(deb_error)?;
        let control = deb.control().map_err(deb_error)?;
        let declared = control.package_name().unwrap_or_default();
        if declared != name {
            return Err(LayerError::PackageNameMismatch {
                package: name.to_owned(),
                deb: package.deb.to_owned(),
                declared: declared.to_owned(),
            });
        }
        let read_data_error = |source| LayerError::ReadData {
            package: name.to_owned(),
            deb: package.deb.to_owned(),
            source,
        };
        let mut data = deb.data().map_err(deb_error)?;
        let field = |name| control.field(name).unwrap_or("?").to_owned();
        self.package = PackageLabel {
            name: name.to_owned(),
            version: field("Version"),
            architecture: field("Architecture"),
        };
        self.policy = EntryPolicy::new();
        self.newest = 0;
        self.package_names.push(name.to_owned());
        for entry in data.entries().map_err(read_data_error)? {
            let entry = entry.map_err(read_data_error)?;
            self.add_entry(builder, package, entry)?;
        }
        drop(data);
        for link in std::mem::take(&mut self.deferred_links) {
            self.add_moved_link(builder, name, link)?;
        }

        let status = status_paragraph(&control.control);
        let record = format!("{STATUS_DIRECTORY}{name}");
        self.add_generated_file(builder, name, &record, status.as_bytes())?;
        if let Some(md5sums) = &control.md5sums {
            self.add_generated_file(
                builder,
                name,
                &format!("{record}.md5sums"),
                md5sums.as_bytes(),
            )?;
        }
        Ok(control.maintainer_scripts)
    }

    fn add_entry<W: Write, R: Read>(
        &mut self,
        builder: &mut tar::Builder<LayerStream<W>>,
        package: &LayerPackage,
        mut entry: tar::Entry<'_, R>,
    ) -> Result<(), LayerError> {
        let raw_path = entry.path_bytes().into_owned();
        let shown_path = String::from_utf8_lossy(&raw_path).into_owned();
        let read_error = |source| LayerError::ReadEntry {
            package: package.name.to_owned(),
            deb: package.deb.to_owned(),
            path: shown_path.clone(),
            source,
        };
        let refuse = |problem| self.package.refuse(&shown_path, problem);
        let normalised = normalise_path(&raw_path);
        let Some(original) = normalised.ok_or_else(|| refuse(UnsafeEntry::ParentComponent))? else {
            // The archive root, `./`: the image root exists already.
            return Ok(());
        };
        let source = entry.header();
        let kind = source.entry_type();
        let (mut path, moved) = match self.merged(&original) {
            MergedPath::Unchanged => (original.clone(), false),
            MergedPath::Moved(path) => (path, true),
            // `bin/` itself: the merged-/usr layer's symlink stands there.
            MergedPath::Root if kind == EntryType::Directory => return Ok(()),
            MergedPath::Root => {
                let target = entry.link_name_bytes().unwrap_or_default();
                let to_usr = kind == EntryType::Symlink
                    && merged_link_destination(&original, &target) == merged_root(&original);
                if to_usr {
                    return Ok(());
                }
                return Err(LayerError::MergedUsrRoot {
                    package: package.name.to_owned(),
                    path: shown_path.clone(),
                    kind: format!("{kind:?}").to_lowercase(),
                });
            }
        };
        // Before the filter: a crafted package is refused whatever is left out.
        if let Err(problem) = self.policy.check(&path, kind) {
            return Err(self.package.refuse(&shown_path, problem));
        }
        if self.leaves_out(&path, &entry) {
            return Ok(());
        }
        if moved {
            self.add_parents(builder, package.name, &path)?;
        }
        let mut header = Header::new_gnu();
        header.set_mode(source.mode().map_err(read_error)? & 0o7777);
        let uid = source.uid().map_err(read_error)?;
        let gid = source.gid().map_err(read_error)?;
        header.set_uid(uid);
        header.set_gid(gid);
        let user_name = if uid == 0 {
            Some(b"root".to_vec())
        } else {
            source.username_bytes().map(<[u8]>::to_vec)
        };
        let group_name = if gid == 0 {
            Some(b"root".to_vec())
        } else {
            source.groupname_bytes().map(<[u8]>::to_vec)
        };
        set_owner_names(&mut header, user_name.as_deref(), group_name.as_deref())
            .map_err(read_error)?;
        let mtime = source.mtime().map_err(read_error)?;
        self.newest = self.newest.max(mtime);
        header.set_mtime(self.epoch.map_or(mtime, |epoch| mtime.min(epoch)));
        header.set_size(0);

        let write_error = |source| LayerError::Write {
            package: package.name.to_owned(),
            path: shown_path.clone(),
            source,
        };
        let mut destination = None;
        match kind {
            EntryType::Directory => {
                if self.merged_usr {
                    self.check_collision(package.name, &original, &path, moved, None, true)?;
                }
                path.push(b'/');
                if !self.written_directories.insert(path.clone()) {
                    return Ok(());
                }
                header.set_entry_type(EntryType::Directory);
                builder
                    .append_data(&mut header, bytes_path(&path), io::empty())
                    .map_err(write_error)?;
            }
            EntryType::Regular | EntryType::Continuous => {
                if !self.check_collision(package.name, &original, &path, moved, None, false)? {
                    return Ok(());
                }
                header.set_entry_type(EntryType::Regular);
                header.set_size(entry.size());
                let mut tracked = ReadTracker {
                    inner: &mut entry,
                    error: None,
                };
                let result = builder.append_data(&mut header, bytes_path(&path), &mut tracked);
                if let Some(source) = tracked.error.take() {
                    return Err(read_error(source));
                }
                result.map_err(write_error)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|target| target.into_owned())
                    .unwrap_or_default();
                if target.is_empty() {
                    return Err(read_error(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "symlink without a target",
                    )));
                }
                header.set_entry_type(EntryType::Symlink);
                if moved {
                    self.deferred_links.push(DeferredLink {
                        header,
                        path,
                        moved_from: original,
                        target,
                    });
                    return Ok(());
                }
                let target = match self.merged_usr {
                    true => merged_symlink_target(&path, &path, &target).unwrap_or(target),
                    false => target,
                };
                let leads_to = merged_link_destination(&path, &target);
                if !self.check_collision(
                    package.name,
                    &original,
                    &path,
                    moved,
                    Some(&leads_to),
                    false,
                )? {
                    return Ok(());
                }
                destination = Some(leads_to);
                builder
                    .append_link(&mut header, bytes_path(&path), bytes_path(&target))
                    .map_err(write_error)?;
            }
            EntryType::Link => {
                let raw_target = entry
                    .link_name_bytes()
                    .map(|target| target.into_owned())
                    .unwrap_or_default();
                let shown_target = String::from_utf8_lossy(&raw_target).into_owned();
                let refuse = |problem| self.package.refuse(&shown_path, problem);
                let outside = || {
                    refuse(UnsafeEntry::HardLinkOutsideLayer {
                        target: shown_target.clone(),
                    })
                };
                let target = normalise_path(&raw_target)
                    .ok_or_else(|| {
                        refuse(UnsafeEntry::HardLinkParentComponent {
                            target: shown_target.clone(),
                        })
                    })?
                    .ok_or_else(outside)?;
                let target = match self.merged(&target) {
                    MergedPath::Moved(target) => target,
                    _ => target,
                };
                self.policy.check_hard_link(&target).map_err(refuse)?;
                if !self.written_files.contains_key(&target) {
                    return Err(outside());
                }
                if !self.check_collision(package.name, &original, &path, moved, None, false)? {
                    return Ok(());
                }
                header.set_entry_type(EntryType::Link);
                builder
                    .append_link(&mut header, bytes_path(&path), bytes_path(&target))
                    .map_err(write_error)?;
            }
            EntryType::Fifo => {
                if !self.check_collision(package.name, &original, &path, moved, None, false)? {
                    return Ok(());
                }
                header.set_entry_type(kind);
                // A fifo has no device numbers; some writers leave the fields empty.
                header.set_device_major(0).map_err(write_error)?;
                header.set_device_minor(0).map_err(write_error)?;
                builder
                    .append_data(&mut header, bytes_path(&path), io::empty())
                    .map_err(write_error)?;
            }
            // Devices never get here: the policy refused them.
            other => {
                let kind = format!("{other:?}");
                return Err(self
                    .package
                    .refuse(&shown_path, UnsafeEntry::Unsupported { kind }));
            }
        }
        self.record_file(path, moved.then_some(original), destination);
        self.entries += 1;
        Ok(())
    }

    /// Whether the filter leaves this entry out; if so it is counted. A
    /// hard link to a file left out is left out too.
    fn leaves_out<R: Read>(&mut self, path: &[u8], entry: &tar::Entry<'_, R>) -> bool {
        let kind = match entry.header().entry_type() {
            EntryType::Directory => return false,
            EntryType::Symlink => EntryKind::Symlink,
            _ => EntryKind::Other,
        };
        let mut out = self.filter.leaves_out(path, kind);
        if !out && entry.header().entry_type() == EntryType::Link {
            let target = entry.link_name_bytes().unwrap_or_default();
            out = normalise_path(&target).flatten().is_some_and(|target| {
                let target = match self.merged(&target) {
                    MergedPath::Moved(target) => target,
                    _ => target,
                };
                self.left_out.contains(&target)
            });
        }
        if out {
            if matches!(
                entry.header().entry_type(),
                EntryType::Regular | EntryType::Continuous
            ) {
                self.left_out_bytes += entry.size();
            }
            self.left_out.insert(path.to_vec());
        }
        out
    }

    /// Writes a root-owned 0644 file made by xbuild (a status record), with
    /// its parent directories unless the layer has them already.
    fn add_generated_file<W: Write>(
        &mut self,
        builder: &mut tar::Builder<LayerStream<W>>,
        package: &str,
        path: &str,
        contents: &[u8],
    ) -> Result<(), LayerError> {
        let write_error = |path: &str, source| LayerError::Write {
            package: package.to_owned(),
            path: path.to_owned(),
            source,
        };
        let mut parent_end = 0;
        while let Some(slash) = path[parent_end..].find('/') {
            parent_end += slash + 1;
            let directory = &path[..parent_end];
            if self
                .written_directories
                .insert(directory.as_bytes().to_vec())
            {
                let mut header = self.generated_header(EntryType::Directory, 0o755, 0);
                builder
                    .append_data(&mut header, directory, io::empty())
                    .map_err(|source| write_error(directory, source))?;
                self.entries += 1;
            }
        }
        let mut header = self.generated_header(EntryType::Regular, 0o644, contents.len() as u64);
        builder
            .append_data(&mut header, path, contents)
            .map_err(|source| write_error(path, source))?;
        self.record_file(path.as_bytes().to_vec(), None, None);
        self.entries += 1;
        Ok(())
    }

    fn generated_header(&self, kind: EntryType, mode: u32, size: u64) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        // "root" always fits the 32-byte name fields.
        set_owner_names(&mut header, Some(b"root"), Some(b"root"))
            .expect("`root` fits a tar header");
        header.set_mtime(self.epoch.unwrap_or(self.newest));
        header.set_size(size);
        header
    }
}

fn set_owner_names(
    header: &mut Header,
    user: Option<&[u8]>,
    group: Option<&[u8]>,
) -> io::Result<()> {
    let too_long = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "owner name longer than 31 bytes",
        )
    };
    let gnu = header
        .as_gnu_mut()
        .expect("headers are created in GNU format");
    for (field, name) in [(&mut gnu.uname, user), (&mut gnu.gname, group)] {
        let name = name.unwrap_or_default();
        if name.len() >= field.len() {
            return Err(too_long());
        }
        field.fill(0);
        field[..name.len()].copy_from_slice(name);
    }
    Ok(())
}

/// Normalises a path from a package's data tarball: leading `/` and `./` go,
/// empty and `.` components go, and a trailing `/` is dropped (the caller
/// adds it back for directories). `None` when the path has a `..`
/// component; `Some(None)` for the root itself.
fn normalise_path(raw: &[u8]) -> Option<Option<Vec<u8>>> {
    let mut normalised = Vec::with_capacity(raw.len());
    for component in raw.split(|byte| *byte == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return None,
            _ => {
                if !normalised.is_empty() {
                    normalised.push(b'/');
                }
                normalised.extend_from_slice(component);
            }
        }
    }
    Some((!normalised.is_empty()).then_some(normalised))
}

fn bytes_path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// The status record of a package: its control paragraph with
/// `Status: install ok installed` after the `Package:` line.
fn status_paragraph(control: &str) -> String {
    let mut status = String::with_capacity(control.len() + 32);
    for line in control.trim_end().lines() {
        if line.starts_with("Status:") {
            continue;
        }
        status.push_str(line);
        status.push('\n');
        if line.starts_with("Package:") {
            status.push_str("Status: install ok installed\n");
        }
    }
    status
}

/// Remembers a read error so that it is reported as a read failure of the
/// package and not as a failure to write the layer.
struct ReadTracker<R> {
    inner: R,
    error: Option<io::Error>,
}

impl<R: Read> Read for ReadTracker<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buffer).map_err(|error| {
            if error.kind() == io::ErrorKind::Interrupted {
                return error;
            }
            let copy = io::Error::new(error.kind(), error.to_string());
            self.error = Some(error);
            copy
        })
    }
}

#[path = "layer_merge.rs"]
mod merge;

#[cfg(test)]
#[path = "layer_tests.rs"]
mod tests;
