//! The local, content-addressed cache of xbuild.
//!
//! A tour:
//! - [`Cache`] is the store, open with a shared lock while a build runs
//!   ([`Cache::open`]) or an exclusive one for maintenance
//!   ([`Cache::open_exclusive`]). Nothing outside this crate builds a path
//!   inside it: every place is named by a [`Bucket`] and a key.
//! - **Blobs** ([`blob`]): immutable content named by its sha256 — `.deb`s,
//!   indices, InRelease files, layers, source tarballs, packed trees.
//! - **Entries** ([`entry`]): a small record per (bucket, key), plus what
//!   every remote, `verify` and `gc` need without knowing the record's
//!   type: the blobs it needs, the trees it needs, and its platform
//!   ([`EntryMeta`]).
//! - **Trees** ([`tree`]): directories (toolchains, sysroots, compilers,
//!   sources) built aside and renamed into place once
//!   ([`Cache::get_or_build_tree`]), packed into one deterministic blob on
//!   demand so they can travel ([`Cache::pack_tree`], [`Cache::unpack_tree`]).
//! - **Maintenance**: [`stats`], [`gc`] (least recently used first, never
//!   what a kept entry needs), [`verify`] (re-hash everything, drop what is
//!   corrupt), and the summaries of recent builds ([`history`]).
//!
//! On disk, under the cache root (`--cache-dir`, `$XBUILD_CACHE_DIR`, or the
//! user's cache directory + `xbuild`):
//!
//! ```text
//! CACHEDIR.TAG                 marks the tree for backup tools
//! .lock                        shared while a build runs, exclusive for gc and verify
//! blobs-v1/sha256/<hex>        immutable content; the name is the sha256 of the bytes
//! entries-v2/<bucket>/<key-hex>.json
//!                              {bucket, key, platform, blobs, trees, record}: see [`entry`]
//! locks-v1/<bucket>-<key>.lock per-item locks, so two processes never fetch or build one thing twice
//! tmp/                         temp files (.part-*) and build dirs (.staging-*, .build-*)
//! <tree bucket>/<key-hex>/     trees (toolchains-v1, sysroots-v3, compilers-v1, sources-v1)
//! cargo-target-v1/<key-hex>/   scratch: cargo's target directory per project
//! logs-v1/                     toolchain build logs; builds-v1.jsonl (the last builds' summaries)
//! ```
//!
//! The buckets, their versioned names and what each holds are in
//! [`bucket`].
//!
//! Every write is a temp file in `tmp/` renamed into place, and every tree
//! is built in a hidden directory beside its final place
//! (`.<name>.partial-*`, made with [`LockedTempDir::beside`]) and renamed,
//! so a crash never leaves a half-written blob, record or tree at a final
//! path. Whoever makes a temp file or directory holds an exclusive lock on
//! it while it lives ([`temp`]); [`Cache::open`] removes the ones nobody
//! holds, which a killed build left behind, and never one that another
//! process or thread is still writing. Blobs are verified by digest before
//! they are used; one that does not match is deleted and reported as
//! absent, so the caller fetches it again.

pub mod backend;
pub mod blob;
pub mod bucket;
pub mod entry;
mod error;
pub mod gc;
pub mod hash;
pub mod history;
mod pack;
pub mod remote;
mod remote_reader;
mod remote_records;
pub mod sign;
pub mod stats;
pub mod temp;
pub mod tree;
pub mod verify;

pub use blob::{BlobInfo, BlobRef};
pub use bucket::{Bucket, BucketKind};
pub use entry::{ENTRY_FORMAT, Entry, EntryInfo, EntryMeta, RawEntry, TreeRef};
pub use error::{CacheError, local_io_hint};
pub use temp::LockedTempDir;
pub use tree::{PackedTree, TreeOrigin, TreeRecord};

use fs_err as fs;
use hash::Sha256Digest;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BLOBS: &str = "blobs-v1/sha256";
const ENTRIES: &str = "entries-v2";
const LOCKS: &str = "locks-v1";
const TMP: &str = "tmp";

