//! The glue between the local [`Cache`] and the shared remotes: fetching an
//! entry from the first remote that has one the client trusts, and
//! uploading entries with their blobs.
//!
//! **Fetching** ([`Remotes::fetch_entry`]) asks each remote in order. The
//! envelope is verified ([`crate::sign::verify`]) before any blob is
//! fetched; then each blob the local cache lacks is downloaded into a temp
//! file, hashed on the way and checked against the digest and size the
//! signed envelope gives (a remote sending more is cut off). Only when
//! every blob checked out are they committed, and only then is the record
//! written into the local cache, so nothing of a refused entry ever enters
//! it. A remote that refuses, fails or times out is a miss with a
//! [`RemoteWarning`], never an error: the build goes on to the next remote,
//! upstream, or a build. A remote that cannot be reached, or that was too
//! slow for one read's deadline ([`backend::Deadline`]), is not asked
//! again by this [`Remotes`] value; one that refused or failed an entry is
//! not asked for that entry again (one read, one warning).
//!
//! **Uploading** ([`Remotes::upload`]) checks, per remote, which entries
//! and blobs it has (concurrent existence checks), uploads the missing
//! blobs in parallel, largest first, and then the signed envelopes of the
//! entries whose blobs are all there; an entry is written only after its
//! blobs, so one that exists is complete. What the remote has is skipped,
//! so a second upload of the same entries moves nothing. A blob a remote
//! lost is uploaded again even if its entry is there. Failures are
//! collected in the [`UploadReport`]; a read-only set of remotes never
//! uploads.
//!
//! The local store is reached through the functions of `mod local` below,
//! the one place to change when the store's API changes.

use crate::backend::{self, Backend, BlobRef, RemoteConfig, RemoteError, parallel_map};
use crate::hash::{Hasher, Sha256Digest};
use crate::sign::{self, EntryToSign, SecretKey, TrustError, TrustedKey};
use crate::{Bucket, Cache, CacheError};
use std::collections::BTreeSet;
use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The local store as the remote code needs it.
mod local {
    use super::*;
    use std::path::PathBuf;

    pub(super) fn has_blob(cache: &Cache, digest: &Sha256Digest) -> bool {
        cache.has_blob(digest)
    }

    /// The file holding the blob, if present.
    pub(super) fn blob_file(cache: &Cache, digest: &Sha256Digest) -> Option<PathBuf> {
        let path = cache.blob_path(digest);
        path.is_file().then_some(path)
    }

    pub(super) fn temp_file(cache: &Cache) -> Result<tempfile::NamedTempFile, CacheError> {
        cache.temp_file()
    }

    pub(super) fn commit_blob(
        cache: &Cache,
        temp: tempfile::NamedTempFile,
        digest: &Sha256Digest,
    ) -> Result<(), CacheError> {
        cache.commit_blob(temp, digest).map(drop)
    }

    /// Writes the entry's canonical bytes, unchanged, as the entry `key`
    /// of `bucket` (refused unless they are that entry).
    pub(super) fn put_record(
        cache: &Cache,
        bucket: Bucket,
        key: &Sha256Digest,
        record: &[u8],
    ) -> Result<(), Problem> {
        cache
            .write_entry_raw(bucket, key, record)
            .map(drop)
            .map_err(|error| match error {
                CacheError::BadEntry { reason, .. } => Problem::BadRecord(reason),
                other => Problem::Local(other),
            })
    }
}

