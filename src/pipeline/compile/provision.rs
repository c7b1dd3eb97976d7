//! Making a planned compiler real, each part once per cache and under its
//! own lock, so that concurrent xbuild processes build it once and the
//! others find it (and report it as a local hit):
//!
//! ```text
//! toolchains-v1/<key>/   compiler programs (Debian's, unpacked) or a toolchain built from source
//! sysroots-v3/<key>/     the target's packages (toolchain::sysroot)
//! compilers-v1/<key>/    programs + sysroot joined by wrapper scripts (toolchain::compose)
//! logs/toolchain-<key>.log   the log of a source build
//! ```

use super::super::fetch::{fetch_debs, fetch_debs_then};
use super::super::sources;
use super::PlannedBuild;
use super::toolchain::{Contexts, SysrootPlan, ToolchainPlan, ToolchainProvider, compiler_key};
use crate::Error;
use crate::cache::{Cache, CacheError};
use crate::hash::Sha256Digest;
use crate::parallel::cores;
use crate::plan::{KeyBuilder, NodeKind};
use crate::platform::Platform;
use crate::progress::Step;
use crate::report::{NodeOutcome, Outcome, Outcomes};
use crate::toolchain::{self, CrossGcc, Programs};
use fs_err as fs;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| {
        Error::Cache(CacheError::Io {
            path: path.to_owned(),
            source,
        })
    }
}

fn toolchain_error(platform: &Platform) -> impl Fn(toolchain::ToolchainError) -> Error + '_ {
    move |source| Error::ToolchainSource {
        target: platform.name.clone(),
        source: Box::new(source),
    }
}

/// Where the toolchain with this key lives in the cache.
fn toolchain_root(cache: &Cache, key: &Sha256Digest) -> PathBuf {
    cache.root().join("toolchains-v1").join(key.hex())
}

/// Where the sysroot with this key lives in the cache.
fn sysroot_root(cache: &Cache, key: &Sha256Digest) -> PathBuf {
    cache.root().join("sysroots-v3").join(key.hex())
}

/// Where the compiler composed of this toolchain and sysroot lives.
fn compiler_root(cache: &Cache, key: &Sha256Digest) -> PathBuf {
    cache.root().join("compilers-v1").join(key.hex())
}

/// Whether the planned sysroot is in the cache, complete.
pub(in crate::pipeline) fn sysroot_cached(cache: &Cache, plan: &SysrootPlan) -> bool {
    toolchain::sysroot::is_complete(&sysroot_root(cache, &plan.key))
}

/// Whether the compiler composed of these is in the cache.
pub(in crate::pipeline) fn compiler_cached(
    cache: &Cache,
    toolchain: &ToolchainPlan,
    sysroot: &SysrootPlan,
) -> bool {
    let key = compiler_key(&toolchain.key, &sysroot.key);
    CrossGcc::open(&compiler_root(cache, &key)).is_ok()
}

/// Whether the planned toolchain is in the cache, complete.
pub(in crate::pipeline) fn toolchain_cached(cache: &Cache, plan: &ToolchainPlan) -> bool {
    let root = toolchain_root(cache, &plan.key);
    match plan.provider {
        ToolchainProvider::Debian { .. } => Programs::open(&root).is_ok(),
        ToolchainProvider::Source { .. } => CrossGcc::open(&root).is_ok(),
        ToolchainProvider::None => true,
    }
}

/// The compiler a planned build uses (`None` for a build that compiles no
/// C), from the cache or made now.
pub(super) fn compiler(
    contexts: &Contexts,
    planned: &PlannedBuild,
    outcomes: &Outcomes,
) -> Result<Option<CrossGcc>, Error> {
    let plan = &planned.toolchain;
    match &plan.provider {
        ToolchainProvider::None => Ok(None),
        ToolchainProvider::Source { .. } => source_gcc(contexts, plan, outcomes).map(Some),
        ToolchainProvider::Debian { .. } => {
            let sysroot_plan = planned
                .sysroot
                .as_ref()
                .expect("a Debian compiler is planned with a sysroot");
            let programs = debian_programs(contexts, plan, outcomes)?;
            let sysroot = sysroot(contexts, sysroot_plan, &planned.target_platform, outcomes)?;
            compose(
                contexts.image.cache,
                plan,
                &programs,
                sysroot_plan,
                &sysroot,
                outcomes,
            )
            .map(Some)
        }
    }
}

