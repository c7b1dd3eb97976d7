//! The local, content-addressed cache.
//!
//! On disk, under the cache root (`--cache-dir`, `$XBUILD_CACHE_DIR`, or the
//! user's cache directory + `xbuild`):
//!
//! ```text
//! CACHEDIR.TAG                        marks the tree for backup tools
//! .lock                               shared while a build runs, exclusive for cleaning
//! blobs-v1/sha256/<hex>               immutable content; the name is the sha256 of the bytes
//!                                     (.debs, Packages indices, InRelease files, layers, source tarballs)
//! entries-v1/<bucket>/<key-hex>.json  small records: key → outputs (digests, sizes, validators);
//!                                     buckets: inrelease, resolution, layer, build, build-history,
//!                                     source-lookup, toolchain-build, toolchain-build-time,
//!                                     cargo-build-script-env, outputs-v1
//! locks-v1/<name>.lock                per-item locks so two processes never fetch or build one thing twice
//! tmp/                                temp files (.part-*) and build dirs (.staging-*, .build-*),
//!                                     renamed into place when complete
//! toolchains-v1/<key-hex>/            compiler programs (Debian's, unpacked) or a toolchain built from source
//! sysroots-v3/<key-hex>/              a target's libc6-dev and -dev packages, unpacked (merged /usr)
//! compilers-v1/<key-hex>/             wrappers joining programs and a sysroot (two relative symlinks)
//! sources-v1/<digest-hex>/<tree>/     unpacked sources of [[build]] entries and source toolchains
//! cargo-target-v1/<key-hex>/          cargo's target directory per project (cargo's own layout and locks)
//! logs/toolchain-<key-hex>.log        the log of a toolchain built from source
//! ```
//!
//! Every write is a temp file in `tmp/` renamed into place, and every tree
//! (`toolchains-v1`, `sysroots-v3`, `compilers-v1`, `sources-v1`) is built in a hidden
//! directory beside its final place (`.<name>.partial-*`, made with
//! [`LockedTempDir::beside`]) and renamed, so a crash never leaves a
//! half-written blob, record or tree at a final path. Whoever makes a temp
//! file or directory holds an exclusive lock on it while it lives
//! ([`temp`]); [`Cache::open`] removes the ones nobody holds, which a killed
//! build left behind, and never one that another process or thread is
//! still writing. Blobs are verified by digest before they are used; one
//! that does not match is deleted and reported as absent, so the caller
//! fetches it again.

pub mod backend;
pub mod hash;
pub mod remote;
pub mod sign;

use fs_err as fs;
use hash::{HashingReader, Sha256Digest};
use serde::{Serialize, de::DeserializeOwned};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub mod temp;
pub use temp::LockedTempDir;

const BLOBS: &str = "blobs-v1/sha256";
const ENTRIES: &str = "entries-v1";
const LOCKS: &str = "locks-v1";
const TMP: &str = "tmp";
/// The buckets holding trees built beside their final place: their hidden
/// entries are temporaries, swept when abandoned. (The names the pipeline
/// uses for these trees.)
const TREE_BUCKETS: [&str; 5] = [
    "toolchains-v1",
    "sysroots-v3",
    "compilers-v1",
    "sources-v1",
    // Written by xbuild before sysroots-v3; its abandoned temporaries too.
    "sysroots-v2",
];

/// Errors of the cache; each names the path concerned.
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
            _ => None,
        }
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

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The local cache, held open with a shared lock for the life of the value.
pub struct Cache {
    root: PathBuf,
    _root_lock: std::fs::File,
}

/// An exclusive per-item lock; released when dropped.
pub struct ItemLock {
    _file: std::fs::File,
}

