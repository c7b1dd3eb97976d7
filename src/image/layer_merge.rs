//! Merged /usr in a package layer: what the layer holds at each path, so
//! that an entry moved under `usr/` meeting another is handled as
//! `usrmerge` handles it (or is an error naming both), the moved symlinks
//! written after the rest of their package, and the parents a moved entry
//! needs.

use super::{LayerError, LayerState, LayerStream, bytes_path};
use crate::image::usrmerge::{
    MergedPath, merged_link_destination, merged_path, merged_symlink_target,
};
use std::io::{self, Write};
use tar::{EntryType, Header};

/// What the layer holds at one path (not a directory).
pub(super) struct WrittenFile {
    /// Index into `package_names`.
    package: usize,
    /// The package's own path, when the entry moved under `usr/`.
    moved_from: Option<Vec<u8>>,
    /// Where a symlink leads, as a merged-tree path.
    destination: Option<Vec<u8>>,
}

/// A symlink moved under `usr/`, written after the rest of its package:
/// a package's data tarball is sorted, so `bin/x -> /usr/bin/x` comes
/// before the `usr/bin/x` that wins over it.
pub(super) struct DeferredLink {
    pub(super) header: Header,
    pub(super) path: Vec<u8>,
    pub(super) moved_from: Vec<u8>,
    pub(super) target: Vec<u8>,
}

impl LayerState<'_> {
    pub(super) fn record_file(
        &mut self,
        path: Vec<u8>,
        moved_from: Option<Vec<u8>>,
        destination: Option<Vec<u8>>,
    ) {
        let package = self.package_names.len().saturating_sub(1);
        self.written_files.insert(
            path,
            WrittenFile {
                package,
                moved_from,
                destination,
            },
        );
    }

    /// Where `path` goes in the layer.
    pub(super) fn merged(&self, path: &[u8]) -> MergedPath {
        match self.merged_usr {
            true => merged_path(path),
            false => MergedPath::Unchanged,
        }
    }

    /// Whether an entry at the merged-tree `path` (the package's `original`)
    /// is written, where an entry moved under `usr/` may meet another (a
    /// package with `/bin/x` and `/usr/bin/x`). As `usrmerge` does: a
    /// symlink that would lead to its own place gives way to what is there
    /// (`/usr/bin/x -> /bin/x` beside `/bin/x`), and a symlink equal to the
    /// one there is written once; any other meeting of a moved entry is an
    /// error naming both. Two other entries are written as before (the
    /// later one wins).
    pub(super) fn check_collision(
        &self,
        package: &str,
        original: &[u8],
        path: &[u8],
        moved: bool,
        leads_to: Option<&[u8]>,
        directory: bool,
    ) -> Result<bool, LayerError> {
        if !self.merged_usr {
            return Ok(true);
        }
        let mut as_directory = path.to_vec();
        as_directory.push(b'/');
        let existing = self.written_files.get(path);
        let existing_directory = self.written_directories.contains(&as_directory);
        if existing.is_none() && !existing_directory {
            return Ok(true);
        }
        let collision = |other: &WrittenFile| LayerError::MergedUsrCollision {
            package: package.to_owned(),
            path: lossy(original),
            other_package: self.package_names[other.package].clone(),
            other_path: lossy(other.moved_from.as_deref().unwrap_or(path)),
            merged: format!("/{}", lossy(path)),
        };
        if directory {
            // A directory meeting a directory is written once.
            return match existing {
                Some(other) if moved || other.moved_from.is_some() => Err(collision(other)),
                _ => Ok(true),
            };
        }
        if leads_to == Some(path) {
            return Ok(false);
        }
        match existing {
            Some(other) if moved || other.moved_from.is_some() => {
                if leads_to.is_some() && leads_to == other.destination.as_deref() {
                    Ok(false)
                } else {
                    Err(collision(other))
                }
            }
            None if moved => Err(LayerError::MergedUsrOverDirectory {
                package: package.to_owned(),
                path: lossy(original),
                merged: format!("/{}", lossy(path)),
            }),
            _ => Ok(true),
        }
    }

    /// Writes a symlink of the package that moved under `usr/`, its
    /// relative target rewritten to name the same file from there.
    pub(super) fn add_moved_link<W: Write>(
        &mut self,
        builder: &mut tar::Builder<LayerStream<W>>,
        package: &str,
        link: DeferredLink,
    ) -> Result<(), LayerError> {
        let DeferredLink {
            mut header,
            path,
            moved_from,
            target,
        } = link;
        let target = merged_symlink_target(&moved_from, &path, &target).unwrap_or(target);
        let leads_to = merged_link_destination(&path, &target);
        if !self.check_collision(package, &moved_from, &path, true, Some(&leads_to), false)? {
            return Ok(());
        }
        builder
            .append_link(&mut header, bytes_path(&path), bytes_path(&target))
            .map_err(|source| LayerError::Write {
                package: package.to_owned(),
                path: lossy(&moved_from),
                source,
            })?;
        self.record_file(path, Some(moved_from), Some(leads_to));
        self.entries += 1;
        Ok(())
    }

    /// Writes the parent directories of an entry moved under `usr/` that
    /// the layer does not have yet (the package's own `usr/` comes after
    /// its `bin/`).
    pub(super) fn add_parents<W: Write>(
        &mut self,
        builder: &mut tar::Builder<LayerStream<W>>,
        package: &str,
        path: &[u8],
    ) -> Result<(), LayerError> {
        let mut end = 0;
        while let Some(slash) = path[end..].iter().position(|byte| *byte == b'/') {
            end += slash + 1;
            let directory = &path[..end];
            if self.written_directories.insert(directory.to_vec()) {
                let mut header = self.generated_header(EntryType::Directory, 0o755, 0);
                builder
                    .append_data(&mut header, bytes_path(directory), io::empty())
                    .map_err(|source| LayerError::Write {
                        package: package.to_owned(),
                        path: lossy(directory),
                        source,
                    })?;
                self.entries += 1;
            }
        }
        Ok(())
    }
}

/// `usr/NAME` for the top-level merged directory `NAME`.
pub(super) fn merged_root(name: &[u8]) -> Vec<u8> {
    [b"usr/", name].concat()
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