/// What happened to a toolchain part.
fn node(outcome: Outcome, seconds: f64) -> NodeOutcome {
    NodeOutcome::new(outcome).with_seconds(seconds)
}

/// Debian's compiler programs for the pair, from the cache or fetched and
/// unpacked (each package as soon as it is downloaded).
fn debian_programs(
    contexts: &Contexts,
    plan: &ToolchainPlan,
    outcomes: &Outcomes,
) -> Result<Programs, Error> {
    let context = &contexts.host;
    let root = toolchain_root(context.cache, &plan.key);
    let _lock = context
        .cache
        .lock_item(&format!("toolchain-{}", plan.key.hex()))?;
    if let Ok(programs) = Programs::open(&root) {
        outcomes.record(NodeKind::Toolchain, &plan.key, node(Outcome::Local, 0.0));
        return Ok(programs);
    }
    if root.exists() {
        // Not complete (an older layout, or damaged): never used, rebuilt.
        fs::remove_dir_all(&root).map_err(io_error(&root))?;
    }
    let start = Instant::now();
    let step = Step::start(context.reporter, &format!("assembling {}", plan.name));
    let error = toolchain_error(&plan.platform);
    let assembly = toolchain::gcc::Assembly::begin(&plan.platform, &root).map_err(&error)?;
    fetch_debs_then(
        context,
        &plan.packages,
        &plan.name,
        outcomes,
        &|index, deb| assembly.add(index, deb).map_err(&error),
    )?;
    let programs = assembly.finish().map_err(&error)?;
    step.finish();
    outcomes.record(
        NodeKind::Toolchain,
        &plan.key,
        node(Outcome::Built, start.elapsed().as_secs_f64()),
    );
    Ok(programs)
}

/// The target's sysroot, from the cache or fetched and unpacked.
fn sysroot(
    contexts: &Contexts,
    plan: &SysrootPlan,
    platform: &Platform,
    outcomes: &Outcomes,
) -> Result<PathBuf, Error> {
    let context = &contexts.image;
    let cache = context.cache;
    let root = sysroot_root(cache, &plan.key);
    let _lock = cache.lock_item(&format!("sysroot-{}", plan.key.hex()))?;
    let name = plan.name(platform);
    if toolchain::sysroot::is_complete(&root) {
        outcomes.record(NodeKind::Sysroot, &plan.key, node(Outcome::Local, 0.0));
        return Ok(root);
    }
    if root.exists() {
        fs::remove_dir_all(&root).map_err(io_error(&root))?;
    }
    let start = Instant::now();
    let step = Step::start(context.reporter, &format!("assembling {name}"));
    let debs = fetch_debs(context, &plan.packages, &platform.name, outcomes)?;
    let names: Vec<String> = plan
        .packages
        .iter()
        .map(|package| format!("{} {}", package.name, package.version))
        .collect();
    toolchain::sysroot::assemble(&debs, &names, platform, &root)
        .map_err(toolchain_error(platform))?;
    step.finish();
    outcomes.record(
        NodeKind::Sysroot,
        &plan.key,
        node(Outcome::Built, start.elapsed().as_secs_f64()),
    );
    Ok(root)
}