/// What went wrong with one remote.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("unreachable, not asked again in this run")]
    Unreachable(#[source] RemoteError),
    #[error("too slow, not asked again in this run")]
    TooSlow(#[source] RemoteError),
    #[error("failed")]
    Failed(#[source] RemoteError),
    #[error("refused")]
    Refused(#[source] TrustError),
    #[error("the entry lists the blob {digest:?}, which the remote does not have")]
    BlobMissing { digest: Sha256Digest },
    #[error(
        "refused: the blob {digest:?} it sent is not the one the entry lists: {actual_size} bytes hashing to {actual:?}, expected {size} bytes"
    )]
    BlobCorrupt {
        digest: Sha256Digest,
        size: u64,
        actual: Sha256Digest,
        actual_size: u64,
    },
    #[error("refused: the blob {digest:?} it sent is longer than the {size} bytes the entry lists")]
    BlobTooLong { digest: Sha256Digest, size: u64 },
    #[error("the signed record cannot be stored: {0}")]
    BadRecord(String),
    #[error(
        "refused once fetched: the tree signed by {signer} cannot be used: {reason}; dropped, and built here instead"
    )]
    UnusableTree { signer: String, reason: String },
    #[error("the local cache failed")]
    Local(#[source] CacheError),
}

/// A remote that refused, failed or was unreachable, and why: printed by
/// the caller as a warning.
#[derive(Debug)]
pub struct RemoteWarning {
    /// The remote's URL, redacted.
    pub remote: String,
    /// `bucket/key hex` of the entry, or a pointer's name.
    pub subject: String,
    pub problem: Problem,
}

impl std::fmt::Display for RemoteWarning {
    /// One line: the remote, the subject, the problem and its causes (a
    /// refusal names the entry itself).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.problem {
            Problem::Refused(_) => {
                write!(f, "remote {}: {}", self.remote, error_chain(&self.problem))
            }
            problem => write!(
                f,
                "remote {}: {}: {}",
                self.remote,
                self.subject,
                error_chain(problem)
            ),
        }
    }
}

impl RemoteWarning {
    /// What a person can do about it.
    pub fn hint(&self) -> Option<String> {
        match &self.problem {
            Problem::Unreachable(error) | Problem::TooSlow(error) | Problem::Failed(error) => {
                error.hint()
            }
            Problem::Refused(error) => error.hint(),
            Problem::Local(error) => error.hint(),
            _ => None,
        }
    }
}

/// `error: cause: cause`, every source in the chain.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The outcome of [`Remotes::fetch_entry`]: a hit or not, and the warnings
/// of the remotes that refused or failed on the way (a hit on the second
/// remote may follow a refusal by the first).
#[derive(Debug)]
pub struct Fetch {
    pub hit: Option<RemoteHit>,
    pub warnings: Vec<RemoteWarning>,
}

/// An entry taken from a remote, now in the local cache.
#[derive(Debug, Clone)]
pub struct RemoteHit {
    /// The remote's URL, redacted.
    pub remote: String,
    /// The trusted key whose signature verified.
    pub signer: String,
    pub platform: String,
    /// The record, as written into the local cache.
    pub record: Vec<u8>,
    /// Every blob of the entry (now all in the local cache).
    pub outputs: Vec<BlobRef>,
    /// The blobs downloaded (the others were in the local cache already).
    pub blobs_fetched: usize,
    /// The bytes downloaded, envelope included.
    pub bytes_fetched: u64,
    pub elapsed: Duration,
}

/// One entry to upload: what the local cache holds for `(bucket, key)`.
#[derive(Debug, Clone)]
pub struct UploadEntry {
    pub bucket: Bucket,
    pub key: Sha256Digest,
    /// The entry's canonical bytes as the local cache holds them
    /// ([`Cache::read_entry_raw`]): bucket, key, meta and record.
    pub record: Vec<u8>,
    /// Every blob the entry needs, all in the local cache.
    pub blobs: Vec<BlobRef>,
    /// The platform the output depends on, or "".
    pub platform: String,
}

impl UploadEntry {
    /// The entry `key` of `bucket` as the local cache holds it, with the
    /// blobs and platform its meta lists; `None` if the cache lacks it.
    pub fn from_local(
        cache: &Cache,
        bucket: Bucket,
        key: &Sha256Digest,
    ) -> Result<Option<UploadEntry>, CacheError> {
        Ok(cache.read_entry_raw(bucket, key)?.map(|raw| UploadEntry {
            bucket,
            key: *key,
            blobs: raw.meta.blobs.clone(),
            platform: raw.meta.platform.clone(),
            record: raw.bytes,
        }))
    }
}

