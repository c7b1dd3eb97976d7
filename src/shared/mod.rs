//! The shared remote caches of a build: which remotes, which keys are
//! trusted, the signing key of uploads; reading through them (the local
//! cache's fallback, so every shared entry a build looks for is asked of
//! the remotes before it is fetched upstream or built), the report's
//! remote hits, and pushing what a build used.
//!
//! Where the settings come from, merged: `--remote URL` (repeatable),
//! `XBUILD_REMOTE` (comma-separated) and `[cache] remote` in xbuild.toml;
//! `--trust NAME:<base64>` and `[cache] trusted-keys`; `--sign FILE` or
//! `XBUILD_SIGNING_KEY_FILE`; `--remote-read-only`.

use crate::Error;
use crate::cache::remote::{RemoteReader, RemoteWarning, Remotes, UploadEntry, UploadReport};
use crate::cache::sign::{SecretKey, TrustedKey};
use crate::cache::{Bucket, BucketKind, Cache, backend::RemoteConfig};
use crate::plan::NodeKind;
use crate::report::{BuildReport, Outcome};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The remote cache settings of one invocation.
#[derive(Debug, Clone, Default)]
pub struct SharedSettings {
    pub remotes: Vec<String>,
    pub trusted_keys: Vec<String>,
    pub signing_key: Option<PathBuf>,
    pub read_only: bool,
}

/// The remotes of a build, opened.
pub struct Shared {
    pub reader: Arc<RemoteReader>,
    pub signer: Option<SecretKey>,
}

impl Shared {
    /// Opens the remotes of `settings` (`None` without any). Bad URLs and
    /// keys are input errors, named; a remote that is down is not an error
    /// here (it is a miss, with a warning, when asked).
    pub fn open(
        settings: &SharedSettings,
        idle_timeout: Duration,
    ) -> Result<Option<Shared>, Error> {
        if settings.remotes.is_empty() {
            return Ok(None);
        }
        let mut trusted = Vec::new();
        for text in &settings.trusted_keys {
            trusted.push(text.parse::<TrustedKey>()?);
        }
        let signer = match &settings.signing_key {
            Some(path) => Some(SecretKey::load(path)?),
            None => None,
        };
        // A key signs what this machine uploads, and this machine trusts
        // what it signed itself.
        if let Some(signer) = &signer
            && !trusted
                .iter()
                .any(|key| key.to_string() == signer.public().to_string())
        {
            trusted.push(signer.public());
        }
        let config = RemoteConfig::from_env().with_idle_timeout(idle_timeout);
        let remotes =
            Remotes::open(&settings.remotes, &config, trusted)?.with_read_only(settings.read_only);
        let warn = Box::new(|warning: &RemoteWarning| {
            eprintln!("warning: {warning}");
            if let Some(hint) = warning.hint() {
                eprintln!("  hint: {hint}");
            }
        });
        Ok(Some(Shared {
            reader: Arc::new(RemoteReader::new(remotes, warn)),
            signer,
        }))
    }

    /// What the remotes hold, as a plan asks it (existence only).
    pub fn status(&self) -> RemoteHolds {
        RemoteHolds(self.reader.clone())
    }

    /// Nodes of `report` whose entries came from a remote in this process
    /// become `remote` hits, with the bytes that moved; the image of a
    /// build whose every other node was a hit, some remote, is one too.
    pub fn mark_remote_hits(&self, cache: &Cache, report: &mut BuildReport) {
        let supplied_index = [Bucket::InRelease, Bucket::Resolution]
            .iter()
            .any(|bucket| {
                cache
                    .journal()
                    .iter()
                    .any(|(b, key)| b == bucket && cache.supplied_by_fallback(*b, key))
            });
        for node in &mut report.nodes {
            if node.outcome != Outcome::Local {
                continue;
            }
            if node.kind == NodeKind::Index && supplied_index {
                node.outcome = Outcome::Remote;
                continue;
            }
            let Some(bucket) = bucket_of(node.kind) else {
                continue;
            };
            if let Some(moved) = self.reader.moved(bucket, &node.key) {
                node.outcome = Outcome::Remote;
                node.bytes = moved.bytes;
                node.seconds = moved.seconds;
            }
        }
        let any_remote = report
            .nodes
            .iter()
            .any(|node| node.outcome == Outcome::Remote);
        let all_hits = report
            .nodes
            .iter()
            .all(|node| node.kind == NodeKind::Image || node.outcome.is_hit());
        if any_remote && all_hits {
            for node in &mut report.nodes {
                if node.kind == NodeKind::Image {
                    node.outcome = Outcome::Remote;
                }
            }
        }
        let seconds = report.summary.seconds;
        report.summarize(seconds);
    }

    /// Uploads every shared entry this process used or made (trees packed
    /// first) to the remotes that lack it, signed; nothing without a
    /// signing key or with `--remote-read-only`.
    pub fn push(&self, cache: &Cache) -> Result<Option<UploadReport>, Error> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        if self.reader.remotes().is_read_only() {
            return Ok(None);
        }
        let mut entries = Vec::new();
        for (bucket, key) in cache.journal() {
            if bucket.kind() == BucketKind::Tree {
                match cache.pack_tree(bucket, &key) {
                    Ok(_) => {}
                    // A tree another step removed (a damaged one, rebuilt
                    // under another key): nothing to upload.
                    Err(crate::cache::CacheError::NoTree { .. }) => continue,
                    Err(error) => return Err(error.into()),
                }
            }
            if let Some(entry) = UploadEntry::from_local(cache, bucket, &key)? {
                entries.push(entry);
            }
        }
        Ok(Some(self.reader.remotes().upload(cache, &entries, signer)))
    }
}

/// The plan's view of the remotes: whether one holds a node's entry.
pub struct RemoteHolds(Arc<RemoteReader>);

impl crate::plan::RemoteStatus for RemoteHolds {
    fn holds(&self, nodes: &[crate::plan::NodeRef]) -> Vec<bool> {
        crate::cache::backend::parallel_map(8, nodes, |node| {
            bucket_of(node.kind).is_some_and(|bucket| self.0.holds(bucket, &node.key))
        })
    }
}

/// The bucket holding a node's entry, for the kinds a remote can carry.
fn bucket_of(kind: NodeKind) -> Option<Bucket> {
    Some(match kind {
        NodeKind::Layer => Bucket::Layer,
        NodeKind::Build => Bucket::Build,
        NodeKind::Toolchain => Bucket::Toolchains,
        NodeKind::Sysroot => Bucket::Sysroots,
        NodeKind::Compiler => Bucket::Compilers,
        NodeKind::Source => Bucket::Sources,
        _ => return None,
    })
}

/// One line per remote of an upload report, for people.
pub fn render_upload(report: &UploadReport) -> String {
    let mut text = String::new();
    for remote in &report.remotes {
        text.push_str(&format!(
            "pushed to {}: {} entries, {} blobs, {} ({} entries already there) in {:.1}s\n",
            remote.remote,
            remote.entries_uploaded,
            remote.blobs_uploaded,
            crate::report::human_bytes(remote.bytes_uploaded),
            remote.entries_skipped,
            remote.seconds,
        ));
        for failure in &remote.failures {
            text.push_str(&format!(
                "  failed: {}: {}\n",
                failure.subject, failure.error
            ));
        }
    }
    text
}
