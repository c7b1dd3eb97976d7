//! `xbuild cache gc --max-size SIZE`: removes the least recently used
//! things until the cache fits.
//!
//! Things, oldest use first: entries (each with the tree it names, for a
//! tree bucket, and the blobs it needs that no other kept entry needs),
//! blobs no entry needs (`.deb`s, indices, image configs: by their own
//! last use), scratch directories and logs. What older versions of xbuild
//! left and entries that do not decode go before anything else. An entry
//! another kept entry needs (a toolchain a kept compiler links to) is kept
//! as long as that one is, and a blob a kept entry lists is never removed.
//!
//! Use is recorded cheaply as a file's modification time: an entry's
//! when it is read, a blob's when it is verified for a use, a scratch
//! directory's when it is handed out. gc needs the cache to itself
//! ([`Cache::open_exclusive`]): it waits for running builds, and builds
//! wait for it; so it also clears the per-item lock files.

use crate::hash::Sha256Digest;
use crate::stats::{Inventory, Item};
use crate::tree::remove_path;
use crate::{Bucket, BucketKind, Cache, CacheError, LOCKS};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

/// One thing gc removed.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    /// `layer-v1/<key>`, `blob sha256:<hex>`, a path.
    pub what: String,
    pub bytes: u64,
}

/// What gc did.
#[derive(Debug, Clone, Serialize)]
pub struct GcReport {
    pub max_bytes: u64,
    pub before_bytes: u64,
    pub after_bytes: u64,
    pub freed_bytes: u64,
    pub removed: Vec<Removed>,
}

/// Parses a size: a number of bytes with an optional unit, decimal as
/// xbuild prints sizes (`K`/`kB` = 1000, `M`/`MB`, `G`/`GB`, `T`/`TB`) or
/// binary (`KiB` = 1024, `MiB`, `GiB`, `TiB`); fractions allowed (`1.5G`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|character: char| !(character.is_ascii_digit() || character == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 500M, 10G or 1048576"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let (unit, base) = match unit.strip_suffix("ib") {
        Some(unit) => (unit, 1024f64),
        None => (unit.strip_suffix('b').unwrap_or(&unit), 1000f64),
    };
    let power = match unit {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit (use K, M, G, T, or KiB, MiB, GiB, TiB)"
            ));
        }
    };
    let bytes = number * base.powi(power);
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(bytes as u64)
}

enum Candidate {
    Entry(usize),
    /// A blob no entry needs.
    Blob(usize),
    /// A tree without an entry, a scratch directory, a log.
    Item(Item),
    /// A legacy directory or an entry file that does not decode.
    Garbage(PathBuf, u64),
}

