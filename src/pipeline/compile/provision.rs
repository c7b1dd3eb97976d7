//! Making a planned compiler real: each part is a tree of the cache
//! ([`Cache::get_or_build_tree`]), so concurrent xbuild processes build it
//! once and the others find it (and report it as a local hit):
//!
//! ```text
//! toolchains-v1/<key>/   compiler programs (Debian's, unpacked) or a toolchain built from source
//! sysroots-v3/<key>/     the target's packages (toolchain::sysroot)
//! compilers-v1/<key>/    programs + sysroot joined by wrapper scripts (toolchain::compose)
//! logs-v1/toolchain-<key>.log   the log of a source build
//! ```

use super::super::fetch::{fetch_debs, fetch_debs_then};
use super::super::sources;
use super::PlannedBuild;
use super::toolchain::{Contexts, SysrootPlan, ToolchainPlan, ToolchainProvider, compiler_key};
use crate::Error;
use crate::cache::{Bucket, Cache, EntryMeta, TreeOrigin};
use crate::hash::Sha256Digest;
use crate::parallel::cores;
use crate::plan::{KeyBuilder, NodeKind};
use crate::platform::Platform;
use crate::progress::Step;
use crate::report::{NodeOutcome, Outcome, Outcomes};
use crate::toolchain::{self, CrossGcc, Programs};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn toolchain_error(platform: &Platform) -> impl Fn(toolchain::ToolchainError) -> Error + '_ {
    move |source| Error::ToolchainSource {
        target: platform.name.clone(),
        source: Box::new(source),
    }
}

/// Whether the planned sysroot is in the cache, complete.
pub(in crate::pipeline) fn sysroot_cached(cache: &Cache, plan: &SysrootPlan) -> bool {
    toolchain::sysroot::is_complete(&cache.tree_path(Bucket::Sysroots, &plan.key))
}

/// Whether the compiler composed of these is in the cache.
pub(in crate::pipeline) fn compiler_cached(
    cache: &Cache,
    toolchain: &ToolchainPlan,
    sysroot: &SysrootPlan,
) -> bool {
    let key = compiler_key(&toolchain.key, &sysroot.key);
    CrossGcc::open(&cache.tree_path(Bucket::Compilers, &key)).is_ok()
}

/// Whether the planned toolchain is in the cache, complete.
pub(in crate::pipeline) fn toolchain_cached(cache: &Cache, plan: &ToolchainPlan) -> bool {
    let root = cache.tree_path(Bucket::Toolchains, &plan.key);
    match plan.provider {
        ToolchainProvider::Debian { .. } => Programs::open(&root).is_ok(),
        ToolchainProvider::Source { .. } => CrossGcc::open(&root).is_ok(),
        ToolchainProvider::None => true,
    }
}

