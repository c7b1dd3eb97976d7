//! Package layers: each target's packages grouped into layers and every
//! layer keyed ([`plan_layers`], for the plan), then the plan's needed
//! layer nodes realized ([`realize_layers`]) by a bounded pool of workers.
//! A worker fetches the `.deb`s its layer needs (verified against the
//! signed index; at most one download per cache, even across processes)
//! and streams them into a compressed layer blob. Layers are keyed by
//! their packages' digests, not by target, so an `all` package's layer is
//! built once and shared by every target.

use super::fetch::fetch_deb;
use super::resolve::ResolveContext;
use super::{BuildOptions, LAYER_FORMAT, ResolvedPackage, TargetResolution};
use crate::Error;
use crate::cache::{BlobRef, Bucket, Cache, EntryMeta};
use crate::hash::Sha256Digest;
use crate::image::dir_layer::write_directory_layer_owned;
use crate::image::filter::PathFilter;
use crate::image::layer::{LayerOptions, LayerOutput, LayerPackage, write_layer};
use crate::plan::{Detail, KeyBuilder, LayerContents, NodeKind, Plan};
use crate::progress::Batch;
use crate::report::{NodeOutcome, Outcome, Outcomes};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// One planned layer: its packages and its key.
#[derive(Debug, Clone)]
pub struct PlannedLayer {
    pub key: Sha256Digest,
    pub packages: Vec<ResolvedPackage>,
}

impl PlannedLayer {
    pub fn label(&self) -> String {
        match self.packages.as_slice() {
            [one] => one.name.clone(),
            many => format!("{} packages ({}, …)", many.len(), many[0].name),
        }
    }
}

/// What the cache records for a built layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerRecord {
    pub digest: Sha256Digest,
    pub diff_id: Sha256Digest,
    pub size: u64,
    pub uncompressed_size: u64,
    pub skipped_scripts: Vec<(String, Vec<String>)>,
    /// Bytes of documentation and locales left out of the layer.
    #[serde(default)]
    pub left_out_bytes: u64,
    /// How long writing it took (what a later hit saves); 0 in records
    /// written before it was kept.
    #[serde(default)]
    pub seconds: f64,
    /// A configure layer's: every maintainer script of the target's
    /// packages, with what of it was done natively.
    #[serde(default)]
    pub native_effects: Vec<crate::configure::ScriptNote>,
}

impl LayerRecord {
    /// The blob the layer is.
    pub fn blob(&self) -> BlobRef {
        BlobRef::new(self.digest, self.size)
    }

    /// The record of a layer just written.
    pub fn from_output(output: LayerOutput) -> LayerRecord {
        LayerRecord {
            digest: output.digest,
            diff_id: output.diff_id,
            size: output.size,
            uncompressed_size: output.uncompressed_size,
            skipped_scripts: output.skipped_scripts,
            left_out_bytes: output.left_out_bytes,
            seconds: 0.0,
            native_effects: Vec::new(),
        }
    }
}

/// Writes the files under `staging` as a layer blob into the cache, every
/// file time clamped to `epoch`, merged-/usr if `merged_usr` (a build's
/// files; not the symlink layer itself). `what` names the layer in errors.
pub fn store_directory_layer(
    options: &BuildOptions,
    cache: &Cache,
    staging: &Path,
    epoch: u64,
    merged_usr: bool,
    what: &str,
) -> Result<LayerRecord, Error> {
    store_layer_of(
        options,
        cache,
        staging,
        epoch,
        merged_usr,
        &BTreeMap::new(),
        what,
    )
}

/// [`store_directory_layer`] with fixed times (0) and the paths of
/// `owners` owned by their (uid, gid), merged-/usr: the configure layer.
pub fn store_owned_directory_layer(
    options: &BuildOptions,
    cache: &Cache,
    staging: &Path,
    owners: &crate::configure::Owners,
    what: &str,
) -> Result<LayerRecord, Error> {
    store_layer_of(options, cache, staging, 0, true, owners, what)
}

