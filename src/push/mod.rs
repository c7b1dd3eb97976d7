//! Pushing a build's OCI layout to a registry (`build --push REF`, `xbuild
//! push [DIR] REF`) with the distribution API, no container engine:
//!
//! 1. each blob of each image (config, layers) is checked with `HEAD`;
//!    one the registry lacks is mounted from another repository of the
//!    same registry this cache pushed it to before (no bytes move), else
//!    uploaded — in one request up to [`CHUNK`] bytes, in `PATCH` chunks
//!    beyond (at least the registry's `OCI-Chunk-Min-Length`); blobs go in
//!    parallel, largest first;
//! 2. then each manifest with its exact media type: one target's under the
//!    tag; several targets' by digest, then one image index holding each
//!    platform's manifest under the tag (a multi-arch image).
//!
//! Requests retry 408, 429 and 5xx honouring `Retry-After`. HTTPS, except
//! for loopback registries and hosts named with `--insecure-registry`.
//! Credentials are read as docker and podman store them and never printed.
//! Pushing the same layout twice moves no blob bytes.

mod merge;
mod reference;

pub use merge::{MergeOutcome, MergedManifest, merge};
pub use reference::Reference;

use crate::Error;
use crate::cache::backend::registry::{self, BlobPut, Registry};
use crate::cache::backend::{BlobRef, RemoteConfig, RemoteError, parallel_map};
use crate::cache::{Bucket, Cache, EntryMeta};
use crate::hash::Sha256Digest;
use crate::image::oci::{
    Descriptor, ImageIndex, ImageManifest, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, to_canonical_json,
};
use crate::plan::KeyBuilder;
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom};
use std::net::ToSocketAddrs as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Blobs up to this size go in one request; larger ones in chunks of it.
pub const CHUNK: u64 = 16 * 1024 * 1024;

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct PushSettings {
    /// Hosts (`host[:port]`) spoken to over plain HTTP.
    pub insecure_registries: Vec<String>,
    pub remote: RemoteConfig,
    /// Chunk size override (tests); [`CHUNK`] when zero.
    pub chunk: u64,
    /// Repositories that may hold the blobs already, as `host[:port]` and
    /// repository: the `oci://` remote caches of the build, whose layer
    /// entries carry the same layer blobs. A blob is mounted from the
    /// first on the pushed-to registry when this cache knows of no other.
    pub mount_candidates: Vec<(String, String)>,
}

/// What pushing one image (one platform) did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PushReport {
    /// `host/repository@sha256:…`: where the manifest is.
    pub reference: String,
    pub manifest_digest: String,
    /// `linux/arm64`, …
    pub platform: String,
    pub bytes_uploaded: u64,
    pub blobs_uploaded: usize,
    pub blobs_skipped: usize,
    pub blobs_mounted: usize,
}

/// What a push did: the reference pushed (a manifest, or an index of
/// several), and per image.
#[derive(Debug, Clone, Serialize)]
pub struct PushOutcome {
    /// As given: `host/repository:tag`.
    pub reference: String,
    /// The digest the reference now names (the index with several images).
    pub digest: String,
    pub media_type: String,
    pub images: Vec<PushReport>,
    pub seconds: f64,
}

impl PushOutcome {
    pub fn bytes_uploaded(&self) -> u64 {
        self.images.iter().map(|image| image.bytes_uploaded).sum()
    }
}

/// The repositories of a registry this cache pushed a blob to.
#[derive(Debug, Default, Serialize, Deserialize)]
struct KnownRepositories {
    repositories: Vec<String>,
}

fn known_key(registry: &str, digest: &Sha256Digest) -> Sha256Digest {
    KeyBuilder::new("registry-blob")
        .text("registry", registry)
        .text("digest", &digest.oci())
        .finish()
}

/// One image of a layout: its manifest descriptor (with platform), the
/// manifest, and where the layout's blobs are.
struct LayoutImage {
    descriptor: Descriptor,
    manifest_bytes: Vec<u8>,
    manifest: ImageManifest,
}

fn layout_error(path: &Path, reason: String) -> Error {
    Error::Target {
        target: path.display().to_string(),
        message: reason,
    }
}

/// The images of the OCI layout at `layout`, each manifest checked
/// against its digest.
fn read_layout(layout: &Path) -> Result<Vec<LayoutImage>, Error> {
    let index_path = layout.join("index.json");
    let bytes = std::fs::read(&index_path).map_err(|error| {
        layout_error(
            &index_path,
            format!("cannot read the image layout's index ({error}); build first, or name the directory of a build's output"),
        )
    })?;
    let index: ImageIndex = serde_json::from_slice(&bytes)
        .map_err(|error| layout_error(&index_path, format!("is no OCI image index: {error}")))?;
    let mut images = Vec::new();
    for descriptor in index.manifests {
        let path = blob_path(layout, &descriptor.digest);
        let manifest_bytes = std::fs::read(&path)
            .map_err(|error| layout_error(&path, format!("cannot read the manifest: {error}")))?;
        if Sha256Digest::of(&manifest_bytes) != descriptor.digest {
            return Err(layout_error(
                &path,
                format!(
                    "does not hash to {:?}: the layout was changed after the build; build again",
                    descriptor.digest
                ),
            ));
        }
        let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|error| layout_error(&path, format!("is no OCI image manifest: {error}")))?;
        images.push(LayoutImage {
            descriptor,
            manifest_bytes,
            manifest,
        });
    }
    if images.is_empty() {
        return Err(layout_error(&index_path, "lists no image".into()));
    }
    Ok(images)
}

