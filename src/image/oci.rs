//! OCI image JSON documents: the image configuration, content descriptors,
//! the image manifest and the image index, with exactly the field names of
//! the OCI image specification, plus the canonical serialisation (fixed field
//! order, sorted maps, absent optional fields left out, no whitespace) whose
//! sha256 is the document's digest.

use crate::hash::Sha256Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Media type of an OCI image manifest.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an OCI image configuration.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of a gzip-compressed layer.
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Annotation naming the tag of a manifest in an image layout's index.
pub const ANNOTATION_REFERENCE_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation containerd (and `ctr import`) read for the full image name.
pub const ANNOTATION_CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";
/// Annotation holding the image creation time.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

/// The platform an image runs on, as OCI spells it (`linux`, `arm64`, `v8`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An empty JSON object, `{}`: the value type of `ExposedPorts` and `Volumes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyObject {}

/// The execution parameters of an image (`config` in the image configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionConfig {
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub exposed_ports: BTreeMap<String, EmptyObject>,
    #[serde(rename = "Env", default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    #[serde(rename = "Labels", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The layers of an image's root filesystem, by uncompressed digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFilesystem {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Sha256Digest>,
}

impl RootFilesystem {
    pub fn from_layers(diff_ids: Vec<Sha256Digest>) -> Self {
        RootFilesystem {
            kind: "layers".to_owned(),
            diff_ids,
        }
    }
}

/// One step of an image's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
}

/// The OCI image configuration (`application/vnd.oci.image.config.v1+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: ExecutionConfig,
    pub rootfs: RootFilesystem,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
}

impl ImageConfiguration {
    /// A configuration for `platform`, created at `epoch` (seconds since
    /// 1970, the build's `SOURCE_DATE_EPOCH`), with the given layers.
    pub fn new(platform: &Platform, epoch: u64, diff_ids: Vec<Sha256Digest>) -> Self {
        ImageConfiguration {
            created: Some(format_rfc3339(epoch)),
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: platform.variant.clone(),
            config: ExecutionConfig::default(),
            rootfs: RootFilesystem::from_layers(diff_ids),
            history: Vec::new(),
        }
    }

    /// The platform this configuration declares.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            variant: self.variant.clone(),
        }
    }
}

/// A content descriptor: what a blob is, its digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: Sha256Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Sha256Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            annotations: BTreeMap::new(),
            platform: None,
        }
    }

    /// A gzip layer descriptor.
    pub fn layer(digest: Sha256Digest, size: u64) -> Self {
        Descriptor::new(MEDIA_TYPE_LAYER_GZIP, digest, size)
    }

    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    pub fn with_annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// The OCI image manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    pub fn new(config: Descriptor, layers: Vec<Descriptor>) -> Self {
        ImageManifest {
            schema_version: 2,
            media_type: MEDIA_TYPE_MANIFEST.to_owned(),
            config,
            layers,
            annotations: BTreeMap::new(),
        }
    }
}

/// The OCI image index: several manifests, typically one per platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageIndex {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    pub fn new(manifests: Vec<Descriptor>) -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: MEDIA_TYPE_INDEX.to_owned(),
            manifests,
            annotations: BTreeMap::new(),
        }
    }
}

/// Serialises `value` canonically (struct field order, sorted maps, no
/// whitespace) and returns the bytes with their sha256.
pub fn to_canonical_json<T: Serialize>(value: &T) -> (Vec<u8>, Sha256Digest) {
    // Only plain structs, strings, numbers and string-keyed maps are
    // serialised here, so serde_json cannot fail.
    let bytes = serde_json::to_vec(value).expect("OCI documents always serialise to JSON");
    let digest = Sha256Digest::of(&bytes);
    (bytes, digest)
}