/// What [`Remotes::upload`] did, per remote.
#[derive(Debug, Default, serde::Serialize)]
pub struct UploadReport {
    /// True when the remotes are read-only and nothing was tried.
    pub read_only: bool,
    pub remotes: Vec<RemoteUpload>,
}

/// What one remote received.
#[derive(Debug, Default, serde::Serialize)]
pub struct RemoteUpload {
    pub remote: String,
    pub entries_uploaded: usize,
    pub entries_skipped: usize,
    pub blobs_uploaded: usize,
    pub blobs_skipped: usize,
    pub bytes_uploaded: u64,
    pub bytes_skipped: u64,
    pub failures: Vec<UploadFailure>,
    pub seconds: f64,
}

/// Something that was not uploaded, and why.
#[derive(Debug, serde::Serialize)]
pub struct UploadFailure {
    /// `blob sha256:…`, `entry <bucket>/<key hex>`, or `remote`.
    pub subject: String,
    /// The error and its causes, on one line.
    pub error: String,
}

impl UploadReport {
    /// True if anything failed to upload (prewarm exits non-zero then).
    pub fn has_failures(&self) -> bool {
        self.remotes
            .iter()
            .any(|remote| !remote.failures.is_empty())
    }

    pub fn entries_uploaded(&self) -> usize {
        self.remotes
            .iter()
            .map(|remote| remote.entries_uploaded)
            .sum()
    }

    pub fn blobs_uploaded(&self) -> usize {
        self.remotes
            .iter()
            .map(|remote| remote.blobs_uploaded)
            .sum()
    }

    pub fn bytes_uploaded(&self) -> u64 {
        self.remotes
            .iter()
            .map(|remote| remote.bytes_uploaded)
            .sum()
    }

    /// Adds what a later upload to the same remotes did.
    pub fn absorb(&mut self, later: UploadReport) {
        self.read_only |= later.read_only;
        for upload in later.remotes {
            let Some(mine) = self
                .remotes
                .iter_mut()
                .find(|mine| mine.remote == upload.remote)
            else {
                self.remotes.push(upload);
                continue;
            };
            mine.entries_uploaded += upload.entries_uploaded;
            mine.entries_skipped += upload.entries_skipped;
            mine.blobs_uploaded += upload.blobs_uploaded;
            mine.blobs_skipped += upload.blobs_skipped;
            mine.bytes_uploaded += upload.bytes_uploaded;
            mine.bytes_skipped += upload.bytes_skipped;
            mine.failures.extend(upload.failures);
            mine.seconds += upload.seconds;
        }
    }
}

pub(crate) struct Remote {
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) down: AtomicBool,
    /// The entries it refused or failed to serve: not asked again.
    refused: Mutex<BTreeSet<(Bucket, Sha256Digest)>>,
}

impl Remote {
    pub(crate) fn url(&self) -> &str {
        self.backend.url()
    }

    /// Whether to ask it for the entry: it is up, and did not refuse or
    /// fail the entry before.
    pub(crate) fn may_ask(&self, bucket: Bucket, key: &Sha256Digest) -> bool {
        !self.down.load(Ordering::Relaxed)
            && !self
                .refused
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .contains(&(bucket, *key))
    }

    /// Remembers that it refused or failed the entry (a local failure is
    /// not its doing, and is not remembered).
    pub(crate) fn note_refused(&self, bucket: Bucket, key: &Sha256Digest, problem: &Problem) {
        if !matches!(problem, Problem::Local(_)) {
            self.refused
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .insert((bucket, *key));
        }
    }

    /// The problem an error is, marking the remote down if unreachable
    /// or too slow for a read's deadline.
    pub(crate) fn problem(&self, error: RemoteError) -> Problem {
        if error.is_unreachable() {
            self.down.store(true, Ordering::Relaxed);
            match error {
                RemoteError::Deadline { .. } => Problem::TooSlow(error),
                error => Problem::Unreachable(error),
            }
        } else {
            Problem::Failed(error)
        }
    }
}

