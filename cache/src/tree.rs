//! Trees: directories the pipeline builds once per cache — compiler
//! programs, sysroots, composed compilers, unpacked sources — at
//! `<bucket>/<key>/`, each with an entry in `entries-v2/<bucket>/` (its
//! size, and its packed blob once packed).
//!
//! [`Cache::get_or_build_tree`] is the one way a tree comes to be: under
//! the tree's lock, a tree in place is a hit; one missing whose entry has a
//! packed blob here is unpacked; otherwise the caller builds it in a
//! hidden directory beside its place, renamed into place when complete. So
//! concurrent processes build a tree once, and a tree at its final path is
//! always whole. (A tree found in place without an entry was made by an
//! xbuild from before trees had entries, by the same rename: it is
//! adopted.)
//!
//! To travel, a tree is packed into one deterministic blob
//! ([`Cache::pack_tree`], see `pack.rs` for the format) and unpacked at the
//! other end ([`Cache::unpack_tree`]): verified while read, refused if a
//! path escapes, unpacked aside and renamed, under the lock. Relative
//! symlinks are kept as they are, so a compiler's links to
//! `../../toolchains-v1/<key>` work again once those trees are unpacked
//! beside it (the compiler's entry lists them in `trees`).
//!
//! Packing is on demand (a remote push calls [`Cache::pack_tree`]), not
//! after every build. Measured on a 2-core machine under load: a Debian
//! cross toolchain of 233 MB packs in 1.9 s of one core into 81 MB (and
//! unpacks in 0.9 s); its sysroot of 45 MB in 0.3 s into 12 MB. Cheap next
//! to fetching and assembling them, but the packed copy would add a third
//! to the tree's space in every cache, and most caches never push. A tree
//! is packed at most once: the entry records the blob (and the digest of
//! the uncompressed archive, which `verify` checks the tree in place
//! against).

use crate::blob::BlobRef;
use crate::entry::{Entry, EntryMeta};
use crate::hash::Sha256Digest;
use crate::pack::{self, PackError, UnpackError};
use crate::temp::LockedTempDir;
use crate::{Bucket, BucketKind, Cache, CacheError, io_error, tree_size};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How a tree came to be in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeOrigin {
    /// It was there.
    Local,
    /// Unpacked now from its packed blob in the cache (one a remote
    /// brought).
    Unpacked,
    /// Built now.
    Built,
}

/// The record of a tree's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeRecord {
    /// Bytes of the files in the tree.
    pub bytes: u64,
    /// Files, directories and links in it.
    pub entries: u64,
    /// The tree packed, once it was.
    #[serde(default)]
    pub packed: Option<PackedTree>,
}

/// A tree packed into a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedTree {
    pub blob: BlobRef,
    /// The digest of the uncompressed archive: the tree in place still
    /// hashes to it if nothing changed it.
    pub tar_digest: Sha256Digest,
}

fn assert_tree(bucket: Bucket) {
    assert_eq!(
        bucket.kind(),
        BucketKind::Tree,
        "{bucket} is no tree bucket"
    );
}

impl Cache {
    /// Where the tree `key` of `bucket` lives (whether or not it exists).
    pub fn tree_path(&self, bucket: Bucket, key: &Sha256Digest) -> PathBuf {
        assert_tree(bucket);
        self.root().join(bucket.name()).join(key.hex())
    }

