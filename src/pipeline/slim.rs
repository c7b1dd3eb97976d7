//! The assemble step's part of `[image] slim` (the logic is
//! [`crate::slim`]'s): the full image traced, its layers filtered to the
//! kept set and cached like every layer, the slim image checked against
//! the full one. Nothing is written to the outputs before the check
//! passes.

use super::BuildOptions;
use super::realize::LayerRecord;
use crate::Error;
use crate::cache::{Bucket, Cache, CacheError, EntryMeta};
use crate::hash::Sha256Digest;
use crate::image::oci::ImageManifest;
use crate::plan::KeyBuilder;
use crate::platform::Platform;
use crate::report::{Outcome, SlimReport};
use crate::slim::{self, ImageRun, SlimError};

/// A slim layer as the cache records it: `None` when nothing of its
/// layer is kept.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SlimLayerEntry {
    layer: Option<LayerRecord>,
}

/// A slim image that passed its check, as the cache records it (under
/// [`image_key`]): a warm build neither traces nor runs anything.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SlimImageEntry {
    /// The full layer's index and the slim layer, in image order.
    layers: Vec<(usize, LayerRecord)>,
    kept_paths: usize,
    probes: Vec<String>,
}

/// The key of the slim image cut from the full image `full_manifest`:
/// that image (its layers and config, so its command), the probes, the
/// kept prefixes and the layers' gzip level.
pub(super) fn image_key(options: &BuildOptions, full_manifest: &Sha256Digest) -> Sha256Digest {
    let image = &options.manifest.image;
    let probes = serde_json::to_string(&image.slim_probes).expect("strings");
    let keep = serde_json::to_string(&image.keep).expect("strings");
    KeyBuilder::new("slim-image")
        .text("format", "slim-image-v1")
        .digest("image", full_manifest)
        .text("probes", &probes)
        .text("keep", &keep)
        .number("gzip-level", options.compression_level as u64)
        .finish()
}

/// The slim image recorded under `key`, if every blob of it is here.
pub(super) fn cached(
    cache: &Cache,
    key: &Sha256Digest,
) -> Result<Option<(SlimLayers, Vec<String>)>, Error> {
    let Some(entry) = cache.get_entry::<SlimImageEntry>(Bucket::Layer, key)? else {
        return Ok(None);
    };
    for (_, layer) in &entry.layers {
        if cache
            .verified_blob(&layer.digest, Some(layer.size))?
            .is_none()
        {
            return Ok(None);
        }
    }
    let layers = entry
        .layers
        .into_iter()
        .map(|(index, layer)| (index, layer, Outcome::Local))
        .collect();
    Ok(Some((
        SlimLayers {
            layers,
            kept_paths: entry.kept_paths,
        },
        entry.probes,
    )))
}

/// Records a slim image that passed its check.
pub(super) fn record(
    cache: &Cache,
    key: &Sha256Digest,
    slim: &SlimLayers,
    probes: &[String],
) -> Result<(), Error> {
    let entry = SlimImageEntry {
        layers: slim
            .layers
            .iter()
            .map(|(index, layer, _)| (*index, layer.clone()))
            .collect(),
        kept_paths: slim.kept_paths,
        probes: probes.to_vec(),
    };
    let meta = EntryMeta::any().with_blobs(slim.layers.iter().map(|(_, layer, _)| layer.blob()));
    cache.put_entry(Bucket::Layer, key, &entry, meta)?;
    Ok(())
}

/// Where the slim image came from, per input layer: the full layer's
/// index and the slim record.
pub(super) struct SlimLayers {
    pub layers: Vec<(usize, LayerRecord, Outcome)>,
    pub kept_paths: usize,
}