fn store_layer_of(
    options: &BuildOptions,
    cache: &Cache,
    staging: &Path,
    epoch: u64,
    merged_usr: bool,
    owners: &crate::configure::Owners,
    what: &str,
) -> Result<LayerRecord, Error> {
    let start = Instant::now();
    let temp = cache.temp_file()?;
    let io_error = |source| {
        Error::Cache(crate::cache::CacheError::Io {
            path: temp.path().to_owned(),
            source,
        })
    };
    let file = temp.reopen().map_err(io_error)?;
    let mut writer = std::io::BufWriter::new(file);
    let layer_options = LayerOptions {
        epoch: Some(epoch),
        compression_level: options.compression_level,
        // The user's own files, or xbuild's: nothing is left out.
        filter: PathFilter::keep_all(),
        merged_usr,
    };
    let output = write_directory_layer_owned(staging, &layer_options, owners, &mut writer)
        .map_err(|error| match error.into_write_error() {
            Ok(source) => Error::LayerOutput {
                what: what.to_owned(),
                path: temp.path().to_owned(),
                source,
            },
            Err(source) => Error::DirectoryLayer {
                target: what.to_owned(),
                source,
            },
        })?;
    writer.flush().map_err(io_error)?;
    cache.commit_blob(temp, &output.digest)?;
    Ok(LayerRecord {
        seconds: start.elapsed().as_secs_f64(),
        ..LayerRecord::from_output(output)
    })
}

/// The layers of every target, in image order.
pub struct LayerPlan {
    pub per_target: Vec<Vec<PlannedLayer>>,
}

/// Groups each target's packages into layers: one per package while the
/// budget allows; beyond it, the largest packages keep their own layers and
/// the smallest share the last one.
pub fn plan_layers(options: &BuildOptions, targets: &[TargetResolution]) -> LayerPlan {
    let budget = options.manifest.packages.layer_budget.max(2) as usize;
    let per_target = targets
        .iter()
        .map(|target| {
            let mut groups: Vec<Vec<ResolvedPackage>> = if target.packages.len() <= budget {
                target.packages.iter().map(|p| vec![p.clone()]).collect()
            } else {
                let mut by_size = target.packages.clone();
                by_size.sort_by(|a, b| {
                    let size = |p: &ResolvedPackage| p.installed_size_kib.unwrap_or(p.size / 1024);
                    size(b).cmp(&size(a)).then_with(|| a.name.cmp(&b.name))
                });
                let merged = by_size.split_off(budget - 1);
                let mut groups: Vec<_> = by_size.into_iter().map(|p| vec![p]).collect();
                groups.sort_by(|a, b| a[0].name.cmp(&b[0].name));
                let mut merged = merged;
                merged.sort_by(|a, b| a.name.cmp(&b.name));
                groups.push(merged);
                groups
            };
            groups.retain(|group| !group.is_empty());
            groups
                .into_iter()
                .map(|packages| PlannedLayer {
                    key: layer_key(options, &packages),
                    packages,
                })
                .collect()
        })
        .collect();
    LayerPlan { per_target }
}

/// The layer record under `key`, if the cache has it and its blob.
pub(super) fn cached_layer(
    cache: &Cache,
    key: &Sha256Digest,
) -> Result<Option<LayerRecord>, Error> {
    Ok(cache
        .get_entry::<LayerRecord>(Bucket::Layer, key)?
        .filter(|record| cache.has_blob(&record.digest)))
}

/// `key` with what [`package_filter`] leaves out: `docs`, then each `keep`.
pub(super) fn with_package_filter(mut key: KeyBuilder, options: &BuildOptions) -> KeyBuilder {
    let filter = package_filter(options);
    key = key.text(
        "docs",
        if filter.is_small() {
            "left-out"
        } else {
            "kept"
        },
    );
    for kept in filter.kept() {
        key = key.text("keep", &String::from_utf8_lossy(kept));
    }
    key
}

/// What package layers leave out: `[image] docs` and `keep`.
pub(super) fn package_filter(options: &BuildOptions) -> PathFilter {
    let image = &options.manifest.image;
    if image.docs {
        PathFilter::keep_all()
    } else {
        PathFilter::small(&image.keep)
    }
}

