//! Entries: one small JSON file per (bucket, key) in
//! `entries-v2/<bucket>/<key-hex>.json`, holding the caller's record and,
//! beside it, what anyone can use without knowing the record's type:
//!
//! ```json
//! {"bucket":"layer-v1","key":"sha256:…","platform":"aarch64-linux",
//!  "blobs":[{"digest":"sha256:…","size":1234}],"trees":[],"record":{…}}
//! ```
//!
//! - `blobs`: the blobs the entry needs, without which it is useless (a
//!   layer's blob, a build's layer, an InRelease file, a packed tree);
//!   `gc` never removes one a kept entry lists, `verify` checks them, and
//!   a remote carries them with the entry.
//! - `trees`: the trees it needs (a compiler needs its programs and its
//!   sysroot, which its symlinks point into).
//! - `platform`: what it is for — `aarch64-linux`, a (build, target) pair
//!   such as `x86_64-linux->aarch64-linux` for what runs on one machine
//!   and emits code for another, or `any`.
//!
//! The bytes on disk are the entry's canonical form: a remote copies them
//! as they are ([`Cache::read_entry_raw`], [`Cache::write_entry_raw`]), so
//! a signature over them holds on every machine. The bucket and key are
//! inside, so an entry cannot be replayed under another key.
//!
//! Reading an entry marks it used (its file's time): `gc` removes the
//! entries unused longest first.

use crate::blob::BlobRef;
use crate::hash::Sha256Digest;
use crate::{Bucket, Cache, CacheError, ENTRIES, atomic_write, io_error, touch_open};
use fs_err as fs;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The version of the entry envelope (the `entries-v2` directory).
pub const ENTRY_FORMAT: u32 = 2;

/// A tree an entry needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TreeRef {
    pub bucket: Bucket,
    pub key: Sha256Digest,
}

/// What an entry needs and what it is for; see the module doc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    pub platform: String,
    pub blobs: Vec<BlobRef>,
    #[serde(default)]
    pub trees: Vec<TreeRef>,
}

impl EntryMeta {
    /// An entry for the platform `platform` (`aarch64-linux`, a pair
    /// `x86_64-linux->aarch64-linux`) that needs nothing yet.
    pub fn for_platform(platform: impl Into<String>) -> EntryMeta {
        EntryMeta {
            platform: platform.into(),
            blobs: Vec::new(),
            trees: Vec::new(),
        }
    }

    /// An entry that is the same for every platform.
    pub fn any() -> EntryMeta {
        EntryMeta::for_platform("any")
    }

    /// The platform string of something running on `build` and emitting
    /// code for `target`.
    pub fn pair(build: &str, target: &str) -> String {
        format!("{build}->{target}")
    }

    pub fn with_blob(mut self, blob: BlobRef) -> EntryMeta {
        if !self.blobs.contains(&blob) {
            self.blobs.push(blob);
        }
        self
    }

    pub fn with_blobs(self, blobs: impl IntoIterator<Item = BlobRef>) -> EntryMeta {
        blobs.into_iter().fold(self, EntryMeta::with_blob)
    }

    pub fn with_tree(mut self, bucket: Bucket, key: Sha256Digest) -> EntryMeta {
        let tree = TreeRef { bucket, key };
        if !self.trees.contains(&tree) {
            self.trees.push(tree);
        }
        self
    }
}

/// A record with its meta.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<T> {
    pub meta: EntryMeta,
    pub record: T,
}

/// An entry's bytes as stored (its canonical form), and its meta.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEntry {
    pub bytes: Vec<u8>,
    pub meta: EntryMeta,
}

/// An entry found by [`Cache::entries`].
#[derive(Debug, Clone)]
pub struct EntryInfo {
    pub bucket: Bucket,
    pub key: Sha256Digest,
    pub meta: EntryMeta,
    /// The size of the entry file itself.
    pub size: u64,
    /// When it was last written or read.
    pub last_used: SystemTime,
}

/// An entry file as found: decoded, or its path and why it does not.
pub(crate) type Scanned = Result<EntryInfo, (PathBuf, String)>;

/// The file's layout (field order is the canonical order).
#[derive(Serialize, Deserialize)]
struct Envelope<R> {
    bucket: Bucket,
    key: Sha256Digest,
    platform: String,
    blobs: Vec<BlobRef>,
    #[serde(default)]
    trees: Vec<TreeRef>,
    record: R,
}

