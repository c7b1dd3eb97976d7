//! The build pipeline: resolve → plan → realize → assemble → output.
//!
//! - resolve ([`resolve`]): the repository, its signed indices, and the
//!   package closure of every target (cached by the index digests and the
//!   request, so an unchanged rebuild parses nothing); every `[[build]]`
//!   planned with its compiler, sources and key (`compile`);
//! - plan (`planner`): all of it as one [`Plan`], a DAG of keyed nodes,
//!   each with the source it will come from — built once, before any
//!   work, and read by the refusals (`--require-hits`, `--max-builds`,
//!   `--allow-toolchain-build`);
//! - realize: walks the plan's needed nodes — builds with their toolchains,
//!   sysroots and sources (`compile`), then package layers missing from
//!   the cache, built by a bounded pool of workers, each fetching the
//!   `.deb`s it needs (at most once per cache) and streaming them into a
//!   compressed layer (`realize`) — recording each node's outcome;
//! - assemble and output (`assemble`): OCI config and manifest per image
//!   node, the OCI image layout, a docker-archive per target, and the
//!   report.

mod assemble;
mod compile;
mod configure;
pub mod emulator;
mod fetch;
pub mod package_sources;
mod planner;
mod realize;
pub mod resolve;
mod slim;
pub(crate) mod sources;

use crate::Error;
use crate::cache::Cache;
use crate::http::HttpClient;
use crate::manifest::Manifest;
use crate::plan::{NoRemote, NodeKind, NodeSource, Plan, RemoteStatus, RequireHits};
use crate::platform::Platform;
use crate::progress::Reporter;
use crate::report::{BuildReport, NodeOutcome, Outcome, Outcomes, Phases, PlanReport};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use compile::{BuildRecord, PlannedBuild, SysrootPlan, ToolchainPlan, ToolchainProvider};
pub use package_sources::toolchain_suite;
pub use resolve::{
    PackageOrigin, ProviderChoice, ProviderOption, ResolvedPackage, TargetResolution,
};
pub use sources::PlannedSource;

/// Version of the layer format: how packages become tar entries (v3:
/// merged /usr, `/bin/x` is `/usr/bin/x`; v4: packages held to
/// [`crate::debian::entry_policy`], so that no layer an older xbuild
/// cached, locally or in a shared cache, for a crafted package is used).
/// Part of every layer key.
pub const LAYER_FORMAT: &str = "deb-layer-v4-entry-policy";

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
    /// How long after another machine checked it an InRelease a remote
    /// cache supplied is used without asking the server (never longer than
    /// `index_max_age` allows: `--refresh` asks the mirror).
    pub shared_index_max_age: Duration,
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
    /// `--require-hits`: fail before doing anything if a node would be
    /// built (or, with `all`, downloaded upstream).
    pub require_hits: Option<RequireHits>,
    /// What remote caches hold, asked while planning (default: none).
    pub remote: Arc<dyn RemoteStatus + Send>,
}

/// Default of [`BuildOptions::index_max_age`]: Debian mirrors update a few
/// times a day, so five minutes never misses a sync by much, and a burst of
/// builds asks the mirror once.
pub const DEFAULT_INDEX_MAX_AGE: Duration = Duration::from_secs(300);

