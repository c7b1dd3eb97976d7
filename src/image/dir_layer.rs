//! A layer from a staging directory (the output of a build, installed under
//! a prefix): entries in sorted order, root ownership, every mtime set to
//! `SOURCE_DATE_EPOCH` (a build's outputs carry wall-clock times, so merely
//! clamping them would not be reproducible), permission bits kept, symlinks kept as
//! links, gzip with a fixed level — so the same files give the same digest
//! on every host and run. Streamed and hashed like a package layer, and
//! merged-/usr like one: a build's `/bin/app` is `/usr/bin/app` in the
//! layer, since runtimes do not agree on a tar entry `bin/app` over the
//! image's `bin -> usr/bin` symlink. A name starting with `.wh.` is
//! refused: every runtime would apply it as a whiteout, deleting files of
//! the layers below.

use super::layer::{LayerOptions, LayerOutput};
use super::usrmerge::{MergedPath, merged_link_destination, merged_path, merged_symlink_target};
use crate::hash::HashingWriter;
use fs_err as fs;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

#[derive(Debug, thiserror::Error)]
pub enum DirectoryLayerError {
    #[error("cannot read {path} for the layer")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is neither a file, a directory nor a symlink")]
    Unsupported { path: PathBuf },
    #[error(
        "{path}: image layers apply names starting with `.wh.` as whiteouts, which delete files of the layers below"
    )]
    WhiteoutName { path: PathBuf },
    #[error("{path} and {other} are both /{merged} in a merged-/usr image")]
    MergedUsrCollision {
        path: PathBuf,
        other: PathBuf,
        merged: String,
    },
    #[error(
        "{path} is not a directory, but in a merged-/usr image /{name} is the symlink to usr/{name}"
    )]
    MergedUsrRoot { path: PathBuf, name: String },
    #[error("cannot write the layer")]
    Write {
        #[source]
        source: io::Error,
    },
}

impl DirectoryLayerError {
    /// The output-side I/O error when writing the layer failed (a full
    /// disk, say); the error unchanged otherwise.
    pub fn into_write_error(self) -> Result<io::Error, DirectoryLayerError> {
        match self {
            DirectoryLayerError::Write { source } => Ok(source),
            other => Err(other),
        }
    }
}

/// Writes every file under `root` into a layer at the same relative paths
/// (so `root/usr/local/bin/x` becomes `/usr/local/bin/x`; with
/// `merged_usr`, `root/bin/x` becomes `/usr/bin/x`).
pub fn write_directory_layer<W: Write>(
    root: &Path,
    options: &LayerOptions,
    out: W,
) -> Result<LayerOutput, DirectoryLayerError> {
    write_directory_layer_owned(root, options, &BTreeMap::new(), out)
}

