//! The assemble step: per target, the OCI config and manifest (stored in
//! the cache like every other blob), then the outputs — one OCI image
//! layout holding every target, and one docker-archive per target — and
//! the build report.

use super::BuildOptions;
use super::compile::BuildLayer;
use super::realize::{LayerPlan, LayerRecord, Realized, store_directory_layer};
use super::resolve::Resolved;
use crate::Error;
use crate::cache::{Bucket, Cache, EntryMeta};
use crate::hash::Sha256Digest;
use crate::http::redact;
use crate::image::layout::{
    BlobSource, ImageToWrite, oci_layout_is_current, write_docker_archive, write_oci_layout,
};
use crate::image::oci::{
    Descriptor, EmptyObject, History, ImageConfiguration, ImageManifest, MEDIA_TYPE_CONFIG,
    Platform as OciPlatform, format_rfc3339, to_canonical_json,
};
use crate::plan::{KeyBuilder, NodeKind};
use crate::report::{BuildReport, LayerReport, NodeReport, Outcome, PackageReport, TargetReport};
use std::collections::BTreeMap;
use std::path::PathBuf;

impl BlobSource for Cache {
    fn open_blob(&self, digest: &Sha256Digest) -> std::io::Result<PathBuf> {
        let path = self.blob_path(digest);
        if path.is_file() {
            Ok(path)
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "blob {} is not in the cache at {}",
                    digest.oci(),
                    path.display()
                ),
            ))
        }
    }
}

/// What the cache records of a docker-archive it wrote: what it holds and
/// the file's identity then. The same identity now means the same file
/// (nothing rewrote it), so an unchanged image is not written again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct OutputRecord {
    /// The image manifest's digest and `name:tag`.
    contents: String,
    size: u64,
    modified_nanoseconds: i128,
    inode: u64,
    device: u64,
}

impl OutputRecord {
    fn of(path: &std::path::Path, contents: String) -> Option<OutputRecord> {
        use std::os::unix::fs::MetadataExt;
        let metadata = fs_err::metadata(path).ok()?;
        Some(OutputRecord {
            contents,
            size: metadata.len(),
            modified_nanoseconds: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
            inode: metadata.ino(),
            device: metadata.dev(),
        })
    }
}

/// Writes the docker-archive of `image` at `path` unless the file there is
/// the one this cache wrote for the same image and is unchanged since.
fn write_docker_archive_if_changed(
    cache: &Cache,
    path: &std::path::Path,
    image: &ImageToWrite,
) -> Result<(), Error> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let key = KeyBuilder::new("output")
        .text("kind", "docker-archive-v1")
        .text("path", &absolute.to_string_lossy())
        .finish();
    let contents = format!("{} {}", image.manifest.1.oci(), image.reference());
    let recorded = cache.get_entry::<OutputRecord>(Bucket::Outputs, &key)?;
    if recorded.is_some() && recorded == OutputRecord::of(path, contents.clone()) {
        return Ok(());
    }
    write_docker_archive(path, image, cache)?;
    if let Some(record) = OutputRecord::of(path, contents) {
        cache.put_entry(Bucket::Outputs, &key, &record, EntryMeta::any())?;
    }
    Ok(())
}

/// The first Debian release whose packages assume merged /usr (DEP17:
/// `/lib/ld-linux-*.so` is found through the `/lib -> usr/lib` symlink).
const MERGED_USR_SINCE: u32 = 13;