/// How long [`Cache::open`] waits for a running `gc` or `verify`.
const OPEN_WAIT: Duration = Duration::from_secs(300);

pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The local cache, held open with a lock on its root for the life of the
/// value: shared while builds run, exclusive for maintenance.
pub struct Cache {
    root: PathBuf,
    _root_lock: std::fs::File,
    exclusive: bool,
    /// Asked for a shared entry the store lacks (a remote cache).
    fallback: Option<std::sync::Arc<dyn EntryFallback>>,
    /// The shared entries this process read or wrote: what a push uploads.
    journal: std::sync::Mutex<std::collections::BTreeSet<(Bucket, Sha256Digest)>>,
    /// The entries the fallback supplied in this process.
    supplied: std::sync::Mutex<std::collections::BTreeSet<(Bucket, Sha256Digest)>>,
    /// Told of each shared entry this process makes (see [`StoreHook`]).
    on_store: Option<StoreHook>,
}

/// Called with each shared entry this process writes that no fallback
/// supplied — what it fetched upstream or built — once the entry is
/// complete: what uploads it as the build goes. It must not block (hand
/// the work to another thread).
pub type StoreHook = std::sync::Arc<dyn Fn(Bucket, Sha256Digest) + Send + Sync>;

/// Where the cache gets a shared entry it lacks (see
/// [`Bucket::is_shared`]): a remote cache. `fetch` stores the entry and
/// the blobs it needs in `cache` (verified) and says whether it did; it
/// never fails a read (a remote that fails is a miss).
pub trait EntryFallback: Send + Sync {
    fn fetch(&self, cache: &Cache, bucket: Bucket, key: &Sha256Digest) -> bool;

    /// Told that an entry it supplied in this process turned out unusable
    /// once used (its packed tree unsafe or corrupt): the cache dropped
    /// it and builds it instead.
    fn rejected(&self, _bucket: Bucket, _key: &Sha256Digest, _error: &CacheError) {}
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

    /// Opens (creating if needed) the cache at `root` for a build: a shared
    /// lock, so any number of builds run at once, and `gc` waits for them.
    pub fn open(root: &Path) -> Result<Cache, CacheError> {
        Cache::open_with(root, false)
    }

    /// Opens the cache at `root` alone (waiting for running builds to
    /// finish): what `gc` and `verify` need to delete anything.
    pub fn open_exclusive(root: &Path) -> Result<Cache, CacheError> {
        Cache::open_with(root, true)
    }

    fn open_with(root: &Path, exclusive: bool) -> Result<Cache, CacheError> {
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
        wait_for(&lock_path, OPEN_WAIT, || {
            if exclusive {
                lock.try_lock()
            } else {
                lock.try_lock_shared()
            }
        })?;
        // What killed builds left: every temp entry that no live process
        // or thread holds locked.
        temp::sweep(&root.join(TMP), true);
        for bucket in Bucket::trees() {
            temp::sweep(&root.join(bucket.name()), false);
        }
        Ok(Cache {
            root: root.to_owned(),
            _root_lock: lock,
            exclusive,
            fallback: None,
            journal: Default::default(),
            supplied: Default::default(),
            on_store: None,
        })
    }

    /// The cache asking `fallback` for the shared entries it lacks.
    pub fn with_fallback(mut self, fallback: std::sync::Arc<dyn EntryFallback>) -> Cache {
        self.fallback = Some(fallback);
        self
    }

    /// The cache telling `hook` of each shared entry this process makes.
    pub fn with_store_hook(mut self, hook: StoreHook) -> Cache {
        self.on_store = Some(hook);
        self
    }

    /// Tells the store hook of an entry just written, unless the fallback
    /// supplied it.
    pub(crate) fn note_stored(&self, bucket: Bucket, key: &Sha256Digest) {
        if let Some(hook) = &self.on_store
            && bucket.is_shared()
            && !self.supplied_by_fallback(bucket, key)
        {
            hook(bucket, *key);
        }
    }

