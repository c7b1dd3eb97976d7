//! The assemble step: per image node of the plan, the OCI config and
//! manifest from its input layers (stored in the cache like every other
//! blob), then the outputs — one OCI image layout holding every target,
//! and one docker-archive per target — and the build report.

use super::BuildOptions;
use super::compile::BuildLayer;
use super::realize::{LayerRecord, Realized, store_directory_layer};
use super::resolve::Resolved;
use super::slim;
use crate::Error;
use crate::cache::{Bucket, Cache, EntryMeta};
use crate::hash::Sha256Digest;
use crate::image::layout::{
    BlobSource, ImageToWrite, oci_layout_is_current, write_docker_archive, write_oci_layout,
};
use crate::image::oci::{
    Descriptor, EmptyObject, History, ImageConfiguration, ImageManifest, MEDIA_TYPE_CONFIG,
    Platform as OciPlatform, format_rfc3339, to_canonical_json,
};
use crate::image::usrmerge::MERGED_DIRECTORIES;
use crate::plan::{Detail, KeyBuilder, LayerContents, NodeKind, Plan};
use crate::report::{
    BuildReport, LayerReport, NodeOutcome, Outcome, Outcomes, PackageReport, TargetReport,
};
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

/// The key of the merged-/usr layer.
pub(super) fn merged_usr_key(options: &BuildOptions) -> Sha256Digest {
    KeyBuilder::new("layer")
        .text("format", "merged-usr-v2")
        .number("gzip-level", options.compression_level as u64)
        .finish()
}

/// A layer holding only the merged-/usr symlinks, cached like any other:
/// every image's first layer. Trixie's packages assume merged /usr (DEP17:
/// `/lib/ld-linux-*.so` is found through `/lib -> usr/lib`); bookworm's
/// still ship `/bin` and `/lib`, which package layers move under `usr/`,
/// as on a bookworm system debootstrap or the installer made. All six
/// links Debian's architectures use, as distroless has them, on every
/// target: one layer for all, and a link to a directory no package fills
/// is harmless.
fn merged_usr_layer(
    options: &BuildOptions,
    cache: &Cache,
    outcomes: &Outcomes,
) -> Result<(LayerRecord, Outcome), Error> {
    let key = merged_usr_key(options);
    // Another process may be writing it: wait, and then it is a hit.
    let _lock = cache.lock(Bucket::Layer, &key)?;
    if let Some(record) = cache.get_entry::<LayerRecord>(Bucket::Layer, &key)?
        && cache
            .verified_blob(&record.digest, Some(record.size))?
            .is_some()
    {
        outcomes.record(
            NodeKind::Layer,
            &key,
            NodeOutcome::new(Outcome::Local).with_bytes(record.size),
        );
        return Ok((record, Outcome::Local));
    }
    let io_error = |path: &std::path::Path| {
        let path = path.to_owned();
        move |source| Error::Cache(crate::cache::CacheError::Io { path, source })
    };
    let staging = cache.temp_dir(".staging-")?;
    for link in MERGED_DIRECTORIES {
        let path = staging.path().join(link);
        std::os::unix::fs::symlink(format!("usr/{link}"), &path).map_err(io_error(&path))?;
    }
    // Fixed times: the same layer for every image, whatever its epoch.
    let record = store_directory_layer(options, cache, staging.path(), 0, false, "merged-/usr")?;
    let meta = EntryMeta::any().with_blob(record.blob());
    cache.put_entry(Bucket::Layer, &key, &record, meta)?;
    outcomes.record(
        NodeKind::Layer,
        &key,
        NodeOutcome::new(Outcome::Built)
            .with_bytes(record.size)
            .with_seconds(record.seconds),
    );
    Ok((record, Outcome::Built))
}

/// One layer of an image, whatever made it.
struct ImageLayer {
    /// Packages, or the build, it holds.
    contents: Vec<String>,
    created_by: String,
    record: LayerRecord,
    outcome: Outcome,
}

