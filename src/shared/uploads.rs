//! Uploading as the build goes: the local cache tells a [`StoreHook`] of
//! each shared entry this process makes (fetched upstream or built), and
//! one background thread packs trees and uploads those entries while the
//! build goes on, in batches of what arrived meanwhile. A build that fails
//! later has still shared what it finished; a long one has shared most of
//! it by the time it ends. What a build only read (local hits the remote
//! lacks) is uploaded at the end ([`super::Shared::push`]).
//!
//! The thread has its own handle on the local cache (a shared lock, like
//! a second build), so it packs a tree under the tree's lock while the
//! build reads it.

use crate::cache::remote::{RemoteReader, UploadEntry, UploadReport};
use crate::cache::sign::SecretKey;
use crate::cache::{Bucket, BucketKind, Cache, CacheError, StoreHook, hash::Sha256Digest};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Item = (Bucket, Sha256Digest);

/// The uploads of one process, running.
pub struct Uploads {
    sender: Arc<Mutex<Option<Sender<Item>>>>,
    worker: Mutex<Option<JoinHandle<Uploaded>>>,
}

/// What the background uploads did.
#[derive(Default)]
pub struct Uploaded {
    pub report: UploadReport,
    /// The entries handed to the remotes (uploaded or found there).
    pub done: BTreeSet<Item>,
}

impl Uploads {
    /// Starts the upload thread on the cache at `root`; returns it with
    /// the hook the build's cache calls.
    pub fn start(
        root: &Path,
        reader: Arc<RemoteReader>,
        signer: Arc<SecretKey>,
    ) -> Result<(Uploads, StoreHook), CacheError> {
        let cache = Cache::open(root)?;
        let (sender, receiver) = std::sync::mpsc::channel::<Item>();
        let sender = Arc::new(Mutex::new(Some(sender)));
        let worker = std::thread::Builder::new()
            .name("xbuild-upload".into())
            .spawn(move || work(&cache, &reader, &signer, &receiver))
            .map_err(|source| CacheError::Io {
                path: root.to_owned(),
                source,
            })?;
        let hook_sender = sender.clone();
        let hook: StoreHook = Arc::new(move |bucket, key| {
            let sender = hook_sender
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            if let Some(sender) = sender.as_ref() {
                // The thread is gone only after `finish`: nothing to tell.
                let _ = sender.send((bucket, key));
            }
        });
        let uploads = Uploads {
            sender,
            worker: Mutex::new(Some(worker)),
        };
        Ok((uploads, hook))
    }

    /// Waits for what was handed over to be uploaded; later entries are
    /// no longer taken. A second call returns nothing.
    pub fn finish(&self) -> Uploaded {
        self.sender
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        worker
            .map(|worker| worker.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

fn work(
    cache: &Cache,
    reader: &RemoteReader,
    signer: &SecretKey,
    receiver: &Receiver<Item>,
) -> Uploaded {
    let mut uploaded = Uploaded::default();
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        batch.extend(receiver.try_iter());
        batch.retain(|item| !uploaded.done.contains(item));
        batch.sort();
        batch.dedup();
        let entries = match prepare(cache, &batch) {
            Ok(entries) => entries,
            Err(error) => {
                eprintln!(
                    "warning: could not prepare an upload to the remote cache: {}",
                    crate::cache::remote::error_chain(&error)
                );
                continue;
            }
        };
        if entries.is_empty() {
            continue;
        }
        let report = reader.remotes().upload(cache, &entries, signer);
        uploaded.done.extend(batch);
        uploaded.report.absorb(report);
    }
    uploaded
}

/// The upload entries of `items` (trees packed first); what another step
/// removed meanwhile is left out.
pub fn prepare(cache: &Cache, items: &[Item]) -> Result<Vec<UploadEntry>, CacheError> {
    let mut entries = Vec::new();
    for (bucket, key) in items {
        if bucket.kind() == BucketKind::Tree {
            match cache.pack_tree(*bucket, key) {
                Ok(_) => {}
                // A tree another step removed (a damaged one, rebuilt
                // under another key): nothing to upload.
                Err(CacheError::NoTree { .. }) => continue,
                Err(error) => return Err(error),
            }
        }
        if let Some(entry) = UploadEntry::from_local(cache, *bucket, key)? {
            entries.push(entry);
        }
    }
    Ok(entries)
}
