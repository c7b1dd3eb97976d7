//! The shared remote caches of a build: which remotes, which keys are
//! trusted, the signing key of uploads; reading through them (the local
//! cache's fallback, so every shared entry a build looks for is asked of
//! the remotes before it is fetched upstream or built), the report's
//! remote hits, and pushing what a build used: what it makes as it goes
//! ([`uploads`]), the rest at the end, and the pointers that let a remote
//! say which of its entries is nearest to a miss ([`pointers`]).
//!
//! Where the settings come from, merged: `--remote URL` (repeatable),
//! `XBUILD_REMOTE` (comma-separated) and `[cache] remote` in xbuild.toml;
//! `--trust NAME:<base64>` and `[cache] trusted-keys`; `--sign FILE` or
//! `XBUILD_SIGNING_KEY_FILE`; `--remote-read-only`.

mod pointers;
mod uploads;

pub use pointers::pointer_name;

use crate::Error;
use crate::cache::remote::{RemoteReader, RemoteWarning, Remotes, UploadReport};
use crate::cache::sign::{SecretKey, TrustedKey};
use crate::cache::{Bucket, Cache, backend::RemoteConfig};
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
    pub signer: Option<Arc<SecretKey>>,
    /// The project's image name: what its builds' pointers are named by.
    image: String,
    uploads: Option<uploads::Uploads>,
}

impl Shared {
    /// Opens the remotes of `settings` (`None` without any). Bad URLs and
    /// keys are input errors, named; a remote that is down is not an error
    /// here (it is a miss, with a warning, when asked).
    pub fn open(
        settings: &SharedSettings,
        image: &str,
        idle_timeout: Duration,
    ) -> Result<Option<Shared>, Error> {
        // Parsed even without a remote: a bad key is a bad key (and its
        // error never shows it, in case it is a secret).
        let mut trusted = Vec::new();
        for text in &settings.trusted_keys {
            trusted.push(text.parse::<TrustedKey>()?);
        }
        if settings.remotes.is_empty() {
            return Ok(None);
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
            signer: signer.map(Arc::new),
            image: image.to_owned(),
            uploads: None,
        }))
    }

    /// What the remotes hold, as a plan asks it (existence only), and the
    /// entries their pointers list for a build that misses.
    pub fn status(&self) -> RemoteHolds {
        RemoteHolds {
            reader: self.reader.clone(),
            image: self.image.clone(),
        }
    }

    /// Whether this run uploads: a signing key, and remotes not read-only.
    fn uploads_enabled(&self) -> Option<&Arc<SecretKey>> {
        self.signer
            .as_ref()
            .filter(|_| !self.reader.remotes().is_read_only())
    }

    /// Uploads what `cache` makes from now on as it is made (see
    /// [`uploads`]); the cache returned tells the upload thread. Nothing
    /// changes without a signing key or with `--remote-read-only`.
    pub fn upload_as_it_goes(&mut self, cache: Cache) -> Result<Cache, Error> {
        let Some(signer) = self.uploads_enabled().cloned() else {
            return Ok(cache);
        };
        let (uploads, hook) =
            uploads::Uploads::start(cache.location(), self.reader.clone(), signer)?;
        self.uploads = Some(uploads);
        Ok(cache.with_store_hook(hook))
    }

    /// Waits for the uploads made as the build went (a build that failed
    /// still shares what it finished); their report, if there were any.
    pub fn finish_uploads(&self) -> Option<UploadReport> {
        self.uploads.as_ref().map(|uploads| uploads.finish().report)
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
    /// first) to the remotes that lack it, signed — what went up as the
    /// build went is not asked again — then advances the pointer of each
    /// build of `report` to its entry; nothing without a signing key or
    /// with `--remote-read-only`.
    pub fn push(&self, cache: &Cache, report: &BuildReport) -> Result<Option<UploadReport>, Error> {
        let Some(signer) = self.uploads_enabled() else {
            return Ok(None);
        };
        let uploaded = self
            .uploads
            .as_ref()
            .map(|uploads| uploads.finish())
            .unwrap_or_default();
        let rest: Vec<(Bucket, crate::hash::Sha256Digest)> = cache
            .journal()
            .into_iter()
            .filter(|item| !uploaded.done.contains(item))
            .collect();
        let entries = uploads::prepare(cache, &rest)?;
        let mut upload = uploaded.report;
        upload.absorb(self.reader.remotes().upload(cache, &entries, signer));
        let builds: Vec<&crate::report::NodeReport> = report
            .nodes
            .iter()
            .filter(|node| node.kind == NodeKind::Build)
            .collect();
        crate::cache::backend::parallel_map(4, &builds, |node| {
            if self.reader.holds(Bucket::Build, &node.key) {
                let name = pointers::pointer_name(&self.image, &node.name);
                pointers::advance(&self.reader, signer, &name, &node.key);
            }
        });
        Ok(Some(upload))
    }
}

/// The plan's view of the remotes: whether one holds a node's entry, and
/// the entries the pointer of a build lists.
pub struct RemoteHolds {
    reader: Arc<RemoteReader>,
    image: String,
}

impl crate::plan::RemoteStatus for RemoteHolds {
    fn holds(&self, nodes: &[crate::plan::NodeRef]) -> Vec<bool> {
        crate::cache::backend::parallel_map(8, nodes, |node| {
            bucket_of(node.kind).is_some_and(|bucket| self.reader.holds(bucket, &node.key))
        })
    }

    fn candidates(
        &self,
        node: crate::plan::NodeRef,
        name: &str,
    ) -> Vec<(crate::plan::explain::Inputs, f64)> {
        if node.kind != NodeKind::Build {
            return Vec::new();
        }
        let pointer = pointers::pointer_name(&self.image, name);
        pointers::candidates(&self.reader, &pointer, &node.key)
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
