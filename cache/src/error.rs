//! The errors of the cache; each names the path, blob or entry concerned.

use crate::Bucket;
use crate::hash::Sha256Digest;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("failed to initialize the cache at {path}")]
    Init {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cache I/O failed at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("timed out after {seconds} s waiting for the lock {path}")]
    LockTimeout { path: PathBuf, seconds: u64 },
    #[error("failed to encode the cache record {path}")]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "a blob does not match its digest: expected {}{}, got {} ({actual_size} bytes)",
        .expected.oci(),
        .expected_size.map(|size| format!(" ({size} bytes)")).unwrap_or_default(),
        .actual.oci()
    )]
    BlobMismatch {
        expected: Sha256Digest,
        expected_size: Option<u64>,
        actual: Sha256Digest,
        actual_size: u64,
    },
    #[error("the blob {} is not in the cache", .digest.oci())]
    MissingBlob { digest: Sha256Digest },
    #[error("not a cache entry of {bucket} {}: {reason}", .key.oci())]
    BadEntry {
        bucket: Bucket,
        key: Sha256Digest,
        reason: String,
    },
    #[error("the cache holds no tree {bucket}/{}", .key.hex())]
    NoTree { bucket: Bucket, key: Sha256Digest },
    #[error("cannot pack {path}: {reason}")]
    Pack { path: PathBuf, reason: String },
    #[error("the packed tree {} is not a valid archive", .blob.oci())]
    Unpack {
        blob: Sha256Digest,
        #[source]
        source: io::Error,
    },
    #[error("the packed tree {} holds {path:?}, which {reason}; refused", .blob.oci())]
    UnsafeTreePath {
        blob: Sha256Digest,
        path: String,
        reason: &'static str,
    },
}

impl CacheError {
    pub fn hint(&self) -> Option<String> {
        match self {
            CacheError::LockTimeout { .. } => Some(
                "another xbuild process holds this lock; wait for it to finish (look for it with `pgrep -a xbuild`), or use another --cache-dir".into(),
            ),
            CacheError::Init { .. } => Some(
                "choose a writable cache location with --cache-dir or XBUILD_CACHE_DIR".into(),
            ),
            CacheError::Io { path, source } => Some(local_io_hint(path, source)),
            CacheError::BlobMismatch { .. } | CacheError::Unpack { .. } => Some(
                "the blob was dropped; it is fetched or built again on the next run (`xbuild cache verify` checks the rest)".into(),
            ),
            _ => None,
        }
    }

    /// A digest, path or archive check refused data (rather than I/O or
    /// a lock failing).
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            CacheError::BlobMismatch { .. }
                | CacheError::BadEntry { .. }
                | CacheError::Unpack { .. }
                | CacheError::UnsafeTreePath { .. }
        )
    }
}

/// The hint for a failed local read or write at `path`.
pub fn local_io_hint(path: &Path, source: &io::Error) -> String {
    if source.kind() == io::ErrorKind::StorageFull || source.raw_os_error() == Some(28) {
        // A temp file is gone by now: name the directory it was in.
        let directory = match path.parent() {
            Some(parent) if !path.is_dir() => parent,
            _ => path,
        };
        format!(
            "the file system holding {} is full: free space there, or point --cache-dir (XBUILD_CACHE_DIR) or --out at one with room",
            directory.display()
        )
    } else {
        format!(
            "check that {} is writable and its file system healthy",
            path.display()
        )
    }
}