/// An image's config and manifest, stored in the cache.
struct ImageBlobs {
    config: (Vec<u8>, Sha256Digest),
    manifest: (Vec<u8>, Sha256Digest),
    layers: Vec<Descriptor>,
    /// The manifest was in the cache already.
    cached: bool,
    /// Bytes of config and manifest.
    written: u64,
}

/// The config and manifest of an image of `records`, put in the cache.
fn image_blobs(
    options: &BuildOptions,
    cache: &Cache,
    platform: &OciPlatform,
    records: &[ImageLayer],
) -> Result<ImageBlobs, Error> {
    let image = &options.manifest.image;
    let mut config = ImageConfiguration::new(
        platform,
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
    // The same manifest as before (a rebuilt layer that gave the same
    // bytes: early cutoff) is the cached image.
    let cached = cache.has_blob(&manifest_digest);
    cache.put_blob_bytes(&config_bytes)?;
    cache.put_blob_bytes(&manifest_bytes)?;
    let written = (config_bytes.len() + manifest_bytes.len()) as u64;
    Ok(ImageBlobs {
        config: (config_bytes, config_digest),
        manifest: (manifest_bytes, manifest_digest),
        layers: layer_descriptors,
        cached,
        written,
    })
}

/// Writes every image of the plan and the outputs; the report's nodes are
/// the plan's with the outcomes realize recorded.
pub(super) fn assemble(
    options: &BuildOptions,
    cache: &Cache,
    resolved: &Resolved,
    plan: &Plan,
    realized: &Realized,
    builds: &BTreeMap<Sha256Digest, BuildLayer>,
    outcomes: &Outcomes,
) -> Result<BuildReport, Error> {
    let image = &options.manifest.image;
    let mut images = Vec::new();
    let mut targets = Vec::new();
    let mut merged_usr = None;
    for (planned, target) in plan.images.iter().zip(&resolved.targets) {
        let image_node = plan.node(planned.image);
        let platform = OciPlatform {
            architecture: target.platform.oci.architecture.clone(),
            os: target.platform.oci.os.clone(),
            variant: target.platform.oci.variant.clone(),
        };
        // The image node's inputs, in image order: the merged-/usr
        // symlinks, package layers, the configure layer, then the layers
        // of builds in manifest order.
        let mut records: Vec<ImageLayer> = Vec::new();
        for input in plan.inputs(image_node) {
            records.push(match &input.detail {
                Detail::Layer {
                    contents: LayerContents::MergedUsr,
                } => {
                    if merged_usr.is_none() {
                        merged_usr = Some(merged_usr_layer(options, cache, outcomes)?);
                    }
                    let (record, outcome) = merged_usr.clone().expect("made above");
                    ImageLayer {
                        contents: vec!["merged-/usr symlinks".to_owned()],
                        created_by: "xbuild: /bin, /sbin, /lib, /lib32, /lib64, /libx32 -> usr/…"
                            .to_owned(),
                        record,
                        outcome,
                    }
                }
                Detail::Layer {
                    contents: LayerContents::Configure,
                } => {
                    let (record, outcome) = realized.layers[&input.key].clone();
                    ImageLayer {
                        contents: vec!["configure".to_owned()],
                        created_by: "xbuild: configure (accounts, os-release, CA bundle)"
                            .to_owned(),
                        record,
                        outcome,
                    }
                }
                Detail::Layer {
                    contents: LayerContents::Packages,
                } => {
                    let (record, outcome) = realized.layers[&input.key].clone();
                    let packages: Vec<_> = plan
                        .inputs(input)
                        .filter_map(|deb| match &deb.detail {
                            Detail::Deb { package, .. } => Some(package),
                            _ => None,
                        })
                        .collect();
                    ImageLayer {
                        contents: packages.iter().map(|p| p.name.clone()).collect(),
                        created_by: format!(
                            "xbuild: {}",
                            packages
                                .iter()
                                .map(|p| format!("{}={}", p.name, p.version))
                                .collect::<Vec<_>>()
                                .join(" ")
                        ),
                        record,
                        outcome,
                    }
                }
                Detail::Build { .. } => {
                    let layer = &builds[&input.key];
                    ImageLayer {
                        contents: vec![layer.label.clone()],
                        created_by: format!("xbuild: {}", layer.label),
                        record: layer.record.clone(),
                        outcome: layer.outcome,
                    }
                }
                other => unreachable!("an image is made of layers, not {other:?}"),
            });
        }
        let blobs = image_blobs(options, cache, &platform, &records)?;
        // Writing a config and manifest from layers that were all hits is
        // no build: the image is a hit too.
        let outcome = if blobs.cached || records.iter().all(|layer| layer.outcome.is_hit()) {
            NodeOutcome::new(Outcome::Local).with_bytes(blobs.written)
        } else {
            NodeOutcome::new(Outcome::Built).with_bytes(blobs.written)
        };
        outcomes.record(NodeKind::Image, &image_node.key, outcome);
        let (records, blobs, slim_report) = if image.slim {
            let full: Vec<LayerRecord> = records.iter().map(|layer| layer.record.clone()).collect();
            let slim_records = |slim_layers: &slim::SlimLayers| -> Vec<ImageLayer> {
                slim_layers
                    .layers
                    .iter()
                    .map(|(index, record, outcome)| ImageLayer {
                        contents: records[*index].contents.clone(),
                        created_by: format!("{} (slim)", records[*index].created_by),
                        record: record.clone(),
                        outcome: *outcome,
                    })
                    .collect()
            };
            let key = slim::image_key(options, &blobs.manifest.1);
            let (slim_layers, probes) = match slim::cached(cache, &key)? {
                Some(hit) => hit,
                None => {
                    let (slim_layers, runs) = slim::slim_layers(
                        options,
                        cache,
                        &target.platform,
                        &blobs.manifest.1,
                        &full,
                    )?;
                    let slim_blobs =
                        image_blobs(options, cache, &platform, &slim_records(&slim_layers))?;
                    let probes = slim::check_slim(
                        options,
                        cache,
                        &target.platform,
                        &slim_blobs.manifest.1,
                        &runs,
                    )?;
                    slim::record(cache, &key, &slim_layers, &probes)?;
                    (slim_layers, probes)
                }
            };
            let slim_records = slim_records(&slim_layers);
            let slim_blobs = image_blobs(options, cache, &platform, &slim_records)?;
            let report = slim::report(&full, &slim_layers, probes);
            (slim_records, slim_blobs, Some(report))
        } else {
            (records, blobs, None)
        };
        let ImageBlobs {
            config: (config_bytes, config_digest),
            manifest: (manifest_bytes, manifest_digest),
            layers: layer_descriptors,
            ..
        } = blobs;

        let mut skipped_scripts: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut native_effects: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for layer in &records {
            for (package, scripts) in &layer.record.skipped_scripts {
                if !scripts.is_empty() {
                    skipped_scripts.insert(package.clone(), scripts.clone());
                }
            }
            for note in &layer.record.native_effects {
                native_effects
                    .entry(note.package.clone())
                    .or_default()
                    .insert(note.script.clone(), note.done.clone());
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
                    // A package of a cached layer was not touched: local.
                    outcome: outcomes
                        .get(NodeKind::Deb, &package.sha256)
                        .map_or(Outcome::Local, |deb| deb.outcome),
                    size: package.size,
                    sha256: package.sha256.oci(),
                    reason: package.reason.clone(),
                    origin: package.origin.label(),
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
                    uncompressed_size: layer.record.uncompressed_size,
                    left_out_bytes: layer.record.left_out_bytes,
                })
                .collect(),
            left_out_bytes: records
                .iter()
                .map(|layer| layer.record.left_out_bytes)
                .sum(),
            skipped: target.skipped.clone(),
            skipped_scripts,
            native_effects,
            push: None,
            slim: slim_report,
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
        repository: resolved
            .sources
            .main(super::package_sources::SourceUse::Image)
            .repository
            .describe(),
        sources: resolved.sources.summaries(),
        notes: resolved.sources.notes.clone(),
        summary: Default::default(),
        phases: Default::default(),
        targets,
        nodes: outcomes.reports(plan),
        oci_layout: layout_dir.display().to_string(),
        push: None,
    })
}
