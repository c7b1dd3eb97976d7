//! `xbuild image merge DEST SRC…`: one multi-platform index at DEST made of
//! the images SRC name (tags or digests; single-platform manifests or
//! indexes, OCI or Docker media types), on the same registry.
//!
//! Only documents move: each source's manifest (and, for a single-platform
//! one, its small config, where its platform is written); never a layer.
//! A registry accepts an index only when every manifest it lists is in the
//! index's repository, so a source in another repository is copied into
//! DEST's: its blobs mounted from the source's repository (no bytes move),
//! then its manifest put by digest. Two sources of one platform are an
//! error naming both.
//!
//! What a registry sends is bounded: a config is read up to the size its
//! manifest declares (more is cut off) and checked against its digest, a
//! manifest up to [`crate::cache::backend::DOCUMENT_LIMIT`], and each read
//! within its [`crate::cache::backend::Deadline`], so a registry that
//! never stops or drips its bytes fails the merge in bounded time and
//! memory, naming the registry, the repository and the digest.

use super::{PushSettings, Reference, open_registry};
use crate::Error;
use crate::cache::backend::registry::{BlobPut, RawManifest, Registry};
use crate::cache::backend::{BlobRef, RemoteError};
use crate::image::oci::{Descriptor, ImageIndex, MEDIA_TYPE_INDEX, Platform, to_canonical_json};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ACCEPT: [&str; 4] = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// The largest config read to learn a platform.
const CONFIG_LIMIT: usize = 1024 * 1024;

/// What a merge did.
#[derive(Debug, Clone, Serialize)]
pub struct MergeOutcome {
    pub reference: String,
    pub digest: String,
    pub manifests: Vec<MergedManifest>,
}

/// One platform of the merged index.
#[derive(Debug, Clone, Serialize)]
pub struct MergedManifest {
    pub platform: String,
    pub digest: String,
    /// The source it came from, as given.
    pub source: String,
    /// Whether it was copied from another repository (blobs mounted).
    pub copied: bool,
    pub blobs_mounted: usize,
}