/// [`write_directory_layer`], with the entries at the paths of `owners`
/// (relative to `root`) owned by their (uid, gid) instead of root.
pub fn write_directory_layer_owned<W: Write>(
    root: &Path,
    options: &LayerOptions,
    owners: &BTreeMap<PathBuf, (u32, u32)>,
    out: W,
) -> Result<LayerOutput, DirectoryLayerError> {
    let write_error = |source| DirectoryLayerError::Write { source };
    let gzip = flate2::GzBuilder::new().mtime(0).write(
        HashingWriter::new(out),
        flate2::Compression::new(options.compression_level.min(9)),
    );
    let mut builder = tar::Builder::new(HashingWriter::new(gzip));
    let mut entries = 0;
    let mut paths = Vec::new();
    collect(root, root, &mut paths)?;
    let paths = layer_paths(root, paths, options.merged_usr)?;
    for (name, relative) in &paths {
        let mut header = Header::new_gnu();
        let Some(relative) = relative else {
            // `usr/` for a build that installed only under `/bin`.
            header.set_entry_type(EntryType::Directory);
            header.set_mode(0o755);
            header.set_uid(0);
            header.set_gid(0);
            header.set_username("root").map_err(write_error)?;
            header.set_groupname("root").map_err(write_error)?;
            header.set_mtime(options.epoch.unwrap_or(0));
            header.set_size(0);
            builder
                .append_data(&mut header, format!("{name}/"), io::empty())
                .map_err(write_error)?;
            entries += 1;
            continue;
        };
        let path = root.join(relative);
        let read_error = |source| DirectoryLayerError::Read {
            path: path.clone(),
            source,
        };
        let metadata = fs::symlink_metadata(&path).map_err(read_error)?;
        let (uid, gid) = owners.get(relative).copied().unwrap_or((0, 0));
        header.set_uid(uid.into());
        header.set_gid(gid.into());
        if (uid, gid) == (0, 0) {
            header.set_username("root").map_err(write_error)?;
            header.set_groupname("root").map_err(write_error)?;
        }
        header.set_mtime(options.epoch.unwrap_or(0));
        header.set_mode(metadata.permissions().mode() & 0o7777);
        let name = name.as_str();
        if metadata.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(read_error)?;
            let target = match options.merged_usr {
                true => merged_symlink_target(
                    relative.as_os_str().as_bytes(),
                    name.as_bytes(),
                    target.as_os_str().as_bytes(),
                )
                .map_or(target, |target| PathBuf::from(OsStr::from_bytes(&target))),
                false => target,
            };
            header.set_entry_type(EntryType::Symlink);
            header.set_size(0);
            builder
                .append_link(&mut header, name, &target)
                .map_err(write_error)?;
        } else if metadata.is_dir() {
            header.set_entry_type(EntryType::Directory);
            header.set_size(0);
            builder
                .append_data(&mut header, format!("{name}/"), io::empty())
                .map_err(write_error)?;
        } else if metadata.is_file() {
            header.set_entry_type(EntryType::Regular);
            header.set_size(metadata.len());
            let file = fs::File::open(&path).map_err(read_error)?;
            builder
                .append_data(&mut header, name, file)
                .map_err(write_error)?;
        } else {
            return Err(DirectoryLayerError::Unsupported { path });
        }
        entries += 1;
    }
    let uncompressed = builder.into_inner().map_err(write_error)?;
    let (gzip, diff_id, uncompressed_size) = uncompressed.finish();
    let compressed = gzip.finish().map_err(write_error)?;
    let (mut out, digest, size) = compressed.finish();
    out.flush().map_err(write_error)?;
    Ok(LayerOutput {
        diff_id,
        digest,
        size,
        uncompressed_size,
        entries,
        skipped_scripts: Vec::new(),
        // The user's own files: nothing is left out.
        left_out_bytes: 0,
        left_out_entries: 0,
    })
}

/// The layer's paths in order, each with the staging path it comes from
/// (`None`: a `usr/` directory the merge needs that the build did not
/// make). With `merged_usr`, `bin/…` is `usr/bin/…` and so on; a
/// top-level `bin` symlink to `usr/bin` is left out (the image has it).
fn layer_paths(
    root: &Path,
    paths: Vec<PathBuf>,
    merged_usr: bool,
) -> Result<Vec<(String, Option<PathBuf>)>, DirectoryLayerError> {
    let mut named: Vec<(Vec<u8>, Option<PathBuf>)> = Vec::with_capacity(paths.len());
    let mut moved = false;
    for relative in paths {
        let bytes = relative.as_os_str().as_bytes();
        let name = match merged_path(bytes) {
            _ if !merged_usr => bytes.to_vec(),
            MergedPath::Unchanged => bytes.to_vec(),
            MergedPath::Moved(name) => {
                moved = true;
                name
            }
            MergedPath::Root => {
                let path = root.join(&relative);
                let read_error = |source| DirectoryLayerError::Read {
                    path: path.clone(),
                    source,
                };
                let metadata = fs::symlink_metadata(&path).map_err(read_error)?;
                let usr = [b"usr/", bytes].concat();
                if metadata.is_dir() {
                    moved = true;
                    usr
                } else {
                    let target =
                        fs::read_link(&path).map_err(|_| DirectoryLayerError::MergedUsrRoot {
                            path: path.clone(),
                            name: relative.display().to_string(),
                        })?;
                    if merged_link_destination(bytes, target.as_os_str().as_bytes()) == usr {
                        continue;
                    }
                    return Err(DirectoryLayerError::MergedUsrRoot {
                        path,
                        name: relative.display().to_string(),
                    });
                }
            }
        };
        named.push((name, Some(relative)));
    }
    if moved && !named.iter().any(|(name, _)| name == b"usr") {
        named.push((b"usr".to_vec(), None));
    }
    named.sort_by(|a, b| {
        let path = |name: &[u8]| Path::new(OsStr::from_bytes(name)).to_owned();
        path(&a.0).cmp(&path(&b.0)).then_with(|| a.1.cmp(&b.1))
    });
    let mut unique: Vec<(Vec<u8>, Option<PathBuf>)> = Vec::with_capacity(named.len());
    for (name, relative) in named {
        if let Some((last, other)) = unique.last()
            && *last == name
        {
            let is_directory = |relative: &Option<PathBuf>| {
                relative.as_ref().is_none_or(|relative| {
                    fs::symlink_metadata(root.join(relative)).is_ok_and(|m| m.is_dir())
                })
            };
            if is_directory(other) && is_directory(&relative) {
                continue;
            }
            return Err(DirectoryLayerError::MergedUsrCollision {
                path: root.join(relative.unwrap_or_default()),
                other: root.join(other.clone().unwrap_or_default()),
                merged: String::from_utf8_lossy(&name).into_owned(),
            });
        }
        unique.push((name, relative));
    }
    Ok(unique
        .into_iter()
        .map(|(name, relative)| (String::from_utf8_lossy(&name).into_owned(), relative))
        .collect())
}

