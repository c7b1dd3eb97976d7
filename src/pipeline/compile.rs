//! The compile step: `[[build]]` entries cross-compiled on this machine for
//! each target, with toolchain pieces fetched rather than built.
//!
//! Per target and build:
//! - the Rust standard library for the target's triple (`rustup target
//!   add` when missing);
//! - a cross GCC assembled from Debian's prebuilt cross packages for the
//!   (build, target) pair, keyed by the pair and the packages' digests and
//!   kept in the cache (`toolchains-v1/<key>`), so every project and every
//!   build on this cache shares one copy; musl targets link with rust-lld
//!   and use the glibc cross GCC of the same CPU only for C objects;
//! - for a C recipe of a musl target, which Debian has no cross compiler
//!   for: a cross GCC built from source ([`toolchain::source`]), only with
//!   `--allow-toolchain-build` unless already cached;
//! - a sysroot: the toolchain's target C library plus the target `-dev`
//!   packages the build names (`sysroots-v1/<key>`);
//! - the build itself, keyed by the recipe, the source tree's digest, the
//!   target, and the identities of rustc, its target library and the C
//!   compiler — never by the machine — whose binaries become one layer
//!   (`/usr/local/bin/<name>`). The layer is content-addressed, so two
//!   builds that produce the same bytes share everything downstream.

use super::realize::{LayerRecord, store_directory_layer};
use super::resolve::PlannedBuildReport;
use super::resolve::{ResolveContext, resolve_request};
use super::sources::{self, PlannedSource};
use super::{BuildOptions, ResolvedPackage, TargetResolution};
use crate::Error;
use crate::build::c::{self, CKind, CTarget};
use crate::build::cargo::{self, CargoTarget, Linker};
use crate::cache::{BlobOrigin, CacheError};
use crate::debian::resolve::Request;
use crate::debian::unpack::unpack_deb;
use crate::hash::Sha256Digest;
use crate::manifest::{BuildKind, BuildSpec};
use crate::plan::explain::{self, Difference, Inputs};
use crate::plan::{KeyBuilder, NodeKind};
use crate::platform::{Libc, Platform, Platforms};
use crate::report::{NodeReport, Outcome};
use crate::toolchain;
use crate::toolchain::gcc::{self, CrossGcc, SKIPPED_HOST_PACKAGES};
use crate::toolchain::rust::{self, RustToolchain};
use fs_err as fs;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How a toolchain with a sysroot is assembled (see [`sysroot`]); part of
/// every build key.
const SYSROOT_LAYOUT: &str = "toolchain-copy-v2";

/// Version of each recipe: how a build becomes a layer. Part of its key.
fn recipe_name(kind: BuildKind) -> &'static str {
    match kind {
        BuildKind::Cargo => "cargo-release-usr-local-bin-v1",
        BuildKind::Autotools => "autotools-prefix-usr-local-v1",
        BuildKind::Make => "make-prefix-usr-local-v1",
        BuildKind::Cmake => "cmake-prefix-usr-local-v1",
    }
}

fn build_kind_label(kind: BuildKind) -> &'static str {
    match kind {
        BuildKind::Cargo => "cargo",
        BuildKind::Autotools => "autotools",
        BuildKind::Make => "make",
        BuildKind::Cmake => "cmake",
    }
}

/// The GCC major version of Debian's cross compilers in the suites xbuild
/// targets (bookworm).
const GCC_VERSION: &str = "12";

/// A layer made by a build.
#[derive(Debug, Clone)]
pub struct BuildLayer {
    pub label: String,
    pub record: LayerRecord,
    pub outcome: Outcome,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| {
        Error::Cache(CacheError::Io {
            path: path.to_owned(),
            source,
        })
    }
}

/// Whether some build of some target may need a toolchain built from
/// source (a C recipe for a musl target): cheap, from the manifest alone.
pub(super) fn may_build_toolchain(options: &BuildOptions) -> bool {
    options
        .manifest
        .builds
        .iter()
        .any(|build| build.kind != BuildKind::Cargo)
        && options
            .targets
            .iter()
            .any(|platform| platform.libc == Libc::Musl)
}

/// Plans every `[[build]]` of every target and says, for each, whether the
/// cache has it, and if not why not (`plan --explain`).
pub(super) fn plan_builds(
    context: &ResolveContext,
    targets: &[TargetResolution],
) -> Result<Vec<PlannedBuildReport>, Error> {
    let options = context.options;
    let mut reports = Vec::new();
    if options.manifest.builds.is_empty() {
        return Ok(reports);
    }
    let rust = rust::detect().map_err(|source| Error::ToolchainSource {
        target: options.build_platform.name.clone(),
        source: Box::new(source),
    })?;
    let mut nodes = Vec::new();
    for target in targets {
        for build in &options.manifest.builds {
            let planned = plan_build(context, &rust, target, build, &mut nodes)?;
            let (record, nearest) = explain(context.cache, &planned)?;
            let toolchain_cached = toolchain_cached(context.cache, &planned);
            let source_toolchain =
                matches!(planned.toolchain_provider, ToolchainProvider::Source { .. });
            reports.push(PlannedBuildReport {
                toolchain_provider: planned.toolchain_provider.label().to_owned(),
                toolchain_build_seconds: if source_toolchain && !toolchain_cached {
                    Some(estimate_toolchain_build(context.cache)?)
                } else {
                    None
                },
                name: planned.name.clone(),
                target: planned.target.clone(),
                key: planned.key.oci(),
                cached: record.is_some(),
                toolchain: planned.toolchain_name.clone(),
                toolchain_key: planned.toolchain_key.oci(),
                toolchain_cached,
                toolchain_download_bytes: if toolchain_cached {
                    0
                } else {
                    planned
                        .toolchain_packages
                        .iter()
                        .filter(|package| !context.cache.has_blob(&package.sha256))
                        .map(|package| package.size)
                        .sum()
                },
                inputs: planned.inputs.clone(),
                differences: nearest
                    .as_ref()
                    .map(|(differences, _)| differences.iter().map(ToString::to_string).collect())
                    .unwrap_or_default(),
                estimated_seconds: record
                    .map(|record| record.seconds)
                    .or(nearest.map(|(_, seconds)| seconds)),
            });
        }
    }
    Ok(reports)
}

