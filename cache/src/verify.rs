//! `xbuild cache verify`: re-hashes every blob, checks that every entry
//! decodes and has the blobs and trees it needs, and that every packed
//! tree is a safe archive of the tree recorded. What is corrupt is
//! removed, so the next build fetches or builds it again, and named in a
//! [`Problem`]; a second run finds none.
//!
//! What each problem costs:
//! - a blob whose bytes do not hash to its name: removed;
//! - an entry that does not decode, or needs a blob that is gone: removed
//!   (with its tree, for a tree bucket; a tree in place only forgets its
//!   packed blob);
//! - a packed tree that is no valid archive, or whose content is not the
//!   tree recorded: its blob removed;
//! - a tree in place that no longer packs to the archive recorded (it was
//!   changed after it was packed): the tree removed, unpacked again from
//!   its blob on next use;
//! - an entry of a tree that is neither in place nor packed, or one that
//!   needs a tree that is gone: removed.

use crate::entry::{EntryInfo, EntryMeta};
use crate::hash::{HashingReader, Sha256Digest};
use crate::pack;
use crate::tree::{TreeRecord, remove_path};
use crate::{BLOBS, Bucket, BucketKind, Cache, CacheError, io_error};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::PathBuf;

/// One thing `verify` found wrong, and what it did about it.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// `blob sha256:…`, `entry layer-v1/<key>`, `tree toolchains-v1/<key>`.
    pub subject: String,
    pub path: PathBuf,
    pub problem: String,
    pub action: &'static str,
}

/// What `verify` checked and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub blobs: u64,
    pub blob_bytes: u64,
    pub entries: u64,
    pub trees: u64,
    pub packed_trees: u64,
    pub problems: Vec<Problem>,
}

impl Cache {
    /// Checks everything (see the module doc). Needs
    /// [`Cache::open_exclusive`].
    pub fn verify(&self) -> Result<VerifyReport, CacheError> {
        self.assert_exclusive("verify");
        let mut report = VerifyReport::default();
        let good = self.verify_blobs(&mut report)?;

        let mut entries: Vec<EntryInfo> = Vec::new();
        for bucket in Bucket::with_entries() {
            for scanned in self.scan_entries(bucket)? {
                match scanned {
                    Ok(info) => entries.push(info),
                    Err((path, reason)) => {
                        remove_path(&path)?;
                        report.problems.push(Problem {
                            subject: format!("entry {bucket}"),
                            path,
                            problem: format!("does not decode: {reason}"),
                            action: "removed",
                        });
                    }
                }
            }
        }
        report.entries = entries.len() as u64;

        let mut alive: HashSet<(Bucket, Sha256Digest)> = HashSet::new();
        for entry in &entries {
            let tree = entry.bucket.kind() == BucketKind::Tree;
            let missing: Vec<_> = entry
                .meta
                .blobs
                .iter()
                .filter(|blob| good.get(&blob.digest) != Some(&blob.size))
                .collect();
            if tree {
                report.trees += 1;
                if self.verify_tree(entry, &good, &mut report)? {
                    alive.insert((entry.bucket, entry.key));
                }
            } else if let Some(blob) = missing.first() {
                self.remove_entry(entry.bucket, &entry.key)?;
                report.problems.push(Problem {
                    subject: format!("entry {}/{}", entry.bucket, entry.key.hex()),
                    path: self.entry_path(entry.bucket, &entry.key),
                    problem: format!(
                        "needs the blob {} ({} bytes), which is missing or corrupt",
                        blob.digest.oci(),
                        blob.size
                    ),
                    action: "removed",
                });
            } else {
                alive.insert((entry.bucket, entry.key));
            }
        }

        // Entries needing a tree that is gone, until none is left.
        loop {
            let mut changed = false;
            for entry in &entries {
                let id = (entry.bucket, entry.key);
                if !alive.contains(&id) {
                    continue;
                }
                let Some(gone) = entry
                    .meta
                    .trees
                    .iter()
                    .find(|tree| !alive.contains(&(tree.bucket, tree.key)))
                else {
                    continue;
                };
                if entry.bucket.kind() == BucketKind::Tree {
                    self.remove_tree_locked(entry.bucket, &entry.key)?;
                } else {
                    self.remove_entry(entry.bucket, &entry.key)?;
                }
                alive.remove(&id);
                changed = true;
                report.problems.push(Problem {
                    subject: format!("entry {}/{}", entry.bucket, entry.key.hex()),
                    path: self.entry_path(entry.bucket, &entry.key),
                    problem: format!(
                        "needs the tree {}/{}, which is gone",
                        gone.bucket,
                        gone.key.hex()
                    ),
                    action: "removed",
                });
            }
            if !changed {
                break;
            }
        }
        Ok(report)
    }

