//! `oci://host[:port]/repo`: an OCI registry (distribution-spec API) as a
//! remote cache. Plain HTTP for `localhost` and `127.*` / `[::1]`, HTTPS
//! otherwise; `oci+http://` and `oci+https://` choose explicitly.
//!
//! What the repository `repo` holds:
//!
//! - every blob as a registry blob (`HEAD`/`GET /v2/<repo>/blobs/sha256:<hex>`;
//!   uploaded in one piece: `POST /v2/<repo>/blobs/uploads/`, then `PUT
//!   <location>?digest=sha256:<hex>`, which the registry verifies);
//! - every entry as an OCI 1.1 image manifest tagged `<bucket>-<key hex>`:
//!
//! ```json
//! { "schemaVersion": 2,
//!   "mediaType": "application/vnd.oci.image.manifest.v1+json",
//!   "artifactType": "application/vnd.xbuild.entry.v1",
//!   "config": { "mediaType": "application/vnd.oci.empty.v1+json",
//!               "digest": "sha256:44136fa3…", "size": 2 },
//!   "layers": [
//!     { "mediaType": "application/vnd.xbuild.envelope.v1+json", "digest": …, "size": … },
//!     { "mediaType": "application/vnd.xbuild.blob.v1", "digest": …, "size": … }, … ],
//!   "annotations": { "org.xbuild.bucket": "<bucket>", "org.xbuild.key": "sha256:<key hex>" } }
//! ```
//!
//!   The first layer is the signed envelope ([`crate::sign`]), itself a
//!   blob; the others are the entry's blobs, listed so that the registry's
//!   garbage collection keeps them. The envelope is a layer so that its
//!   size is not bounded by the manifest's; one of at most 16 KiB is also
//!   the annotation `org.xbuild.envelope` (base64), so a reader fetches the
//!   manifest only (it is signed: either copy verifies the same way);
//! - every pointer as a manifest of `artifactType`
//!   `application/vnd.xbuild.pointer.v1` whose one layer is the pointer
//!   document, tagged `pointer_<name>`. Entry tags never contain `_`, so the
//!   two never collide.
//!
//! The referrers API is not used (Debian's registry 2.8 lacks it); tags are
//! the only index.
//!
//! Authentication: anonymous, Basic, or the Bearer token flow (a 401's
//! `WWW-Authenticate: Bearer realm=…,service=…,scope=…` names the token
//! service), with credentials looked up as Docker does in `config.json` of
//! `$DOCKER_CONFIG` or `~/.docker`: the registry's `credHelpers` entry, its
//! `auths` entry, then `credsStore` (a helper is `docker-credential-<name>
//! get`).

use super::registry::Registry;
use super::{
    Backend, BlobRef, DOCUMENT_LIMIT, LocalBlob, RemoteConfig, RemoteError, check_bucket,
    check_pointer, parallel_map,
};
use crate::hash::Sha256Digest;
use std::io::Write;
use std::path::Path;

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const ENTRY_ARTIFACT_TYPE: &str = "application/vnd.xbuild.entry.v1";
pub const POINTER_ARTIFACT_TYPE: &str = "application/vnd.xbuild.pointer.v1";
pub const ENVELOPE_MEDIA_TYPE: &str = "application/vnd.xbuild.envelope.v1+json";
pub const POINTER_MEDIA_TYPE: &str = "application/vnd.xbuild.pointer.v1+json";
pub const BLOB_MEDIA_TYPE: &str = "application/vnd.xbuild.blob.v1";
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_CONFIG: &[u8] = b"{}";
/// The annotation holding a small entry's envelope (base64) besides its
/// layer, so a reader needs the manifest only; the envelope is signed, so
/// either copy is verified the same way.
pub const ENVELOPE_ANNOTATION: &str = "org.xbuild.envelope";
/// The largest envelope also carried inline.
const INLINE_ENVELOPE_LIMIT: usize = 16 * 1024;

/// A remote cache in one repository of an OCI registry.
pub struct OciBackend {
    registry: Registry,
    check_jobs: usize,
    /// Whether the empty config blob is known to be there; a mutex, so
    /// parallel uploads put it once (the registry fails concurrent uploads
    /// of one blob now and then: DIGEST_INVALID on the manifest).
    config_present: std::sync::Mutex<bool>,
}

impl std::fmt::Debug for OciBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OciBackend")
            .field("url", &self.registry.url())
            .finish()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    #[serde(default)]
    media_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    artifact_type: String,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: Sha256Digest,
    size: u64,
}