fn blob_path(layout: &Path, digest: &Sha256Digest) -> PathBuf {
    layout.join("blobs").join("sha256").join(digest.hex())
}

/// The platform of a descriptor as `os/arch[/variant]`.
fn platform_text(descriptor: &Descriptor) -> String {
    descriptor
        .platform
        .as_ref()
        .map_or_else(String::new, |platform| {
            let mut text = format!("{}/{}", platform.os, platform.architecture);
            if let Some(variant) = &platform.variant {
                text.push('/');
                text.push_str(variant);
            }
            text
        })
}

/// Opens the repository `reference` names: HTTPS, except for a loopback
/// registry or one named with `--insecure-registry` that answers plain
/// HTTP (a `GET /v2/` with no credentials tells: a TLS port answers it
/// with 400); without a port, HTTPS when port 443 is open, as docker
/// prefers.
pub fn open_registry(reference: &Reference, settings: &PushSettings) -> Result<Registry, Error> {
    let failed = |source| Error::Push {
        reference: reference.to_string(),
        source,
    };
    let url = format!("oci://{}/{}", reference.registry, reference.repository);
    let may_be_plain = registry::is_loopback_authority(&reference.registry)
        || settings
            .insecure_registries
            .iter()
            .any(|host| host == &reference.registry);
    let timeout = settings.remote.connect_timeout;
    // Without a port, HTTPS (443) wins when it is open, as docker prefers.
    let https_open = !reference.registry.contains(':')
        && format!("{}:443", reference.registry)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addresses| addresses.next())
            .is_some_and(|address| std::net::TcpStream::connect_timeout(&address, timeout).is_ok());
    let plain =
        may_be_plain && !https_open && Registry::speaks_plain_http(&reference.registry, timeout);
    Registry::open_with(&url, &settings.remote, plain, false).map_err(failed)
}