/// The programs and the sysroot joined: cheap and derived, so a hit when
/// both parts were hits, whether or not the cache had the joined tree.
fn compose(
    cache: &Cache,
    plan: &ToolchainPlan,
    programs: &Programs,
    sysroot_plan: &SysrootPlan,
    sysroot: &Path,
    outcomes: &Outcomes,
) -> Result<CrossGcc, Error> {
    let key = compiler_key(&plan.key, &sysroot_plan.key);
    let root = compiler_root(cache, &key);
    let _lock = cache.lock_item(&format!("compiler-{}", key.hex()))?;
    if let Ok(gcc) = CrossGcc::open(&root) {
        outcomes.record(NodeKind::Compiler, &key, node(Outcome::Local, 0.0));
        return Ok(gcc);
    }
    if fs::symlink_metadata(&root).is_ok() {
        fs::remove_dir_all(&root).map_err(io_error(&root))?;
    }
    let start = Instant::now();
    let gcc = toolchain::compose(programs, sysroot, &root, &plan.identity)
        .map_err(toolchain_error(&plan.platform))?;
    let parts_hit = [
        outcomes.get(NodeKind::Toolchain, &plan.key),
        outcomes.get(NodeKind::Sysroot, &sysroot_plan.key),
    ]
    .iter()
    .all(|part| part.is_some_and(|part| part.outcome.is_hit()));
    let outcome = if parts_hit {
        Outcome::Local
    } else {
        Outcome::Built
    };
    outcomes.record(
        NodeKind::Compiler,
        &key,
        node(outcome, start.elapsed().as_secs_f64()),
    );
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

/// The latest source toolchain build with this recipe on this cache, if any.
fn toolchain_build_history_key() -> Sha256Digest {
    KeyBuilder::new("toolchain-build-time")
        .text("recipe", toolchain::source::RECIPE)
        .finish()
}

/// How long building the cached toolchain from source took (what a hit
/// saves), if this cache recorded it.
pub(in crate::pipeline) fn recorded_toolchain_build(
    cache: &Cache,
    plan: &ToolchainPlan,
) -> Result<Option<f64>, Error> {
    Ok(cache
        .get_entry::<ToolchainBuildRecord>("toolchain-build", &plan.key)?
        .map(|record| record.seconds))
}

/// Estimated seconds of a source toolchain build here: scaled from the
/// latest one this cache recorded, or from [`DEFAULT_TOOLCHAIN_BUILD_CORE_SECONDS`].
pub(in crate::pipeline) fn estimate_toolchain_build(cache: &Cache) -> Result<f64, Error> {
    let core_seconds = cache
        .get_entry::<ToolchainBuildRecord>("toolchain-build-time", &toolchain_build_history_key())?
        .map(|record| record.seconds * record.cores as f64)
        .unwrap_or(DEFAULT_TOOLCHAIN_BUILD_CORE_SECONDS);
    Ok(core_seconds / cores() as f64)
}

/// The refusal to start a source toolchain build nobody asked for.
pub(in crate::pipeline) fn not_allowed(cache: &Cache, toolchain: &str) -> Result<Error, Error> {
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

/// The cross GCC built from source, from the cache or — only with
/// `--allow-toolchain-build` — built now (inputs fetched and verified like
/// any package; the build log kept in `logs/`).
fn source_gcc(
    contexts: &Contexts,
    plan: &ToolchainPlan,
    outcomes: &Outcomes,
) -> Result<CrossGcc, Error> {
    let ToolchainProvider::Source {
        kernel_headers,
        libc,
    } = &plan.provider
    else {
        unreachable!("source_gcc is called for source toolchains only");
    };
    let context = &contexts.host;
    let cache = context.cache;
    let key = plan.key;
    let platform = &plan.platform;
    let root = toolchain_root(cache, &key);
    let _lock = cache.lock_item(&format!("toolchain-{}", key.hex()))?;
    if let Ok(gcc) = CrossGcc::open(&root) {
        let saved = recorded_toolchain_build(cache, plan)?.unwrap_or_default();
        outcomes.record(
            NodeKind::Toolchain,
            &key,
            node(Outcome::Local, 0.0).with_saved_seconds(saved),
        );
        return Ok(gcc);
    }
    if !context.options.allow_toolchain_build {
        return Err(not_allowed(cache, &plan.name)?);
    }
    if root.exists() {
        // Left by an interrupted build: never used, rebuilt.
        fs::remove_dir_all(&root).map_err(io_error(&root))?;
    }
    let start = Instant::now();
    let step = Step::start(
        context.reporter,
        &format!("building {} from source", plan.name),
    );
    // Host-side packages come from the build machine's suite, the kernel
    // headers (the plan's last package) from the target's.
    let (host_packages, _) = plan.packages.split_at(plan.packages.len() - 1);
    let mut debs = fetch_debs(context, host_packages, &plan.name, outcomes)?;
    debs.extend(fetch_debs(
        &contexts.image,
        std::slice::from_ref(kernel_headers.as_ref()),
        &platform.name,
        outcomes,
    )?);
    let libc_tree = sources::materialize(context, libc, outcomes)?;
    let mut binutils = None;
    let mut gcc_source = None;
    let mut kernel = None;
    let mut host_libraries = Vec::new();
    let mut identity = vec![libc.describe()];
    for (package, deb) in plan.packages.iter().zip(&debs) {
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
        plan.name,
        estimate_toolchain_build(cache)? / 60.0,
        log.display()
    ));
    let gcc = toolchain::source::build(&inputs, platform, &root, cores(), &log)
        .map_err(toolchain_error(platform))?;
    step.finish();
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
    outcomes.record(
        NodeKind::Toolchain,
        &key,
        node(Outcome::Built, record.seconds),
    );
    Ok(gcc)
}