impl OciBackend {
    pub fn open(url: &str, config: &RemoteConfig) -> Result<OciBackend, RemoteError> {
        Ok(OciBackend {
            registry: Registry::open(url, config, false)?,
            check_jobs: config.check_jobs,
            config_present: std::sync::Mutex::new(false),
        })
    }

    fn ensure_config(&self) -> Result<(), RemoteError> {
        let mut present = self
            .config_present
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if !*present {
            self.registry.upload_bytes(EMPTY_CONFIG)?;
            *present = true;
        }
        Ok(())
    }

    fn put_manifest(&self, tag: &str, manifest: &Manifest) -> Result<(), RemoteError> {
        self.ensure_config()?;
        let bytes = serde_json::to_vec(manifest).expect("manifests serialise");
        self.registry
            .put_manifest(tag, MANIFEST_MEDIA_TYPE, &bytes)
            .map(drop)
    }

    /// The manifest tagged `tag`, if it is there and of `artifact_type`.
    fn get_manifest(
        &self,
        tag: &str,
        artifact_type: &str,
    ) -> Result<Option<Manifest>, RemoteError> {
        let Some(raw) = self.registry.get_manifest(tag, &[MANIFEST_MEDIA_TYPE])? else {
            return Ok(None);
        };
        let (_, shown) = self.registry.endpoint(&format!("manifests/{tag}"));
        let manifest: Manifest =
            serde_json::from_slice(&raw.bytes).map_err(|error| RemoteError::Protocol {
                url: shown.clone(),
                reason: format!("the manifest is not an OCI image manifest: {error}"),
            })?;
        if manifest.artifact_type != artifact_type {
            return Err(RemoteError::Protocol {
                url: shown,
                reason: format!(
                    "the tag holds an artifact of type `{}`, not `{artifact_type}`",
                    manifest.artifact_type
                ),
            });
        }
        Ok(Some(manifest))
    }

    /// The first layer of `media_type` of the manifest tagged `tag`, read
    /// whole and checked against its digest.
    fn get_document(
        &self,
        tag: &str,
        artifact_type: &str,
        media_type: &str,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        let Some(manifest) = self.get_manifest(tag, artifact_type)? else {
            return Ok(None);
        };
        self.document_of(tag, &manifest, media_type).map(Some)
    }

    /// The first layer of `media_type` of `manifest` (tagged `tag`), read
    /// whole (at most its declared size, within its deadline) and checked
    /// against its digest.
    fn document_of(
        &self,
        tag: &str,
        manifest: &Manifest,
        media_type: &str,
    ) -> Result<Vec<u8>, RemoteError> {
        let (_, shown) = self.registry.endpoint(&format!("manifests/{tag}"));
        let layer = manifest
            .layers
            .iter()
            .find(|layer| layer.media_type == media_type)
            .filter(|layer| layer.size <= DOCUMENT_LIMIT)
            .ok_or_else(|| RemoteError::Protocol {
                url: shown.clone(),
                reason: format!("the manifest has no layer of type `{media_type}` (of at most {DOCUMENT_LIMIT} bytes)"),
            })?;
        let blob = BlobRef::new(layer.digest, layer.size);
        self.registry
            .get_blob_bytes(&blob)?
            .ok_or_else(|| RemoteError::Protocol {
                url: shown,
                reason: format!("its layer {:?} is missing", layer.digest),
            })
    }

    fn artifact(
        &self,
        artifact_type: &str,
        layers: Vec<Descriptor>,
        annotations: &[(&str, String)],
    ) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: MANIFEST_MEDIA_TYPE.into(),
            artifact_type: artifact_type.into(),
            config: Descriptor {
                media_type: EMPTY_MEDIA_TYPE.into(),
                digest: Sha256Digest::of(EMPTY_CONFIG),
                size: EMPTY_CONFIG.len() as u64,
            },
            layers,
            annotations: annotations
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone()))
                .collect(),
        }
    }
}

/// `<bucket>-<key hex>`: at most 60 + 1 + 64 characters, within the tag
/// grammar `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn entry_tag(bucket: &str, key: &Sha256Digest) -> Result<String, RemoteError> {
    check_bucket(bucket)?;
    Ok(format!("{bucket}-{}", key.hex()))
}

/// `pointer_<name>`: at most 8 + 120 characters.
pub fn pointer_tag(name: &str) -> Result<String, RemoteError> {
    check_pointer(name)?;
    Ok(format!("pointer_{name}"))
}

impl Backend for OciBackend {
    fn url(&self) -> &str {
        self.registry.url()
    }