impl Cache {
    /// Removes least recently used things until the cache holds at most
    /// `max_bytes` (see the module doc). Needs [`Cache::open_exclusive`].
    pub fn gc(&self, max_bytes: u64) -> Result<GcReport, CacheError> {
        self.assert_exclusive("gc");
        let inventory = Inventory::of(self)?;
        let before = inventory.total_bytes();
        let mut total = before;
        let mut removed = Vec::new();

        let tree_bytes: HashMap<(Bucket, Sha256Digest), u64> = inventory
            .trees
            .iter()
            .filter_map(|item| Some(((item.bucket?, item.key?), item.bytes)))
            .collect();
        let blob_sizes: HashMap<Sha256Digest, u64> = inventory
            .blobs
            .iter()
            .map(|blob| (blob.digest, blob.size))
            .collect();
        let mut blob_users: HashMap<Sha256Digest, usize> = HashMap::new();
        let mut tree_users: HashMap<(Bucket, Sha256Digest), usize> = HashMap::new();
        for entry in &inventory.entries {
            for blob in &entry.meta.blobs {
                *blob_users.entry(blob.digest).or_default() += 1;
            }
            for tree in &entry.meta.trees {
                *tree_users.entry((tree.bucket, tree.key)).or_default() += 1;
            }
        }

        let mut candidates: Vec<(u8, SystemTime, Candidate)> = Vec::new();
        for (path, _) in &inventory.bad_entries {
            let bytes = std::fs::metadata(path).map_or(0, |metadata| metadata.len());
            candidates.push((
                0,
                SystemTime::UNIX_EPOCH,
                Candidate::Garbage(path.clone(), bytes),
            ));
        }
        for item in &inventory.legacy {
            candidates.push((
                0,
                SystemTime::UNIX_EPOCH,
                Candidate::Garbage(item.path.clone(), item.bytes),
            ));
        }
        for (index, entry) in inventory.entries.iter().enumerate() {
            candidates.push((1, entry.last_used, Candidate::Entry(index)));
        }
        for (index, blob) in inventory.blobs.iter().enumerate() {
            if !blob_users.contains_key(&blob.digest) {
                candidates.push((1, blob.last_used, Candidate::Blob(index)));
            }
        }
        let with_entries: std::collections::HashSet<(Bucket, Sha256Digest)> = inventory
            .entries
            .iter()
            .map(|entry| (entry.bucket, entry.key))
            .collect();
        for item in inventory.trees.iter().chain(&inventory.scratch) {
            let is_tree_with_entry = matches!((item.bucket, item.key), (Some(bucket), Some(key))
                if bucket.kind() == BucketKind::Tree && with_entries.contains(&(bucket, key)));
            if !is_tree_with_entry {
                candidates.push((1, item.last_used, Candidate::Item(item.clone())));
            }
        }
        candidates.sort_by_key(|(priority, last_used, _)| (*priority, *last_used));

        let mut done = vec![false; candidates.len()];
        let mut progress = true;
        while total > max_bytes && progress {
            progress = false;
            for (index, (_, _, candidate)) in candidates.iter().enumerate() {
                if total <= max_bytes {
                    break;
                }
                if done[index] {
                    continue;
                }
                match candidate {
                    Candidate::Garbage(path, bytes) => {
                        remove_path(path)?;
                        removed.push(Removed {
                            what: path.display().to_string(),
                            bytes: *bytes,
                        });
                        total = total.saturating_sub(*bytes);
                    }
                    Candidate::Blob(blob) => {
                        let blob = &inventory.blobs[*blob];
                        self.drop_blob(&blob.digest)?;
                        removed.push(Removed {
                            what: format!("blob {}", blob.digest.oci()),
                            bytes: blob.size,
                        });
                        total = total.saturating_sub(blob.size);
                    }
                    Candidate::Item(item) => {
                        let needed = matches!((item.bucket, item.key), (Some(bucket), Some(key))
                            if tree_users.get(&(bucket, key)).is_some_and(|users| *users > 0));
                        if needed {
                            continue;
                        }
                        remove_path(&item.path)?;
                        removed.push(Removed {
                            what: item.path.display().to_string(),
                            bytes: item.bytes,
                        });
                        total = total.saturating_sub(item.bytes);
                    }
                    Candidate::Entry(entry) => {
                        let entry = &inventory.entries[*entry];
                        let id = (entry.bucket, entry.key);
                        if tree_users.get(&id).is_some_and(|users| *users > 0) {
                            continue;
                        }
                        let mut bytes = entry.size;
                        if entry.bucket.kind() == BucketKind::Tree {
                            self.remove_tree_locked(entry.bucket, &entry.key)?;
                            bytes += tree_bytes.get(&id).copied().unwrap_or(0);
                        } else {
                            self.remove_entry(entry.bucket, &entry.key)?;
                        }
                        removed.push(Removed {
                            what: format!("{}/{}", entry.bucket, entry.key.hex()),
                            bytes,
                        });
                        total = total.saturating_sub(bytes);
                        for tree in &entry.meta.trees {
                            if let Some(users) = tree_users.get_mut(&(tree.bucket, tree.key)) {
                                *users -= 1;
                            }
                        }
                        for blob in &entry.meta.blobs {
                            let users = blob_users.get_mut(&blob.digest).expect("counted above");
                            *users -= 1;
                            if *users == 0
                                && let Some(size) = blob_sizes.get(&blob.digest)
                            {
                                self.drop_blob(&blob.digest)?;
                                removed.push(Removed {
                                    what: format!("blob {}", blob.digest.oci()),
                                    bytes: *size,
                                });
                                total = total.saturating_sub(*size);
                            }
                        }
                    }
                }
                done[index] = true;
                progress = true;
            }
        }
        self.clear_lock_files();
        Ok(GcReport {
            max_bytes,
            before_bytes: before,
            after_bytes: total,
            freed_bytes: before - total,
            removed,
        })
    }

    /// Removes the per-item lock files. Only with the cache to oneself:
    /// every process holding an item lock holds the root lock shared.
    fn clear_lock_files(&self) {
        if let Ok(entries) = std::fs::read_dir(self.root().join(LOCKS)) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
#[path = "gc_tests.rs"]
mod tests;