/// Builds every `[[build]]` of the manifest for every target; returns the
/// build layers per target (in manifest order) and the report nodes.
pub(super) fn realize_builds(
    context: &ResolveContext,
    targets: &[TargetResolution],
) -> Result<(Vec<Vec<BuildLayer>>, Vec<NodeReport>), Error> {
    let options = context.options;
    let mut nodes = Vec::new();
    let mut per_target = Vec::new();
    if options.manifest.builds.is_empty() {
        return Ok((targets.iter().map(|_| Vec::new()).collect(), nodes));
    }
    let rust = rust::detect().map_err(|source| Error::ToolchainSource {
        target: options.build_platform.name.clone(),
        source: Box::new(source),
    })?;
    for target in targets {
        let mut layers = Vec::new();
        for build in &options.manifest.builds {
            layers.push(build_one(context, &rust, target, build, &mut nodes)?);
        }
        per_target.push(layers);
    }
    Ok((per_target, nodes))
}

/// What the cache records for a build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildRecord {
    pub layer: LayerRecord,
    /// The named inputs its key was computed from, for `plan --explain`.
    pub inputs: Inputs,
    /// How long the build took: what a later hit saves.
    pub seconds: f64,
}

/// A build, planned: its key and inputs, computed before anything is
/// fetched, assembled or compiled.
#[derive(Debug, Clone)]
pub struct PlannedBuild {
    /// `cargo <path> (<target>)`.
    pub name: String,
    pub kind: BuildKind,
    pub source: PlannedSource,
    pub target: String,
    pub key: Sha256Digest,
    pub inputs: Inputs,
    /// The glibc platform whose cross GCC compiles C for this target.
    pub gcc_platform: Platform,
    /// The toolchain's packages for the build machine, and its cache key
    /// (which, unlike the build's key, depends on the build machine).
    pub toolchain_packages: Vec<ResolvedPackage>,
    pub toolchain_key: Sha256Digest,
    pub toolchain_name: String,
    /// Where the toolchain comes from.
    pub toolchain_provider: ToolchainProvider,
}

/// Where a build's cross GCC comes from, in the order tried.
#[derive(Debug, Clone)]
pub enum ToolchainProvider {
    /// Debian's prebuilt cross packages for the build machine
    /// ([`gcc::cross_packages`]), unpacked.
    DebianCross,
    /// Built from source ([`toolchain::source`]) when Debian has no cross
    /// compiler for the pair: the `toolchain_packages` are the host-side
    /// inputs; these are the target-side ones.
    Source {
        kernel_headers: Box<ResolvedPackage>,
        libc: Box<PlannedSource>,
    },
}

impl ToolchainProvider {
    pub fn label(&self) -> &'static str {
        match self {
            ToolchainProvider::DebianCross => "debian-cross",
            ToolchainProvider::Source { .. } => "source",
        }
    }
}

/// A planned toolchain: what it is made from, its key and name, and the
/// compiler identity builds with it are keyed by.
struct ToolchainPlan {
    platform: Platform,
    packages: Vec<ResolvedPackage>,
    key: Sha256Digest,
    name: String,
    identity: String,
    provider: ToolchainProvider,
}

const HISTORY_LENGTH: usize = 16;

fn history_key(name: &str) -> Sha256Digest {
    KeyBuilder::new("build-history").text("name", name).finish()
}

/// The compiler identity a target artifact is keyed by: the cross GCC's
/// version and the target-side packages (C library, libgcc…) — names and
/// versions only, so the same compiler on another build machine gives the
/// same identity.
fn compiler_identity(platform: &Platform, packages: &[ResolvedPackage]) -> String {
    let compiler = format!(
        "gcc-{GCC_VERSION}-{}",
        platform.gnu_triple.replace('_', "-")
    );
    let mut parts: Vec<String> = packages
        .iter()
        .filter(|package| package.name == compiler || package.name.ends_with("-cross"))
        .map(|package| format!("{}={}", package.name, package.version))
        .collect();
    parts.sort();
    format!("{} for {}", parts.join(" "), platform.gnu_triple)
}