fn layer_key(options: &BuildOptions, packages: &[ResolvedPackage]) -> Sha256Digest {
    let mut key = KeyBuilder::new("layer")
        .text("format", LAYER_FORMAT)
        .number("gzip-level", options.compression_level as u64);
    // A layer with documentation is never one without, nor the other way.
    key = with_package_filter(key, options);
    for package in packages {
        key = key
            .text("package", &package.name)
            .digest("deb", &package.sha256);
    }
    key.finish()
}

/// The layers, realized.
pub struct Realized {
    /// Layer records by key.
    pub layers: BTreeMap<Sha256Digest, (LayerRecord, Outcome)>,
    /// Wall time until the last download finished.
    pub fetch_seconds: f64,
}

struct Shared {
    layers: BTreeMap<Sha256Digest, (LayerRecord, Outcome)>,
    fetch_seconds: f64,
    error: Option<Error>,
}

/// One package layer to realize: its key, name and packages (the plan's
/// deb inputs, in order).
struct LayerWork<'a> {
    key: Sha256Digest,
    name: &'a str,
    packages: Vec<&'a ResolvedPackage>,
}

impl LayerWork<'_> {
    fn platform(&self) -> String {
        layer_platform(self.packages.iter().copied())
    }
}

/// What a layer's entry is for: the Debian architecture of its packages
/// (`debian-arm64`), or `any` when all are `Architecture: all`.
fn layer_platform<'a>(packages: impl Iterator<Item = &'a ResolvedPackage>) -> String {
    let mut architectures: Vec<&str> = packages
        .map(|package| package.architecture.as_str())
        .filter(|architecture| *architecture != "all")
        .collect();
    architectures.sort();
    architectures.dedup();
    if architectures.is_empty() {
        "any".to_owned()
    } else {
        format!("debian-{}", architectures.join("+"))
    }
}

/// Walks the plan's needed package layer nodes: the cached ones are hits,
/// the others are built.
pub(super) fn realize_layers(
    context: &ResolveContext,
    plan: &Plan,
    outcomes: &Outcomes,
) -> Result<Realized, Error> {
    let (options, cache) = (context.options, context.cache);
    let mut shared = Shared {
        layers: BTreeMap::new(),
        fetch_seconds: 0.0,
        error: None,
    };
    // Cached ones are settled here without touching a deb.
    let mut missing: Vec<LayerWork> = Vec::new();
    for node in plan.needed_of(NodeKind::Layer) {
        if !matches!(
            node.detail,
            Detail::Layer {
                contents: LayerContents::Packages
            }
        ) {
            continue;
        }
        let record: Option<LayerRecord> = cache.get_entry(Bucket::Layer, &node.key)?;
        // Verified by digest: a corrupt layer blob is dropped and rebuilt.
        let present = match &record {
            Some(record) => cache
                .verified_blob(&record.digest, Some(record.size))?
                .is_some(),
            None => false,
        };
        match record {
            Some(record) if present => {
                outcomes.record(NodeKind::Layer, &node.key, hit(&record));
                shared.layers.insert(node.key, (record, Outcome::Local));
            }
            _ => missing.push(LayerWork {
                key: node.key,
                name: &node.name,
                packages: plan
                    .inputs(node)
                    .filter_map(|input| match &input.detail {
                        Detail::Deb { package, .. } => Some(package),
                        _ => None,
                    })
                    .collect(),
            }),
        }
    }
    // Biggest first, so the long ones do not start last.
    let mut queue: Vec<LayerWork> = missing;
    queue
        .sort_by_key(|layer| std::cmp::Reverse(layer.packages.iter().map(|p| p.size).sum::<u64>()));
    let packages = queue.iter().flat_map(|layer| &layer.packages);
    let batch = (!queue.is_empty()).then(|| {
        let bytes = packages.clone().map(|package| package.size).sum();
        Batch::start(context.reporter, "layers", packages.count(), bytes)
    });
    let queue = Mutex::new(VecDeque::from(queue));
    let shared = Mutex::new(shared);
    let start = Instant::now();
    let workers = options.jobs.max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    if shared.lock().unwrap().error.is_some() {
                        return;
                    }
                    let Some(layer) = queue.lock().unwrap().pop_front() else {
                        return;
                    };
                    let result =
                        build_one(context, batch.as_ref(), &layer, &shared, outcomes, start);
                    if let Err(error) = result {
                        let mut shared = shared.lock().unwrap();
                        shared.error.get_or_insert(error);
                        return;
                    }
                }
            });
        }
    });
    drop(batch);
    let shared = shared.into_inner().unwrap();
    if let Some(error) = shared.error {
        return Err(error);
    }
    Ok(Realized {
        layers: shared.layers,
        fetch_seconds: shared.fetch_seconds,
    })
}