    fn has_blobs(&self, digests: &[Sha256Digest]) -> Result<Vec<bool>, RemoteError> {
        parallel_map(self.check_jobs, digests, |digest| {
            self.registry.blob_exists(digest)
        })
        .into_iter()
        .collect()
    }

    fn get_blob(&self, blob: &BlobRef, sink: &mut dyn Write) -> Result<Option<u64>, RemoteError> {
        self.registry.get_blob(blob, sink)
    }

    fn put_blob(&self, blob: &BlobRef, path: &Path) -> Result<(), RemoteError> {
        let local = LocalBlob::new(blob, path);
        let uploaded = self.registry.upload(blob, || {
            let reader = local.open()?;
            Ok(reqwest::blocking::Body::sized(reader, blob.size))
        });
        local.check()?;
        uploaded
    }

    fn get_entry(&self, bucket: &str, key: &Sha256Digest) -> Result<Option<Vec<u8>>, RemoteError> {
        let tag = entry_tag(bucket, key)?;
        let Some(manifest) = self.get_manifest(&tag, ENTRY_ARTIFACT_TYPE)? else {
            return Ok(None);
        };
        // A small envelope rides in the manifest too: one round trip.
        if let Some(inline) = manifest.annotations.get(ENVELOPE_ANNOTATION) {
            use base64::Engine as _;
            return base64::engine::general_purpose::STANDARD
                .decode(inline)
                .map(Some)
                .map_err(|_| RemoteError::Protocol {
                    url: format!("{}/manifests/{tag}", self.registry.url()),
                    reason: format!("its `{ENVELOPE_ANNOTATION}` annotation is not base64"),
                });
        }
        self.document_of(&tag, &manifest, ENVELOPE_MEDIA_TYPE)
            .map(Some)
    }

    fn has_entry(&self, bucket: &str, key: &Sha256Digest) -> Result<bool, RemoteError> {
        self.registry
            .manifest_exists(&entry_tag(bucket, key)?, &[MANIFEST_MEDIA_TYPE])
    }

    fn put_entry(
        &self,
        bucket: &str,
        key: &Sha256Digest,
        envelope: &[u8],
        blobs: &[BlobRef],
    ) -> Result<(), RemoteError> {
        let tag = entry_tag(bucket, key)?;
        let envelope_bytes = envelope;
        let envelope = self.registry.upload_bytes(envelope)?;
        let mut layers = vec![Descriptor {
            media_type: ENVELOPE_MEDIA_TYPE.into(),
            digest: envelope.digest,
            size: envelope.size,
        }];
        layers.extend(blobs.iter().map(|blob| Descriptor {
            media_type: BLOB_MEDIA_TYPE.into(),
            digest: blob.digest,
            size: blob.size,
        }));
        let mut annotations = vec![
            ("org.xbuild.bucket", bucket.to_owned()),
            ("org.xbuild.key", key.oci()),
        ];
        if envelope_bytes.len() <= INLINE_ENVELOPE_LIMIT {
            use base64::Engine as _;
            annotations.push((
                ENVELOPE_ANNOTATION,
                base64::engine::general_purpose::STANDARD.encode(envelope_bytes),
            ));
        }
        self.put_manifest(
            &tag,
            &self.artifact(ENTRY_ARTIFACT_TYPE, layers, &annotations),
        )
    }

    fn get_pointer(&self, name: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        self.get_document(
            &pointer_tag(name)?,
            POINTER_ARTIFACT_TYPE,
            POINTER_MEDIA_TYPE,
        )
    }

    fn put_pointer(&self, name: &str, document: &[u8]) -> Result<(), RemoteError> {
        let tag = pointer_tag(name)?;
        let blob = self.registry.upload_bytes(document)?;
        let layers = vec![Descriptor {
            media_type: POINTER_MEDIA_TYPE.into(),
            digest: blob.digest,
            size: blob.size,
        }];
        let annotations = [("org.xbuild.pointer", name.to_owned())];
        self.put_manifest(
            &tag,
            &self.artifact(POINTER_ARTIFACT_TYPE, layers, &annotations),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_fit_the_grammar_and_never_collide() {
        let key = Sha256Digest::of(b"k");
        let longest = "b".repeat(60);
        assert_eq!(entry_tag(&longest, &key).unwrap().len(), 125);
        assert_eq!(pointer_tag(&"p".repeat(120)).unwrap().len(), 128);
        assert!(!entry_tag("layer", &key).unwrap().contains('_'));
        assert!(pointer_tag("x").unwrap().contains('_'));
    }
}