/// The parts of a manifest or index a merge reads.
#[derive(Deserialize)]
struct Document {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ConfigPlatform {
    architecture: String,
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

/// One manifest found in a source.
struct Found {
    descriptor: Descriptor,
    raw: RawManifest,
    source: String,
}

fn protocol(registry: &Registry, what: &str, reason: String) -> RemoteError {
    RemoteError::Protocol {
        url: format!("{}/{what}", registry.url()),
        reason,
    }
}

fn parse(registry: &Registry, what: &str, raw: &RawManifest) -> Result<Document, RemoteError> {
    serde_json::from_slice(&raw.bytes).map_err(|error| {
        protocol(
            registry,
            what,
            format!("is no image manifest or index: {error}"),
        )
    })
}

fn media_type(raw: &RawManifest, document: &Document) -> String {
    document
        .media_type
        .clone()
        .filter(|media_type| !media_type.is_empty())
        .unwrap_or_else(|| raw.media_type.clone())
}

/// `os/arch[/variant]`, with arm64's `v8` left out (the same platform).
fn platform_key(platform: &Platform) -> String {
    let variant = platform
        .variant
        .as_deref()
        .filter(|variant| !(platform.architecture == "arm64" && *variant == "v8"));
    match variant {
        Some(variant) => format!("{}/{}/{variant}", platform.os, platform.architecture),
        None => format!("{}/{}", platform.os, platform.architecture),
    }
}

/// The platform a single-platform manifest's config names.
fn config_platform(
    registry: &Registry,
    what: &str,
    document: &Document,
) -> Result<Platform, RemoteError> {
    let config = document
        .config
        .as_ref()
        .ok_or_else(|| protocol(registry, what, "has no config".into()))?;
    if config.size as usize > CONFIG_LIMIT {
        return Err(protocol(
            registry,
            what,
            format!(
                "its config is {} bytes; at most {CONFIG_LIMIT} are read",
                config.size
            ),
        ));
    }
    // At most the size the manifest declares, within that size's deadline,
    // and checked against the digest.
    let Some(bytes) = registry.get_blob_bytes(&BlobRef::new(config.digest, config.size))? else {
        return Err(protocol(
            registry,
            what,
            format!("its config {:?} is missing", config.digest),
        ));
    };
    let parsed: ConfigPlatform = serde_json::from_slice(&bytes).map_err(|error| {
        protocol(
            registry,
            what,
            format!("its config names no platform: {error}"),
        )
    })?;
    Ok(Platform {
        architecture: parsed.architecture,
        os: parsed.os,
        variant: parsed.variant,
    })
}

/// The manifests a source names: itself (with the platform of its
/// config), or each child of an index (with the platform it lists).
fn read_source(registry: &Registry, source: &Reference) -> Result<Vec<Found>, RemoteError> {
    let what = format!("manifests/{}", source.target());
    let raw = registry
        .get_manifest(source.target(), &ACCEPT)?
        .ok_or_else(|| protocol(registry, &what, "is not there".into()))?;
    let document = parse(registry, &what, &raw)?;
    let kind = media_type(&raw, &document);
    if kind == OCI_INDEX || kind == DOCKER_LIST || !document.manifests.is_empty() {
        let mut found = Vec::new();
        for child in &document.manifests {
            let Some(platform) = child.platform.clone() else {
                continue; // an attestation or other non-image entry
            };
            if platform.architecture == "unknown" {
                continue;
            }
            let child_what = format!("manifests/{}", child.digest.oci());
            let raw = registry
                .get_manifest(&child.digest.oci(), &ACCEPT)?
                .ok_or_else(|| protocol(registry, &child_what, "is not there".into()))?;
            let mut descriptor = Descriptor::new(&child.media_type, child.digest, child.size);
            descriptor.platform = Some(platform);
            descriptor.annotations = child.annotations.clone();
            found.push(Found {
                descriptor,
                raw,
                source: source.to_string(),
            });
        }
        return Ok(found);
    }
    let platform = config_platform(registry, &what, &document)?;
    let mut descriptor = Descriptor::new(&kind, raw.digest, raw.bytes.len() as u64);
    descriptor.platform = Some(platform);
    descriptor.annotations = document.annotations.clone();
    Ok(vec![Found {
        descriptor,
        raw,
        source: source.to_string(),
    }])
}

/// Copies a manifest from `from` into `to`: its blobs mounted, then the
/// manifest by digest. Returns the blobs mounted.
fn copy_manifest(from: &Registry, to: &Registry, found: &Found) -> Result<usize, RemoteError> {
    let what = format!("manifests/{}", found.descriptor.digest.oci());
    let document = parse(from, &what, &found.raw)?;
    let mut mounted = 0;
    for blob in document.config.iter().chain(&document.layers) {
        let unreachable = |_: u64, _: u64| -> Result<reqwest::blocking::Body, RemoteError> {
            Err(protocol(
                to,
                &format!("blobs/{}", blob.digest.oci()),
                format!(
                    "the registry did not mount it from {}; a merge never pulls layers",
                    from.repository()
                ),
            ))
        };
        let blob_ref = BlobRef::new(blob.digest, blob.size);
        match to.put_blob(&blob_ref, Some(from.repository()), u64::MAX, &unreachable)? {
            BlobPut::Mounted => mounted += 1,
            BlobPut::Present | BlobPut::Uploaded(_) => {}
        }
    }
    to.put_manifest(
        &found.descriptor.digest.oci(),
        &found.descriptor.media_type,
        &found.raw.bytes,
    )?;
    Ok(mounted)
}

/// Merges `sources` into one index at `dest`, with `annotations` on it.
pub fn merge(
    dest: &Reference,
    sources: &[Reference],
    annotations: &BTreeMap<String, String>,
    settings: &PushSettings,
) -> Result<MergeOutcome, Error> {
    let failed = |source: RemoteError| Error::Push {
        reference: dest.to_string(),
        source,
    };
    if dest.digest.is_some() {
        return Err(Error::Target {
            target: dest.to_string(),
            message: "a merge writes a tag, not a digest: name a tag".into(),
        });
    }
    let target = open_registry(dest, settings)?;
    // Each source's repository, opened once; a manifest found in another
    // repository than DEST's names the one to copy it from.
    let mut registries: Vec<Registry> = Vec::new();
    let mut found: Vec<(Found, Option<usize>)> = Vec::new();
    for source in sources {
        if source.registry != dest.registry {
            return Err(Error::Target {
                target: source.to_string(),
                message: format!(
                    "is on {}, not on {}: a merge only joins images of one registry (push it there first)",
                    source.registry, dest.registry
                ),
            });
        }
        let registry = open_registry(source, settings)?;
        let manifests = read_source(&registry, source).map_err(failed)?;
        let other = (source.repository != dest.repository).then_some(registries.len());
        registries.push(registry);
        found.extend(manifests.into_iter().map(|manifest| (manifest, other)));
    }
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (manifest, _) in &found {
        let platform = manifest.descriptor.platform.as_ref().expect("set above");
        let key = platform_key(platform);
        if let Some(first) = seen.insert(key.clone(), manifest.source.clone()) {
            return Err(Error::Target {
                target: dest.to_string(),
                message: format!(
                    "{first} and {} are both {key}: an index holds one image per platform",
                    manifest.source
                ),
            });
        }
    }
    let mut merged = Vec::new();
    let mut descriptors = Vec::new();
    for (manifest, source_registry) in &found {
        let mounted = match source_registry {
            Some(from) => copy_manifest(&registries[*from], &target, manifest).map_err(failed)?,
            None => 0,
        };
        merged.push(MergedManifest {
            platform: platform_key(manifest.descriptor.platform.as_ref().expect("set above")),
            digest: manifest.descriptor.digest.oci(),
            source: manifest.source.clone(),
            copied: source_registry.is_some(),
            blobs_mounted: mounted,
        });
        descriptors.push(manifest.descriptor.clone());
    }
    let mut index = ImageIndex::new(descriptors);
    index.annotations = annotations.clone();
    let (bytes, digest) = to_canonical_json(&index);
    target
        .put_manifest(dest.target(), MEDIA_TYPE_INDEX, &bytes)
        .map_err(failed)?;
    Ok(MergeOutcome {
        reference: dest.to_string(),
        digest: digest.oci(),
        manifests: merged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm64_with_and_without_v8_is_one_platform() {
        let platform = |architecture: &str, variant: Option<&str>| Platform {
            architecture: architecture.into(),
            os: "linux".into(),
            variant: variant.map(Into::into),
        };
        assert_eq!(
            platform_key(&platform("arm64", Some("v8"))),
            platform_key(&platform("arm64", None))
        );
        assert_eq!(platform_key(&platform("arm", Some("v7"))), "linux/arm/v7");
        assert_ne!(
            platform_key(&platform("arm", Some("v7"))),
            platform_key(&platform("arm", Some("v6")))
        );
    }
}
