//! What the cache holds (an inventory, shared with `gc`), summed up per
//! bucket, with the hit rates of the last builds ([`Stats`], for `xbuild
//! cache stats`).

use crate::blob::BlobInfo;
use crate::bucket::LEGACY_DIRECTORIES;
use crate::entry::EntryInfo;
use crate::hash::Sha256Digest;
use crate::history::BuildSummary;
use crate::{Bucket, BucketKind, Cache, CacheError, tree_size};
use serde::Serialize;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::SystemTime;

/// A directory or file outside blobs and entries: a tree, a scratch
/// directory, a log, or what an older xbuild left.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// Its bucket (`None` for a legacy directory).
    pub bucket: Option<Bucket>,
    /// The tree's key, for a tree directory.
    pub key: Option<Sha256Digest>,
    pub path: PathBuf,
    pub bytes: u64,
    pub last_used: SystemTime,
}

/// Everything in the cache, found by listing it.
pub(crate) struct Inventory {
    pub entries: Vec<EntryInfo>,
    /// Entry files that do not decode, and why.
    pub bad_entries: Vec<(PathBuf, String)>,
    pub blobs: Vec<BlobInfo>,
    /// Tree directories (in place, whole) by bucket and key.
    pub trees: Vec<Item>,
    /// Scratch directories and log files (not the build summaries).
    pub scratch: Vec<Item>,
    /// What older versions wrote, and strays in tree buckets.
    pub legacy: Vec<Item>,
}

impl Inventory {
    pub fn of(cache: &Cache) -> Result<Inventory, CacheError> {
        let mut entries = Vec::new();
        let mut bad_entries = Vec::new();
        for bucket in Bucket::with_entries() {
            for scanned in cache.scan_entries(bucket)? {
                match scanned {
                    Ok(info) => entries.push(info),
                    Err(bad) => bad_entries.push(bad),
                }
            }
        }
        let mut trees = Vec::new();
        let mut scratch = Vec::new();
        let mut legacy = Vec::new();
        for bucket in Bucket::ALL
            .into_iter()
            .filter(|bucket| !bucket.has_entries() || bucket.kind() == BucketKind::Tree)
        {
            for (name, path) in list(&cache.root().join(bucket.name())) {
                // Hidden: a temporary being written (the sweep removes
                // abandoned ones).
                if name.starts_with('.') || (bucket == Bucket::Logs && name == "builds-v1.jsonl") {
                    continue;
                }
                let (bytes, _) = tree_size(&path);
                let bytes = bytes
                    + std::fs::metadata(&path).map_or(0, |metadata| {
                        if metadata.is_file() {
                            metadata.len()
                        } else {
                            0
                        }
                    });
                let key = Sha256Digest::parse(&name);
                let item = Item {
                    bucket: Some(bucket),
                    key,
                    bytes,
                    last_used: modified(&path),
                    path,
                };
                match (bucket.kind(), key) {
                    (BucketKind::Tree, Some(_)) => trees.push(item),
                    (BucketKind::Tree, None) => legacy.push(item),
                    _ => scratch.push(item),
                }
            }
        }
        for name in LEGACY_DIRECTORIES {
            let path = cache.root().join(name);
            if path.exists() {
                legacy.push(Item {
                    bucket: None,
                    key: None,
                    bytes: tree_size(&path).0,
                    last_used: SystemTime::UNIX_EPOCH,
                    path,
                });
            }
        }
        Ok(Inventory {
            entries,
            bad_entries,
            blobs: cache.blobs()?,
            trees,
            scratch,
            legacy,
        })
    }

    pub fn total_bytes(&self) -> u64 {
        let bad: u64 = self
            .bad_entries
            .iter()
            .map(|(path, _)| std::fs::metadata(path).map_or(0, |metadata| metadata.len()))
            .sum();
        self.entries.iter().map(|entry| entry.size).sum::<u64>()
            + bad
            + self.blobs.iter().map(|blob| blob.size).sum::<u64>()
            + [&self.trees, &self.scratch, &self.legacy]
                .into_iter()
                .flatten()
                .map(|item| item.bytes)
                .sum::<u64>()
    }
}

/// The names and paths in `dir` (none if it does not exist).
fn list(dir: &std::path::Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, PathBuf)> = entries
        .flatten()
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            )
        })
        .collect();
    found.sort();
    found
}

fn modified(path: &std::path::Path) -> SystemTime {
    std::fs::symlink_metadata(path)
        .and_then(|metadata| metadata.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// What one bucket holds.
#[derive(Debug, Clone, Serialize)]
pub struct BucketStats {
    pub bucket: Bucket,
    /// `entries`, `tree` or `scratch`.
    pub kind: &'static str,
    pub entries: u64,
    pub entry_bytes: u64,
    /// Trees in place, or scratch directories and files.
    pub directories: u64,
    pub directory_bytes: u64,
    /// Trees packed into a blob.
    pub packed: u64,
}

/// The blob store.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BlobStats {
    pub count: u64,
    pub bytes: u64,
    /// Blobs some entry needs (the rest: `.deb`s, indices, image configs,
    /// fetched again if removed).
    pub needed: u64,
    pub needed_bytes: u64,
}

/// The last builds, summed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecentBuilds {
    pub builds: u64,
    pub local: u64,
    pub remote: u64,
    pub downloaded: u64,
    pub built: u64,
    pub bytes_downloaded: u64,
    pub saved_seconds: f64,
    /// Hits (local and remote) over all nodes; `None` without builds.
    pub hit_rate: Option<f64>,
    /// The latest builds, newest last (at most ten).
    pub latest: Vec<BuildSummary>,
}