/// Pushes the images of the OCI layout at `layout` to `reference`.
pub fn push_layout(
    cache: &Cache,
    layout: &Path,
    reference: &Reference,
    settings: &PushSettings,
) -> Result<PushOutcome, Error> {
    let start = Instant::now();
    let images = read_layout(layout)?;
    let registry = open_registry(reference, settings)?;
    let failed = |source: RemoteError| Error::Push {
        reference: reference.to_string(),
        source,
    };
    let chunk = if settings.chunk == 0 {
        CHUNK
    } else {
        settings.chunk
    };
    let candidates: Vec<String> = settings
        .mount_candidates
        .iter()
        .filter(|(authority, repository)| {
            *authority == reference.registry && *repository != reference.repository
        })
        .map(|(_, repository)| repository.clone())
        .collect();
    let reports =
        push_blobs(cache, &registry, layout, &images, chunk, &candidates).map_err(failed)?;
    let several = images.len() > 1;
    if several && reference.digest.is_some() {
        return Err(Error::Target {
            target: reference.to_string(),
            message: "several images go under a tag, not a digest: name a tag".into(),
        });
    }
    let (digest, media_type) = if several {
        let put = parallel_map(PUSH_JOBS, &images, |image| {
            registry.put_manifest(
                &image.descriptor.digest.oci(),
                MEDIA_TYPE_MANIFEST,
                &image.manifest_bytes,
            )
        });
        for result in put {
            result.map_err(failed)?;
        }
        let manifests = images
            .iter()
            .map(|image| {
                let mut descriptor = Descriptor::new(
                    MEDIA_TYPE_MANIFEST,
                    image.descriptor.digest,
                    image.descriptor.size,
                );
                descriptor.platform = image.descriptor.platform.clone();
                descriptor
            })
            .collect();
        let (bytes, digest) = to_canonical_json(&ImageIndex::new(manifests));
        registry
            .put_manifest(reference.target(), MEDIA_TYPE_INDEX, &bytes)
            .map_err(failed)?;
        (digest, MEDIA_TYPE_INDEX)
    } else {
        let image = &images[0];
        registry
            .put_manifest(
                reference.target(),
                MEDIA_TYPE_MANIFEST,
                &image.manifest_bytes,
            )
            .map_err(failed)?;
        (image.descriptor.digest, MEDIA_TYPE_MANIFEST)
    };
    Ok(PushOutcome {
        reference: reference.to_string(),
        digest: digest.oci(),
        media_type: media_type.to_owned(),
        images: reports,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Puts the blobs of every image into the repository, all in one pool
/// (largest first; a blob two images share goes once), mounting what
/// another repository of the registry has; the manifests are left to the
/// caller. One report per image: a shared blob counts for the first.
fn push_blobs(
    cache: &Cache,
    registry: &Registry,
    layout: &Path,
    images: &[LayoutImage],
    chunk: u64,
    candidates: &[String],
) -> Result<Vec<PushReport>, RemoteError> {
    let image_blobs: Vec<Vec<BlobRef>> = images
        .iter()
        .map(|image| {
            std::iter::once(&image.manifest.config)
                .chain(&image.manifest.layers)
                .map(|descriptor| BlobRef::new(descriptor.digest, descriptor.size))
                .collect()
        })
        .collect();
    let mut blobs: Vec<BlobRef> = image_blobs.iter().flatten().copied().collect();
    blobs.sort_by(|a, b| b.size.cmp(&a.size).then(a.digest.cmp(&b.digest)));
    blobs.dedup();
    let authority = registry.authority().to_owned();
    let results = parallel_map(PUSH_JOBS, &blobs, |blob| {
        put_one(cache, registry, &authority, layout, blob, chunk, candidates)
    });
    let mut outcomes = std::collections::BTreeMap::new();
    for (blob, result) in blobs.iter().zip(results) {
        outcomes.insert(blob.digest, result?);
    }
    let mut reports = Vec::new();
    let mut counted = std::collections::BTreeSet::new();
    for (image, blobs) in images.iter().zip(&image_blobs) {
        let mut report = PushReport {
            reference: format!(
                "{}/{}@{}",
                registry.authority(),
                registry.repository(),
                image.descriptor.digest.oci()
            ),
            manifest_digest: image.descriptor.digest.oci(),
            platform: platform_text(&image.descriptor),
            bytes_uploaded: 0,
            blobs_uploaded: 0,
            blobs_skipped: 0,
            blobs_mounted: 0,
        };
        for blob in blobs {
            let first = counted.insert(blob.digest);
            match outcomes[&blob.digest] {
                BlobPut::Mounted if first => report.blobs_mounted += 1,
                BlobPut::Uploaded(bytes) if first => {
                    report.blobs_uploaded += 1;
                    report.bytes_uploaded += bytes;
                }
                _ => report.blobs_skipped += 1,
            }
        }
        reports.push(report);
    }
    Ok(reports)
}

/// Blob transfers running at once against the registry.
const PUSH_JOBS: usize = 8;

/// Puts one blob (see [`push_blobs`]) and records that the repository
/// has it, for later mounts.
fn put_one(
    cache: &Cache,
    registry: &Registry,
    authority: &str,
    layout: &Path,
    blob: &BlobRef,
    chunk: u64,
    candidates: &[String],
) -> Result<BlobPut, RemoteError> {
    let key = known_key(authority, &blob.digest);
    let known: KnownRepositories = cache
        .get_entry(Bucket::RegistryBlobs, &key)
        .ok()
        .flatten()
        .unwrap_or_default();
    let mount_from = known
        .repositories
        .iter()
        .find(|repository| *repository != registry.repository())
        .or(candidates.first())
        .cloned();
    let path = blob_path(layout, &blob.digest);
    let read = |offset: u64, length: u64| {
        let io = |source| RemoteError::Io {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::File::open(&path).map_err(io)?;
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        // A chunk is read whole (at most CHUNK bytes): a body from memory
        // goes out faster than one streamed from a reader thread.
        if length <= CHUNK {
            let mut bytes = Vec::with_capacity(length as usize);
            file.take(length).read_to_end(&mut bytes).map_err(io)?;
            return Ok(reqwest::blocking::Body::from(bytes));
        }
        Ok(reqwest::blocking::Body::sized(file.take(length), length))
    };
    let put = registry.put_blob(blob, mount_from.as_deref(), chunk, &read)?;
    if !known
        .repositories
        .iter()
        .any(|repository| repository == registry.repository())
    {
        let mut known = known;
        known.repositories.push(registry.repository().to_owned());
        // Only an optimisation for later pushes: never fails this one.
        let _ = cache.put_entry(Bucket::RegistryBlobs, &key, &known, EntryMeta::any());
    }
    Ok(put)
}

/// One line per image of a push, for people.
pub fn render(outcome: &PushOutcome) -> String {
    let mut text = format!(
        "pushed {} ({}) in {:.1}s\n",
        outcome.reference, outcome.digest, outcome.seconds
    );
    for image in &outcome.images {
        text.push_str(&format!(
            "  {}: {} uploaded in {} blobs, {} already there, {} mounted\n",
            image.platform,
            crate::report::human_bytes(image.bytes_uploaded),
            image.blobs_uploaded,
            image.blobs_skipped,
            image.blobs_mounted,
        ));
    }
    text
}