    /// Re-hashes every blob; returns the good ones with their sizes.
    fn verify_blobs(
        &self,
        report: &mut VerifyReport,
    ) -> Result<HashMap<Sha256Digest, u64>, CacheError> {
        let dir = self.root().join(BLOBS);
        let mut good = HashMap::new();
        for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
            let entry = entry.map_err(io_error(&dir))?;
            let path = entry.path();
            let Some(digest) = entry.file_name().to_str().and_then(Sha256Digest::parse) else {
                remove_path(&path)?;
                report.problems.push(Problem {
                    subject: "blob".to_owned(),
                    problem: "is not named by a sha256 digest".to_owned(),
                    path,
                    action: "removed",
                });
                continue;
            };
            let file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(CacheError::Io { path, source }),
            };
            let mut reader = HashingReader::new(io::BufReader::with_capacity(256 * 1024, file));
            let copied = io::copy(&mut reader, &mut io::sink());
            let (actual, size) = reader.finish();
            if copied.is_ok() && actual == digest {
                report.blobs += 1;
                report.blob_bytes += size;
                good.insert(digest, size);
            } else {
                self.drop_blob(&digest)?;
                report.problems.push(Problem {
                    subject: format!("blob {}", digest.oci()),
                    problem: match copied {
                        Err(error) => format!("cannot be read: {error}"),
                        Ok(_) => format!("its content hashes to {} ({size} bytes)", actual.oci()),
                    },
                    path,
                    action: "removed",
                });
            }
        }
        Ok(good)
    }

    /// Checks a tree's entry, its packed blob and its tree; returns whether
    /// the entry is still there.
    fn verify_tree(
        &self,
        entry: &EntryInfo,
        good: &HashMap<Sha256Digest, u64>,
        report: &mut VerifyReport,
    ) -> Result<bool, CacheError> {
        let (bucket, key) = (entry.bucket, entry.key);
        let subject = format!("tree {bucket}/{}", key.hex());
        let tree_path = self.tree_path(bucket, &key);
        let in_place = tree_path.is_dir();
        let Some(stored) = self.peek_entry::<TreeRecord>(bucket, &key)? else {
            // Its record is not a tree's: `peek_entry` removed it.
            report.problems.push(Problem {
                subject,
                path: self.entry_path(bucket, &key),
                problem: "its record is not a tree's".to_owned(),
                action: "removed",
            });
            return Ok(false);
        };
        let mut record = stored.record;
        let mut trouble = None;
        if let Some(packed) = record.packed {
            let blob_path = self.blob_path(&packed.blob.digest);
            if good.get(&packed.blob.digest) != Some(&packed.blob.size) {
                trouble = Some(format!(
                    "its packed blob {} is missing or corrupt",
                    packed.blob.digest.oci()
                ));
            } else {
                let file = std::fs::File::open(&blob_path).map_err(io_error(&blob_path))?;
                match pack::check(file, &packed.blob.digest) {
                    Ok(tar_digest) if tar_digest == packed.tar_digest => {
                        report.packed_trees += 1;
                    }
                    Ok(_) => {
                        trouble = Some(format!(
                            "its packed blob {} holds another tree than the one recorded",
                            packed.blob.digest.oci()
                        ));
                    }
                    Err(error) => {
                        trouble = Some(format!(
                            "its packed blob {} is no valid archive ({})",
                            packed.blob.digest.oci(),
                            describe(error)
                        ));
                    }
                }
                if trouble.is_some() {
                    self.drop_blob(&packed.blob.digest)?;
                }
            }
            if let Some(problem) = trouble {
                let mut meta: EntryMeta = stored.meta.clone();
                meta.blobs.retain(|blob| *blob != packed.blob);
                record.packed = None;
                let action = if in_place {
                    self.put_entry(bucket, &key, &record, meta)?;
                    "the packed blob is removed; the tree stays"
                } else {
                    self.remove_entry(bucket, &key)?;
                    "removed"
                };
                report.problems.push(Problem {
                    subject,
                    path: blob_path,
                    problem,
                    action,
                });
                return Ok(in_place);
            }
            if in_place {
                let now = pack::tar_digest(&tree_path).map_err(crate::tree::pack_error)?;
                if now != packed.tar_digest {
                    remove_path(&tree_path)?;
                    report.problems.push(Problem {
                        subject,
                        path: tree_path,
                        problem: "changed since it was packed".to_owned(),
                        action: "the tree is removed; it is unpacked again from its packed blob on next use",
                    });
                }
            }
            return Ok(true);
        }
        if !in_place {
            self.remove_entry(bucket, &key)?;
            report.problems.push(Problem {
                subject,
                path: tree_path,
                problem: "is neither in place nor packed".to_owned(),
                action: "its entry is removed",
            });
            return Ok(false);
        }
        Ok(true)
    }
}

fn describe(error: pack::UnpackError) -> String {
    match error {
        pack::UnpackError::Io(error) => error.to_string(),
        pack::UnpackError::Unsafe(path, reason) => format!("{path:?} {reason}"),
        pack::UnpackError::Digest(digest, size) => {
            format!("it hashes to {} ({size} bytes)", digest.oci())
        }
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