/// `xbuild cache stats`.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub location: PathBuf,
    pub total_bytes: u64,
    pub buckets: Vec<BucketStats>,
    pub blobs: BlobStats,
    /// What older versions of xbuild left (removed first by `gc`).
    pub legacy_bytes: u64,
    pub recent_builds: RecentBuilds,
}

impl Cache {
    /// Counts what the cache holds (reading every entry's meta and sizing
    /// every tree; nothing is marked used).
    pub fn stats(&self) -> Result<Stats, CacheError> {
        let inventory = Inventory::of(self)?;
        let mut buckets = Vec::new();
        for bucket in Bucket::ALL {
            let entries: Vec<&EntryInfo> = inventory
                .entries
                .iter()
                .filter(|entry| entry.bucket == bucket)
                .collect();
            let directories: Vec<&Item> = inventory
                .trees
                .iter()
                .chain(&inventory.scratch)
                .filter(|item| item.bucket == Some(bucket))
                .collect();
            buckets.push(BucketStats {
                bucket,
                kind: match bucket.kind() {
                    BucketKind::Entries => "entries",
                    BucketKind::Tree => "tree",
                    BucketKind::Scratch => "scratch",
                },
                entries: entries.len() as u64,
                entry_bytes: entries.iter().map(|entry| entry.size).sum(),
                directories: directories.len() as u64,
                directory_bytes: directories.iter().map(|item| item.bytes).sum(),
                packed: if bucket.kind() == BucketKind::Tree {
                    entries
                        .iter()
                        .filter(|entry| !entry.meta.blobs.is_empty())
                        .count() as u64
                } else {
                    0
                },
            });
        }
        let needed: HashSet<Sha256Digest> = inventory
            .entries
            .iter()
            .flat_map(|entry| entry.meta.blobs.iter().map(|blob| blob.digest))
            .collect();
        let mut blobs = BlobStats::default();
        for blob in &inventory.blobs {
            blobs.count += 1;
            blobs.bytes += blob.size;
            if needed.contains(&blob.digest) {
                blobs.needed += 1;
                blobs.needed_bytes += blob.size;
            }
        }
        Ok(Stats {
            location: self.root().to_owned(),
            total_bytes: inventory.total_bytes(),
            buckets,
            blobs,
            legacy_bytes: inventory.legacy.iter().map(|item| item.bytes).sum(),
            recent_builds: recent(self.recent_builds()?),
        })
    }
}

fn recent(builds: Vec<BuildSummary>) -> RecentBuilds {
    let mut recent = RecentBuilds {
        builds: builds.len() as u64,
        ..RecentBuilds::default()
    };
    for build in &builds {
        recent.local += build.local;
        recent.remote += build.remote;
        recent.downloaded += build.downloaded;
        recent.built += build.built;
        recent.bytes_downloaded += build.bytes_downloaded;
        recent.saved_seconds += build.saved_seconds;
    }
    let nodes = recent.local + recent.remote + recent.downloaded + recent.built;
    recent.hit_rate = (nodes > 0).then(|| (recent.local + recent.remote) as f64 / nodes as f64);
    let skip = builds.len().saturating_sub(10);
    recent.latest = builds.into_iter().skip(skip).collect();
    recent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BlobRef, EntryMeta};

    #[test]
    fn stats_count_entries_blobs_trees_and_hit_rates() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let digest = cache.put_blob_bytes(&[1u8; 1000]).unwrap();
        cache.put_blob_bytes(b"loose").unwrap();
        let key = Sha256Digest::of(b"k");
        let meta = EntryMeta::any().with_blob(BlobRef::new(digest, 1000));
        cache.put_entry(Bucket::Layer, &key, &"r", meta).unwrap();
        cache
            .get_or_build_tree(Bucket::Sources, &key, EntryMeta::any(), |dir| {
                std::fs::write(dir.join("file"), [0u8; 300]).map_err(crate::io_error(dir))
            })
            .unwrap();
        cache.scratch_dir(Bucket::CargoTarget, &key).unwrap();
        std::fs::create_dir_all(dir.path().join("entries-v1/layer")).unwrap();
        std::fs::write(dir.path().join("entries-v1/layer/x.json"), [0u8; 50]).unwrap();
        for (local, built) in [(3, 1), (4, 0)] {
            let summary = BuildSummary {
                local,
                built,
                ..BuildSummary::default()
            };
            cache.record_build(&summary).unwrap();
        }
        let stats = cache.stats().unwrap();
        let layer = stats
            .buckets
            .iter()
            .find(|bucket| bucket.bucket == Bucket::Layer)
            .unwrap();
        assert_eq!(layer.entries, 1);
        let sources = stats
            .buckets
            .iter()
            .find(|bucket| bucket.bucket == Bucket::Sources)
            .unwrap();
        assert_eq!(
            (
                sources.entries,
                sources.directories,
                sources.directory_bytes
            ),
            (1, 1, 300)
        );
        assert_eq!((stats.blobs.count, stats.blobs.bytes), (2, 1005));
        assert_eq!((stats.blobs.needed, stats.blobs.needed_bytes), (1, 1000));
        assert_eq!(stats.legacy_bytes, 50);
        assert_eq!(stats.recent_builds.builds, 2);
        assert_eq!(stats.recent_builds.hit_rate, Some(7.0 / 8.0));
        let entry_bytes: u64 = stats.buckets.iter().map(|bucket| bucket.entry_bytes).sum();
        assert_eq!(stats.total_bytes, entry_bytes + 1005 + 300 + 50);
    }
}