/// Computes a build's key and inputs.
pub(super) fn plan_build(
    context: &ResolveContext,
    rust: &RustToolchain,
    target: &TargetResolution,
    build: &BuildSpec,
    nodes: &mut Vec<NodeReport>,
) -> Result<PlannedBuild, Error> {
    let options = context.options;
    let platform = &target.platform;
    let source = sources::plan_source(context, build)?;
    let triple = platform.rust_triple().to_owned();
    let rust_std = if build.kind != BuildKind::Cargo {
        String::new()
    } else if rust.target_library_dir(&triple).is_dir() {
        rust.ensure_target(&triple)
            .map_err(|error| Error::ToolchainSource {
                target: platform.name.clone(),
                source: Box::new(error),
            })?
            .digest_hint
    } else {
        format!("not installed (rustup target add {triple})")
    };
    let toolchain = if build.kind != BuildKind::Cargo && platform.libc == Libc::Musl {
        // A C recipe for a musl target needs a compiler and C library of
        // that target, which Debian does not ship: built from source.
        if !target.sysroot.is_empty() {
            return Err(Error::Target {
                target: platform.name.clone(),
                message: format!(
                    "{}: sysroot packages ({}) are Debian's, built against glibc, and cannot be linked into a musl program; drop `sysroot` or use {}",
                    options.manifest.path.display(),
                    package_names(&target.sysroot, ", "),
                    glibc_sibling(platform)?.name
                ),
            });
        }
        plan_source_toolchain(context, platform, nodes)?
    } else {
        // Cargo's musl targets link with rust-lld; the glibc cross GCC of
        // the same CPU only compiles their C objects.
        plan_toolchain(context, &glibc_sibling(platform)?, nodes)?
    };
    // The layout version changes when how a sysroot is assembled changes
    // (what a link can find in it), invalidating builds that used the old one.
    let mut sysroot = KeyBuilder::new("sysroot-packages").text("layout", SYSROOT_LAYOUT);
    for package in &target.sysroot {
        sysroot = sysroot
            .text("package", &package.name)
            .digest("deb", &package.sha256);
    }
    let mut inputs: Inputs = vec![
        ("recipe".into(), recipe_name(build.kind).into()),
        ("source".into(), source.digest()?.oci()),
        ("target".into(), platform.name.clone()),
    ];
    if build.kind == BuildKind::Cargo {
        inputs.push(("rust-triple".into(), triple));
        inputs.push(("rustc".into(), rust.rustc_version.clone()));
        inputs.push(("rust-std".into(), rust_std));
    }
    inputs.extend([
        ("cc".into(), toolchain.identity.clone()),
        ("sysroot".into(), sysroot.finish().oci()),
        ("epoch".into(), options.epoch.to_string()),
        ("gzip-level".into(), options.compression_level.to_string()),
    ]);
    let mut key = KeyBuilder::new("build");
    for (name, value) in &inputs {
        key = key.text(name, value);
    }
    Ok(PlannedBuild {
        name: format!(
            "{} {} ({})",
            build_kind_label(build.kind),
            source_label(&source, &options.manifest.dir),
            platform.name
        ),
        kind: build.kind,
        source,
        target: platform.name.clone(),
        key: key.finish(),
        inputs,
        gcc_platform: toolchain.platform,
        toolchain_packages: toolchain.packages,
        toolchain_key: toolchain.key,
        toolchain_name: toolchain.name,
        toolchain_provider: toolchain.provider,
    })
}

/// The packages' names, joined with `separator`.
fn package_names(packages: &[ResolvedPackage], separator: &str) -> String {
    packages
        .iter()
        .map(|package| package.name.as_str())
        .collect::<Vec<_>>()
        .join(separator)
}

/// How a build's sources appear in its name — in reports, the image's
/// history and the build history: a local directory relative to the
/// project (`.`, `src`), so the name (and the image config) is the same in
/// every checkout; other sources as they are written.
fn source_label(source: &PlannedSource, project: &Path) -> String {
    match source {
        PlannedSource::Path(path) => {
            let path: PathBuf = path.components().collect();
            let project: PathBuf = project.components().collect();
            match path.strip_prefix(&project) {
                Ok(relative) if relative.as_os_str().is_empty() => ".".to_owned(),
                Ok(relative) => relative.display().to_string(),
                // Outside the project: its own name only.
                Err(_) => path
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_else(|| path.display().to_string()),
            }
        }
        other => other.describe(),
    }
}

/// What differs from the nearest cached build, and how long that one took.
pub(super) type Nearest = (Vec<Difference>, f64);

/// Whether a planned build is cached, and if not, what differs from the
/// nearest cached build of the same name.
pub(super) fn explain(
    cache: &crate::cache::Cache,
    planned: &PlannedBuild,
) -> Result<(Option<BuildRecord>, Option<Nearest>), Error> {
    if let Some(record) = cache.get_entry::<BuildRecord>("build", &planned.key)?
        && cache.has_blob(&record.layer.digest)
    {
        return Ok((Some(record), None));
    }
    let history: Vec<Sha256Digest> = cache
        .get_entry("build-history", &history_key(&planned.name))?
        .unwrap_or_default();
    let mut cached = Vec::new();
    for key in history {
        if let Some(record) = cache.get_entry::<BuildRecord>("build", &key)? {
            cached.push(record);
        }
    }
    let inputs: Vec<Inputs> = cached.iter().map(|record| record.inputs.clone()).collect();
    let nearest = explain::nearest(&planned.inputs, &inputs).map(|differences| {
        // The entry those differences are from: the latest with as few.
        let seconds = cached
            .iter()
            .rev()
            .find(|record| explain::differences(&record.inputs, &planned.inputs) == differences)
            .map(|record| record.seconds)
            .unwrap_or(0.0);
        (differences, seconds)
    });
    Ok((None, nearest))
}