/// The remotes of a run, in the order they are asked, with the keys their
/// entries must be signed by.
pub struct Remotes {
    pub(crate) remotes: Vec<Remote>,
    pub(crate) trusted: Vec<TrustedKey>,
    pub(crate) read_only: bool,
    jobs: usize,
}

impl Remotes {
    pub fn new(backends: Vec<Box<dyn Backend>>, trusted: Vec<TrustedKey>) -> Remotes {
        Remotes {
            remotes: backends
                .into_iter()
                .map(|backend| Remote {
                    backend,
                    down: AtomicBool::new(false),
                    refused: Mutex::default(),
                })
                .collect(),
            trusted,
            read_only: false,
            jobs: RemoteConfig::default().jobs,
        }
    }

    /// Opens a backend for each URL ([`backend::open`]).
    pub fn open(
        urls: &[String],
        config: &RemoteConfig,
        trusted: Vec<TrustedKey>,
    ) -> Result<Remotes, RemoteError> {
        let backends = urls
            .iter()
            .map(|url| backend::open(url, config))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Remotes::new(backends, trusted).with_jobs(config.jobs))
    }

    /// `--remote-read-only`: [`Remotes::upload`] does nothing.
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Blob transfers at once, per remote.
    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.remotes.is_empty()
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The remotes' URLs, redacted.
    pub fn urls(&self) -> Vec<&str> {
        self.remotes.iter().map(Remote::url).collect()
    }

    /// Fetches the entry `key` of `bucket` into the local cache from the
    /// first remote that has it signed by a trusted key, with every blob.
    pub fn fetch_entry(&self, cache: &Cache, bucket: Bucket, key: &Sha256Digest) -> Fetch {
        let subject = format!("{}/{}", bucket.name(), key.hex());
        let mut warnings = Vec::new();
        for remote in &self.remotes {
            if !remote.may_ask(bucket, key) {
                continue;
            }
            match self.fetch_from(remote, cache, bucket, key) {
                Ok(Some(hit)) => {
                    return Fetch {
                        hit: Some(hit),
                        warnings,
                    };
                }
                Ok(None) => {}
                Err(problem) => {
                    remote.note_refused(bucket, key, &problem);
                    warnings.push(RemoteWarning {
                        remote: remote.url().to_owned(),
                        subject: subject.clone(),
                        problem,
                    });
                }
            }
        }
        Fetch {
            hit: None,
            warnings,
        }
    }

    fn fetch_from(
        &self,
        remote: &Remote,
        cache: &Cache,
        bucket: Bucket,
        key: &Sha256Digest,
    ) -> Result<Option<RemoteHit>, Problem> {
        let start = Instant::now();
        let envelope = match remote.backend.get_entry(bucket.name(), key) {
            Ok(Some(envelope)) => envelope,
            Ok(None) => return Ok(None),
            Err(error) => return Err(remote.problem(error)),
        };
        let entry =
            sign::verify(&envelope, bucket.name(), key, &self.trusted).map_err(Problem::Refused)?;
        let missing: Vec<BlobRef> = entry
            .outputs
            .iter()
            .filter(|blob| !local::has_blob(cache, &blob.digest))
            .copied()
            .collect();
        let fetched = parallel_map(self.jobs, &missing, |blob| fetch_blob(remote, cache, blob));
        let mut temps = Vec::with_capacity(fetched.len());
        for result in fetched {
            temps.push(result?);
        }
        for (temp, blob) in temps.into_iter().zip(&missing) {
            local::commit_blob(cache, temp, &blob.digest).map_err(Problem::Local)?;
        }
        local::put_record(cache, bucket, key, &entry.record)?;
        Ok(Some(RemoteHit {
            remote: remote.url().to_owned(),
            signer: entry.signer,
            platform: entry.platform,
            record: entry.record,
            blobs_fetched: missing.len(),
            bytes_fetched: envelope.len() as u64
                + missing.iter().map(|blob| blob.size).sum::<u64>(),
            outputs: entry.outputs,
            elapsed: start.elapsed(),
        }))
    }

    /// Uploads the entries and their blobs to every remote, signed by
    /// `signer`, skipping what each remote has.
    pub fn upload(
        &self,
        cache: &Cache,
        entries: &[UploadEntry],
        signer: &SecretKey,
    ) -> UploadReport {
        let mut report = UploadReport {
            read_only: self.read_only,
            remotes: Vec::new(),
        };
        if self.read_only {
            return report;
        }
        // Sealed once: the signature is the same for every remote.
        let sealed: Vec<Result<Vec<u8>, String>> = entries
            .iter()
            .map(|entry| {
                let to_sign = EntryToSign {
                    bucket: entry.bucket.name(),
                    key: &entry.key,
                    platform: &entry.platform,
                    record: &entry.record,
                    outputs: &entry.blobs,
                };
                sign::seal(signer, &to_sign).map_err(|error| error_chain(&error))
            })
            .collect();
        for remote in &self.remotes {
            report
                .remotes
                .push(self.upload_to(remote, cache, entries, &sealed));
        }
        report
    }

    fn upload_to(
        &self,
        remote: &Remote,
        cache: &Cache,
        entries: &[UploadEntry],
        sealed: &[Result<Vec<u8>, String>],
    ) -> RemoteUpload {
        let start = Instant::now();
        let mut report = RemoteUpload {
            remote: remote.url().to_owned(),
            ..RemoteUpload::default()
        };
        let fail = |report: &mut RemoteUpload, subject: String, error: String| {
            report.failures.push(UploadFailure { subject, error });
        };
        if remote.down.load(Ordering::Relaxed) {
            fail(
                &mut report,
                "remote".into(),
                "unreachable earlier in this run".into(),
            );
            return report;
        }
        let mut blobs: Vec<BlobRef> = entries
            .iter()
            .flat_map(|entry| entry.blobs.iter().copied())
            .collect();
        blobs.sort();
        blobs.dedup();
        let digests: Vec<Sha256Digest> = blobs.iter().map(|blob| blob.digest).collect();
        let present = match remote.backend.has_blobs(&digests) {
            Ok(present) => present,
            Err(error) => {
                let problem = remote.problem(error);
                fail(&mut report, "remote".into(), error_chain(&problem));
                report.seconds = start.elapsed().as_secs_f64();
                return report;
            }
        };
        let entry_present = parallel_map(self.jobs.max(8), entries, |entry| {
            remote
                .backend
                .has_entry(entry.bucket.name(), &entry.key)
                .unwrap_or(false)
        });
        let mut to_upload = Vec::new();
        for (blob, present) in blobs.iter().zip(&present) {
            if *present {
                report.blobs_skipped += 1;
                report.bytes_skipped += blob.size;
            } else {
                to_upload.push(*blob);
            }
        }
        // Largest first, so the longest transfers start at once and the
        // small ones fill in around them.
        to_upload.sort_by(|a, b| b.size.cmp(&a.size).then(a.digest.cmp(&b.digest)));
        let results = parallel_map(self.jobs, &to_upload, |blob| {
            if remote.down.load(Ordering::Relaxed) {
                return Err("not tried: the remote became unreachable".to_owned());
            }
            let Some(path) = local::blob_file(cache, &blob.digest) else {
                return Err("the blob is not in the local cache".to_owned());
            };
            remote
                .backend
                .put_blob(blob, &path)
                .map_err(|error| error_chain(&remote.problem(error)))
        });
        let mut failed_blobs = std::collections::BTreeSet::new();
        for (blob, result) in to_upload.iter().zip(results) {
            match result {
                Ok(()) => {
                    report.blobs_uploaded += 1;
                    report.bytes_uploaded += blob.size;
                }
                Err(error) => {
                    failed_blobs.insert(blob.digest);
                    fail(
                        &mut report,
                        format!("blob {:?} ({} bytes)", blob.digest, blob.size),
                        error,
                    );
                }
            }
        }
        let uploaded_blobs: std::collections::BTreeSet<Sha256Digest> =
            to_upload.iter().map(|blob| blob.digest).collect();
        let mut pending = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let subject = format!("entry {}/{}", entry.bucket.name(), entry.key.hex());
            if let Some(blob) = entry
                .blobs
                .iter()
                .find(|blob| failed_blobs.contains(&blob.digest))
            {
                fail(
                    &mut report,
                    subject,
                    format!("not uploaded: its blob {:?} failed", blob.digest),
                );
                continue;
            }
            let blobs_were_there = entry
                .blobs
                .iter()
                .all(|blob| !uploaded_blobs.contains(&blob.digest));
            if entry_present[index] && blobs_were_there {
                report.entries_skipped += 1;
                continue;
            }
            match &sealed[index] {
                Ok(_) => pending.push(index),
                Err(error) => fail(&mut report, subject, error.clone()),
            }
        }
        let results = parallel_map(self.jobs.max(8), &pending, |&index| {
            let entry = &entries[index];
            let envelope = sealed[index]
                .as_ref()
                .expect("only sealed entries are pending");
            remote
                .backend
                .put_entry(entry.bucket.name(), &entry.key, envelope, &entry.blobs)
                .map_err(|error| error_chain(&remote.problem(error)))
        });
        for (&index, result) in pending.iter().zip(results) {
            match result {
                Ok(()) => report.entries_uploaded += 1,
                Err(error) => {
                    let entry = &entries[index];
                    fail(
                        &mut report,
                        format!("entry {}/{}", entry.bucket.name(), entry.key.hex()),
                        error,
                    );
                }
            }
        }
        report.seconds = start.elapsed().as_secs_f64();
        report
    }
}