impl Cache {
    /// The default location: `$XBUILD_CACHE_DIR`, else the user's cache
    /// directory + `xbuild`.
    pub fn default_root() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("XBUILD_CACHE_DIR").filter(|dir| !dir.is_empty()) {
            return Some(PathBuf::from(dir));
        }
        dirs::cache_dir().map(|dir| dir.join("xbuild"))
    }

    /// Opens (creating if needed) the cache at `root`.
    pub fn open(root: &Path) -> Result<Cache, CacheError> {
        let init = |source| CacheError::Init {
            path: root.to_owned(),
            source,
        };
        for dir in [BLOBS, ENTRIES, LOCKS, TMP] {
            fs::create_dir_all(root.join(dir)).map_err(init)?;
        }
        let tag = root.join("CACHEDIR.TAG");
        if !tag.exists() {
            let text = "Signature: 8a477f597d28d172789f06886806bc55\n# This directory is a cache created by xbuild.\n";
            atomic_write(&root.join(TMP), &tag, text.as_bytes()).map_err(init)?;
        }
        let lock_path = root.join(".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(init)?;
        wait_for(&lock_path, Duration::from_secs(300), || {
            lock.try_lock_shared()
        })?;
        // What killed builds left: every temp entry that no live process
        // or thread holds locked.
        temp::sweep(&root.join(TMP), true);
        for bucket in TREE_BUCKETS {
            temp::sweep(&root.join(bucket), false);
        }
        Ok(Cache {
            root: root.to_owned(),
            _root_lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.root.join(BLOBS).join(digest.hex())
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
        let mut reader = HashingReader::new(io::BufReader::with_capacity(256 * 1024, file));
        io::copy(&mut reader, &mut io::sink()).map_err(io_error(&path))?;
        let (actual, actual_size) = reader.finish();
        if actual == *digest && size.is_none_or(|size| size == actual_size) {
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

    /// A new temp file inside the cache (same filesystem as the blobs, so it
    /// can be renamed into place), locked while it lives. Deleted on drop
    /// unless committed.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, CacheError> {
        let dir = self.root.join(TMP);
        temp::locked_temp_file(&dir, ".part-").map_err(io_error(&dir))
    }

    /// A new locked temp directory in `tmp/` named `<prefix><random>`
    /// (staging for a layer, a build directory), removed on drop.
    pub fn temp_dir(&self, prefix: &str) -> Result<LockedTempDir, CacheError> {
        let dir = self.root.join(TMP);
        LockedTempDir::new_in(&dir, prefix).map_err(io_error(&dir))
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

    /// Stores `bytes` as a blob and returns its digest.
    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<Sha256Digest, CacheError> {
        let digest = Sha256Digest::of(bytes);
        let path = self.blob_path(&digest);
        if !path.is_file() {
            atomic_write(&self.root.join(TMP), &path, bytes).map_err(io_error(&path))?;
        }
        Ok(digest)
    }

    /// Reads a blob whole, verifying it. Meant for small blobs (indices,
    /// configs); `None` if absent or corrupt (then it is deleted).
    pub fn read_blob(&self, digest: &Sha256Digest) -> Result<Option<Vec<u8>>, CacheError> {
        let path = self.blob_path(digest);
        match std::fs::read(&path) {
            Ok(bytes) if Sha256Digest::of(&bytes) == *digest => Ok(Some(bytes)),
            Ok(_) => {
                self.drop_blob(digest)?;
                Ok(None)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CacheError::Io { path, source }),
        }
    }

    fn entry_path(&self, bucket: &str, key: &Sha256Digest) -> PathBuf {
        self.root
            .join(ENTRIES)
            .join(bucket)
            .join(format!("{}.json", key.hex()))
    }

    /// Reads the record `key` of `bucket`. A record that cannot be decoded
    /// (truncated, or from an incompatible version) is deleted and `None`
    /// returned.
    pub fn get_entry<T: DeserializeOwned>(
        &self,
        bucket: &str,
        key: &Sha256Digest,
    ) -> Result<Option<T>, CacheError> {
        let path = self.entry_path(bucket, key);
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(value) => Ok(Some(value)),
                Err(_) => {
                    let _ = std::fs::remove_file(&path);
                    Ok(None)
                }
            },
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CacheError::Io { path, source }),
        }
    }

    /// Writes the record `key` of `bucket` atomically.
    pub fn put_entry<T: Serialize>(
        &self,
        bucket: &str,
        key: &Sha256Digest,
        value: &T,
    ) -> Result<(), CacheError> {
        let path = self.entry_path(bucket, key);
        let bytes = serde_json::to_vec(value).map_err(|source| CacheError::Encode {
            path: path.clone(),
            source,
        })?;
        let dir = path.parent().expect("entry paths have a parent");
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        atomic_write(&self.root.join(TMP), &path, &bytes).map_err(io_error(&path))
    }

    /// Takes the exclusive lock named `name` (e.g. a blob digest), waiting up
    /// to ten minutes for another process or thread that holds it.
    pub fn lock_item(&self, name: &str) -> Result<ItemLock, CacheError> {
        let path = self.root.join(LOCKS).join(format!("{name}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        wait_for(&path, Duration::from_secs(600), || file.try_lock())?;
        Ok(ItemLock { _file: file })
    }
}

fn wait_for(
    path: &Path,
    limit: Duration,
    mut attempt: impl FnMut() -> Result<(), std::fs::TryLockError>,
) -> Result<(), CacheError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match attempt() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < limit => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(CacheError::LockTimeout {
                    path: path.to_owned(),
                    seconds: limit.as_secs(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(CacheError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
}

/// Writes `bytes` to `path` through a temp file in `temp_dir` + rename.
pub fn atomic_write(temp_dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut temp = temp::locked_temp_file(temp_dir, ".part-")?;
    temp.write_all(bytes)?;
    temp.as_file().sync_data()?;
    temp.persist(path).map_err(|error| error.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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
    fn entries_round_trip_and_garbage_is_treated_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = Sha256Digest::of(b"key");
        cache.put_entry("layer", &key, &vec![1u32, 2, 3]).unwrap();
        assert_eq!(
            cache.get_entry::<Vec<u32>>("layer", &key).unwrap(),
            Some(vec![1, 2, 3])
        );
        std::fs::write(cache.entry_path("layer", &key), b"{trunc").unwrap();
        assert_eq!(cache.get_entry::<Vec<u32>>("layer", &key).unwrap(), None);
        assert!(!cache.entry_path("layer", &key).exists());
    }

    #[test]
    fn uncommitted_temp_files_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        {
            let mut temp = cache.temp_file().unwrap();
            temp.write_all(b"half").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path().join(TMP)).unwrap().count(), 0);
    }

    #[test]
    fn open_removes_abandoned_temporaries_and_keeps_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let first = Cache::open(dir.path()).unwrap();
        let mut live_file = first.temp_file().unwrap();
        live_file.write_all(b"downloading").unwrap();
        let live_dir = first.temp_dir(".staging-").unwrap();
        let live_tree = LockedTempDir::beside(&dir.path().join("toolchains-v1/aaaa")).unwrap();
        // What a killed build leaves: the same shapes, unlocked.
        std::fs::write(dir.path().join("tmp/.part-killed"), b"half").unwrap();
        std::fs::create_dir_all(dir.path().join("tmp/.build-killed/src")).unwrap();
        for bucket in TREE_BUCKETS {
            std::fs::create_dir_all(dir.path().join(bucket).join(".bbbb.partial-killed/bin"))
                .unwrap();
            std::fs::create_dir_all(dir.path().join(bucket).join("cccc")).unwrap();
        }
        let second = Cache::open(dir.path()).unwrap();
        assert!(live_file.path().is_file(), "a live download was swept");
        assert!(live_dir.path().is_dir(), "a live staging dir was swept");
        assert!(live_tree.path().is_dir(), "a live tree was swept");
        assert!(!dir.path().join("tmp/.part-killed").exists());
        assert!(!dir.path().join("tmp/.build-killed").exists());
        for bucket in TREE_BUCKETS {
            assert!(
                !dir.path()
                    .join(bucket)
                    .join(".bbbb.partial-killed")
                    .exists()
            );
            assert!(
                dir.path().join(bucket).join("cccc").is_dir(),
                "a final entry was swept"
            );
        }
        drop((live_file, live_dir, live_tree, first, second));
        let _third = Cache::open(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path().join(TMP)).unwrap().count(), 0);
    }

    #[test]
    fn item_locks_exclude_each_other_across_threads() {
        let dir = tempfile::tempdir().unwrap();
        let cache = std::sync::Arc::new(Cache::open(dir.path()).unwrap());
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let cache = cache.clone();
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let _lock = cache.lock_item("x").unwrap();
                    let inside = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    assert_eq!(inside, 0, "two holders of one item lock");
                    std::thread::sleep(Duration::from_millis(20));
                    counter.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
    }
}
