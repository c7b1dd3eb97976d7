//! The remotes as the local cache's fallback ([`RemoteReader`]): what a
//! build reads through them, and what moved.
//!
//! Each entry is asked of the remotes once per run: threads asking for
//! one entry at once wait for the first, and a later ask gets the first
//! one's answer, so an entry a remote refused is read once and warned
//! about once, however often a build looks it up.

use crate::hash::Sha256Digest;
use crate::remote::{Problem, RemoteWarning, Remotes};
use crate::{Bucket, Cache, CacheError};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// The remotes as the local cache's [`crate::EntryFallback`]: a shared
/// entry the store lacks is fetched from them (verified, blobs first), and
/// what moved is kept for the build report. Warnings go to `warn`, each
/// once.
pub struct RemoteReader {
    remotes: Remotes,
    warn: Box<dyn Fn(&RemoteWarning) + Send + Sync>,
    moved: Mutex<BTreeMap<(Bucket, Sha256Digest), Moved>>,
    /// Per entry asked: whether it was a hit, once known.
    asked: Mutex<BTreeMap<(Bucket, Sha256Digest), Answer>>,
    /// Where each entry fetched came from: the remote and the signer.
    origins: Mutex<BTreeMap<(Bucket, Sha256Digest), (String, String)>>,
}

/// Whether the remotes had an entry, once asked; locked while asking.
type Answer = Arc<Mutex<Option<bool>>>;

/// What one entry fetched from a remote moved.
#[derive(Debug, Clone, Copy, Default)]
pub struct Moved {
    pub bytes: u64,
    pub seconds: f64,
}

impl RemoteReader {
    pub fn new(remotes: Remotes, warn: Box<dyn Fn(&RemoteWarning) + Send + Sync>) -> RemoteReader {
        RemoteReader {
            remotes,
            warn,
            moved: Default::default(),
            asked: Default::default(),
            origins: Default::default(),
        }
    }

    pub fn remotes(&self) -> &Remotes {
        &self.remotes
    }

    /// What the entry `key` of `bucket` moved, if it came from a remote.
    pub fn moved(&self, bucket: Bucket, key: &Sha256Digest) -> Option<Moved> {
        let moved = self
            .moved
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        moved.get(&(bucket, *key)).copied()
    }

    /// Whether a remote holds the entry (existence only: no signature is
    /// checked and nothing is fetched), for a plan's remote status.
    pub fn holds(&self, bucket: Bucket, key: &Sha256Digest) -> bool {
        self.remotes.remotes.iter().any(|remote| {
            !remote.down.load(Ordering::Relaxed)
                && remote
                    .backend
                    .has_entry(bucket.name(), key)
                    .unwrap_or(false)
        })
    }
}

impl RemoteReader {
    /// The record of a remote entry, verified and decoded, without its
    /// blobs (see [`Remotes::peek_record`]); warnings go to `warn`.
    pub fn peek<T: serde::de::DeserializeOwned>(
        &self,
        bucket: Bucket,
        key: &Sha256Digest,
    ) -> Option<crate::Entry<T>> {
        let (record, warnings) = self.remotes.peek_record(bucket, key);
        for warning in &warnings {
            (self.warn)(warning);
        }
        let record = record?;
        match crate::entry::decode_entry(&record, bucket, key) {
            Ok(entry) => Some(entry),
            Err(reason) => {
                (self.warn)(&RemoteWarning {
                    remote: "(signed record)".into(),
                    subject: format!("{}/{}", bucket.name(), key.hex()),
                    problem: crate::remote::Problem::BadRecord(reason),
                });
                None
            }
        }
    }

    /// The body of the newest trusted pointer `name`; warnings go to `warn`.
    pub fn pointer(&self, name: &str) -> Option<Vec<u8>> {
        let (pointer, warnings) = self.remotes.get_pointer(name);
        for warning in &warnings {
            (self.warn)(warning);
        }
        pointer.map(|pointer| pointer.body)
    }

    /// Writes the pointer `name` to every remote, signed; failures go to
    /// `warn`.
    pub fn put_pointer(&self, name: &str, body: &[u8], signer: &crate::sign::SecretKey) {
        for warning in self.remotes.put_pointer(name, body, signer) {
            (self.warn)(&warning);
        }
    }
}

impl crate::EntryFallback for RemoteReader {
    fn fetch(&self, cache: &Cache, bucket: Bucket, key: &Sha256Digest) -> bool {
        let slot = {
            let mut asked = self
                .asked
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            asked.entry((bucket, *key)).or_default().clone()
        };
        // Held while asking: another thread asking for this entry waits,
        // then takes the answer.
        let mut answer = slot.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(hit) = *answer {
            return hit;
        }
        let fetch = self.remotes.fetch_entry(cache, bucket, key);
        for warning in &fetch.warnings {
            (self.warn)(warning);
        }
        let Some(hit) = fetch.hit else {
            *answer = Some(false);
            return false;
        };
        self.moved
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(
                (bucket, *key),
                Moved {
                    bytes: hit.bytes_fetched,
                    seconds: hit.elapsed.as_secs_f64(),
                },
            );
        self.origins
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert((bucket, *key), (hit.remote, hit.signer));
        *answer = Some(true);
        true
    }

    /// A tree a remote sent, signed by a trusted key, that proved unsafe
    /// or corrupt when unpacked: a warning naming the remote, the entry
    /// and the signer.
    fn rejected(&self, bucket: Bucket, key: &Sha256Digest, error: &CacheError) {
        let origin = self
            .origins
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(&(bucket, *key))
            .cloned();
        let Some((remote, signer)) = origin else {
            return;
        };
        (self.warn)(&RemoteWarning {
            remote,
            subject: format!("{}/{}", bucket.name(), key.hex()),
            problem: Problem::UnusableTree {
                signer,
                reason: crate::remote::error_chain(error),
            },
        });
    }
}