/// A layer holding only the merged-/usr symlinks, cached like any other.
fn merged_usr_layer(
    options: &BuildOptions,
    cache: &Cache,
) -> Result<(LayerRecord, Outcome), Error> {
    let key = KeyBuilder::new("layer")
        .text("format", "merged-usr-v1")
        .number("gzip-level", options.compression_level as u64)
        .finish();
    if let Some(record) = cache.get_entry::<LayerRecord>(Bucket::Layer, &key)?
        && cache
            .verified_blob(&record.digest, Some(record.size))?
            .is_some()
    {
        return Ok((record, Outcome::Local));
    }
    let io_error = |path: &std::path::Path| {
        let path = path.to_owned();
        move |source| Error::Cache(crate::cache::CacheError::Io { path, source })
    };
    let staging = cache.temp_dir(".staging-")?;
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        let path = staging.path().join(link);
        std::os::unix::fs::symlink(target, &path).map_err(io_error(&path))?;
    }
    // Fixed times: the same layer for every image, whatever its epoch.
    let record = store_directory_layer(options, cache, staging.path(), 0, "merged-/usr")?;
    let meta = EntryMeta::any().with_blob(record.blob());
    cache.put_entry(Bucket::Layer, &key, &record, meta)?;
    Ok((record, Outcome::Built))
}