fn build_one(
    context: &ResolveContext,
    rust: &RustToolchain,
    target: &TargetResolution,
    build: &BuildSpec,
    nodes: &mut Vec<NodeReport>,
) -> Result<BuildLayer, Error> {
    let options = context.options;
    let platform = &target.platform;
    let planned = plan_build(context, rust, target, build, nodes)?;
    let key = planned.key;
    let label = planned.name.clone();
    let cache = context.cache;
    let _lock = cache.lock_item(&format!("build-{}", key.hex()))?;
    if let Some(record) = cache.get_entry::<BuildRecord>("build", &key)?
        && cache
            .verified_blob(&record.layer.digest, Some(record.layer.size))?
            .is_some()
    {
        nodes.push(NodeReport {
            kind: NodeKind::Build,
            name: label.clone(),
            target: Some(platform.name.clone()),
            outcome: Outcome::Local,
            bytes: 0,
            seconds: 0.0,
            saved_seconds: record.seconds,
        });
        return Ok(BuildLayer {
            label,
            record: record.layer,
            outcome: Outcome::Local,
        });
    }

    let toolchain_error = |source: crate::toolchain::rust::RustError| Error::ToolchainSource {
        target: platform.name.clone(),
        source: Box::new(source),
    };
    let triple = platform.rust_triple().to_owned();
    if planned.kind == BuildKind::Cargo {
        rust.ensure_target(&triple).map_err(toolchain_error)?;
    }
    let toolchain = match &planned.toolchain_provider {
        ToolchainProvider::DebianCross => cross_gcc(context, &planned, nodes)?,
        ToolchainProvider::Source { .. } => source_gcc(context, &planned, nodes)?,
    };
    let gcc = sysroot(context, &toolchain, &planned.toolchain_key, target, nodes)?;
    let sysroot = gcc.sysroot.clone();
    let tree = sources::materialize(context, &planned.source, nodes)?;
    // The build's own time (what a hit saves): toolchains, sysroots and
    // sources are nodes of their own.
    let start = Instant::now();
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(cache.root().join("tmp"))
        .map_err(io_error(cache.root()))?;
    if planned.kind == BuildKind::Cargo {
        cargo_build(context, target, &gcc, &sysroot, &tree, staging.path())?;
    } else {
        let work = tempfile::Builder::new()
            .prefix(".build-")
            .tempdir_in(cache.root().join("tmp"))
            .map_err(io_error(cache.root()))?;
        let kind = match planned.kind {
            BuildKind::Autotools => CKind::Autotools,
            BuildKind::Make => CKind::Make,
            _ => CKind::Cmake,
        };
        let c_target = CTarget {
            gnu_triple: &platform.gnu_triple,
            cc: &gcc.cc,
            cxx: gcc.cxx.as_deref(),
            ar: &gcc.ar,
            ranlib: &gcc.ranlib,
            strip: &gcc.strip,
            sysroot: &sysroot,
            multiarch: &platform.multiarch,
            jobs: options.jobs,
            source_date_epoch: options.epoch,
            static_link: platform.libc == Libc::Musl,
        };
        c::build(kind, &tree, work.path(), staging.path(), &c_target).map_err(|source| {
            Error::CBuild {
                target: platform.name.clone(),
                source,
            }
        })?;
    }
    let layer = store_directory_layer(options, cache, staging.path(), &platform.name)?;
    let record = BuildRecord {
        layer,
        inputs: planned.inputs.clone(),
        seconds: start.elapsed().as_secs_f64(),
    };
    cache.put_entry("build", &key, &record)?;
    let history = history_key(&planned.name);
    let mut keys: Vec<Sha256Digest> = cache
        .get_entry("build-history", &history)?
        .unwrap_or_default();
    keys.retain(|existing| *existing != key);
    keys.push(key);
    let excess = keys.len().saturating_sub(HISTORY_LENGTH);
    keys.drain(..excess);
    cache.put_entry("build-history", &history, &keys)?;
    nodes.push(NodeReport {
        kind: NodeKind::Build,
        name: label.clone(),
        target: Some(platform.name.clone()),
        outcome: Outcome::Built,
        bytes: record.layer.size,
        seconds: record.seconds,
        saved_seconds: 0.0,
    });
    Ok(BuildLayer {
        label,
        record: record.layer,
        outcome: Outcome::Built,
    })
}