/// Formats seconds since 1970-01-01 UTC as RFC 3339 (`1970-01-01T00:00:00Z`).
pub fn format_rfc3339(epoch: u64) -> String {
    let days = epoch / 86_400;
    let seconds_of_day = epoch % 86_400;
    let (year, month, day) = crate::calendar::civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(format_rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn rfc3339_agrees_with_gnu_date_for_many_days() {
        // Every 997th day over 300 years, checked against `date` when present.
        let Ok(output) = std::process::Command::new("date")
            .args(["-u", "-d", "@0", "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
        else {
            eprintln!("note: `date` not available; skipping");
            return;
        };
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            format_rfc3339(0)
        );
        for day in (0..110_000u64).step_by(997) {
            let epoch = day * 86_400 + 12_345;
            let output = std::process::Command::new("date")
                .args(["-u", "-d", &format!("@{epoch}"), "+%Y-%m-%dT%H:%M:%SZ"])
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&output.stdout).trim(),
                format_rfc3339(epoch)
            );
        }
    }

    #[test]
    fn configuration_serialises_with_oci_names_and_omits_absent_fields() {
        let platform = Platform {
            architecture: "arm64".to_owned(),
            os: "linux".to_owned(),
            variant: Some("v8".to_owned()),
        };
        let diff_id = Sha256Digest::of(b"layer");
        let mut configuration = ImageConfiguration::new(&platform, 0, vec![diff_id]);
        configuration.config.cmd = Some(vec!["cowsay".to_owned(), "hi".to_owned()]);
        configuration.config.env = vec!["PATH=/usr/bin".to_owned()];
        configuration
            .config
            .labels
            .insert("z".to_owned(), "1".to_owned());
        configuration
            .config
            .labels
            .insert("a".to_owned(), "2".to_owned());
        configuration
            .config
            .exposed_ports
            .insert("80/tcp".to_owned(), EmptyObject {});
        configuration.history.push(History {
            created: Some(format_rfc3339(0)),
            created_by: Some("xbuild".to_owned()),
            comment: None,
            empty_layer: None,
        });
        let (bytes, digest) = to_canonical_json(&configuration);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            format!(
                concat!(
                    r#"{{"created":"1970-01-01T00:00:00Z","architecture":"arm64","os":"linux","variant":"v8","#,
                    r#""config":{{"ExposedPorts":{{"80/tcp":{{}}}},"Env":["PATH=/usr/bin"],"Cmd":["cowsay","hi"],"#,
                    r#""Labels":{{"a":"2","z":"1"}}}},"rootfs":{{"type":"layers","diff_ids":["{}"]}},"#,
                    r#""history":[{{"created":"1970-01-01T00:00:00Z","created_by":"xbuild"}}]}}"#
                ),
                diff_id.oci()
            )
        );
        assert_eq!(digest, Sha256Digest::of(&bytes));
        let parsed: ImageConfiguration = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed, configuration);
    }

    #[test]
    fn manifest_and_index_use_oci_media_types_and_names() {
        let config = Descriptor::new(MEDIA_TYPE_CONFIG, Sha256Digest::of(b"c"), 10);
        let layer = Descriptor::layer(Sha256Digest::of(b"l"), 20);
        let (bytes, digest) = to_canonical_json(&ImageManifest::new(config, vec![layer]));
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["schemaVersion"], 2);
        assert_eq!(value["mediaType"], MEDIA_TYPE_MANIFEST);
        assert_eq!(value["config"]["mediaType"], MEDIA_TYPE_CONFIG);
        assert_eq!(value["layers"][0]["mediaType"], MEDIA_TYPE_LAYER_GZIP);
        assert_eq!(value["layers"][0]["size"], 20);
        assert!(value["layers"][0].get("annotations").is_none());
        assert!(value.get("annotations").is_none());

        let entry = Descriptor::new(MEDIA_TYPE_MANIFEST, digest, bytes.len() as u64)
            .with_platform(Platform {
                architecture: "amd64".to_owned(),
                os: "linux".to_owned(),
                variant: None,
            })
            .with_annotation(ANNOTATION_REFERENCE_NAME, "latest");
        let (index, _) = to_canonical_json(&ImageIndex::new(vec![entry]));
        let text = String::from_utf8(index).unwrap();
        assert!(text.starts_with(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"#));
        assert!(text.contains(r#""annotations":{"org.opencontainers.image.ref.name":"latest"},"platform":{"architecture":"amd64","os":"linux"}}"#));
    }
}
