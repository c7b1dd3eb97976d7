//! Blobs: immutable content in `blobs-v1/sha256/<hex>`, named by the
//! sha256 of its bytes. Written once through a temp file and renamed into
//! place; verified (re-hashed while read) before use, and deleted when it
//! does not match, so the caller fetches it again.

use crate::hash::{HashingReader, Sha256Digest};
use crate::{BLOBS, Cache, CacheError, atomic_write, io_error, touch, touch_open};
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::SystemTime;

/// A blob an entry refers to: its digest and size.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct BlobRef {
    pub digest: Sha256Digest,
    pub size: u64,
}

impl BlobRef {
    pub fn new(digest: Sha256Digest, size: u64) -> BlobRef {
        BlobRef { digest, size }
    }
}

/// A blob found in the store.
#[derive(Debug, Clone)]
pub struct BlobInfo {
    pub digest: Sha256Digest,
    pub size: u64,
    /// When it was last written or verified for a use.
    pub last_used: SystemTime,
}

impl Cache {
    /// Where the blob with this digest lives (whether or not it exists):
    /// to read a blob already verified, or hand its path to a tool.
    pub fn blob_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.root().join(BLOBS).join(digest.hex())
    }

    /// True if a blob with this digest is present (not verified).
    pub fn has_blob(&self, digest: &Sha256Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// The blob's path if present and its content matches its digest (and
    /// `size`, when given). A blob that does not match is deleted and `None`
    /// returned, so the caller fetches it again.
    pub fn verified_blob(
        &self,
        digest: &Sha256Digest,
        size: Option<u64>,
    ) -> Result<Option<PathBuf>, CacheError> {
        let path = self.blob_path(digest);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CacheError::Io { path, source }),
        };
        let mut reader = HashingReader::new(io::BufReader::with_capacity(256 * 1024, &file));
        io::copy(&mut reader, &mut io::sink()).map_err(io_error(&path))?;
        let (actual, actual_size) = reader.finish();
        if actual == *digest && size.is_none_or(|size| size == actual_size) {
            touch_open(&file, SystemTime::now());
            Ok(Some(path))
        } else {
            self.drop_blob(digest)?;
            Ok(None)
        }
    }

    /// Deletes a blob (a corrupt one, typically).
    pub fn drop_blob(&self, digest: &Sha256Digest) -> Result<(), CacheError> {
        let path = self.blob_path(digest);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CacheError::Io { path, source }),
        }
    }

    /// Moves a completed temp file into place as the blob `digest`. The
    /// caller has computed the digest while writing it.
    pub fn commit_blob(
        &self,
        temp: tempfile::NamedTempFile,
        digest: &Sha256Digest,
    ) -> Result<PathBuf, CacheError> {
        let path = self.blob_path(digest);
        temp.persist(&path).map_err(|error| CacheError::Io {
            path: path.clone(),
            source: error.error,
        })?;
        Ok(path)
    }

    /// Stores what `reader` yields as the blob `expected`, hashing while
    /// it streams to a temp file: committed only if digest and size match
    /// ([`CacheError::BlobMismatch`] otherwise, and nothing is stored). A
    /// blob already present and whole is kept and `reader` not read.
    pub fn put_blob_from_reader(
        &self,
        reader: impl Read,
        expected: &BlobRef,
    ) -> Result<PathBuf, CacheError> {
        if let Some(path) = self.verified_blob(&expected.digest, Some(expected.size))? {
            return Ok(path);
        }
        let mut temp = self.temp_file()?;
        let mut reader = HashingReader::new(reader);
        io::copy(&mut reader, temp.as_file_mut()).map_err(io_error(temp.path()))?;
        temp.as_file().sync_data().map_err(io_error(temp.path()))?;
        let (actual, actual_size) = reader.finish();
        if actual != expected.digest || actual_size != expected.size {
            return Err(CacheError::BlobMismatch {
                expected: expected.digest,
                expected_size: Some(expected.size),
                actual,
                actual_size,
            });
        }
        self.commit_blob(temp, &expected.digest)
    }

    /// Stores `bytes` as a blob and returns its digest.
    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<Sha256Digest, CacheError> {
        let digest = Sha256Digest::of(bytes);
        let path = self.blob_path(&digest);
        if path.is_file() {
            touch(&path);
        } else {
            atomic_write(&self.tmp_dir(), &path, bytes).map_err(io_error(&path))?;
        }
        Ok(digest)
    }

    /// Reads a blob whole, verifying it. Meant for small blobs (indices,
    /// configs); `None` if absent or corrupt (then it is deleted).
    pub fn read_blob(&self, digest: &Sha256Digest) -> Result<Option<Vec<u8>>, CacheError> {
        let path = self.blob_path(digest);
        match std::fs::read(&path) {
            Ok(bytes) if Sha256Digest::of(&bytes) == *digest => {
                touch(&path);
                Ok(Some(bytes))
            }
            Ok(_) => {
                self.drop_blob(digest)?;
                Ok(None)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CacheError::Io { path, source }),
        }
    }

    /// Every blob in the store (not verified), in digest order. Files whose
    /// name is not a digest are left out (`verify` reports them).
    pub fn blobs(&self) -> Result<Vec<BlobInfo>, CacheError> {
        let dir = self.root().join(BLOBS);
        let mut blobs = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
            let entry = entry.map_err(io_error(&dir))?;
            let Some(digest) = entry.file_name().to_str().and_then(Sha256Digest::parse) else {
                continue;
            };
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.is_file() {
                blobs.push(BlobInfo {
                    digest,
                    size: metadata.len(),
                    last_used: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        blobs.sort_by_key(|blob| blob.digest);
        Ok(blobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_corruption_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let digest = cache.put_blob_bytes(b"layer bytes").unwrap();
        assert_eq!(cache.read_blob(&digest).unwrap().unwrap(), b"layer bytes");
        assert!(cache.verified_blob(&digest, Some(11)).unwrap().is_some());
        // A size mismatch alone is enough to refuse the blob.
        assert!(cache.verified_blob(&digest, Some(12)).unwrap().is_none());
        assert!(!cache.has_blob(&digest));

        let digest = cache.put_blob_bytes(b"layer bytes").unwrap();
        std::fs::write(cache.blob_path(&digest), b"tampered!!!").unwrap();
        assert!(cache.verified_blob(&digest, None).unwrap().is_none());
        assert!(
            !cache.blob_path(&digest).exists(),
            "corrupt blob must be deleted"
        );
        assert!(dir.path().join("CACHEDIR.TAG").is_file());
    }

    #[test]
    fn a_streamed_blob_is_committed_only_when_it_matches() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let good = BlobRef::new(Sha256Digest::of(b"remote bytes"), 12);
        let error = cache
            .put_blob_from_reader(&b"remote bytez"[..], &good)
            .unwrap_err();
        assert!(
            matches!(error, CacheError::BlobMismatch { .. }),
            "{error:?}"
        );
        assert!(!cache.has_blob(&good.digest));
        assert_eq!(std::fs::read_dir(cache.tmp_dir()).unwrap().count(), 0);
        let path = cache
            .put_blob_from_reader(&b"remote bytes"[..], &good)
            .unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"remote bytes");
        let listed: Vec<_> = cache.blobs().unwrap().iter().map(|b| b.digest).collect();
        assert_eq!(listed, vec![good.digest]);
    }
}