    /// Whether shared entries the store lacks are asked of a fallback.
    pub fn has_fallback(&self) -> bool {
        self.fallback.is_some()
    }

    /// The shared entries this process read or wrote, in order.
    pub fn journal(&self) -> Vec<(Bucket, Sha256Digest)> {
        let journal = self
            .journal
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        journal.iter().copied().collect()
    }

    /// Whether the fallback supplied this entry in this process.
    pub fn supplied_by_fallback(&self, bucket: Bucket, key: &Sha256Digest) -> bool {
        let supplied = self
            .supplied
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        supplied.contains(&(bucket, *key))
    }

    pub(crate) fn note_used(&self, bucket: Bucket, key: &Sha256Digest) {
        if bucket.is_shared() {
            let mut journal = self
                .journal
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            journal.insert((bucket, *key));
        }
    }

    /// Asks the fallback for a shared entry the store lacks; true if it is
    /// there now.
    pub(crate) fn ask_fallback(&self, bucket: Bucket, key: &Sha256Digest) -> bool {
        let Some(fallback) = self.fallback.as_ref().filter(|_| bucket.is_shared()) else {
            return false;
        };
        if !fallback.fetch(self, bucket, key) {
            return false;
        }
        let mut supplied = self
            .supplied
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        supplied.insert((bucket, *key));
        true
    }

    /// Tells the fallback that an entry it supplied was dropped as
    /// unusable (nothing if the entry was not its).
    pub(crate) fn reject_supplied(&self, bucket: Bucket, key: &Sha256Digest, error: &CacheError) {
        if let Some(fallback) = &self.fallback
            && self.supplied_by_fallback(bucket, key)
        {
            fallback.rejected(bucket, key, error);
        }
    }

    /// Where the cache is, for messages and for leaving it out of a walk
    /// of the user's files. Never a base to build paths on: ask the cache
    /// for the place you need.
    pub fn location(&self) -> &Path {
        &self.root
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// For what deletes what a running build may use (gc, verify).
    pub(crate) fn assert_exclusive(&self, what: &str) {
        assert!(
            self.exclusive,
            "{what} needs the cache opened with Cache::open_exclusive"
        );
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join(TMP)
    }

    /// A new temp file inside the cache (same filesystem as the blobs, so it
    /// can be renamed into place), locked while it lives. Deleted on drop
    /// unless committed.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, CacheError> {
        let dir = self.tmp_dir();
        temp::locked_temp_file(&dir, ".part-").map_err(io_error(&dir))
    }

    /// A new locked temp directory in `tmp/` named `<prefix><random>`
    /// (staging for a layer, a build directory), removed on drop.
    pub fn temp_dir(&self, prefix: &str) -> Result<LockedTempDir, CacheError> {
        let dir = self.tmp_dir();
        LockedTempDir::new_in(&dir, prefix).map_err(io_error(&dir))
    }

    /// The scratch directory `key` of a scratch bucket
    /// ([`Bucket::CargoTarget`]), created if needed and marked used now (so
    /// `gc` removes the ones unused longest first).
    pub fn scratch_dir(&self, bucket: Bucket, key: &Sha256Digest) -> Result<PathBuf, CacheError> {
        assert_eq!(
            bucket.kind(),
            BucketKind::Scratch,
            "{bucket} is no scratch bucket"
        );
        let path = self.root.join(bucket.name()).join(key.hex());
        fs::create_dir_all(&path).map_err(io_error(&path))?;
        touch(&path);
        Ok(path)
    }

    /// The log file `name` (e.g. `toolchain-<key>.log`) in `logs-v1/`, its
    /// directory created.
    pub fn log_path(&self, name: &str) -> Result<PathBuf, CacheError> {
        let dir = self.root.join(Bucket::Logs.name());
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        Ok(dir.join(name))
    }