/// `cargo build` of the project in `tree` for the target, its binaries
/// copied to `staging/usr/local/bin`.
fn cargo_build(
    context: &ResolveContext,
    target: &TargetResolution,
    gcc: &CrossGcc,
    sysroot: &Path,
    tree: &Path,
    staging: &Path,
) -> Result<(), Error> {
    let options = context.options;
    let cache = context.cache;
    let platform = &target.platform;
    let triple = platform.rust_triple().to_owned();
    let linker = match platform.libc {
        Libc::Gnu => Linker::Gcc(gcc.cc.clone()),
        Libc::Musl => Linker::RustLld,
    };
    let mut cargo_target = CargoTarget::new(&triple).with_linker(linker).with_c_tools(
        Some(&gcc.cc),
        gcc.cxx.as_deref(),
        Some(&gcc.ar),
    );
    if platform.libc == Libc::Gnu {
        cargo_target = cargo_target.with_sysroot(sysroot, &platform.multiarch);
    }
    let target_dir = cache.root().join("cargo-target-v1").join(
        KeyBuilder::new("cargo-target-dir")
            .text("project", &tree.display().to_string())
            .finish()
            .hex(),
    );
    let cargo_options = cargo::BuildOptions::new("release").with_source_date_epoch(options.epoch);
    let built =
        cargo::build_with(tree, &cargo_target, &target_dir, &cargo_options).map_err(|source| {
            Error::Build {
                target: platform.name.clone(),
                source,
            }
        })?;

    let bin = staging.join("usr/local/bin");
    fs::create_dir_all(&bin).map_err(io_error(&bin))?;
    for binary in &built.binaries {
        let destination = bin.join(&binary.name);
        fs::copy(&binary.path, &destination).map_err(io_error(&destination))?;
    }
    Ok(())
}

/// The glibc platform of the same CPU (itself for glibc targets): Debian's
/// cross compilers exist for glibc only.
fn glibc_sibling(platform: &Platform) -> Result<Platform, Error> {
    if platform.libc == Libc::Gnu {
        return Ok(platform.clone());
    }
    let platforms = Platforms::from_environment()?;
    platforms
        .all()
        .iter()
        .find(|other| other.libc == Libc::Gnu && other.debian_arch == platform.debian_arch)
        .cloned()
        .ok_or_else(|| Error::Toolchain {
            target: platform.name.clone(),
            message: format!(
                "no glibc platform with Debian architecture {} to take a C cross compiler from",
                platform.debian_arch
            ),
        })
}

/// Fetches (once per cache) the Debian debs of `names` for `arch` and
/// returns their cache paths, reporting each as a node.
fn fetch_debs(
    context: &ResolveContext,
    packages: &[ResolvedPackage],
    target: &str,
    nodes: &mut Vec<NodeReport>,
) -> Result<Vec<PathBuf>, Error> {
    fetch_debs_then(context, packages, target, nodes, &|_, _| Ok(()))
}

/// [`fetch_debs`] that hands each verified `.deb` to `then`, with the
/// package's index, on the thread that fetched it, as soon as it is in
/// the cache: work on one package overlaps the downloads of the others.
fn fetch_debs_then(
    context: &ResolveContext,
    packages: &[ResolvedPackage],
    target: &str,
    nodes: &mut Vec<NodeReport>,
    then: &(dyn Fn(usize, &Path) -> Result<(), Error> + Sync),
) -> Result<Vec<PathBuf>, Error> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    // Downloads run on a few threads at once (they wait on the network, not
    // the CPU), largest first so that the longest `then` does not start
    // last; after a failure no new one starts. Results keep the packages'
    // order.
    let fetch_one = |package: &ResolvedPackage| -> Result<(PathBuf, NodeReport), Error> {
        let start = Instant::now();
        let url = format!("{}/{}", context.repository.url, package.filename);
        let what = format!(
            "{}_{}_{}.deb",
            package.name, package.version, package.architecture
        );
        let (path, origin, bytes) = context
            .cache
            .fetch_verified(
                context.http,
                &[url],
                &package.sha256,
                package.size,
                &what,
                context.reporter,
            )
            .map_err(|error| Error::Package {
                package: format!("{} {}", package.name, package.version),
                target: target.to_owned(),
                source: Box::new(error.into()),
            })?;
        let node = NodeReport {
            kind: NodeKind::Deb,
            name: what,
            target: Some(target.to_owned()),
            outcome: match origin {
                BlobOrigin::Local => Outcome::Local,
                BlobOrigin::Downloaded => Outcome::Downloaded,
            },
            bytes,
            seconds: start.elapsed().as_secs_f64(),
            saved_seconds: 0.0,
        };
        Ok((path, node))
    };
    let mut queue: Vec<usize> = (0..packages.len()).collect();
    queue.sort_by_key(|&index| std::cmp::Reverse(packages[index].size));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let work = || {
        let mut done = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let Some(&index) = queue.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            let result = fetch_one(&packages[index]).and_then(|(path, node)| {
                then(index, &path)?;
                Ok((path, node))
            });
            failed.fetch_or(result.is_err(), Ordering::Relaxed);
            done.push((index, result));
        }
        done
    };
    let workers = context.options.jobs.clamp(1, 8).min(packages.len());
    let mut results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("download thread panicked"))
            .collect()
    });
    results.sort_by_key(|(index, _)| *index);
    let mut paths = Vec::new();
    for (_, result) in results {
        let (path, node) = result?;
        nodes.push(node);
        paths.push(path);
    }
    Ok(paths)
}

