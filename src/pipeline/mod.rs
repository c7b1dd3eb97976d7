//! The build pipeline: resolve → plan → realize → assemble → output.
//!
//! - resolve ([`resolve`]): the repository, its signed indices, and the
//!   package closure of every target (cached by the index digests and the
//!   request, so an unchanged rebuild parses nothing);
//! - plan: packages grouped into layers, each layer keyed by its packages'
//!   digests and the layer format;
//! - realize ([`realize`]): layers missing from the cache are built by a
//!   bounded pool of workers, each fetching the `.deb`s it needs (at most
//!   once per cache) and streaming them into a compressed layer;
//! - assemble and output ([`assemble`]): OCI config and manifest per target,
//!   the OCI image layout, and a docker-archive per target.

mod assemble;
mod compile;
mod fetch;
mod realize;
pub mod resolve;
mod sources;

use crate::Error;
use crate::cache::Cache;
use crate::http::HttpClient;
use crate::manifest::Manifest;
use crate::platform::Platform;
use crate::progress::Reporter;
use crate::report::{BuildReport, Phases};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

pub use compile::{PlannedBuild, SysrootPlan, ToolchainPlan, ToolchainProvider};
pub use resolve::{
    PlanReport, ProviderChoice, ProviderOption, ResolvedPackage, TargetResolution, toolchain_suite,
};

/// Version of the layer format: how packages become tar entries. Part of
/// every layer key.
pub const LAYER_FORMAT: &str = "deb-layer-v2";

/// Default gzip level of layers: a fixed setting, so digests are the same
/// on every host.
pub const DEFAULT_COMPRESSION_LEVEL: u32 = 6;

/// Everything a build or plan needs to know.
pub struct BuildOptions {
    pub manifest: Manifest,
    pub targets: Vec<Platform>,
    pub build_platform: Platform,
    pub out_dir: PathBuf,
    /// `--mirror`: overrides the repository URL.
    pub mirror: Option<String>,
    /// `SOURCE_DATE_EPOCH`: file mtimes are clamped to it; image `created`.
    pub epoch: u64,
    /// Workers fetching and building layers at once.
    pub jobs: usize,
    /// The time signatures and `Valid-Until` are checked against.
    pub now: SystemTime,
    pub compression_level: u32,
    /// How long a fetched InRelease is used without asking the server again.
    pub index_max_age: Duration,
    /// `--http-timeout`: how long a transfer may receive nothing before the
    /// attempt is abandoned (and retried).
    pub http_timeout: Duration,
    /// `--max-builds`: fail before doing anything if more builds would run
    /// (a toolchain built from source counts as one).
    pub max_builds: Option<usize>,
    /// `--allow-toolchain-build`: a cross toolchain Debian has no binary for
    /// may be built from source (tens of minutes, once per cache).
    pub allow_toolchain_build: bool,
    /// `--toolchain-suite`: the suite compiler programs come from (default:
    /// the build machine's, see [`resolve::toolchain_suite`]).
    pub toolchain_suite: Option<String>,
    /// `-q`: print nothing but errors, and run cargo with `--quiet`.
    pub quiet: bool,
}

/// Default of [`BuildOptions::index_max_age`]: Debian mirrors update a few
/// times a day, so five minutes never misses a sync by much, and a burst of
/// builds asks the mirror once.
pub const DEFAULT_INDEX_MAX_AGE: Duration = Duration::from_secs(300);

impl BuildOptions {
    pub fn new(manifest: Manifest, targets: Vec<Platform>, build_platform: Platform) -> Self {
        let out_dir = default_out_dir(&manifest.dir);
        let jobs = crate::parallel::cores().clamp(2, 8) * 2;
        BuildOptions {
            manifest,
            targets,
            build_platform,
            out_dir,
            mirror: None,
            epoch: 0,
            jobs,
            now: SystemTime::now(),
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            index_max_age: DEFAULT_INDEX_MAX_AGE,
            http_timeout: crate::http::DEFAULT_IDLE_TIMEOUT,
            max_builds: None,
            allow_toolchain_build: false,
            toolchain_suite: None,
            quiet: false,
        }
    }
}

/// Where outputs go without `--out`: `DIR/result`, or, when `DIR` is a
/// cargo package, `DIR/target/xbuild` — cargo never looks into its target
/// directory, while files written beside its sources make it run build
/// scripts again on the user's next `cargo build`.
pub fn default_out_dir(project: &std::path::Path) -> PathBuf {
    if project.join("Cargo.toml").is_file() {
        project.join("target").join("xbuild")
    } else {
        project.join("result")
    }
}

/// Resolves every target and reports what a build would do, without
/// downloading any package or writing any output.
pub fn plan(
    options: &BuildOptions,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<PlanReport, Error> {
    let http = HttpClient::with_idle_timeout(options.http_timeout)?;
    let resolved = resolve::resolve_all(options, cache, &http, reporter)?;
    let mut report = resolve::plan_report(options, cache, &resolved);
    let contexts = resolved.contexts(options, cache, &http, reporter);
    let plans = compile::plan_builds(&contexts, &resolved.targets, &mut report.nodes)?;
    report.builds = plans.reports(cache)?;
    Ok(report)
}

/// Builds the image for every target and writes the outputs.
pub fn build(
    options: &BuildOptions,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<BuildReport, Error> {
    let start = Instant::now();
    let http = HttpClient::with_idle_timeout(options.http_timeout)?;
    let mut phases = Phases::default();

    reporter.on_phase("resolve");
    let phase = Instant::now();
    let resolved = resolve::resolve_all(options, cache, &http, reporter)?;
    phases.resolve = phase.elapsed().as_secs_f64();

    let contexts = resolved.contexts(options, cache, &http, reporter);
    let mut plan_nodes = Vec::new();
    let plans = compile::plan_builds(&contexts, &resolved.targets, &mut plan_nodes)?;
    // Refusals come before anything is fetched or built.
    let (toolchains, builds) = plans.misses(cache)?;
    if let Some(toolchain) = toolchains.first()
        && !options.allow_toolchain_build
    {
        return Err(compile::not_allowed(cache, toolchain)?);
    }
    if let Some(limit) = options.max_builds {
        let misses: Vec<String> = toolchains.into_iter().chain(builds).collect();
        if misses.len() > limit {
            return Err(Error::TooManyBuilds {
                limit,
                builds: misses,
            });
        }
    }
    reporter.on_phase("build");
    let phase = Instant::now();
    let (builds, mut build_nodes) = compile::realize_builds(&contexts, &plans)?;
    plan_nodes.append(&mut build_nodes);
    let build_nodes = plan_nodes;
    phases.build = phase.elapsed().as_secs_f64();

    reporter.on_phase("layers");
    let phase = Instant::now();
    let layers = realize::plan_layers(options, &resolved.targets);
    let realized = realize::realize_layers(&contexts.image, &layers)?;
    phases.layers = phase.elapsed().as_secs_f64();
    phases.fetch = realized.fetch_seconds;

    reporter.on_phase("assemble");
    let phase = Instant::now();
    let mut report = assemble::assemble(
        options,
        cache,
        &resolved,
        &layers,
        &realized,
        &builds,
        build_nodes,
    )?;
    phases.assemble = phase.elapsed().as_secs_f64();

    report.phases = phases;
    report.summarize(start.elapsed().as_secs_f64());
    Ok(report)
}