// Shared by the threads of a build.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<Remotes>();
};

/// Downloads one blob into a temp file of the local cache, checking it
/// against `blob` as it arrives.
fn fetch_blob(
    remote: &Remote,
    cache: &Cache,
    blob: &BlobRef,
) -> Result<tempfile::NamedTempFile, Problem> {
    let temp = local::temp_file(cache).map_err(Problem::Local)?;
    let local_error = |source| {
        Problem::Local(CacheError::Io {
            path: temp.path().to_owned(),
            source,
        })
    };
    let (result, hashed) = {
        let mut sink = BlobSink {
            file: io::BufWriter::with_capacity(256 * 1024, temp.as_file()),
            hasher: Hasher::new(),
            limit: blob.size,
            too_long: false,
        };
        let result = remote.backend.get_blob(blob, &mut sink);
        if sink.too_long {
            return Err(Problem::BlobTooLong {
                digest: blob.digest,
                size: blob.size,
            });
        }
        if result.is_ok() {
            sink.file.flush().map_err(local_error)?;
        }
        (result, sink.hasher.finish())
    };
    match result {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(Problem::BlobMissing {
                digest: blob.digest,
            });
        }
        Err(error) => return Err(remote.problem(error)),
    }
    let (actual, actual_size) = hashed;
    if actual != blob.digest || actual_size != blob.size {
        return Err(Problem::BlobCorrupt {
            digest: blob.digest,
            size: blob.size,
            actual,
            actual_size,
        });
    }
    temp.as_file().sync_data().map_err(local_error)?;
    Ok(temp)
}

/// Where a downloaded blob goes: hashed, and cut off past its size.
struct BlobSink<W> {
    file: W,
    hasher: Hasher,
    limit: u64,
    too_long: bool,
}

impl<W: Write> Write for BlobSink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.hasher.len() + buf.len() as u64 > self.limit {
            self.too_long = true;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more than the {} bytes expected", self.limit),
            ));
        }
        let written = self.file.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

pub use crate::remote_reader::{Moved, RemoteReader};