/// One layer of an image, whatever made it.
struct ImageLayer<'a> {
    /// Packages, or the build, it holds.
    contents: Vec<String>,
    created_by: String,
    record: &'a LayerRecord,
    outcome: Outcome,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn assemble(
    options: &BuildOptions,
    cache: &Cache,
    resolved: &Resolved,
    plan: &LayerPlan,
    realized: &Realized,
    builds: &[Vec<BuildLayer>],
    build_nodes: Vec<NodeReport>,
) -> Result<BuildReport, Error> {
    let image = &options.manifest.image;
    let mut nodes = resolved.nodes.clone();
    nodes.extend(build_nodes);
    nodes.extend(realized.nodes.iter().cloned());
    let mut images = Vec::new();
    let mut targets = Vec::new();
    let release = &resolved.release.release;
    let codename = release
        .codename
        .as_deref()
        .unwrap_or(&resolved.repository.suite);
    let merged_usr = match crate::platform::debian_release_number(codename) {
        Some(number) if number >= MERGED_USR_SINCE => Some(merged_usr_layer(options, cache)?),
        _ => None,
    };
    for ((target, layers), built) in resolved.targets.iter().zip(&plan.per_target).zip(builds) {
        let platform = OciPlatform {
            architecture: target.platform.oci.architecture.clone(),
            os: target.platform.oci.os.clone(),
            variant: target.platform.oci.variant.clone(),
        };
        // The merged-/usr symlinks (trixie on), then package layers, then the
        // layers of builds, in manifest order.
        let records: Vec<ImageLayer> = merged_usr
            .iter()
            .map(|(record, outcome)| ImageLayer {
                contents: vec!["merged-/usr symlinks".to_owned()],
                created_by: "xbuild: /bin, /sbin, /lib, /lib64 -> usr/…".to_owned(),
                record,
                outcome: *outcome,
            })
            .chain(layers.iter().map(|layer| {
                let (record, outcome) = &realized.layers[&layer.key];
                ImageLayer {
                    contents: layer.packages.iter().map(|p| p.name.clone()).collect(),
                    created_by: format!(
                        "xbuild: {}",
                        layer
                            .packages
                            .iter()
                            .map(|p| format!("{}={}", p.name, p.version))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    record,
                    outcome: *outcome,
                }
            }))
            .chain(built.iter().map(|layer| ImageLayer {
                contents: vec![layer.label.clone()],
                created_by: format!("xbuild: {}", layer.label),
                record: &layer.record,
                outcome: layer.outcome,
            }))
            .collect();
        let mut config = ImageConfiguration::new(
            &platform,
            options.epoch,
            records.iter().map(|layer| layer.record.diff_id).collect(),
        );
        config.config.env = image.env_list();
        config.config.cmd = image.cmd.clone();
        config.config.entrypoint = image.entrypoint.clone();
        config.config.working_dir = image.workdir.clone();
        config.config.user = image.user.clone();
        config.config.labels = image.labels.clone();
        config.config.exposed_ports = image
            .ports
            .iter()
            .map(|port| (port.to_string(), EmptyObject {}))
            .collect();
        config.history = records
            .iter()
            .map(|layer| History {
                created: Some(format_rfc3339(options.epoch)),
                created_by: Some(layer.created_by.clone()),
                comment: None,
                empty_layer: None,
            })
            .collect();
        let (config_bytes, config_digest) = to_canonical_json(&config);
        let layer_descriptors: Vec<Descriptor> = records
            .iter()
            .map(|layer| Descriptor::layer(layer.record.digest, layer.record.size))
            .collect();
        let manifest = ImageManifest::new(
            Descriptor::new(MEDIA_TYPE_CONFIG, config_digest, config_bytes.len() as u64),
            layer_descriptors.clone(),
        );
        let (manifest_bytes, manifest_digest) = to_canonical_json(&manifest);
        let cached = cache.has_blob(&manifest_digest) && cache.has_blob(&config_digest);
        cache.put_blob_bytes(&config_bytes)?;
        cache.put_blob_bytes(&manifest_bytes)?;
        nodes.push(NodeReport {
            kind: NodeKind::Image,
            name: format!("{} ({})", image.reference(), target.platform.name),
            target: Some(target.platform.name.clone()),
            outcome: if cached {
                Outcome::Local
            } else {
                Outcome::Built
            },
            bytes: if cached {
                0
            } else {
                (config_bytes.len() + manifest_bytes.len()) as u64
            },
            seconds: 0.0,
            saved_seconds: 0.0,
        });

        let mut skipped_scripts: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for layer in &records {
            for (package, scripts) in &layer.record.skipped_scripts {
                if !scripts.is_empty() {
                    skipped_scripts.insert(package.clone(), scripts.clone());
                }
            }
        }
        let docker_archive = options
            .out_dir
            .join(format!("{}.tar", target.platform.name));
        targets.push(TargetReport {
            target: target.platform.name.clone(),
            platform: target.platform.oci.to_string(),
            manifest_digest: manifest_digest.oci(),
            docker_archive: docker_archive.display().to_string(),
            packages: target
                .packages
                .iter()
                .map(|package| PackageReport {
                    name: package.name.clone(),
                    version: package.version.clone(),
                    architecture: package.architecture.clone(),
                    outcome: realized
                        .debs
                        .get(&package.sha256)
                        .copied()
                        .unwrap_or(Outcome::Local),
                    size: package.size,
                    sha256: package.sha256.oci(),
                    reason: package.reason.clone(),
                })
                .collect(),
            layers: records
                .iter()
                .map(|layer| LayerReport {
                    digest: layer.record.digest.oci(),
                    diff_id: layer.record.diff_id.oci(),
                    packages: layer.contents.clone(),
                    outcome: layer.outcome,
                    size: layer.record.size,
                })
                .collect(),
            skipped: target.skipped.clone(),
            skipped_scripts,
        });
        images.push((
            docker_archive,
            ImageToWrite {
                name: image.name.clone(),
                tag: image.tag.clone(),
                platform,
                config: (config_bytes, config_digest),
                manifest: (manifest_bytes, manifest_digest),
                layers: layer_descriptors,
            },
        ));
    }

    fs_err::create_dir_all(&options.out_dir).map_err(|source| crate::cache::CacheError::Io {
        path: options.out_dir.clone(),
        source,
    })?;
    let layout_dir = options.out_dir.join("oci");
    let to_write: Vec<ImageToWrite> = images.iter().map(|(_, image)| image.clone()).collect();
    if !oci_layout_is_current(&layout_dir, &to_write) {
        write_oci_layout(&layout_dir, &to_write, cache)?;
    }
    for (path, image) in &images {
        write_docker_archive_if_changed(cache, path, image)?;
    }
    Ok(BuildReport {
        xbuild_version: env!("CARGO_PKG_VERSION"),
        build_platform: options.build_platform.name.clone(),
        repository: format!(
            "{} {}",
            redact(&resolved.repository.url),
            resolved.repository.suite
        ),
        summary: Default::default(),
        phases: Default::default(),
        targets,
        nodes,
        oci_layout: layout_dir.display().to_string(),
    })
}