/// An OCI layout of the cache's blobs (what `xbuild run` reads): a
/// directory whose `blobs/sha256` is the cache's blob directory.
pub(super) fn blob_layout(cache: &Cache, any: &Sha256Digest) -> Result<tempfile::TempDir, Error> {
    let dir = tempfile::Builder::new()
        .prefix("xbuild-slim-")
        .tempdir()
        .map_err(|source| CacheError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    let blobs = dir.path().join("blobs");
    let link = blobs.join("sha256");
    let io = |path: &std::path::Path| {
        let path = path.to_owned();
        move |source| CacheError::Io { path, source }
    };
    fs_err::create_dir(&blobs).map_err(io(&blobs))?;
    let store = cache.blob_path(any);
    let store = store.parent().expect("a blob is in a directory");
    std::os::unix::fs::symlink(store, &link).map_err(io(&link))?;
    Ok(dir)
}

/// Traces the full image `manifest_digest` and filters its layers.
pub(super) fn slim_layers(
    options: &BuildOptions,
    cache: &Cache,
    target: &Platform,
    manifest_digest: &Sha256Digest,
    full: &[LayerRecord],
) -> Result<(SlimLayers, Vec<(slim::Probe, slim::TracedRun)>), Error> {
    let image = &options.manifest.image;
    let host = &options.build_platform;
    slim::check_traceable(target, host)?;
    let layout = blob_layout(cache, manifest_digest)?;
    let run = ImageRun {
        cache,
        layout: layout.path(),
        manifest_digest: *manifest_digest,
        target,
        host,
        which: "full",
        emulator: &emulator_for(options, cache, target),
    };
    let workdir = image.workdir.clone().unwrap_or_else(|| "/".to_owned());
    let mut runs = Vec::new();
    for probe in slim::probes(image) {
        let traced = slim::traced_run(&run, &probe, &workdir)?;
        runs.push((probe, traced));
    }
    let bytes =
        fs_err::read(cache.blob_path(manifest_digest)).map_err(|source| CacheError::Io {
            path: cache.blob_path(manifest_digest),
            source,
        })?;
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).map_err(|error| CacheError::Io {
            path: cache.blob_path(manifest_digest),
            source: std::io::Error::other(error),
        })?;
    let request = crate::run::RunRequest {
        layout: layout.path().to_owned(),
        manifest_digest: manifest_digest.oci(),
        target: target.clone(),
        host: host.clone(),
        args: Vec::new(),
        env: Vec::new(),
        volumes: Vec::new(),
        emulator: crate::run::EmulatorChoice::None,
    };
    let root = crate::run::root_filesystem(cache, &request, &manifest, manifest_digest).map_err(
        |source| SlimError::Run {
            probe: "the root filesystem".to_owned(),
            which: "full",
            target: target.name.clone(),
            source,
        },
    )?;
    let kept = slim::kept_paths(&root, target, image, &runs);
    let kept_digest = slim::kept_digest(&kept);
    let mut layers = Vec::new();
    for (index, record) in full.iter().enumerate() {
        let key = KeyBuilder::new("layer")
            .text("format", "slim-layer-v1")
            .digest("layer", &record.digest)
            .digest("kept", &kept_digest)
            .number("gzip-level", options.compression_level as u64)
            .finish();
        if let Some(entry) = cache.get_entry::<SlimLayerEntry>(Bucket::Layer, &key)? {
            match entry.layer {
                None => continue,
                Some(layer)
                    if cache
                        .verified_blob(&layer.digest, Some(layer.size))?
                        .is_some() =>
                {
                    layers.push((index, layer, Outcome::Local));
                    continue;
                }
                Some(_) => {}
            }
        }
        let start = std::time::Instant::now();
        let temp = cache.temp_file()?;
        let layer_error = |source| SlimError::Layer {
            target: target.name.clone(),
            source,
        };
        let file = temp.reopen().map_err(layer_error)?;
        let output = slim::layer::filter_layer(
            &cache.blob_path(&record.digest),
            &kept,
            options.compression_level,
            std::io::BufWriter::new(file),
        )
        .map_err(layer_error)?;
        let entry = match output {
            Some(output) => {
                cache.commit_blob(temp, &output.digest)?;
                let layer = LayerRecord {
                    seconds: start.elapsed().as_secs_f64(),
                    ..LayerRecord::from_output(output)
                };
                layers.push((index, layer.clone(), Outcome::Built));
                SlimLayerEntry { layer: Some(layer) }
            }
            None => SlimLayerEntry { layer: None },
        };
        let meta = match &entry.layer {
            Some(layer) => EntryMeta::any().with_blob(layer.blob()),
            None => EntryMeta::any(),
        };
        cache.put_entry(Bucket::Layer, &key, &entry, meta)?;
    }
    Ok((
        SlimLayers {
            layers,
            kept_paths: kept.len(),
        },
        runs,
    ))
}

/// Runs every probe on the slim image `manifest_digest` and compares it
/// with the full image's run; the labels of the probes, all the same.
pub(super) fn check_slim(
    options: &BuildOptions,
    cache: &Cache,
    target: &Platform,
    manifest_digest: &Sha256Digest,
    full_runs: &[(slim::Probe, slim::TracedRun)],
) -> Result<Vec<String>, Error> {
    let layout = blob_layout(cache, manifest_digest)?;
    let run = ImageRun {
        cache,
        layout: layout.path(),
        manifest_digest: *manifest_digest,
        target,
        host: &options.build_platform,
        which: "slim",
        emulator: &emulator_for(options, cache, target),
    };
    let workdir = options
        .manifest
        .image
        .workdir
        .clone()
        .unwrap_or_else(|| "/".to_owned());
    let mut checked = Vec::new();
    for (probe, full) in full_runs {
        let slim_run = slim::traced_run(&run, probe, &workdir)?;
        if let Some(difference) = slim::difference(&full.output, &slim_run.output) {
            return Err(SlimError::ProbeDiffers {
                probe: probe.label.clone(),
                target: target.name.clone(),
                difference,
            }
            .into());
        }
        checked.push(probe.label.clone());
    }
    Ok(checked)
}

/// The sizes of the full and slim images, for the report.
pub(super) fn report(full: &[LayerRecord], slim: &SlimLayers, probes: Vec<String>) -> SlimReport {
    SlimReport {
        full_size: full.iter().map(|layer| layer.size).sum(),
        full_uncompressed_size: full.iter().map(|layer| layer.uncompressed_size).sum(),
        size: slim.layers.iter().map(|(_, layer, _)| layer.size).sum(),
        uncompressed_size: slim
            .layers
            .iter()
            .map(|(_, layer, _)| layer.uncompressed_size)
            .sum(),
        kept_paths: slim.kept_paths,
        probes,
    }
}

/// The emulator traced runs register: xbuild's own (fetched into the
/// cache), as `xbuild run` does, where it is wanted; else the host's
/// registration.
fn emulator_for(
    options: &BuildOptions,
    cache: &Cache,
    target: &crate::platform::Platform,
) -> crate::run::EmulatorChoice {
    use crate::run::{BinfmtMode, EmulatorChoice};
    let mode = BinfmtMode::from_environment().unwrap_or(BinfmtMode::Auto);
    if !crate::run::wants_own_emulator(target, &options.build_platform, mode) {
        return EmulatorChoice::None;
    }
    match super::emulator::emulator(
        options,
        cache,
        &crate::progress::SilentReporter,
        &target.qemu,
    ) {
        Ok(emulator) => EmulatorChoice::Private(emulator),
        Err(error) => {
            EmulatorChoice::Unavailable(format!("xbuild's own emulator is not to be had ({error})"))
        }
    }
}