impl<R> Envelope<R> {
    fn meta(&self) -> EntryMeta {
        EntryMeta {
            platform: self.platform.clone(),
            blobs: self.blobs.clone(),
            trees: self.trees.clone(),
        }
    }
}

/// Decodes an entry's bytes, checking that they are the entry `key` of
/// `bucket`.
fn decode<R: DeserializeOwned>(
    bytes: &[u8],
    bucket: Bucket,
    key: &Sha256Digest,
) -> Result<Envelope<R>, String> {
    let envelope: Envelope<R> = serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
    if envelope.bucket != bucket || envelope.key != *key {
        return Err(format!(
            "it is the entry {} of {}",
            envelope.key.oci(),
            envelope.bucket
        ));
    }
    Ok(envelope)
}

/// Decodes an entry's stored bytes (from [`Cache::read_entry_raw`] or a
/// remote) as the entry `key` of `bucket`, without storing it: what reads
/// a remote entry's record without fetching its blobs. The error says why
/// the bytes are not that entry.
pub fn decode_entry<T: DeserializeOwned>(
    bytes: &[u8],
    bucket: Bucket,
    key: &Sha256Digest,
) -> Result<Entry<T>, String> {
    decode::<T>(bytes, bucket, key).map(|envelope| Entry {
        meta: envelope.meta(),
        record: envelope.record,
    })
}

impl Cache {
    pub(crate) fn entry_path(&self, bucket: Bucket, key: &Sha256Digest) -> PathBuf {
        assert!(bucket.has_entries(), "{bucket} holds no entries");
        self.root()
            .join(ENTRIES)
            .join(bucket.name())
            .join(format!("{}.json", key.hex()))
    }