/// Resolves the cross GCC packages for (build machine, `platform`) and
/// computes the toolchain's cache key: the pair and the packages' digests.
fn plan_toolchain(
    context: &ResolveContext,
    platform: &Platform,
    nodes: &mut Vec<NodeReport>,
) -> Result<ToolchainPlan, Error> {
    let options: &BuildOptions = context.options;
    let request = Request {
        include: gcc::cross_packages(platform, GCC_VERSION),
        exclude: SKIPPED_HOST_PACKAGES
            .iter()
            .map(|name| name.to_string())
            .collect(),
        install_time_dependencies: false,
        without_dependencies: false,
    };
    let pair = format!("{} → {}", options.build_platform.name, platform.name);
    let packages = resolve_request(
        context,
        &pair,
        &options.build_platform.debian_arch,
        &request,
        nodes,
    )?
    .packages;
    let mut key = KeyBuilder::new("toolchain")
        .text("kind", "debian-cross-gcc-v1")
        .text("build", &options.build_platform.name)
        .text("target", &platform.name);
    for package in &packages {
        key = key
            .text("package", &package.name)
            .digest("deb", &package.sha256);
    }
    Ok(ToolchainPlan {
        platform: platform.clone(),
        identity: compiler_identity(platform, &packages),
        packages,
        key: key.finish(),
        name: format!("gcc {pair}"),
        provider: ToolchainProvider::DebianCross,
    })
}

/// Plans a cross GCC built from source for `platform` (a musl target):
/// the source packages and host libraries for the build machine, the
/// target's kernel headers, and the C library's Debian source package.
/// Keyed by the pair, the recipe and every input's digest.
fn plan_source_toolchain(
    context: &ResolveContext,
    platform: &Platform,
    nodes: &mut Vec<NodeReport>,
) -> Result<ToolchainPlan, Error> {
    let options: &BuildOptions = context.options;
    let pair = format!("{} → {}", options.build_platform.name, platform.name);
    let only = |include: Vec<String>| Request {
        include,
        exclude: Vec::new(),
        install_time_dependencies: false,
        without_dependencies: true,
    };
    let mut packages = resolve_request(
        context,
        &pair,
        &options.build_platform.debian_arch,
        &only(toolchain::source::host_packages(GCC_VERSION)),
        nodes,
    )?
    .packages;
    let kernel = resolve_request(
        context,
        &platform.name,
        &platform.debian_arch,
        &only(vec!["linux-libc-dev".to_owned()]),
        nodes,
    )?
    .packages;
    let kernel_headers = kernel
        .into_iter()
        .next()
        .expect("a resolution has the package it was asked for");
    let libc_name =
        toolchain::source::libc_source_package(platform).ok_or_else(|| Error::Toolchain {
            target: platform.name.clone(),
            message: format!(
                "Debian has no cross compiler for {pair} and xbuild builds only musl toolchains from source"
            ),
        })?;
    let libc = sources::plan_debian_source(context, libc_name)?;
    let mut key = KeyBuilder::new("toolchain")
        .text("kind", toolchain::source::RECIPE)
        .text("build", &options.build_platform.name)
        .text("target", &platform.name)
        .text("triple", &platform.gnu_triple);
    let mut identity = Vec::new();
    for package in packages.iter().chain([&kernel_headers]) {
        key = key
            .text("package", &package.name)
            .digest("deb", &package.sha256);
        identity.push(format!("{}={}", package.name, package.version));
    }
    key = key.digest("libc-source", &libc.digest()?);
    identity.push(libc.describe());
    identity.sort();
    packages.push(kernel_headers.clone());
    Ok(ToolchainPlan {
        platform: platform.clone(),
        packages,
        key: key.finish(),
        name: format!("gcc {pair} (built from source)"),
        identity: format!(
            "{} {} for {}",
            toolchain::source::RECIPE,
            identity.join(" "),
            platform.gnu_triple
        ),
        provider: ToolchainProvider::Source {
            kernel_headers: Box::new(kernel_headers),
            libc: Box::new(libc),
        },
    })
}

/// Where the toolchain with this key lives in the cache.
fn toolchain_root(cache: &crate::cache::Cache, key: &Sha256Digest) -> PathBuf {
    cache.root().join("toolchains-v1").join(key.hex())
}

/// Whether the toolchain is in the cache (assembled and complete).
pub(super) fn toolchain_cached(cache: &crate::cache::Cache, planned: &PlannedBuild) -> bool {
    CrossGcc::open(&toolchain_root(cache, &planned.toolchain_key)).is_ok()
}