impl BuildOptions {
    /// How long verified InRelease files are used without the mirror.
    pub fn index_freshness(&self) -> crate::debian::index::Freshness {
        crate::debian::index::Freshness {
            max_age: self.index_max_age,
            shared_max_age: self.shared_index_max_age,
        }
    }

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
            shared_index_max_age: DEFAULT_INDEX_MAX_AGE,
            http_timeout: crate::http::DEFAULT_IDLE_TIMEOUT,
            max_builds: None,
            allow_toolchain_build: false,
            toolchain_suite: None,
            quiet: false,
            require_hits: None,
            remote: Arc::new(NoRemote),
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

/// Resolves every target and plans every build: the plan, and the
/// resolution it was made from. Fetches signed indices (and reads the
/// cache); downloads no package and writes no output.
fn make_plan(
    options: &BuildOptions,
    cache: &Cache,
    http: &HttpClient,
    reporter: &dyn Reporter,
) -> Result<(resolve::Resolved, Plan), Error> {
    let resolved = resolve::resolve_all(options, cache, http, reporter)?;
    let contexts = resolved.contexts(options, cache, http, reporter);
    let mut indices = resolved.indices.clone();
    let builds = compile::plan_builds(&contexts, &resolved.targets, &mut indices)?;
    let inputs = planner::PlanInputs {
        sources: resolved.sources.summaries(),
        notes: resolved.sources.notes.clone(),
        targets: &resolved.targets,
        indices: &indices,
        builds: &builds.per_target,
        rust: builds.rust.as_ref(),
        suite_release: configure::suite_release(&resolved),
    };
    let plan = planner::plan(options, cache, &inputs, options.remote.as_ref())?;
    Ok((resolved, plan))
}

/// Resolves every target and reports what a build would do, without
/// downloading any package or writing any output.
pub fn plan(
    options: &BuildOptions,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<PlanReport, Error> {
    let http = HttpClient::with_idle_timeout(options.http_timeout)?;
    let (resolved, plan) = make_plan(options, cache, &http, reporter)?;
    Ok(PlanReport::new(plan, &resolved.targets))
}

/// `--require-hits`: an error naming every node `plan` would build (or,
/// with `all`, download), unless there is none.
pub fn check_hits(plan: &Plan, require: RequireHits) -> Result<(), Error> {
    let misses = plan.missing_hits(require);
    if misses.is_empty() {
        Ok(())
    } else {
        Err(Error::MissingHits { require, misses })
    }
}

/// The refusals, all read from the plan, before anything is fetched or
/// built.
fn refuse(options: &BuildOptions, cache: &Cache, plan: &Plan) -> Result<(), Error> {
    if let Some(require) = options.require_hits {
        check_hits(plan, require)?;
    }
    if let Some(toolchain) = plan.toolchain_builds().next()
        && !options.allow_toolchain_build
    {
        return Err(compile::not_allowed(cache, &toolchain.name)?);
    }
    if let Some(limit) = options.max_builds {
        let builds = plan.counted_builds();
        if builds.len() > limit {
            return Err(Error::TooManyBuilds {
                limit,
                builds: builds.iter().map(|node| node.name.clone()).collect(),
            });
        }
    }
    Ok(())
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
    let (resolved, plan) = make_plan(options, cache, &http, reporter)?;
    phases.resolve = phase.elapsed().as_secs_f64();
    refuse(options, cache, &plan)?;

    let outcomes = Outcomes::new();
    // The indices were fetched while planning.
    for node in plan.needed_of(NodeKind::Index) {
        let outcome = match node.source {
            NodeSource::Upstream => NodeOutcome::new(Outcome::Downloaded)
                .with_bytes(node.cost.download_bytes)
                .with_seconds(node.cost.seconds.unwrap_or_default()),
            _ => NodeOutcome::new(Outcome::Local),
        };
        outcomes.record(NodeKind::Index, &node.key, outcome);
    }
    let contexts = resolved.contexts(options, cache, &http, reporter);
    reporter.on_phase("build");
    let phase = Instant::now();
    let builds = compile::realize_builds(&contexts, &plan, &outcomes)?;
    phases.build = phase.elapsed().as_secs_f64();

    reporter.on_phase("layers");
    let phase = Instant::now();
    let mut realized = realize::realize_layers(&contexts.image, &plan, &outcomes)?;
    let suite = configure::suite_release(&resolved);
    realized.layers.extend(configure::realize_configure(
        &contexts.image,
        &plan,
        &suite,
        &outcomes,
    )?);
    phases.layers = phase.elapsed().as_secs_f64();
    phases.fetch = realized.fetch_seconds;

    reporter.on_phase("assemble");
    let phase = Instant::now();
    let mut report = assemble::assemble(
        options, cache, &resolved, &plan, &realized, &builds, &outcomes,
    )?;
    phases.assemble = phase.elapsed().as_secs_f64();

    report.phases = phases;
    report.summarize(start.elapsed().as_secs_f64());
    Ok(report)
}