/// A cached layer's outcome: its bytes come out of the cache, and it saves
/// the time writing it took.
fn hit(record: &LayerRecord) -> NodeOutcome {
    NodeOutcome::new(Outcome::Local)
        .with_bytes(record.size)
        .with_saved_seconds(record.seconds)
}

fn build_one(
    context: &ResolveContext,
    batch: Option<&Batch>,
    layer: &LayerWork,
    shared: &Mutex<Shared>,
    outcomes: &Outcomes,
    start: Instant,
) -> Result<(), Error> {
    let (options, cache, reporter) = (context.options, context.cache, context.reporter);
    // Another process may be building this layer: wait for it, and then
    // it is a local hit, nothing of it fetched or built here.
    let _lock = cache.lock(Bucket::Layer, &layer.key)?;
    if let Some(record) = cache.get_entry::<LayerRecord>(Bucket::Layer, &layer.key)?
        && cache
            .verified_blob(&record.digest, Some(record.size))?
            .is_some()
    {
        if let Some(batch) = batch {
            for package in &layer.packages {
                batch.file_done(package.size);
            }
        }
        outcomes.record(NodeKind::Layer, &layer.key, hit(&record));
        let mut guard = shared.lock().unwrap();
        guard.layers.insert(layer.key, (record, Outcome::Local));
        return Ok(());
    }
    let mut debs: Vec<PathBuf> = Vec::new();
    for package in &layer.packages {
        let path = fetch_deb(context, package, None, outcomes)?;
        if let Some(batch) = batch {
            batch.file_done(package.size);
        }
        let mut guard = shared.lock().unwrap();
        guard.fetch_seconds = guard.fetch_seconds.max(start.elapsed().as_secs_f64());
        drop(guard);
        debs.push(path);
    }

    let build_start = Instant::now();
    let id = reporter.on_layer_start(layer.name);
    let result = (|| -> Result<LayerRecord, Error> {
        let inputs: Vec<LayerPackage> = layer
            .packages
            .iter()
            .zip(&debs)
            .map(|(package, deb)| LayerPackage {
                name: &package.name,
                deb,
            })
            .collect();
        let temp = cache.temp_file()?;
        let file = temp
            .reopen()
            .map_err(|source| crate::cache::CacheError::Io {
                path: temp.path().to_owned(),
                source,
            })?;
        let mut writer = std::io::BufWriter::with_capacity(256 * 1024, file);
        // The .deb's own file times: a package's layer does not depend on
        // when (or from which commit) an image is built.
        let layer_options = LayerOptions {
            epoch: None,
            compression_level: options.compression_level,
            filter: package_filter(options),
            merged_usr: true,
        };
        let output =
            write_layer(&inputs, &layer_options, &mut writer).map_err(|error| {
                match error.into_write_error() {
                    Ok(source) => Error::LayerOutput {
                        what: layer.name.to_owned(),
                        path: temp.path().to_owned(),
                        source,
                    },
                    Err(error) => Error::Layer(error),
                }
            })?;
        let io_error = |source| crate::cache::CacheError::Io {
            path: temp.path().to_owned(),
            source,
        };
        writer.flush().map_err(io_error)?;
        temp.as_file().sync_data().map_err(io_error)?;
        cache.commit_blob(temp, &output.digest)?;
        let record = LayerRecord {
            seconds: build_start.elapsed().as_secs_f64(),
            ..LayerRecord::from_output(output)
        };
        let meta = EntryMeta::for_platform(layer.platform()).with_blob(record.blob());
        cache.put_entry(Bucket::Layer, &layer.key, &record, meta)?;
        Ok(record)
    })();
    reporter.on_layer_complete(id);
    let record = result?;
    outcomes.record(
        NodeKind::Layer,
        &layer.key,
        NodeOutcome::new(Outcome::Built)
            .with_bytes(record.size)
            .with_seconds(record.seconds),
    );
    let mut guard = shared.lock().unwrap();
    guard.layers.insert(layer.key, (record, Outcome::Built));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;
    use crate::platform::Platforms;

    fn package(name: &str, installed_kib: u64) -> ResolvedPackage {
        ResolvedPackage {
            name: name.to_owned(),
            version: "1.0-1".to_owned(),
            architecture: "all".to_owned(),
            filename: format!("pool/main/{name}.deb"),
            size: installed_kib * 300,
            sha256: Sha256Digest::of(name.as_bytes()),
            installed_size_kib: Some(installed_kib),
            reason: "requested".to_owned(),
            source: format!("{name} 1.0-1"),
            built_using: None,
            origin: Default::default(),
        }
    }

    fn options(budget: u32) -> BuildOptions {
        let text = format!(
            "[image]\nname = \"t\"\n[packages]\ninclude = [\"app\"]\nlayer-budget = {budget}\n"
        );
        let manifest = Manifest::parse(&text, std::path::Path::new("/tmp/xbuild.toml")).unwrap();
        let platforms = Platforms::builtin().unwrap();
        let host = platforms.host().unwrap().clone();
        BuildOptions::new(manifest, vec![host.clone()], host)
    }

    fn target(name: &str, packages: Vec<ResolvedPackage>) -> TargetResolution {
        let platforms = Platforms::builtin().unwrap();
        TargetResolution {
            platform: platforms.parse(name).unwrap().clone(),
            packages,
            skipped: Vec::new(),
            choices: Vec::new(),
            sysroot: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn one_layer_per_package_within_the_budget() {
        let packages = vec![package("a", 10), package("b", 20), package("c", 5)];
        let plan = plan_layers(&options(3), &[target("aarch64-linux", packages)]);
        let names: Vec<Vec<&str>> = plan.per_target[0]
            .iter()
            .map(|layer| layer.packages.iter().map(|p| p.name.as_str()).collect())
            .collect();
        assert_eq!(names, vec![vec!["a"], vec!["b"], vec!["c"]]);
    }

    #[test]
    fn beyond_the_budget_the_smallest_packages_share_the_last_layer() {
        let packages = vec![
            package("a", 10),
            package("big", 900),
            package("c", 5),
            package("d", 1),
            package("huge", 5000),
        ];
        let plan = plan_layers(&options(3), &[target("aarch64-linux", packages)]);
        let names: Vec<Vec<&str>> = plan.per_target[0]
            .iter()
            .map(|layer| layer.packages.iter().map(|p| p.name.as_str()).collect())
            .collect();
        assert_eq!(names, vec![vec!["big"], vec!["huge"], vec!["a", "c", "d"]]);
    }

    #[test]
    fn an_architecture_independent_package_has_one_layer_key_for_every_target() {
        let options = options(100);
        let plan = plan_layers(
            &options,
            &[
                target("aarch64-linux", vec![package("perl-modules", 100)]),
                target("s390x-linux", vec![package("perl-modules", 100)]),
            ],
        );
        assert_eq!(plan.per_target[0][0].key, plan.per_target[1][0].key);
        // SOURCE_DATE_EPOCH does not reach package layers (they keep the
        // .deb's times)…
        let mut other = options;
        other.epoch = 1_700_000_000;
        let replanned = plan_layers(
            &other,
            &[target("aarch64-linux", vec![package("perl-modules", 100)])],
        );
        assert_eq!(plan.per_target[0][0].key, replanned.per_target[0][0].key);
        // …while anything that changes the layer's bytes changes the key.
        other.compression_level = 9;
        let replanned = plan_layers(
            &other,
            &[target("aarch64-linux", vec![package("perl-modules", 100)])],
        );
        assert_ne!(plan.per_target[0][0].key, replanned.per_target[0][0].key);
    }
}