/// The planned build's cross GCC, from the cache or assembled from the
/// Debian packages (fetched at most once per cache).
fn cross_gcc(
    context: &ResolveContext,
    planned: &PlannedBuild,
    nodes: &mut Vec<NodeReport>,
) -> Result<CrossGcc, Error> {
    let key = planned.toolchain_key;
    let platform = &planned.gcc_platform;
    let root = toolchain_root(context.cache, &key);
    let _lock = context
        .cache
        .lock_item(&format!("toolchain-{}", key.hex()))?;
    let start = Instant::now();
    let node = |outcome, seconds| NodeReport {
        kind: NodeKind::Toolchain,
        name: planned.toolchain_name.clone(),
        target: Some(platform.name.clone()),
        outcome,
        bytes: 0,
        seconds,
        saved_seconds: 0.0,
    };
    if let Ok(gcc) = CrossGcc::open(&root) {
        nodes.push(node(Outcome::Local, 0.0));
        return Ok(gcc);
    }
    if root.exists() {
        // Left by an interrupted assembly: never used, rebuilt.
        fs::remove_dir_all(&root).map_err(io_error(&root))?;
    }
    let toolchain_error = |source| Error::ToolchainSource {
        target: platform.name.clone(),
        source: Box::new(source),
    };
    // Each package is unpacked as soon as it is downloaded.
    let assembly = gcc::Assembly::begin(platform, &root).map_err(toolchain_error)?;
    fetch_debs_then(
        context,
        &planned.toolchain_packages,
        &planned.toolchain_name,
        nodes,
        &|index, deb| assembly.add(index, deb).map_err(toolchain_error),
    )?;
    let gcc = assembly.finish().map_err(toolchain_error)?;
    nodes.push(node(Outcome::Built, start.elapsed().as_secs_f64()));
    Ok(gcc)
}

/// What the cache records of a toolchain built from source: how long it
/// took on how many cores, for the estimates of `plan` and the time a hit
/// saves.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ToolchainBuildRecord {
    seconds: f64,
    cores: usize,
}

/// Core-seconds a source build of a musl cross GCC took on the machine
/// xbuild was developed on (801 s on 2 cores: binutils 80 s, GCC's C
/// compiler and libgcc 645 s, musl 36 s, unpacking the rest): the estimate
/// before this cache has built one.
const DEFAULT_TOOLCHAIN_BUILD_CORE_SECONDS: f64 = 1600.0;

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|count| count.get())
        .unwrap_or(1)
}

/// The latest source toolchain build with this recipe on this cache, if any.
fn toolchain_build_history_key() -> Sha256Digest {
    KeyBuilder::new("toolchain-build-time")
        .text("recipe", toolchain::source::RECIPE)
        .finish()
}

/// Estimated seconds of a source toolchain build here: scaled from the
/// latest one this cache recorded, or from [`DEFAULT_TOOLCHAIN_BUILD_CORE_SECONDS`].
pub(super) fn estimate_toolchain_build(cache: &crate::cache::Cache) -> Result<f64, Error> {
    let core_seconds = cache
        .get_entry::<ToolchainBuildRecord>("toolchain-build-time", &toolchain_build_history_key())?
        .map(|record| record.seconds * record.cores as f64)
        .unwrap_or(DEFAULT_TOOLCHAIN_BUILD_CORE_SECONDS);
    Ok(core_seconds / cores() as f64)
}

/// The planned build's cross GCC built from source, from the cache or —
/// only with `--allow-toolchain-build` — built now (inputs fetched and
/// verified like any package; the build log kept in `logs/`).
fn source_gcc(
    context: &ResolveContext,
    planned: &PlannedBuild,
    nodes: &mut Vec<NodeReport>,
) -> Result<CrossGcc, Error> {
    let ToolchainProvider::Source {
        kernel_headers,
        libc,
    } = &planned.toolchain_provider
    else {
        unreachable!("source_gcc is called for source toolchains only");
    };
    let cache = context.cache;
    let key = planned.toolchain_key;
    let platform = &planned.gcc_platform;
    let root = toolchain_root(cache, &key);
    let _lock = cache.lock_item(&format!("toolchain-{}", key.hex()))?;
    let node = |outcome, seconds, saved_seconds| NodeReport {
        kind: NodeKind::Toolchain,
        name: planned.toolchain_name.clone(),
        target: Some(platform.name.clone()),
        outcome,
        bytes: 0,
        seconds,
        saved_seconds,
    };
    if let Ok(gcc) = CrossGcc::open(&root) {
        let saved = cache
            .get_entry::<ToolchainBuildRecord>("toolchain-build", &key)?
            .map(|record| record.seconds)
            .unwrap_or_default();
        nodes.push(node(Outcome::Local, 0.0, saved));
        return Ok(gcc);
    }
    if !context.options.allow_toolchain_build {
        return Err(not_allowed(cache, &planned.toolchain_name)?);
    }
    if root.exists() {
        // Left by an interrupted build: never used, rebuilt.
        fs::remove_dir_all(&root).map_err(io_error(&root))?;
    }
    let start = Instant::now();
    let debs = fetch_debs(
        context,
        &planned.toolchain_packages,
        &planned.toolchain_name,
        nodes,
    )?;
    let libc_tree = sources::materialize(context, libc, nodes)?;
    let mut binutils = None;
    let mut gcc_source = None;
    let mut kernel = None;
    let mut host_libraries = Vec::new();
    let mut identity = vec![libc.describe()];
    for (package, deb) in planned.toolchain_packages.iter().zip(&debs) {
        identity.push(format!("{} {}", package.name, package.version));
        if package.name == "binutils-source" {
            binutils = Some(deb.clone());
        } else if package.name.ends_with("-source") {
            gcc_source = Some(deb.clone());
        } else if package.name == kernel_headers.name
            && package.architecture == kernel_headers.architecture
        {
            kernel = Some(deb.clone());
        } else {
            host_libraries.push(deb.clone());
        }
    }
    let (Some(binutils), Some(gcc_source), Some(kernel_headers)) = (binutils, gcc_source, kernel)
    else {
        unreachable!("the plan has binutils-source, gcc-N-source and linux-libc-dev");
    };
    let inputs = toolchain::source::SourceInputs {
        binutils,
        gcc: gcc_source,
        host_libraries,
        kernel_headers,
        libc: libc_tree,
        identity,
    };
    let log = cache
        .root()
        .join("logs")
        .join(format!("toolchain-{}.log", key.hex()));
    context.reporter.on_note(&format!(
        "building {} (~{:.0} min estimated; log: {})",
        planned.toolchain_name,
        estimate_toolchain_build(cache)? / 60.0,
        log.display()
    ));
    let gcc =
        toolchain::source::build(&inputs, platform, &root, cores(), &log).map_err(|source| {
            Error::ToolchainSource {
                target: platform.name.clone(),
                source: Box::new(source),
            }
        })?;
    let record = ToolchainBuildRecord {
        seconds: start.elapsed().as_secs_f64(),
        cores: cores(),
    };
    cache.put_entry("toolchain-build", &key, &record)?;
    cache.put_entry(
        "toolchain-build-time",
        &toolchain_build_history_key(),
        &record,
    )?;
    nodes.push(node(Outcome::Built, record.seconds, 0.0));
    Ok(gcc)
}