    /// Takes the exclusive lock of `key` in `bucket` (a layer being built,
    /// an InRelease being fetched), waiting up to ten minutes for another
    /// process or thread that holds it.
    pub fn lock(&self, bucket: Bucket, key: &Sha256Digest) -> Result<ItemLock, CacheError> {
        self.lock_named(&format!("{}-{}", bucket.name(), key.hex()))
    }

    /// Takes the exclusive lock of the blob `digest` (one download of it
    /// at a time), waiting like [`Cache::lock`].
    pub fn lock_blob(&self, digest: &Sha256Digest) -> Result<ItemLock, CacheError> {
        self.lock_named(&format!("blob-{}", digest.hex()))
    }

    pub(crate) fn lock_named(&self, name: &str) -> Result<ItemLock, CacheError> {
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

/// Marks `path` used now (its modification time, which is what `gc`
/// orders by), unless that was less than a minute ago: one cheap metadata
/// write, skipped for what a build reads again and again. Best effort: a
/// cache shared between users may hold files this one does not own.
pub(crate) fn touch(path: &Path) {
    let now = std::time::SystemTime::now();
    let Ok(file) = std::fs::File::open(path) else {
        return;
    };
    touch_open(&file, now);
}

pub(crate) fn touch_open(file: &std::fs::File, now: std::time::SystemTime) {
    let recent = file
        .metadata()
        .and_then(|metadata| metadata.modified())
        .is_ok_and(|modified| {
            now.duration_since(modified)
                .is_ok_and(|age| age < Duration::from_secs(60))
        });
    if !recent {
        let _ = file.set_modified(now);
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
pub(crate) fn atomic_write(temp_dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut temp = temp::locked_temp_file(temp_dir, ".part-")?;
    temp.write_all(bytes)?;
    temp.as_file().sync_data()?;
    temp.persist(path).map_err(|error| error.error)?;
    Ok(())
}

/// The size of everything under `path` (files' lengths, not blocks), and
/// how many files, symlinks and directories it holds. Missing is empty.
pub(crate) fn tree_size(path: &Path) -> (u64, u64) {
    let mut bytes = 0;
    let mut count = 0;
    let mut pending = vec![path.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            count += 1;
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                bytes += metadata.len();
            }
        }
    }
    (bytes, count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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
        for bucket in Bucket::trees() {
            let bucket = dir.path().join(bucket.name());
            std::fs::create_dir_all(bucket.join(".bbbb.partial-killed/bin")).unwrap();
            std::fs::create_dir_all(bucket.join("cccc")).unwrap();
        }
        let second = Cache::open(dir.path()).unwrap();
        assert!(live_file.path().is_file(), "a live download was swept");
        assert!(live_dir.path().is_dir(), "a live staging dir was swept");
        assert!(live_tree.path().is_dir(), "a live tree was swept");
        assert!(!dir.path().join("tmp/.part-killed").exists());
        assert!(!dir.path().join("tmp/.build-killed").exists());
        for bucket in Bucket::trees() {
            let bucket = dir.path().join(bucket.name());
            assert!(!bucket.join(".bbbb.partial-killed").exists());
            assert!(bucket.join("cccc").is_dir(), "a final entry was swept");
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
        let key = Sha256Digest::of(b"x");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let cache = cache.clone();
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let _lock = cache.lock(Bucket::Layer, &key).unwrap();
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

    #[test]
    fn an_exclusive_open_waits_for_builds_and_builds_wait_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let build = Cache::open(dir.path()).unwrap();
        let root = dir.path().to_owned();
        let (sender, receiver) = std::sync::mpsc::channel();
        let maintenance = std::thread::spawn(move || {
            let cache = Cache::open_exclusive(&root).unwrap();
            sender.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            drop(cache);
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            receiver.try_recv().is_err(),
            "gc opened the cache under a running build"
        );
        drop(build);
        receiver.recv().unwrap();
        // The build that starts now waits for the exclusive holder.
        let _next = Cache::open(dir.path()).unwrap();
        maintenance.join().unwrap();
    }
}
