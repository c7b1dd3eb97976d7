//! Image outputs: the OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/`), built aside and renamed into place, and the
//! docker-archive tarball that `docker load` and `podman load` accept,
//! written to a temporary file and renamed. Layer blobs come from the cache
//! through [`BlobSource`] and are checked against their descriptors. The
//! temporaries (`.<name>.partial-*`, `.<name>.old-*` beside the output) are
//! locked while written ([`crate::cache::temp`]); the next write of the
//! same output removes the ones a killed build left.

use crate::cache::LockedTempDir;
use crate::hash::{HashingReader, Sha256Digest};
use crate::image::oci::{
    ANNOTATION_CONTAINERD_IMAGE_NAME, ANNOTATION_REFERENCE_NAME, Descriptor, ImageIndex,
    MEDIA_TYPE_MANIFEST, Platform, to_canonical_json,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where layer blobs live: the cache hands out a file path per digest.
pub trait BlobSource {
    fn open_blob(&self, digest: &Sha256Digest) -> io::Result<PathBuf>;
}

/// One image (one platform) to write out.
#[derive(Debug, Clone)]
pub struct ImageToWrite {
    pub name: String,
    pub tag: String,
    pub platform: Platform,
    /// The canonical config JSON and its digest.
    pub config: (Vec<u8>, Sha256Digest),
    /// The canonical manifest JSON and its digest.
    pub manifest: (Vec<u8>, Sha256Digest),
    pub layers: Vec<Descriptor>,
}

impl ImageToWrite {
    /// `name:tag`, as `docker images` shows it.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }
}

/// Everything that can go wrong while writing an image out.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{path} cannot be an output: it has no parent directory or file name")]
    InvalidDestination { path: PathBuf },
    #[error("blob {digest} is not available from the cache")]
    MissingBlob {
        digest: String,
        #[source]
        source: io::Error,
    },
    #[error("blob {path} should be {expected} bytes for {digest} but is {actual}")]
    BlobSizeMismatch {
        path: PathBuf,
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "blob {path} should have digest {expected} but has {actual}: the cache entry is corrupt"
    )]
    BlobDigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("the {what} of image {reference} does not match its digest {digest}")]
    DocumentDigestMismatch {
        reference: String,
        what: &'static str,
        digest: String,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot move the new output into place at {path}")]
    Replace {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The `index.json` of a layout holding `images`.
fn index_bytes(images: &[ImageToWrite]) -> Vec<u8> {
    let manifests = images
        .iter()
        .map(|image| {
            let (manifest_bytes, manifest_digest) = &image.manifest;
            Descriptor::new(
                MEDIA_TYPE_MANIFEST,
                *manifest_digest,
                manifest_bytes.len() as u64,
            )
            .with_platform(image.platform.clone())
            .with_annotation(ANNOTATION_REFERENCE_NAME, &image.tag)
            .with_annotation(ANNOTATION_CONTAINERD_IMAGE_NAME, &image.reference())
        })
        .collect();
    to_canonical_json(&ImageIndex::new(manifests)).0
}

/// Whether the OCI image layout at `dir` already is the one
/// [`write_oci_layout`] would write for `images`: the same `index.json`,
/// and every blob it names present with its size. (Blobs are named by
/// their digests and the layout is only ever written whole, so this is
/// cheap: a small read and a few stats.)
pub fn oci_layout_is_current(dir: &Path, images: &[ImageToWrite]) -> bool {
    let Ok(index) = fs_err::read(dir.join("index.json")) else {
        return false;
    };
    if index != index_bytes(images) || !dir.join("oci-layout").is_file() {
        return false;
    }
    let blob = |digest: &Sha256Digest, size: u64| {
        fs_err::metadata(dir.join("blobs/sha256").join(digest.hex()))
            .is_ok_and(|metadata| metadata.len() == size)
    };
    images.iter().all(|image| {
        blob(&image.config.1, image.config.0.len() as u64)
            && blob(&image.manifest.1, image.manifest.0.len() as u64)
            && image
                .layers
                .iter()
                .all(|layer| blob(&layer.digest, layer.size))
    })
}

/// Writes an OCI image layout at `dir` holding `images` (one index entry
/// each). The layout is built in a sibling directory and renamed into place;
/// an existing layout at `dir` is replaced only once the new one is complete.
pub fn write_oci_layout(
    dir: &Path,
    images: &[ImageToWrite],
    blobs: &dyn BlobSource,
) -> Result<(), LayoutError> {
    let (parent, file_name) = split_destination(dir)?;
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| LayoutError::Write { path, source }
    };
    fs_err::create_dir_all(parent).map_err(write_error(parent))?;
    // What an earlier, killed write left beside the output.
    sweep(
        parent,
        &[".{file_name}.partial-", ".{file_name}.old-"],
        file_name,
    );
    let staging = LockedTempDir::beside(dir).map_err(write_error(parent))?;
    let root = staging.path();
    fs_err::set_permissions(root, std::fs::Permissions::from_mode(0o755))
        .map_err(write_error(root))?;
    let blob_directory = root.join("blobs").join("sha256");
    fs_err::create_dir_all(&blob_directory).map_err(write_error(&blob_directory))?;
    write_file(
        &root.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;

    for image in images {
        check_documents(image)?;
        for (bytes, digest) in [&image.config, &image.manifest] {
            let path = blob_directory.join(digest.hex());
            if !path.exists() {
                write_file(&path, bytes)?;
            }
        }
        for layer in &image.layers {
            let path = blob_directory.join(layer.digest.hex());
            if !path.exists() {
                place_layer(blobs, layer, &path)?;
            }
        }
    }
    write_file(&root.join("index.json"), &index_bytes(images))?;

    replace_directory(staging, dir, parent, file_name)
}

/// Writes `image` as a docker-archive tarball at `path` (`docker load`,
/// `podman load`). The tar is deterministic: sorted entries, mtime 0, root
/// ownership. Every layer is hashed while it is copied and the archive is
/// abandoned if one does not match its digest.
pub fn write_docker_archive(
    path: &Path,
    image: &ImageToWrite,
    blobs: &dyn BlobSource,
) -> Result<(), LayoutError> {
    let (parent, file_name) = split_destination(path)?;
    check_documents(image)?;
    let write_error = |at: &Path| {
        let at = at.to_owned();
        move |source| LayoutError::Write { path: at, source }
    };
    fs_err::create_dir_all(parent).map_err(write_error(parent))?;

    let blob_path = |digest: &Sha256Digest| format!("blobs/sha256/{}", digest.hex());
    let mut members: BTreeMap<String, Member> = BTreeMap::new();
    members.insert("blobs/".to_owned(), Member::Directory);
    members.insert("blobs/sha256/".to_owned(), Member::Directory);
    let (config_bytes, config_digest) = &image.config;
    members.insert(
        blob_path(config_digest),
        Member::Bytes(config_bytes.clone()),
    );
    for layer in &image.layers {
        members.insert(blob_path(&layer.digest), Member::Layer(layer));
    }
    let manifest = [DockerManifest {
        config: blob_path(config_digest),
        repo_tags: vec![image.reference()],
        layers: image
            .layers
            .iter()
            .map(|layer| blob_path(&layer.digest))
            .collect(),
    }];
    let manifest = serde_json::to_vec(&manifest).expect("docker manifest always serialises");
    members.insert("manifest.json".to_owned(), Member::Bytes(manifest));
    let top = image
        .layers
        .last()
        .map_or(*config_digest, |layer| layer.digest);
    let repositories = BTreeMap::from([(
        image.name.clone(),
        BTreeMap::from([(image.tag.clone(), top.hex())]),
    )]);
    let repositories = serde_json::to_vec(&repositories).expect("repositories always serialise");
    members.insert("repositories".to_owned(), Member::Bytes(repositories));

    sweep(parent, &[".{file_name}.partial-"], file_name);
    let temporary = crate::cache::temp::locked_temp_file(parent, &format!(".{file_name}.partial-"))
        .map_err(write_error(parent))?;
    let temporary_path = temporary.path().to_owned();
    let tar_error = write_error(&temporary_path);
    let mut builder = tar::Builder::new(BufWriter::with_capacity(256 * 1024, temporary.as_file()));
    for (name, member) in &members {
        match member {
            Member::Directory => {
                let mut header = archive_header(tar::EntryType::Directory, 0o755, 0);
                builder
                    .append_data(&mut header, name, io::empty())
                    .map_err(write_error(&temporary_path))?;
            }
            Member::Bytes(bytes) => {
                let mut header = archive_header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
                builder
                    .append_data(&mut header, name, &bytes[..])
                    .map_err(write_error(&temporary_path))?;
            }
            Member::Layer(layer) => {
                let source = blob_file(blobs, layer)?;
                let file = fs_err::File::open(&source).map_err(write_error(&source))?;
                let mut reader = HashingReader::new(file.take(layer.size));
                let mut header = archive_header(tar::EntryType::Regular, 0o644, layer.size);
                builder
                    .append_data(&mut header, name, &mut reader)
                    .map_err(write_error(&temporary_path))?;
                check_digest(&source, layer, reader.finish())?;
            }
        }
    }
    let buffered = builder.into_inner().map_err(write_error(&temporary_path))?;
    buffered
        .into_inner()
        .map_err(|error| tar_error(error.into_error()))?;
    temporary
        .as_file()
        .sync_all()
        .map_err(write_error(&temporary_path))?;
    fs_err::set_permissions(&temporary_path, std::fs::Permissions::from_mode(0o644))
        .map_err(write_error(&temporary_path))?;
    temporary
        .persist(path)
        .map_err(|error| LayoutError::Replace {
            path: path.to_owned(),
            source: error.error,
        })?;
    Ok(())
}

/// One member of the docker-archive tarball.
enum Member<'a> {
    Directory,
    Bytes(Vec<u8>),
    Layer(&'a Descriptor),
}

/// One element of a docker-archive's `manifest.json`.
#[derive(Serialize)]
struct DockerManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Vec<String>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn archive_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header
        .set_username("root")
        .expect("`root` fits a tar header");
    header
        .set_groupname("root")
        .expect("`root` fits a tar header");
    header.set_mtime(0);
    header.set_size(size);
    header
}

fn split_destination(path: &Path) -> Result<(&Path, &str), LayoutError> {
    let invalid = || LayoutError::InvalidDestination {
        path: path.to_owned(),
    };
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(invalid)?;
    let parent = match path.parent() {
        Some(parent) if parent.as_os_str().is_empty() => Path::new("."),
        Some(parent) => parent,
        None => return Err(invalid()),
    };
    Ok((parent, file_name))
}

/// The config and manifest bytes must hash to the digests they are listed by.
fn check_documents(image: &ImageToWrite) -> Result<(), LayoutError> {
    for (what, (bytes, digest)) in [("config", &image.config), ("manifest", &image.manifest)] {
        if Sha256Digest::of(bytes) != *digest {
            return Err(LayoutError::DocumentDigestMismatch {
                reference: image.reference(),
                what,
                digest: digest.oci(),
            });
        }
    }
    Ok(())
}

/// The cache path of a layer blob, after checking its size.
fn blob_file(blobs: &dyn BlobSource, layer: &Descriptor) -> Result<PathBuf, LayoutError> {
    let source = blobs
        .open_blob(&layer.digest)
        .map_err(|source| LayoutError::MissingBlob {
            digest: layer.digest.oci(),
            source,
        })?;
    let actual = fs_err::metadata(&source)
        .map_err(|error| LayoutError::MissingBlob {
            digest: layer.digest.oci(),
            source: error,
        })?
        .len();
    if actual != layer.size {
        return Err(LayoutError::BlobSizeMismatch {
            path: source,
            digest: layer.digest.oci(),
            expected: layer.size,
            actual,
        });
    }
    Ok(source)
}

fn check_digest(
    source: &Path,
    layer: &Descriptor,
    (digest, length): (Sha256Digest, u64),
) -> Result<(), LayoutError> {
    if length != layer.size {
        return Err(LayoutError::BlobSizeMismatch {
            path: source.to_owned(),
            digest: layer.digest.oci(),
            expected: layer.size,
            actual: length,
        });
    }
    if digest != layer.digest {
        return Err(LayoutError::BlobDigestMismatch {
            path: source.to_owned(),
            expected: layer.digest.oci(),
            actual: digest.oci(),
        });
    }
    Ok(())
}

/// Puts a layer blob at `destination`: a hard link to the cache file when
/// both are on one filesystem (the cache verified it when storing it), a
/// verified copy otherwise.
fn place_layer(
    blobs: &dyn BlobSource,
    layer: &Descriptor,
    destination: &Path,
) -> Result<(), LayoutError> {
    let source = blob_file(blobs, layer)?;
    if fs_err::hard_link(&source, destination).is_ok() {
        return Ok(());
    }
    let write_error = |source| LayoutError::Write {
        path: destination.to_owned(),
        source,
    };
    let input = fs_err::File::open(&source).map_err(write_error)?;
    let mut reader = HashingReader::new(input.take(layer.size));
    let mut output = fs_err::File::create(destination).map_err(write_error)?;
    io::copy(&mut reader, &mut output).map_err(write_error)?;
    output.sync_all().map_err(write_error)?;
    check_digest(&source, layer, reader.finish())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let write_error = |source| LayoutError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = fs_err::File::create(path).map_err(write_error)?;
    file.write_all(bytes).map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

/// Removes the temporaries of earlier writes of `file_name` in `parent`
/// (`patterns`, with `{file_name}` standing for it) that no live process
/// holds locked: a killed build leaves them beside its outputs.
fn sweep(parent: &Path, patterns: &[&str], file_name: &str) {
    let prefixes: Vec<String> = patterns
        .iter()
        .map(|pattern| pattern.replace("{file_name}", file_name))
        .collect();
    crate::cache::temp::sweep_matching(parent, |name| {
        prefixes.iter().any(|prefix| name.starts_with(prefix))
    });
}

/// Renames the finished `staging` directory to `destination`. An existing
/// destination is first renamed aside, and put back if the second rename
/// fails; it is deleted only once the new one is in place.
fn replace_directory(
    staging: LockedTempDir,
    destination: &Path,
    parent: &Path,
    file_name: &str,
) -> Result<(), LayoutError> {
    let replace_error = |source| LayoutError::Replace {
        path: destination.to_owned(),
        source,
    };
    if fs_err::symlink_metadata(destination).is_err() {
        fs_err::rename(staging.path(), destination).map_err(replace_error)?;
        let _ = staging.keep();
        return Ok(());
    }
    let aside =
        LockedTempDir::new_in(parent, &format!(".{file_name}.old-")).map_err(replace_error)?;
    let old = aside.path().join(file_name);
    fs_err::rename(destination, &old).map_err(replace_error)?;
    if let Err(error) = fs_err::rename(staging.path(), destination) {
        let _ = fs_err::rename(&old, destination);
        return Err(replace_error(error));
    }
    let _ = staging.keep();
    // Removing the old layout is cleanup; the new one is already in place.
    drop(aside);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::deb::tests::{TestFile, build_test_deb};
    use crate::image::layer::{LayerOptions, LayerPackage, write_layer};
    use crate::image::oci::{ImageConfiguration, ImageManifest, MEDIA_TYPE_CONFIG};
    use std::process::Command;

    /// Blobs stored as `<directory>/<hex>`, like the cache does.
    struct DirectoryBlobs(PathBuf);

    impl BlobSource for DirectoryBlobs {
        fn open_blob(&self, digest: &Sha256Digest) -> io::Result<PathBuf> {
            let path = self.0.join(digest.hex());
            fs_err::metadata(&path)?;
            Ok(path)
        }
    }

    /// A one-layer arm64 image made from a real package whose layer blob is
    /// stored in `<directory>/blobs`.
    fn test_image(directory: &Path) -> (ImageToWrite, DirectoryBlobs) {
        let deb = build_test_deb(
            directory,
            "hello",
            &[TestFile::Executable(
                "usr/bin/hello",
                b"#!/bin/sh\necho hello\n",
            )],
            &[],
            None,
            "xz",
        );
        let blob_directory = directory.join("blobs");
        fs_err::create_dir_all(&blob_directory).unwrap();
        let staging = blob_directory.join("layer.partial");
        let options = LayerOptions {
            epoch: Some(0),
            compression_level: 6,
            filter: crate::image::filter::PathFilter::keep_all(),
            merged_usr: true,
        };
        let layer = write_layer(
            &[LayerPackage {
                name: "hello",
                deb: &deb,
            }],
            &options,
            io::BufWriter::new(fs_err::File::create(&staging).unwrap()),
        )
        .unwrap();
        fs_err::rename(&staging, blob_directory.join(layer.digest.hex())).unwrap();

        let platform = Platform {
            architecture: "arm64".to_owned(),
            os: "linux".to_owned(),
            variant: Some("v8".to_owned()),
        };
        let mut configuration = ImageConfiguration::new(&platform, 0, vec![layer.diff_id]);
        configuration.config.cmd = Some(vec!["/usr/bin/hello".to_owned()]);
        let config = to_canonical_json(&configuration);
        let layers = vec![Descriptor::layer(layer.digest, layer.size)];
        let manifest = to_canonical_json(&ImageManifest::new(
            Descriptor::new(MEDIA_TYPE_CONFIG, config.1, config.0.len() as u64),
            layers.clone(),
        ));
        let image = ImageToWrite {
            name: "localhost/hello".to_owned(),
            tag: "1.0".to_owned(),
            platform,
            config,
            manifest,
            layers,
        };
        (image, DirectoryBlobs(blob_directory))
    }

    fn read_json(path: &Path) -> serde_json::Value {
        serde_json::from_slice(&fs_err::read(path).unwrap()).unwrap()
    }

    fn siblings(directory: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs_err::read_dir(directory)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn oci_layout_lists_the_image_and_holds_every_blob() {
        let directory = tempfile::tempdir().unwrap();
        let (image, blobs) = test_image(directory.path());
        let output = directory.path().join("out");
        let layout = output.join("layout");
        write_oci_layout(&layout, std::slice::from_ref(&image), &blobs).unwrap();

        assert_eq!(
            fs_err::read_to_string(layout.join("oci-layout")).unwrap(),
            r#"{"imageLayoutVersion":"1.0.0"}"#
        );
        let index = read_json(&layout.join("index.json"));
        let entry = &index["manifests"][0];
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(entry["digest"], image.manifest.1.oci());
        assert_eq!(entry["platform"]["architecture"], "arm64");
        assert_eq!(entry["annotations"][ANNOTATION_REFERENCE_NAME], "1.0");
        assert_eq!(
            entry["annotations"][ANNOTATION_CONTAINERD_IMAGE_NAME],
            "localhost/hello:1.0"
        );
        for digest in [image.config.1, image.manifest.1, image.layers[0].digest] {
            let bytes = fs_err::read(layout.join("blobs/sha256").join(digest.hex())).unwrap();
            assert_eq!(Sha256Digest::of(&bytes), digest);
        }

        // Writing again replaces the layout and leaves nothing beside it.
        fs_err::write(layout.join("stale"), b"old").unwrap();
        write_oci_layout(&layout, std::slice::from_ref(&image), &blobs).unwrap();
        assert!(!layout.join("stale").exists());
        assert_eq!(siblings(&output), ["layout"]);

        validate_with_umoci(directory.path(), &layout);
    }

    /// `umoci unpack` checks every digest and unpacks the layer.
    fn validate_with_umoci(directory: &Path, layout: &Path) {
        if Command::new("umoci").arg("--version").output().is_err() {
            eprintln!("note: umoci is not installed; skipping the umoci check of the layout");
            return;
        }
        let bundle = directory.join("bundle");
        let output = Command::new("umoci")
            .arg("unpack")
            .arg("--rootless")
            .arg("--image")
            .arg(format!("{}:1.0", layout.display()))
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "umoci unpack: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let script = fs_err::read_to_string(bundle.join("rootfs/usr/bin/hello")).unwrap();
        assert_eq!(script, "#!/bin/sh\necho hello\n");
        assert!(bundle.join("rootfs/var/lib/dpkg/status.d/hello").exists());
    }

    #[test]
    fn docker_archive_is_deterministic_and_has_a_loadable_manifest() {
        let directory = tempfile::tempdir().unwrap();
        let (image, blobs) = test_image(directory.path());
        let path = directory.path().join("out/image.tar");
        write_docker_archive(&path, &image, &blobs).unwrap();
        let first = fs_err::read(&path).unwrap();
        write_docker_archive(&path, &image, &blobs).unwrap();
        assert_eq!(fs_err::read(&path).unwrap(), first);
        assert_eq!(siblings(&directory.path().join("out")), ["image.tar"]);

        let mut archive = tar::Archive::new(&first[..]);
        let mut names = Vec::new();
        let mut files = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            assert_eq!(entry.header().mtime().unwrap(), 0);
            assert_eq!(entry.header().uid().unwrap(), 0);
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            names.push(name.clone());
            files.insert(name, bytes);
        }
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        let config = format!("blobs/sha256/{}", image.config.1.hex());
        let layer = format!("blobs/sha256/{}", image.layers[0].digest.hex());
        let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        assert_eq!(
            manifest,
            serde_json::json!([{"Config": config, "RepoTags": ["localhost/hello:1.0"], "Layers": [layer]}])
        );
        assert_eq!(files[&config], image.config.0);
        assert_eq!(Sha256Digest::of(&files[&layer]), image.layers[0].digest);
        let repositories: serde_json::Value =
            serde_json::from_slice(&files["repositories"]).unwrap();
        assert_eq!(
            repositories["localhost/hello"]["1.0"],
            image.layers[0].digest.hex()
        );

        if Command::new("skopeo").arg("--version").output().is_ok() {
            let output = Command::new("skopeo")
                .arg("inspect")
                .arg(format!("docker-archive:{}", path.display()))
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "skopeo inspect: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let inspected: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            assert_eq!(inspected["Architecture"], "arm64");
        } else {
            eprintln!("note: skopeo is not installed; skipping the skopeo check of the archive");
        }
    }

    #[test]
    fn a_corrupt_cache_blob_is_never_shipped() {
        let directory = tempfile::tempdir().unwrap();
        let (image, blobs) = test_image(directory.path());
        let blob = blobs.0.join(image.layers[0].digest.hex());
        let mut bytes = fs_err::read(&blob).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        fs_err::write(&blob, &bytes).unwrap();

        let output = directory.path().join("out");
        let error = write_docker_archive(&output.join("image.tar"), &image, &blobs).unwrap_err();
        assert!(
            matches!(error, LayoutError::BlobDigestMismatch { .. }),
            "{error}"
        );
        assert!(
            siblings(&output).is_empty(),
            "leftovers: {:?}",
            siblings(&output)
        );

        // A blob of the wrong size is refused before anything is linked.
        fs_err::write(&blob, b"short").unwrap();
        let error = write_oci_layout(&output.join("layout"), &[image], &blobs).unwrap_err();
        assert!(
            matches!(error, LayoutError::BlobSizeMismatch { .. }),
            "{error}"
        );
        assert!(
            siblings(&output).is_empty(),
            "leftovers: {:?}",
            siblings(&output)
        );
    }
}
