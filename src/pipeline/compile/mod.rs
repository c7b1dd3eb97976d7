//! The compile step: `[[build]]` entries cross-compiled on this machine for
//! each target, with toolchain pieces fetched rather than built.
//!
//! Every build is planned once, before anything is fetched
//! ([`plan_builds`]): its compiler ([`toolchain`]), its sources, and its key
//! — the recipe, the source tree's digest, the target, the identities of
//! rustc, the target's standard library and the C compiler, and the
//! sysroot packages' digests, never the machine. The planned builds become
//! nodes of the plan (`pipeline::planner`), and [`realize_builds`] walks
//! the plan's build nodes: a cached build is a hit; a missing one gets its
//! compiler ([`provision`]) and sources, runs, and its output becomes one
//! content-addressed layer (`/usr/local/…`), so two builds that produce the
//! same bytes share everything downstream.

mod cargo;
mod provision;
pub(super) mod toolchain;

pub(super) use toolchain::{Contexts, compiler_key};
pub use toolchain::{SysrootPlan, ToolchainPlan, ToolchainProvider};

use super::TargetResolution;
use super::realize::{LayerRecord, store_directory_layer};
use super::resolve::IndexUse;
use super::sources::{self, PlannedSource};
use crate::Error;
use crate::build::c::{self, CKind, CTarget};
use crate::cache::{Bucket, Cache, CacheError, EntryMeta};
use crate::hash::Sha256Digest;
use crate::manifest::{BuildKind, BuildSpec, CargoOptions};
use crate::plan::explain::{self, Difference, Inputs};
use crate::plan::{Detail, KeyBuilder, Node, NodeKind, Plan};
use crate::platform::{Libc, Platform};
use crate::progress::Step;
use crate::report::{NodeOutcome, Outcome, Outcomes};
use crate::toolchain::rust::{self, RustToolchain};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Version of each recipe: how a build becomes a layer. Part of its key.
fn recipe_name(kind: BuildKind) -> &'static str {
    match kind {
        BuildKind::Cargo => "cargo-release-usr-local-bin-v1",
        BuildKind::Autotools => "autotools-prefix-usr-local-v2",
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedBuild {
    /// `cargo <path> (<target>)`.
    pub name: String,
    pub kind: BuildKind,
    pub source: PlannedSource,
    pub target_platform: Platform,
    pub key: Sha256Digest,
    pub inputs: Inputs,
    /// The compiler's programs (they run on the build machine; the key
    /// names it).
    pub toolchain: ToolchainPlan,
    /// The target packages it compiles and links against (glibc targets).
    pub sysroot: Option<SysrootPlan>,
    /// What cargo builds (cargo builds).
    pub cargo: CargoOptions,
    /// The variables its build scripts read, as recorded by its last build
    /// (cargo builds): their values are among its inputs.
    pub build_script_variables: Vec<String>,
}

/// The key of a build with these inputs.
fn key_of(inputs: &Inputs) -> Sha256Digest {
    let mut key = KeyBuilder::new("build");
    for (name, value) in inputs {
        key = key.text(name, value);
    }
    key.finish()
}

/// Every `[[build]]` of every target, planned.
pub struct Plans {
    /// Per target, in manifest order.
    pub per_target: Vec<Vec<PlannedBuild>>,
    /// The Rust toolchain cargo builds use.
    pub rust: Option<RustToolchain>,
}

const HISTORY_LENGTH: usize = 16;

fn history_key(name: &str) -> Sha256Digest {
    KeyBuilder::new("build-history").text("name", name).finish()
}

/// Plans every `[[build]]` of every target. Nothing is installed, fetched
/// (beyond signed indices, added to `indices`) or built.
pub(super) fn plan_builds(
    contexts: &Contexts,
    targets: &[TargetResolution],
    indices: &mut Vec<IndexUse>,
) -> Result<Plans, Error> {
    let options = contexts.image.options;
    if options.manifest.builds.is_empty() {
        return Ok(Plans {
            per_target: targets.iter().map(|_| Vec::new()).collect(),
            rust: None,
        });
    }
    let rust = if options
        .manifest
        .builds
        .iter()
        .any(|build| build.kind == BuildKind::Cargo)
    {
        Some(rust::detect().map_err(|source| Error::ToolchainSource {
            target: options.build_platform.name.clone(),
            source: Box::new(source),
        })?)
    } else {
        None
    };
    let mut per_target = Vec::new();
    for target in targets {
        let mut planned = Vec::new();
        for build in &options.manifest.builds {
            planned.push(plan_build(contexts, rust.as_ref(), target, build, indices)?);
        }
        per_target.push(planned);
    }
    Ok(Plans { per_target, rust })
}

/// The compiler a build for `target` uses (see [`toolchain`]).
fn plan_compiler(
    contexts: &Contexts,
    target: &TargetResolution,
    build: &BuildSpec,
    source: &PlannedSource,
    indices: &mut Vec<IndexUse>,
) -> Result<(ToolchainPlan, Option<SysrootPlan>), Error> {
    let platform = &target.platform;
    if platform.libc == Libc::Gnu {
        let toolchain = toolchain::plan_debian(contexts, platform, indices)?;
        return Ok((toolchain, SysrootPlan::of(target)));
    }
    if !build.sysroot.is_empty() {
        return Err(Error::Target {
            target: platform.name.clone(),
            message: format!(
                "{}: sysroot packages ({}) are Debian's, built against glibc, and cannot be linked into a musl program; drop `sysroot` or build for the glibc target of this CPU",
                contexts.image.options.manifest.path.display(),
                build.sysroot.join(", "),
            ),
        });
    }
    let compiles_c = match (build.kind, source) {
        (BuildKind::Cargo, PlannedSource::Path(path)) => cargo::compiles_c(path),
        _ => true,
    };
    let toolchain = if compiles_c {
        toolchain::plan_source(contexts, platform, indices)?
    } else {
        toolchain::plan_none(platform)
    };
    Ok((toolchain, None))
}

/// Computes a build's key and inputs.
fn plan_build(
    contexts: &Contexts,
    rust: Option<&RustToolchain>,
    target: &TargetResolution,
    build: &BuildSpec,
    indices: &mut Vec<IndexUse>,
) -> Result<PlannedBuild, Error> {
    let options = contexts.image.options;
    let platform = &target.platform;
    let source = sources::plan_source(&contexts.image, build)?;
    let (toolchain, sysroot) = plan_compiler(contexts, target, build, &source, indices)?;
    let mut inputs: Inputs = vec![
        ("recipe".into(), recipe_name(build.kind).into()),
        (
            "source".into(),
            source
                .digest_excluding(&[
                    options.out_dir.clone(),
                    contexts.image.cache.location().to_owned(),
                ])?
                .oci(),
        ),
        ("target".into(), platform.name.clone()),
    ];
    let name = format!(
        "{} {} ({})",
        build_kind_label(build.kind),
        source_label(&source, &options.manifest.dir),
        platform.name
    );
    let mut build_script_variables = Vec::new();
    if let Some(rust) = rust.filter(|_| build.kind == BuildKind::Cargo) {
        let triple = platform.rust_triple().to_owned();
        let rust_std = rust.target_library_identity(&triple);
        inputs.push(("rust-triple".into(), triple.clone()));
        inputs.push(("rustc".into(), rust.rustc_version.clone()));
        inputs.push(("rust-std".into(), rust_std));
        let project = match &source {
            PlannedSource::Path(path) => path.clone(),
            _ => options.manifest.dir.clone(),
        };
        let (cargo_inputs, variables) =
            cargo::key_inputs(contexts.image.cache, build, &project, &triple, &name)?;
        inputs.extend(cargo_inputs);
        build_script_variables = variables;
    }
    inputs.extend([
        ("cc".into(), toolchain.identity.clone()),
        (
            "sysroot".into(),
            sysroot
                .as_ref()
                .map_or_else(|| "none".to_owned(), |sysroot| sysroot.key.oci()),
        ),
        ("epoch".into(), options.epoch.to_string()),
        ("gzip-level".into(), options.compression_level.to_string()),
        // How the output becomes a layer: `/bin/x` is `/usr/bin/x`.
        ("layer".into(), "merged-usr-v1".into()),
    ]);
    Ok(PlannedBuild {
        name,
        kind: build.kind,
        source,
        target_platform: platform.clone(),
        key: key_of(&inputs),
        inputs,
        toolchain,
        sysroot,
        cargo: build.cargo.clone(),
        build_script_variables,
    })
}

pub(in crate::pipeline) use provision::{
    compiler_cached, estimate_toolchain_build, not_allowed, recorded_toolchain_build,
    sysroot_cached, toolchain_cached,
};

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
pub(in crate::pipeline) type Nearest = (Vec<Difference>, f64);

/// Whether a planned build is cached, and if not, what differs from the
/// nearest cached build of the same name.
pub(in crate::pipeline) fn explain(
    cache: &Cache,
    planned: &PlannedBuild,
) -> Result<(Option<BuildRecord>, Option<Nearest>), Error> {
    if let Some(record) = cache.get_entry::<BuildRecord>(Bucket::Build, &planned.key)?
        && cache.has_blob(&record.layer.digest)
    {
        return Ok((Some(record), None));
    }
    let history: Vec<Sha256Digest> = cache
        .get_entry(Bucket::BuildHistory, &history_key(&planned.name))?
        .unwrap_or_default();
    let mut cached = Vec::new();
    for key in history {
        if let Some(record) = cache.get_entry::<BuildRecord>(Bucket::Build, &key)? {
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

/// Walks the plan's needed build nodes: each is a hit or is built now.
/// Returns the build layers by build key; outcomes go to `outcomes`.
pub(super) fn realize_builds(
    contexts: &Contexts,
    plan: &Plan,
    outcomes: &Outcomes,
) -> Result<BTreeMap<Sha256Digest, BuildLayer>, Error> {
    let mut layers = BTreeMap::new();
    for node in plan.needed_of(NodeKind::Build) {
        layers.insert(node.key, build_one(contexts, plan, node, outcomes)?);
    }
    Ok(layers)
}

fn build_one(
    contexts: &Contexts,
    plan: &Plan,
    node: &Node,
    outcomes: &Outcomes,
) -> Result<BuildLayer, Error> {
    let Detail::Build { build: planned } = &node.detail else {
        unreachable!("build nodes carry their planned build");
    };
    let rust = plan.inputs(node).find_map(|input| match &input.detail {
        Detail::RustTarget { rust, triple } => Some((rust, triple, input.key)),
        _ => None,
    });
    let context = &contexts.image;
    let options = context.options;
    let platform = &planned.target_platform;
    let key = planned.key;
    let label = planned.name.clone();
    let cache = context.cache;
    let _lock = cache.lock(Bucket::Build, &key)?;
    let existing = cache.get_entry::<BuildRecord>(Bucket::Build, &key)?;
    if let Some(record) = &existing
        && cache
            .verified_blob(&record.layer.digest, Some(record.layer.size))?
            .is_some()
    {
        outcomes.record(
            NodeKind::Build,
            &key,
            NodeOutcome::new(Outcome::Local)
                .with_bytes(record.layer.size)
                .with_saved_seconds(record.seconds),
        );
        return Ok(BuildLayer {
            label,
            record: record.layer.clone(),
            outcome: Outcome::Local,
        });
    }

    if planned.kind == BuildKind::Cargo {
        let (rust, triple, rust_key) =
            rust.expect("cargo builds are planned with a Rust toolchain");
        let start = Instant::now();
        let libraries = rust
            .ensure_target(triple)
            .map_err(|source| Error::ToolchainSource {
                target: platform.name.clone(),
                source: Box::new(source),
            })?;
        let outcome = if libraries.added {
            NodeOutcome::new(Outcome::Downloaded).with_seconds(start.elapsed().as_secs_f64())
        } else {
            NodeOutcome::new(Outcome::Local)
        };
        outcomes.record(NodeKind::Toolchain, &rust_key, outcome);
    }
    let gcc = provision::compiler(contexts, planned, outcomes)?;
    let tree = sources::materialize(context, &planned.source, outcomes)?;
    // The build's own time (what a hit saves): toolchains, sysroots and
    // sources are nodes of their own.
    let start = Instant::now();
    let step = Step::start(context.reporter, &format!("building {label}"));
    let staging = cache.temp_dir(".staging-")?;
    let mut build_script_variables = None;
    if planned.kind == BuildKind::Cargo {
        build_script_variables = Some(cargo::build(
            context,
            platform,
            gcc.as_ref(),
            &planned.cargo,
            &tree,
            staging.path(),
        )?);
    } else {
        let gcc = gcc.expect("a C recipe is planned with a compiler");
        let work = cache.temp_dir(".build-")?;
        let kind = match planned.kind {
            BuildKind::Autotools => CKind::Autotools,
            BuildKind::Make => CKind::Make,
            _ => CKind::Cmake,
        };
        let c_target = CTarget {
            gnu_triple: &platform.gnu_triple,
            build_triple: &options.build_platform.gnu_triple,
            cc: &gcc.cc,
            cxx: gcc.cxx.as_deref(),
            ar: &gcc.ar,
            ranlib: &gcc.ranlib,
            strip: &gcc.strip,
            sysroot: &gcc.sysroot,
            multiarch: &platform.multiarch,
            jobs: options.jobs,
            source_date_epoch: options.epoch,
            static_link: platform.libc == Libc::Musl,
        };
        c::build_reporting(
            kind,
            &tree,
            work.path(),
            staging.path(),
            &c_target,
            context.reporter,
        )
        .map_err(|source| Error::CBuild {
            target: platform.name.clone(),
            source,
        })?;
    }
    step.finish();
    let layer = store_directory_layer(
        options,
        cache,
        staging.path(),
        options.epoch,
        true,
        &platform.name,
    )?;
    // A rebuild under the same key (its layer was lost) usually finds
    // cargo's or make's work done already: what a hit saves is still the
    // duration of the real build.
    let seconds = start.elapsed().as_secs_f64();
    let record = BuildRecord {
        layer,
        inputs: planned.inputs.clone(),
        seconds: existing.map_or(seconds, |existing| existing.seconds.max(seconds)),
    };
    // A build's entry needs its layer; it is for its target (whatever
    // machine built it).
    let meta = EntryMeta::for_platform(platform.name.clone()).with_blob(record.layer.blob());
    cache.put_entry(Bucket::Build, &key, &record, meta.clone())?;
    let mut new_keys = vec![key];
    // Build scripts that read variables the plan did not know of: the
    // next plan covers their values, so the record is also stored under
    // the key it will compute.
    if let Some(variables) = build_script_variables
        && variables != planned.build_script_variables
    {
        cargo::record_variables(cache, &planned.name, &variables)?;
        let inputs = cargo::with_build_script_variables(&planned.inputs, &variables);
        let later = key_of(&inputs);
        cache.put_entry(
            Bucket::Build,
            &later,
            &BuildRecord {
                inputs,
                ..record.clone()
            },
            meta,
        )?;
        new_keys.push(later);
    }
    let history = history_key(&planned.name);
    let mut keys: Vec<Sha256Digest> = cache
        .get_entry(Bucket::BuildHistory, &history)?
        .unwrap_or_default();
    keys.retain(|existing| !new_keys.contains(existing));
    keys.extend(new_keys);
    let excess = keys.len().saturating_sub(HISTORY_LENGTH);
    keys.drain(..excess);
    cache.put_entry(
        Bucket::BuildHistory,
        &history,
        &keys,
        EntryMeta::for_platform(platform.name.clone()),
    )?;
    outcomes.record(
        NodeKind::Build,
        &key,
        NodeOutcome::new(Outcome::Built)
            .with_bytes(record.layer.size)
            .with_seconds(seconds),
    );
    Ok(BuildLayer {
        label,
        record: record.layer,
        outcome: Outcome::Built,
    })
}
