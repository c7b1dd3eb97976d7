//! A layer from a staging directory (the output of a build, installed under
//! a prefix): entries in sorted order, root ownership, every mtime set to
//! `SOURCE_DATE_EPOCH` (a build's outputs carry wall-clock times, so merely
//! clamping them would not be reproducible), permission bits kept, symlinks kept as
//! links, gzip with a fixed level — so the same files give the same digest
//! on every host and run. Streamed and hashed like a package layer.

use super::layer::{LayerOptions, LayerOutput};
use crate::hash::HashingWriter;
use fs_err as fs;
use std::collections::BTreeMap;
use std::io::{self, Write};
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
/// (so `root/usr/local/bin/x` becomes `/usr/local/bin/x`).
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
    paths.sort();
    for relative in &paths {
        let path = root.join(relative);
        let read_error = |source| DirectoryLayerError::Read {
            path: path.clone(),
            source,
        };
        let metadata = fs::symlink_metadata(&path).map_err(read_error)?;
        let mut header = Header::new_gnu();
        let (uid, gid) = owners.get(relative).copied().unwrap_or((0, 0));
        header.set_uid(uid.into());
        header.set_gid(gid.into());
        if (uid, gid) == (0, 0) {
            header.set_username("root").map_err(write_error)?;
            header.set_groupname("root").map_err(write_error)?;
        }
        header.set_mtime(options.epoch.unwrap_or(0));
        header.set_mode(metadata.permissions().mode() & 0o7777);
        let name = relative.to_string_lossy();
        if metadata.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(read_error)?;
            header.set_entry_type(EntryType::Symlink);
            header.set_size(0);
            builder
                .append_link(&mut header, name.as_ref(), &target)
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
                .append_data(&mut header, name.as_ref(), file)
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