fn collect(
    root: &Path,
    directory: &Path,
    paths: &mut Vec<PathBuf>,
) -> Result<(), DirectoryLayerError> {
    let read_error = |source| DirectoryLayerError::Read {
        path: directory.to_owned(),
        source,
    };
    for entry in fs::read_dir(directory).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let path = entry.path();
        let relative = path
            .strip_prefix(root)
            .expect("walk stays under root")
            .to_owned();
        if entry.file_name().as_bytes().starts_with(b".wh.") {
            return Err(DirectoryLayerError::WhiteoutName { path });
        }
        let is_directory = entry.file_type().map_err(read_error)?.is_dir();
        paths.push(relative);
        if is_directory {
            collect(root, &path, paths)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_of(root: &Path, epoch: u64) -> (LayerOutput, Vec<u8>) {
        let mut bytes = Vec::new();
        let options = LayerOptions {
            epoch: Some(epoch),
            compression_level: 6,
            filter: crate::image::filter::PathFilter::keep_all(),
            merged_usr: true,
        };
        let output = write_directory_layer(root, &options, &mut bytes).unwrap();
        (output, bytes)
    }

    fn staging() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("usr/local/bin");
        fs::create_dir_all(&bin).unwrap();
        fs::write(bin.join("hello"), b"\x7fELF fake").unwrap();
        fs::set_permissions(bin.join("hello"), std::fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(bin.join("a-data"), b"data").unwrap();
        std::os::unix::fs::symlink("hello", bin.join("hi")).unwrap();
        dir
    }

    #[test]
    fn entries_are_sorted_root_owned_and_clamped() {
        let dir = staging();
        let (output, bytes) = layer_of(dir.path(), 1234);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
            assert_eq!(header.mtime().unwrap(), 1234);
            seen.push((
                entry.path().unwrap().to_string_lossy().into_owned(),
                header.mode().unwrap() & 0o777,
            ));
        }
        let names: Vec<&str> = seen.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/a-data",
                "usr/local/bin/hello",
                "usr/local/bin/hi"
            ]
        );
        assert_eq!(seen[4].1, 0o755);
        assert_eq!(output.entries, 6);
        assert_eq!(output.size, bytes.len() as u64);
    }

    fn names_of(bytes: &[u8]) -> Vec<(String, Option<String>)> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let link = entry
                    .link_name()
                    .unwrap()
                    .map(|link| link.to_string_lossy().into_owned());
                (entry.path().unwrap().to_string_lossy().into_owned(), link)
            })
            .collect()
    }

    #[test]
    fn a_build_installed_to_bin_and_lib_is_under_usr_in_the_layer() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("bin")).unwrap();
        fs::create_dir_all(dir.path().join("lib")).unwrap();
        fs::write(dir.path().join("bin/app"), b"app").unwrap();
        fs::write(dir.path().join("lib/libapp.so.1"), b"lib").unwrap();
        std::os::unix::fs::symlink("../lib/libapp.so.1", dir.path().join("bin/lib-link")).unwrap();
        std::os::unix::fs::symlink("../etc/app.conf", dir.path().join("bin/conf")).unwrap();
        let (_, bytes) = layer_of(dir.path(), 0);
        let link = |target: &str| Some(target.to_owned());
        assert_eq!(
            names_of(&bytes),
            [
                ("usr/".to_owned(), None),
                ("usr/bin/".to_owned(), None),
                ("usr/bin/app".to_owned(), None),
                ("usr/bin/conf".to_owned(), link("../../etc/app.conf")),
                ("usr/bin/lib-link".to_owned(), link("../lib/libapp.so.1")),
                ("usr/lib/".to_owned(), None),
                ("usr/lib/libapp.so.1".to_owned(), None),
            ]
        );
        // The same file twice is an error naming both.
        fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
        fs::write(dir.path().join("usr/bin/app"), b"other").unwrap();
        let options = LayerOptions {
            epoch: Some(0),
            compression_level: 6,
            filter: crate::image::filter::PathFilter::keep_all(),
            merged_usr: true,
        };
        let error = write_directory_layer(dir.path(), &options, io::sink()).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&dir.path().join("bin/app").display().to_string())
                && message.contains(&dir.path().join("usr/bin/app").display().to_string())
                && message.contains("/usr/bin/app in a merged-/usr image"),
            "{message}"
        );
    }

    #[test]
    fn without_merged_usr_a_top_level_symlink_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("usr/bin", dir.path().join("bin")).unwrap();
        let mut bytes = Vec::new();
        let options = LayerOptions {
            epoch: Some(0),
            compression_level: 6,
            filter: crate::image::filter::PathFilter::keep_all(),
            merged_usr: false,
        };
        write_directory_layer(dir.path(), &options, &mut bytes).unwrap();
        assert_eq!(
            names_of(&bytes),
            [("bin".to_owned(), Some("usr/bin".to_owned()))]
        );
        // With it, the build's own `bin -> usr/bin` is the image's already.
        let (_, merged) = layer_of(dir.path(), 0);
        assert!(names_of(&merged).is_empty());
    }

    #[test]
    fn a_whiteout_name_in_a_build_output_is_refused_naming_the_file() {
        for name in [".wh.app.conf", ".wh..wh..opq", ".wh.", ".wh..", ".wh..."] {
            for directory in [false, true] {
                let dir = staging();
                let path = dir.path().join("usr/local/etc").join(name);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                match directory {
                    true => fs::create_dir(&path).unwrap(),
                    false => fs::write(&path, b"x").unwrap(),
                }
                let options = LayerOptions {
                    epoch: Some(0),
                    compression_level: 6,
                    filter: crate::image::filter::PathFilter::keep_all(),
                    merged_usr: true,
                };
                let error = write_directory_layer(dir.path(), &options, io::sink()).unwrap_err();
                assert!(
                    matches!(&error, DirectoryLayerError::WhiteoutName { path: named } if *named == path),
                    "{name}: {error}"
                );
                assert!(error.to_string().contains("whiteouts"), "{error}");
            }
        }
        // A name that merely contains `.wh.` is an ordinary file.
        let dir = staging();
        fs::write(dir.path().join("usr/local/bin/x.wh.y"), b"x").unwrap();
        layer_of(dir.path(), 0);
    }

    #[test]
    fn same_files_give_the_same_digest_whatever_their_mtimes() {
        let first = staging();
        let second = staging();
        std::fs::File::options()
            .write(true)
            .open(second.path().join("usr/local/bin/a-data"))
            .unwrap()
            .set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(99))
            .unwrap();
        let (a, _) = layer_of(first.path(), 0);
        let (b, _) = layer_of(second.path(), 0);
        assert_eq!(a.digest, b.digest);
        fs::write(second.path().join("usr/local/bin/a-data"), b"datA").unwrap();
        let (c, _) = layer_of(second.path(), 0);
        assert_ne!(a.diff_id, c.diff_id);
    }
}