    /// The entry's bytes, marked used if `mark_used`; `None` if absent.
    fn read_entry_file(
        &self,
        bucket: Bucket,
        key: &Sha256Digest,
        mark_used: bool,
    ) -> Result<Option<(PathBuf, Vec<u8>)>, CacheError> {
        let path = self.entry_path(bucket, key);
        let mut file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CacheError::Io { path, source }),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error(&path))?;
        if mark_used {
            touch_open(&file, SystemTime::now());
        }
        Ok(Some((path, bytes)))
    }

    /// Reads the record `key` of `bucket`. An entry that cannot be decoded
    /// (truncated, or from an incompatible version) is deleted and `None`
    /// returned.
    pub fn get_entry<T: DeserializeOwned>(
        &self,
        bucket: Bucket,
        key: &Sha256Digest,
    ) -> Result<Option<T>, CacheError> {
        Ok(self
            .get_entry_with_meta(bucket, key)?
            .map(|entry| entry.record))
    }

    /// [`Cache::get_entry`] with the entry's meta.
    pub fn get_entry_with_meta<T: DeserializeOwned>(
        &self,
        bucket: Bucket,
        key: &Sha256Digest,
    ) -> Result<Option<Entry<T>>, CacheError> {
        let entry = match self.read_entry(bucket, key, true)? {
            None if self.ask_fallback(bucket, key) => self.read_entry(bucket, key, true)?,
            entry => entry,
        };
        if entry.is_some() {
            self.note_used(bucket, key);
        }
        Ok(entry)
    }

    /// [`Cache::get_entry_with_meta`] without marking it used (for
    /// maintenance).
    pub(crate) fn peek_entry<T: DeserializeOwned>(
        &self,
        bucket: Bucket,
        key: &Sha256Digest,
    ) -> Result<Option<Entry<T>>, CacheError> {
        self.read_entry(bucket, key, false)
    }

    fn read_entry<T: DeserializeOwned>(
        &self,
        bucket: Bucket,
        key: &Sha256Digest,
        mark_used: bool,
    ) -> Result<Option<Entry<T>>, CacheError> {
        let Some((path, bytes)) = self.read_entry_file(bucket, key, mark_used)? else {
            return Ok(None);
        };
        match decode::<T>(&bytes, bucket, key) {
            Ok(envelope) => Ok(Some(Entry {
                meta: envelope.meta(),
                record: envelope.record,
            })),
            Err(_) => {
                let _ = std::fs::remove_file(&path);
                Ok(None)
            }
        }
    }

    /// Writes the record `key` of `bucket` atomically, with what it needs
    /// and is for (`meta`).
    pub fn put_entry<T: Serialize>(
        &self,
        bucket: Bucket,
        key: &Sha256Digest,
        record: &T,
        meta: EntryMeta,
    ) -> Result<(), CacheError> {
        let path = self.entry_path(bucket, key);
        let envelope = Envelope {
            bucket,
            key: *key,
            platform: meta.platform,
            blobs: meta.blobs,
            trees: meta.trees,
            record,
        };
        let bytes = serde_json::to_vec(&envelope).map_err(|source| CacheError::Encode {
            path: path.clone(),
            source,
        })?;
        self.write_entry_file(&path, &bytes)?;
        self.note_used(bucket, key);
        self.note_stored(bucket, key);
        Ok(())
    }

    fn write_entry_file(&self, path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
        let dir = path.parent().expect("entry paths have a parent");
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        atomic_write(&self.tmp_dir(), path, bytes).map_err(io_error(path))
    }

    /// The entry's bytes as stored and its meta, for a remote to carry;
    /// `None` if absent. One that cannot be decoded is deleted.
    pub fn read_entry_raw(
        &self,
        bucket: Bucket,
        key: &Sha256Digest,
    ) -> Result<Option<RawEntry>, CacheError> {
        let Some((path, bytes)) = self.read_entry_file(bucket, key, true)? else {
            return Ok(None);
        };
        match decode::<IgnoredAny>(&bytes, bucket, key) {
            Ok(envelope) => Ok(Some(RawEntry {
                meta: envelope.meta(),
                bytes,
            })),
            Err(_) => {
                let _ = std::fs::remove_file(&path);
                Ok(None)
            }
        }
    }

    /// Stores an entry from its bytes (from a remote), as they are, once
    /// they decode as the entry `key` of `bucket`
    /// ([`CacheError::BadEntry`] otherwise, and nothing is stored). Returns
    /// its meta: the blobs and trees to fetch with it. Commit the blobs it
    /// lists first (a reader finds them then; `verify` drops an entry whose
    /// blobs are missing); for a tree, [`Cache::get_or_build_tree`] then
    /// unpacks its packed blob, or call [`Cache::unpack_tree`].
    pub fn write_entry_raw(
        &self,
        bucket: Bucket,
        key: &Sha256Digest,
        bytes: &[u8],
    ) -> Result<EntryMeta, CacheError> {
        let envelope =
            decode::<IgnoredAny>(bytes, bucket, key).map_err(|reason| CacheError::BadEntry {
                bucket,
                key: *key,
                reason,
            })?;
        self.write_entry_file(&self.entry_path(bucket, key), bytes)?;
        Ok(envelope.meta())
    }

    /// Deletes an entry (absent is fine).
    pub fn remove_entry(&self, bucket: Bucket, key: &Sha256Digest) -> Result<(), CacheError> {
        let path = self.entry_path(bucket, key);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CacheError::Io { path, source }),
        }
    }

    /// The keys of every entry of `bucket` (names only, nothing read), in
    /// key order.
    pub fn entry_keys(&self, bucket: Bucket) -> Result<Vec<Sha256Digest>, CacheError> {
        let mut keys: Vec<Sha256Digest> = self
            .entry_files(bucket)?
            .into_iter()
            .filter_map(|(key, _)| key)
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Every entry of `bucket` with its meta (not marked used), in key
    /// order. Entries that do not decode are left out (`verify` reports
    /// and removes them).
    pub fn entries(&self, bucket: Bucket) -> Result<Vec<EntryInfo>, CacheError> {
        Ok(self
            .scan_entries(bucket)?
            .into_iter()
            .filter_map(|scanned| scanned.ok())
            .collect())
    }

    /// Every file of the bucket's entry directory: decoded, or why not.
    pub(crate) fn scan_entries(&self, bucket: Bucket) -> Result<Vec<Scanned>, CacheError> {
        let mut scanned = Vec::new();
        for (key, path) in self.entry_files(bucket)? {
            let Some(key) = key else {
                scanned.push(Err((path, "its name is not <sha256>.json".to_owned())));
                continue;
            };
            let (bytes, metadata) = match std::fs::read(&path).and_then(|bytes| {
                let metadata = std::fs::metadata(&path)?;
                Ok((bytes, metadata))
            }) {
                Ok(read) => read,
                // Removed meanwhile.
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(CacheError::Io { path, source }),
            };
            scanned.push(match decode::<IgnoredAny>(&bytes, bucket, &key) {
                Ok(envelope) => Ok(EntryInfo {
                    bucket,
                    key,
                    meta: envelope.meta(),
                    size: metadata.len(),
                    last_used: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                }),
                Err(reason) => Err((path, reason)),
            });
        }
        scanned.sort_by_key(|scanned| match scanned {
            Ok(info) => (0, info.key.hex()),
            Err((path, _)) => (1, path.display().to_string()),
        });
        Ok(scanned)
    }

    /// The files of the bucket's entry directory, each with its key when
    /// its name is one.
    fn entry_files(
        &self,
        bucket: Bucket,
    ) -> Result<Vec<(Option<Sha256Digest>, PathBuf)>, CacheError> {
        assert!(bucket.has_entries(), "{bucket} holds no entries");
        let dir = self.root().join(ENTRIES).join(bucket.name());
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(CacheError::Io { path: dir, source }),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error(&dir))?;
            let name = entry.file_name();
            let key = name
                .to_str()
                .and_then(|name| name.strip_suffix(".json"))
                .and_then(Sha256Digest::parse);
            files.push((key, entry.path()));
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cache;

    #[test]
    fn entries_round_trip_with_their_meta_and_garbage_is_treated_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = Sha256Digest::of(b"key");
        let blob = BlobRef::new(Sha256Digest::of(b"layer"), 5);
        let meta = EntryMeta::for_platform("aarch64-linux").with_blob(blob);
        cache
            .put_entry(Bucket::Layer, &key, &vec![1u32, 2, 3], meta.clone())
            .unwrap();
        assert_eq!(
            cache.get_entry::<Vec<u32>>(Bucket::Layer, &key).unwrap(),
            Some(vec![1, 2, 3])
        );
        let entry = cache
            .get_entry_with_meta::<Vec<u32>>(Bucket::Layer, &key)
            .unwrap()
            .unwrap();
        assert_eq!(entry.meta, meta);
        // Another bucket, the same key: another entry.
        assert_eq!(
            cache.get_entry::<Vec<u32>>(Bucket::Build, &key).unwrap(),
            None
        );
        std::fs::write(cache.entry_path(Bucket::Layer, &key), b"{trunc").unwrap();
        assert_eq!(
            cache.get_entry::<Vec<u32>>(Bucket::Layer, &key).unwrap(),
            None
        );
        assert!(!cache.entry_path(Bucket::Layer, &key).exists());
    }

    #[test]
    fn raw_entries_travel_as_they_are_and_cannot_change_key() {
        let dir = tempfile::tempdir().unwrap();
        let here = Cache::open(&dir.path().join("a")).unwrap();
        let there = Cache::open(&dir.path().join("b")).unwrap();
        let key = Sha256Digest::of(b"key");
        let meta = EntryMeta::any()
            .with_blob(BlobRef::new(Sha256Digest::of(b"x"), 1))
            .with_tree(Bucket::Toolchains, Sha256Digest::of(b"t"));
        here.put_entry(Bucket::Build, &key, &"record", meta.clone())
            .unwrap();
        let raw = here.read_entry_raw(Bucket::Build, &key).unwrap().unwrap();
        assert_eq!(raw.meta, meta);
        assert_eq!(
            there
                .write_entry_raw(Bucket::Build, &key, &raw.bytes)
                .unwrap(),
            meta
        );
        assert_eq!(
            there.read_entry_raw(Bucket::Build, &key).unwrap().unwrap(),
            raw
        );
        assert_eq!(
            there.get_entry::<String>(Bucket::Build, &key).unwrap(),
            Some("record".to_owned())
        );
        // The same bytes under another key, or in another bucket: refused.
        let other = Sha256Digest::of(b"other");
        for (bucket, key) in [(Bucket::Build, other), (Bucket::Layer, key)] {
            let error = there.write_entry_raw(bucket, &key, &raw.bytes).unwrap_err();
            assert!(matches!(error, CacheError::BadEntry { .. }), "{error:?}");
            assert_eq!(there.read_entry_raw(bucket, &key).unwrap(), None);
        }
        let listed = there.entries(Bucket::Build).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].key, &listed[0].meta), (key, &meta));
        assert_eq!(there.entry_keys(Bucket::Build).unwrap(), vec![key]);
    }
}
