//! Reading what xbuild wrote: the OCI image layout (`OUT/oci/`), the layers
//! in it, and the docker-archive's `manifest.json`. Every blob read is
//! checked against its digest.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::archive::sha256_hex;

/// One entry of a layer tarball.
#[derive(Clone, Debug)]
pub struct LayerEntry {
    /// Normalised: no leading `./` or `/`, no trailing `/`.
    pub path: String,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub mtime: u64,
    pub uid: u64,
    pub gid: u64,
    pub link_target: Option<String>,
    pub contents: Vec<u8>,
}

pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    /// The layout at `OUT/oci`.
    pub fn open(out: &Path) -> Layout {
        let dir = out.join("oci");
        let marker = fs::read_to_string(dir.join("oci-layout"))
            .unwrap_or_else(|error| panic!("{}/oci-layout: {error}", dir.display()));
        let marker: Value = serde_json::from_str(&marker).expect("oci-layout is JSON");
        assert_eq!(marker["imageLayoutVersion"], "1.0.0");
        Layout { dir }
    }

    pub fn index_bytes(&self) -> Vec<u8> {
        fs::read(self.dir.join("index.json")).expect("read index.json")
    }

    pub fn index(&self) -> Value {
        serde_json::from_slice(&self.index_bytes()).expect("index.json is JSON")
    }

    /// A blob's bytes, after checking they hash to `digest`.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let hex = digest
            .strip_prefix("sha256:")
            .unwrap_or_else(|| panic!("not a sha256 digest: {digest}"));
        let path = self.dir.join("blobs").join("sha256").join(hex);
        let bytes = fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert_eq!(
            sha256_hex(&bytes),
            hex,
            "blob {} does not match its name",
            path.display()
        );
        bytes
    }

    pub fn json_blob(&self, digest: &str) -> Value {
        serde_json::from_slice(&self.blob(digest)).expect("blob is JSON")
    }

    /// The manifest descriptors of `index.json`.
    pub fn manifest_descriptors(&self) -> Vec<Value> {
        self.index()["manifests"]
            .as_array()
            .expect("index.json has manifests")
            .clone()
    }

    /// The descriptor and manifest for the OCI architecture `architecture`
    /// (`arm64`, `amd64`, `arm`, …).
    pub fn manifest_for(&self, architecture: &str) -> (Value, Value) {
        let descriptor = self
            .manifest_descriptors()
            .into_iter()
            .find(|descriptor| descriptor["platform"]["architecture"] == architecture)
            .unwrap_or_else(|| panic!("no manifest for {architecture} in {}", self.index()));
        let manifest = self.json_blob(descriptor["digest"].as_str().unwrap());
        (descriptor, manifest)
    }

    pub fn config(&self, manifest: &Value) -> Value {
        self.json_blob(
            manifest["config"]["digest"]
                .as_str()
                .expect("config digest"),
        )
    }

    /// The uncompressed tar bytes of a layer descriptor.
    pub fn layer_tar(&self, layer: &Value) -> Vec<u8> {
        let digest = layer["digest"].as_str().expect("layer digest");
        let media_type = layer["mediaType"].as_str().expect("layer mediaType");
        let blob = self.blob(digest);
        let mut tar_bytes = Vec::new();
        if media_type.ends_with("+gzip") || media_type.ends_with(".gzip") {
            flate2::read::GzDecoder::new(&blob[..])
                .read_to_end(&mut tar_bytes)
                .expect("gunzip layer");
        } else if media_type.ends_with("+zstd") {
            zstd::stream::read::Decoder::new(&blob[..])
                .unwrap()
                .read_to_end(&mut tar_bytes)
                .expect("unzstd layer");
        } else if media_type.ends_with(".tar") || media_type.ends_with("tar") {
            tar_bytes = blob;
        } else {
            panic!("unknown layer media type {media_type}");
        }
        tar_bytes
    }

    pub fn layer_entries(&self, layer: &Value) -> Vec<LayerEntry> {
        tar_entries(&self.layer_tar(layer))
    }
}

/// Strips `./`, `/` and a trailing `/` from a tar path.
pub fn normalise(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_owned()
}

pub fn tar_entries(tar_bytes: &[u8]) -> Vec<LayerEntry> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut entries = Vec::new();
    for entry in archive.entries().expect("read tar") {
        let mut entry = entry.expect("tar entry");
        let path = normalise(&entry.path().expect("entry path").to_string_lossy());
        let header = entry.header().clone();
        let link_target = entry
            .link_name()
            .ok()
            .flatten()
            .map(|target| target.to_string_lossy().into_owned());
        let mut contents = Vec::new();
        entry.read_to_end(&mut contents).expect("entry contents");
        entries.push(LayerEntry {
            path,
            kind: header.entry_type(),
            mode: header.mode().unwrap_or(0),
            mtime: header.mtime().unwrap_or(0),
            uid: header.uid().unwrap_or(u64::MAX),
            gid: header.gid().unwrap_or(u64::MAX),
            link_target,
            contents,
        });
    }
    entries
}

/// The docker-archive's `manifest.json` (an array with one entry per image).
pub fn docker_archive_manifest(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let entry = tar_entries(&bytes)
        .into_iter()
        .find(|entry| entry.path == "manifest.json")
        .unwrap_or_else(|| panic!("no manifest.json in {}", path.display()));
    serde_json::from_slice(&entry.contents).expect("manifest.json is JSON")
}