/// The tree `key` of `bucket`, opened with `open`: from the cache, or
/// built now with `build`. A tree in place that does not open (one an
/// older xbuild left in another layout, or a damaged one) is removed and
/// built again.
fn tree<T>(
    cache: &Cache,
    bucket: Bucket,
    key: &Sha256Digest,
    meta: EntryMeta,
    open: impl Fn(&Path) -> Result<T, Error>,
    build: impl FnOnce(&Path) -> Result<(), Error>,
) -> Result<(T, TreeOrigin), Error> {
    let mut build = Some(build);
    loop {
        let (path, origin) = cache.get_or_build_tree(bucket, key, meta.clone(), |dir| {
            (build.take().expect("a tree is built at most once"))(dir)
        })?;
        match open(&path) {
            Ok(opened) => return Ok((opened, origin)),
            Err(_) if origin != TreeOrigin::Built && build.is_some() => {
                cache.remove_tree(bucket, key)?;
            }
            Err(error) => return Err(error),
        }
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
            compose(contexts, plan, &programs, sysroot_plan, &sysroot, outcomes).map(Some)
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
    let start = Instant::now();
    let platform = EntryMeta::pair(&context.options.build_platform.name, &plan.platform.name);
    let (programs, origin) = tree(
        context.cache,
        Bucket::Toolchains,
        &plan.key,
        EntryMeta::for_platform(platform),
        |root| Programs::open(root).map_err(toolchain_error(&plan.platform)),
        |work| {
            let step = Step::start(context.reporter, &format!("assembling {}", plan.name));
            let error = toolchain_error(&plan.platform);
            let assembly = toolchain::gcc::Assembly::begin(&plan.platform, work);
            fetch_debs_then(
                context,
                &plan.packages,
                &plan.name,
                outcomes,
                &|index, deb| assembly.add(index, deb).map_err(&error),
            )?;
            assembly.finish().map_err(&error)?;
            step.finish();
            Ok(())
        },
    )?;
    outcomes.record(NodeKind::Toolchain, &plan.key, tree_node(origin, start));
    Ok(programs)
}

/// The outcome of a toolchain part that was in the cache (local), unpacked
/// from a packed tree (local too: nothing fetched) or built now.
fn tree_node(origin: TreeOrigin, start: Instant) -> NodeOutcome {
    match origin {
        TreeOrigin::Built => node(Outcome::Built, start.elapsed().as_secs_f64()),
        TreeOrigin::Local | TreeOrigin::Unpacked => node(Outcome::Local, 0.0),
    }
}

/// The target's sysroot, from the cache or fetched and unpacked.
fn sysroot(
    contexts: &Contexts,
    plan: &SysrootPlan,
    platform: &Platform,
    outcomes: &Outcomes,
) -> Result<PathBuf, Error> {
    let context = &contexts.image;
    let name = plan.name(platform);
    let start = Instant::now();
    let (root, origin) = tree(
        context.cache,
        Bucket::Sysroots,
        &plan.key,
        EntryMeta::for_platform(platform.name.clone()),
        |root| {
            if toolchain::sysroot::is_complete(root) {
                Ok(root.to_owned())
            } else {
                Err(Error::Toolchain {
                    target: platform.name.clone(),
                    message: format!("the sysroot {} is incomplete", root.display()),
                })
            }
        },
        |work| {
            let step = Step::start(context.reporter, &format!("assembling {name}"));
            let debs = fetch_debs(context, &plan.packages, &platform.name, outcomes)?;
            let names: Vec<String> = plan
                .packages
                .iter()
                .map(|package| format!("{} {}", package.name, package.version))
                .collect();
            toolchain::sysroot::assemble(&debs, &names, platform, work)
                .map_err(toolchain_error(platform))?;
            step.finish();
            Ok(())
        },
    )?;
    outcomes.record(NodeKind::Sysroot, &plan.key, tree_node(origin, start));
    Ok(root)
}

/// The programs and the sysroot joined: cheap and derived, so a hit when
/// both parts were hits, whether or not the cache had the joined tree. Its
/// entry names the two trees its links point into.
fn compose(
    contexts: &Contexts,
    plan: &ToolchainPlan,
    programs: &Programs,
    sysroot_plan: &SysrootPlan,
    sysroot: &Path,
    outcomes: &Outcomes,
) -> Result<CrossGcc, Error> {
    let cache = contexts.image.cache;
    let start = Instant::now();
    let key = compiler_key(&plan.key, &sysroot_plan.key);
    let platform = EntryMeta::pair(
        &contexts.host.options.build_platform.name,
        &plan.platform.name,
    );
    let meta = EntryMeta::for_platform(platform)
        .with_tree(Bucket::Toolchains, plan.key)
        .with_tree(Bucket::Sysroots, sysroot_plan.key);
    let (gcc, origin) = tree(
        cache,
        Bucket::Compilers,
        &key,
        meta,
        |root| CrossGcc::open(root).map_err(toolchain_error(&plan.platform)),
        |work| {
            toolchain::compose(programs, sysroot, work, &plan.identity)
                .map_err(toolchain_error(&plan.platform))?;
            Ok(())
        },
    )?;
    let parts_hit = [
        outcomes.get(NodeKind::Toolchain, &plan.key),
        outcomes.get(NodeKind::Sysroot, &sysroot_plan.key),
    ]
    .iter()
    .all(|part| part.is_some_and(|part| part.outcome.is_hit()));
    let outcome = if origin != TreeOrigin::Built || parts_hit {
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
        .get_entry::<ToolchainBuildRecord>(Bucket::ToolchainBuild, &plan.key)?
        .map(|record| record.seconds))
}

/// Estimated seconds of a source toolchain build here: scaled from the
/// latest one this cache recorded, or from [`DEFAULT_TOOLCHAIN_BUILD_CORE_SECONDS`].
pub(in crate::pipeline) fn estimate_toolchain_build(cache: &Cache) -> Result<f64, Error> {
    let core_seconds = cache
        .get_entry::<ToolchainBuildRecord>(
            Bucket::ToolchainBuildTime,
            &toolchain_build_history_key(),
        )?
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
    let start = Instant::now();
    let mut built = None;
    let pair = EntryMeta::pair(&context.options.build_platform.name, &platform.name);
    let (gcc, origin) = tree(
        cache,
        Bucket::Toolchains,
        &key,
        EntryMeta::for_platform(pair),
        |root| CrossGcc::open(root).map_err(toolchain_error(&plan.platform)),
        |work| {
            if !context.options.allow_toolchain_build {
                return Err(not_allowed(cache, &plan.name)?);
            }
            let step = Step::start(
                context.reporter,
                &format!("building {} from source", plan.name),
            );
            build_source_gcc(contexts, plan, kernel_headers, libc, work, outcomes)?;
            step.finish();
            built = Some(ToolchainBuildRecord {
                seconds: start.elapsed().as_secs_f64(),
                cores: cores(),
            });
            Ok(())
        },
    )?;
    let Some(record) = built.filter(|_| origin == TreeOrigin::Built) else {
        let saved = recorded_toolchain_build(cache, plan)?.unwrap_or_default();
        outcomes.record(
            NodeKind::Toolchain,
            &key,
            node(Outcome::Local, 0.0).with_saved_seconds(saved),
        );
        return Ok(gcc);
    };
    let meta = EntryMeta::for_platform(EntryMeta::pair(
        &context.options.build_platform.name,
        &platform.name,
    ));
    cache.put_entry(Bucket::ToolchainBuild, &key, &record, meta.clone())?;
    cache.put_entry(
        Bucket::ToolchainBuildTime,
        &toolchain_build_history_key(),
        &record,
        meta,
    )?;
    outcomes.record(
        NodeKind::Toolchain,
        &key,
        node(Outcome::Built, record.seconds),
    );
    Ok(gcc)
}

/// Fetches the inputs of a source toolchain and builds it into `work`.
fn build_source_gcc(
    contexts: &Contexts,
    plan: &ToolchainPlan,
    kernel_headers: &crate::pipeline::ResolvedPackage,
    libc: &sources::PlannedSource,
    work: &Path,
    outcomes: &Outcomes,
) -> Result<(), Error> {
    let context = &contexts.host;
    let cache = context.cache;
    let platform = &plan.platform;
    // Host-side packages come from the build machine's suite, the kernel
    // headers (the plan's last package) from the target's.
    let (host_packages, _) = plan.packages.split_at(plan.packages.len() - 1);
    let mut debs = fetch_debs(context, host_packages, &plan.name, outcomes)?;
    debs.extend(fetch_debs(
        &contexts.image,
        std::slice::from_ref(kernel_headers),
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
    let log = cache.log_path(&format!("toolchain-{}.log", plan.key.hex()))?;
    context.reporter.on_note(&format!(
        "building {} (~{:.0} min estimated; log: {})",
        plan.name,
        estimate_toolchain_build(cache)? / 60.0,
        log.display()
    ));
    let scratch = cache.temp_dir(".build-")?;
    toolchain::source::build(&inputs, platform, work, scratch, cores(), &log)
        .map_err(toolchain_error(platform))?;
    Ok(())
}