    /// The tree `key` of `bucket` with the entry's meta, made real: in
    /// place, unpacked from its packed blob, or built by `build` into the
    /// empty directory it is given (renamed into place when `build`
    /// returns `Ok`; removed if it fails). `meta` is what the entry of a
    /// tree built now records: its platform and the trees it needs (the
    /// packed blob is added by [`Cache::pack_tree`]).
    pub fn get_or_build_tree<E: From<CacheError>>(
        &self,
        bucket: Bucket,
        key: &Sha256Digest,
        meta: EntryMeta,
        build: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<(PathBuf, TreeOrigin), E> {
        let path = self.tree_path(bucket, key);
        let _lock = self.lock(bucket, key)?;
        let entry: Option<Entry<TreeRecord>> = self.get_entry_with_meta(bucket, key)?;
        let present = std::fs::symlink_metadata(&path).is_ok_and(|metadata| metadata.is_dir());
        match (present, entry) {
            (true, Some(_)) => return Ok((path, TreeOrigin::Local)),
            (true, None) => {
                self.record_tree(bucket, key, &path, meta)?;
                return Ok((path, TreeOrigin::Local));
            }
            (false, Some(entry)) => {
                if let Some(packed) = entry.record.packed
                    && self
                        .verified_blob(&packed.blob.digest, Some(packed.blob.size))?
                        .is_some()
                {
                    match self.unpack_locked(bucket, key, &packed.blob, entry.meta) {
                        Ok(_) => return Ok((path, TreeOrigin::Unpacked)),
                        // A bad archive is dropped: build instead, and a
                        // remote that sent it is named with its signer.
                        Err(error) if error.is_integrity() => {
                            self.reject_supplied(bucket, key, &error);
                        }
                        Err(error) => return Err(error.into()),
                    }
                }
            }
            (false, None) => {}
        }
        // Not a directory, but something: never used.
        if std::fs::symlink_metadata(&path).is_ok() {
            remove_path(&path)?;
        }
        let aside = LockedTempDir::beside(&path).map_err(io_error(&path))?;
        build(aside.path())?;
        finish_tree(&aside)?;
        aside.persist(&path).map_err(io_error(&path))?;
        self.record_tree(bucket, key, &path, meta)?;
        Ok((path, TreeOrigin::Built))
    }

    /// The tree, if it is in place (its entry marked used).
    pub fn tree(&self, bucket: Bucket, key: &Sha256Digest) -> Result<Option<PathBuf>, CacheError> {
        let path = self.tree_path(bucket, key);
        let present = path.is_dir() && self.get_entry::<TreeRecord>(bucket, key)?.is_some();
        Ok(present.then_some(path))
    }

    /// Removes a tree and its entry (the packed blob stays for `gc`).
    pub fn remove_tree(&self, bucket: Bucket, key: &Sha256Digest) -> Result<(), CacheError> {
        let _lock = self.lock(bucket, key)?;
        self.remove_tree_locked(bucket, key)
    }

    pub(crate) fn remove_tree_locked(
        &self,
        bucket: Bucket,
        key: &Sha256Digest,
    ) -> Result<(), CacheError> {
        self.remove_entry(bucket, key)?;
        let path = self.tree_path(bucket, key);
        if std::fs::symlink_metadata(&path).is_ok() {
            remove_path(&path)?;
        }
        Ok(())
    }

    /// Packs the tree into one blob (see the module doc) and records it in
    /// the tree's entry, so a tree is packed once: later calls return the
    /// same blob. [`CacheError::NoTree`] if the tree is not in place.
    pub fn pack_tree(&self, bucket: Bucket, key: &Sha256Digest) -> Result<BlobRef, CacheError> {
        let path = self.tree_path(bucket, key);
        let _lock = self.lock(bucket, key)?;
        let entry: Option<Entry<TreeRecord>> = self.get_entry_with_meta(bucket, key)?;
        if !path.is_dir() {
            return Err(CacheError::NoTree { bucket, key: *key });
        }
        let entry = match entry {
            Some(entry) => entry,
            None => {
                self.record_tree(bucket, key, &path, EntryMeta::any())?;
                self.get_entry_with_meta(bucket, key)?
                    .expect("the entry was just written")
            }
        };
        if let Some(packed) = &entry.record.packed
            && self
                .verified_blob(&packed.blob.digest, Some(packed.blob.size))?
                .is_some()
        {
            return Ok(packed.blob);
        }
        let temp = self.temp_file()?;
        let file = temp.reopen().map_err(io_error(temp.path()))?;
        let packed = pack::pack(&path, std::io::BufWriter::with_capacity(256 * 1024, file))
            .map_err(pack_error)?;
        temp.as_file().sync_data().map_err(io_error(temp.path()))?;
        self.commit_blob(temp, &packed.digest)?;
        let blob = BlobRef::new(packed.digest, packed.size);
        let stale = entry.record.packed.map(|old| old.blob);
        let mut meta = entry.meta;
        meta.blobs.retain(|kept| Some(*kept) != stale);
        let record = TreeRecord {
            packed: Some(PackedTree {
                blob,
                tar_digest: packed.tar_digest,
            }),
            ..entry.record
        };
        self.put_entry(bucket, key, &record, meta.with_blob(blob))?;
        Ok(blob)
    }

    /// Unpacks the packed tree `blob` (already in the blob store, e.g.
    /// fetched from a remote) into the tree's place, atomically, and
    /// records it in the tree's entry; an entry already there (written
    /// from the remote) keeps its meta. A tree already in place is kept.
    /// The blob is verified while read: one that does not match its
    /// digest, is no valid archive, or holds a path that escapes the tree
    /// is dropped and refused, and nothing is put in place.
    pub fn unpack_tree(
        &self,
        bucket: Bucket,
        key: &Sha256Digest,
        blob: &BlobRef,
    ) -> Result<PathBuf, CacheError> {
        let path = self.tree_path(bucket, key);
        let _lock = self.lock(bucket, key)?;
        let entry: Option<Entry<TreeRecord>> = self.get_entry_with_meta(bucket, key)?;
        if path.is_dir() {
            if entry.is_none() {
                self.record_tree(bucket, key, &path, EntryMeta::any())?;
            }
            return Ok(path);
        }
        let meta = entry.map_or_else(EntryMeta::any, |entry| entry.meta);
        self.unpack_locked(bucket, key, blob, meta)
    }

    fn unpack_locked(
        &self,
        bucket: Bucket,
        key: &Sha256Digest,
        blob: &BlobRef,
        meta: EntryMeta,
    ) -> Result<PathBuf, CacheError> {
        let path = self.tree_path(bucket, key);
        let blob_path = self.blob_path(&blob.digest);
        let file = match std::fs::File::open(&blob_path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(CacheError::MissingBlob {
                    digest: blob.digest,
                });
            }
            Err(source) => {
                return Err(CacheError::Io {
                    path: blob_path,
                    source,
                });
            }
        };
        let aside = LockedTempDir::beside(&path).map_err(io_error(&path))?;
        let unpacked = match pack::unpack(file, &blob.digest, aside.path()) {
            Ok(unpacked) => unpacked,
            Err(error) => {
                // The aside tree is removed on drop; the blob is no good.
                drop(aside);
                self.drop_blob(&blob.digest)?;
                return Err(match error {
                    UnpackError::Digest(actual, actual_size) => CacheError::BlobMismatch {
                        expected: blob.digest,
                        expected_size: Some(blob.size),
                        actual,
                        actual_size,
                    },
                    UnpackError::Unsafe(path, reason) => CacheError::UnsafeTreePath {
                        blob: blob.digest,
                        path,
                        reason,
                    },
                    UnpackError::Io(source) => CacheError::Unpack {
                        blob: blob.digest,
                        source,
                    },
                });
            }
        };
        finish_tree(&aside)?;
        aside.persist(&path).map_err(io_error(&path))?;
        let record = TreeRecord {
            bytes: unpacked.bytes,
            entries: unpacked.entries,
            packed: Some(PackedTree {
                blob: *blob,
                tar_digest: unpacked.tar_digest,
            }),
        };
        self.put_entry(bucket, key, &record, meta.with_blob(*blob))?;
        Ok(path)
    }

    /// Writes the entry of the tree in place at `path`.
    fn record_tree(
        &self,
        bucket: Bucket,
        key: &Sha256Digest,
        path: &Path,
        meta: EntryMeta,
    ) -> Result<(), CacheError> {
        let (bytes, entries) = tree_size(path);
        let record = TreeRecord {
            bytes,
            entries,
            packed: None,
        };
        self.put_entry(bucket, key, &record, meta)
    }
}

/// Temporary directories are private; a tree is readable by all.
fn finish_tree(aside: &LockedTempDir) -> Result<(), CacheError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(aside.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(io_error(aside.path()))
}

pub(crate) fn pack_error(error: PackError) -> CacheError {
    match error {
        PackError::Io(path, source) => CacheError::Io { path, source },
        PackError::Unsupported(path, reason) => CacheError::Pack {
            path,
            reason: reason.to_owned(),
        },
    }
}

/// Removes a file, a symlink or a whole tree (read-only directories
/// included).
pub(crate) fn remove_path(path: &Path) -> Result<(), CacheError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CacheError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let result = if metadata.is_dir() {
        crate::temp::remove_tree(path)
    } else {
        std::fs::remove_file(path)
    };
    result.map_err(io_error(path))
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