/// The refusal to start a source toolchain build nobody asked for.
pub(super) fn not_allowed(cache: &crate::cache::Cache, toolchain: &str) -> Result<Error, Error> {
    let seconds = estimate_toolchain_build(cache)?;
    Ok(Error::ToolchainBuildNotAllowed {
        toolchain: toolchain.to_owned(),
        estimate: format!(
            "~{:.0} minutes on {} cores",
            (seconds / 60.0).ceil(),
            cores()
        ),
    })
}

/// The toolchain and sysroot a build compiles with: for a build without
/// `-dev` packages, the toolchain itself; otherwise a copy of the
/// toolchain (hard links: cheap, and never written through) whose sysroot
/// also holds the target `-dev` packages and their closure. The copy keeps
/// GCC's own search paths (which lead into *its* sysroot) consistent with
/// the `--sysroot` it is given. Shared by every build with the same
/// toolchain and packages.
fn sysroot(
    context: &ResolveContext,
    gcc: &CrossGcc,
    gcc_key: &Sha256Digest,
    target: &TargetResolution,
    nodes: &mut Vec<NodeReport>,
) -> Result<CrossGcc, Error> {
    if target.sysroot.is_empty() {
        return Ok(gcc.clone());
    }
    let mut key = KeyBuilder::new("toolchain-with-sysroot")
        .text("layout", SYSROOT_LAYOUT)
        .digest("toolchain", gcc_key);
    for package in &target.sysroot {
        key = key
            .text("package", &package.name)
            .digest("deb", &package.sha256);
    }
    let key = key.finish();
    let cache = context.cache;
    let root = cache.root().join("sysroots-v2").join(key.hex());
    let _lock = cache.lock_item(&format!("sysroot-{}", key.hex()))?;
    let toolchain_error = |source: crate::toolchain::ToolchainError| Error::ToolchainSource {
        target: target.platform.name.clone(),
        source: Box::new(source),
    };
    let (outcome, with_sysroot) = match CrossGcc::open(&root) {
        Ok(existing) => (Outcome::Local, existing),
        Err(_) => {
            if root.exists() {
                // Left by an interrupted run: never used, rebuilt.
                fs::remove_dir_all(&root).map_err(io_error(&root))?;
            }
            let debs = fetch_debs(context, &target.sysroot, &target.platform.name, nodes)?;
            let parent = root.parent().expect("sysroot paths have a parent");
            fs::create_dir_all(parent).map_err(io_error(parent))?;
            let aside = tempfile::Builder::new()
                .prefix(".sysroot-")
                .tempdir_in(parent)
                .map_err(io_error(parent))?;
            toolchain::copy_tree(&gcc.root, aside.path(), toolchain::CopyFiles::HardLink)
                .map_err(toolchain_error)?;
            let sysroot = aside.path().join(
                gcc.sysroot
                    .strip_prefix(&gcc.root)
                    .expect("a toolchain's sysroot is inside it"),
            );
            for deb in &debs {
                unpack_deb(deb, &sysroot).map_err(|source| Error::ToolchainSource {
                    target: target.platform.name.clone(),
                    source: Box::new(source),
                })?;
            }
            // Absolute symlinks of -dev packages (`libz.so -> /lib/…`) would
            // point into the build machine's root: make them sysroot-relative.
            toolchain::relativize_symlinks(&sysroot, &sysroot).map_err(toolchain_error)?;
            let built = aside.keep();
            fs::rename(&built, &root).map_err(io_error(&root))?;
            (
                Outcome::Built,
                CrossGcc::open(&root).map_err(toolchain_error)?,
            )
        }
    };
    nodes.push(NodeReport {
        kind: NodeKind::Sysroot,
        name: format!(
            "sysroot {} ({})",
            package_names(&target.sysroot, " "),
            target.platform.name
        ),
        target: Some(target.platform.name.clone()),
        outcome,
        bytes: 0,
        seconds: 0.0,
        saved_seconds: 0.0,
    });
    Ok(with_sysroot)
}
