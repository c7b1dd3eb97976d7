//! The resolve step: choose the repository, verify its signed indices, and
//! compute each target's package closure. A closure is cached under a key of
//! the index digests and the request, so an unchanged rebuild neither
//! downloads nor parses a `Packages` index.

use super::BuildOptions;
use crate::Error;
use crate::cache::{BlobOrigin, Bucket, Cache, EntryMeta};
use crate::debian::index::{self, IndexFetch, SignedRelease};
use crate::debian::release::Keyring;
use crate::debian::repository::{self, Repository};
use crate::debian::resolve::{self as resolver, Reason, Request, Universe};
use crate::hash::Sha256Digest;
use crate::http::HttpClient;
use crate::plan::KeyBuilder;
use crate::platform::Platform;
use crate::progress::Reporter;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Version of the resolver's behaviour; part of every resolution key.
///
/// v2: depth-first marking in apt's order, alternatives one at a time with
/// their providers, fallback to the next when one cannot be installed, and
/// the lightest provider of a pure-virtual name.
const RESOLVER_VERSION: &str = "resolver-v2";

/// One package of a target's closure, as later steps need it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResolvedPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub filename: String,
    pub size: u64,
    pub sha256: Sha256Digest,
    pub installed_size_kib: Option<u64>,
    /// Why it is in the image: `requested`, or the relation that pulled it.
    pub reason: String,
    /// The source package it was built from: `name version`.
    #[serde(default)]
    pub source: String,
    /// Its `Built-Using` field, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_using: Option<String>,
}

/// How a relation on a pure-virtual name was met: the providers tried,
/// lightest first, and the one taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderChoice {
    /// `requested`, or the relation with the name, as in
    /// [`ResolvedPackage::reason`].
    pub reason: String,
    /// The pure-virtual name.
    pub virtual_name: String,
    /// The provider selected.
    pub chosen: String,
    pub providers: Vec<ProviderOption>,
}

/// A provider of a [`ProviderChoice`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderOption {
    pub name: String,
    pub version: String,
    /// The packages it would add (itself included); `None` when it cannot
    /// be installed.
    pub added: Option<usize>,
}

impl ProviderChoice {
    fn from_resolver(choice: &resolver::ProviderChoice) -> Self {
        ProviderChoice {
            reason: reason_text(&choice.reason),
            virtual_name: choice.virtual_name.clone(),
            chosen: choice.chosen.clone(),
            providers: choice
                .providers
                .iter()
                .map(|option| ProviderOption {
                    name: option.name.clone(),
                    version: option.version.clone(),
                    added: option.added,
                })
                .collect(),
        }
    }

    /// `provider of v: chosen (+3 packages), lightest of 3 (b +5, c cannot
    /// be installed); for Depends of parent: relation`.
    pub fn describe(&self) -> String {
        let weight = |option: &ProviderOption| match option.added {
            Some(1) => "+1 package".to_owned(),
            Some(count) => format!("+{count} packages"),
            None => "cannot be installed".to_owned(),
        };
        let mut text = format!("provider of {}: {}", self.virtual_name, self.chosen);
        if let Some(chosen) = self
            .providers
            .iter()
            .find(|option| option.name == self.chosen)
        {
            let _ = write!(text, " ({})", weight(chosen));
        }
        let others: Vec<String> = self
            .providers
            .iter()
            .filter(|option| option.name != self.chosen)
            .map(|option| format!("{} {}", option.name, weight(option)))
            .collect();
        if !others.is_empty() {
            let _ = write!(
                text,
                ", lightest of {} ({})",
                self.providers.len(),
                others.join(", ")
            );
        }
        let _ = write!(text, "; for {}", self.reason);
        text
    }
}

/// A target's closure.
#[derive(Debug, Clone)]
pub struct TargetResolution {
    pub platform: Platform,
    /// Sorted by name.
    pub packages: Vec<ResolvedPackage>,
    /// Dependencies left out, and why.
    pub skipped: Vec<String>,
    /// Providers chosen for pure-virtual relations.
    pub choices: Vec<ProviderChoice>,
    /// The target packages builds compile and link against: `libc6-dev`,
    /// the `-dev` packages builds name, and their closure. Empty without
    /// `[[build]]` entries and for musl targets.
    pub sysroot: Vec<ResolvedPackage>,
}

#[derive(Serialize, Deserialize)]
struct ResolutionRecord {
    packages: Vec<ResolvedPackage>,
    skipped: Vec<String>,
    choices: Vec<ProviderChoice>,
}

/// One request's closure, as [`resolve_request`] returns it.
pub(super) struct RequestResolution {
    /// Sorted by name.
    pub packages: Vec<ResolvedPackage>,
    /// Dependencies left out, and why.
    pub skipped: Vec<String>,
    pub choices: Vec<ProviderChoice>,
}

/// The outcome of the resolve step.
pub struct Resolved {
    pub repository: Repository,
    pub release: SignedRelease,
    /// The build machine's suite of the same archive, where compiler
    /// programs come from, when it is not the image's
    /// ([`toolchain_suite`]).
    pub host: Option<(Repository, SignedRelease)>,
    pub targets: Vec<TargetResolution>,
    /// The indices resolving consulted (the plan's index nodes).
    pub indices: Vec<IndexUse>,
}

/// An index a resolution consulted, and how it was obtained: fetched now,
/// found in the cache, or not read at all (the resolution was cached).
#[derive(Debug, Clone)]
pub struct IndexUse {
    /// `InRelease`, `bookworm/main/binary-arm64/Packages.xz`.
    pub name: String,
    /// The target it was read for (`None`: the Release, for every target).
    pub target: Option<String>,
    /// The index's digest: the InRelease bytes', or the one the signed
    /// Release gives.
    pub digest: Sha256Digest,
    pub origin: BlobOrigin,
    pub bytes: u64,
    pub seconds: f64,
}

impl IndexUse {
    fn of(fetch: &IndexFetch, digest: Sha256Digest, target: Option<&str>) -> IndexUse {
        IndexUse {
            name: fetch.name.clone(),
            target: target.map(str::to_owned),
            digest,
            origin: fetch.origin,
            bytes: fetch.bytes,
            seconds: fetch.seconds,
        }
    }
}

/// Resolves every target of `options`.
pub fn resolve_all(
    options: &BuildOptions,
    cache: &Cache,
    http: &HttpClient,
    reporter: &dyn Reporter,
) -> Result<Resolved, Error> {
    let manifest = &options.manifest;
    let repository = repository::select(
        manifest.packages.repository.as_ref(),
        options.mirror.as_deref(),
    )?;
    for platform in &options.targets {
        if !platform.is_available_in_suite(&repository.suite) {
            return Err(Error::Target {
                target: platform.name.clone(),
                message: format!(
                    "Debian has {} packages only from suite {} on, and the repository's suite is {}; set packages.repository.suite = \"{}\" in {}",
                    platform.debian_arch,
                    platform.min_suite.as_deref().unwrap_or("?"),
                    repository.suite,
                    platform.min_suite.as_deref().unwrap_or("?"),
                    manifest.path.display()
                ),
            });
        }
    }
    let keyring = Keyring::load_all(&repository.keyrings).map_err(index::IndexError::from)?;
    let release = index::fetch_release(
        &repository,
        &keyring,
        cache,
        http,
        reporter,
        options.now,
        options.index_max_age,
    )?;
    let mut indices = vec![IndexUse::of(&release.fetch, release.digest, None)];
    let host = match toolchain_suite(options, &repository) {
        Some(suite) if !manifest.builds.is_empty() && suite != repository.suite => {
            let host_repository = Repository {
                suite,
                components: vec!["main".to_owned()],
                ..repository.clone()
            };
            let host_release = index::fetch_release(
                &host_repository,
                &keyring,
                cache,
                http,
                reporter,
                options.now,
                options.index_max_age,
            )?;
            indices.push(IndexUse::of(&host_release.fetch, host_release.digest, None));
            Some((host_repository, host_release))
        }
        _ => None,
    };
    let context = ResolveContext {
        options,
        repository: &repository,
        release: &release,
        cache,
        http,
        reporter,
    };
    // Targets resolve two at a time: each fetches and scans its own index,
    // and more at once would only add memory on a small machine.
    let mut results: Vec<Result<(TargetResolution, Vec<IndexUse>), Error>> = Vec::new();
    for chunk in options.targets.chunks(2) {
        results.extend(std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|platform| {
                    let context = &context;
                    scope.spawn(move || {
                        let mut indices = Vec::new();
                        resolve_target(context, platform, &mut indices)
                            .map(|target| (target, indices))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().expect("resolver thread panicked"))
                .collect::<Vec<_>>()
        }));
    }
    let mut targets = Vec::new();
    for result in results {
        let (target, target_indices) = result?;
        targets.push(target);
        indices.extend(target_indices);
    }
    Ok(Resolved {
        repository,
        release,
        host,
        targets,
        indices,
    })
}

/// The suite compiler programs come from: `--toolchain-suite` (or
/// `XBUILD_TOOLCHAIN_SUITE`), else the suite the host's own apt uses from
/// this archive (the build machine's Debian release: a newer suite's
/// compilers need a newer glibc than it has), else the image's.
pub fn toolchain_suite(options: &BuildOptions, repository: &Repository) -> Option<String> {
    options
        .toolchain_suite
        .clone()
        .or_else(|| repository::host_suite_of(&repository.url))
}

impl Resolved {
    /// The context later steps resolve and fetch in: this repository and
    /// its verified Release.
    pub(super) fn context<'a>(
        &'a self,
        options: &'a BuildOptions,
        cache: &'a Cache,
        http: &'a HttpClient,
        reporter: &'a dyn Reporter,
    ) -> ResolveContext<'a> {
        ResolveContext {
            options,
            repository: &self.repository,
            release: &self.release,
            cache,
            http,
            reporter,
        }
    }

    /// The contexts of builds: the image's suite and the build machine's.
    pub(super) fn contexts<'a>(
        &'a self,
        options: &'a BuildOptions,
        cache: &'a Cache,
        http: &'a HttpClient,
        reporter: &'a dyn Reporter,
    ) -> super::compile::Contexts<'a> {
        let image = self.context(options, cache, http, reporter);
        let host = match &self.host {
            Some((repository, release)) => ResolveContext {
                repository,
                release,
                ..self.context(options, cache, http, reporter)
            },
            None => self.context(options, cache, http, reporter),
        };
        super::compile::Contexts { image, host }
    }
}

/// Where a resolution runs: the repository, its verified Release and the
/// shared services.
pub(super) struct ResolveContext<'a> {
    pub options: &'a BuildOptions,
    pub repository: &'a Repository,
    pub release: &'a SignedRelease,
    pub cache: &'a Cache,
    pub http: &'a HttpClient,
    pub reporter: &'a dyn Reporter,
}

/// Packages of the C library's closure whose runtime parts the image
/// does not get from a build's `-dev` packages: the image gets `libc6`
/// itself, and nothing of what only `libc6-dev` pulls in.
const LIBC_DEVELOPMENT: [&str; 4] = [
    "libc6-dev",
    "libc-dev-bin",
    "linux-libc-dev",
    "libcrypt-dev",
];

/// Packages of `libc6-dev`'s closure a sysroot leaves out: programs for
/// the target, never run by a build.
const SYSROOT_EXCLUDES: [&str; 2] = ["libc-dev-bin", "rpcsvc-proto"];

fn resolve_target(
    context: &ResolveContext,
    platform: &Platform,
    indices: &mut Vec<IndexUse>,
) -> Result<TargetResolution, Error> {
    let options = context.options;
    let spec = &options.manifest.packages;
    let arch = &platform.debian_arch;
    let builds = &options.manifest.builds;
    let glibc = platform.libc == crate::platform::Libc::Gnu;
    let request = |include: Vec<String>, exclude: &[&str]| Request {
        include,
        exclude: exclude.iter().map(|name| name.to_string()).collect(),
        install_time_dependencies: false,
        without_dependencies: false,
    };
    // The -dev packages builds compile against: the runtime libraries they
    // bring go into the image too.
    let mut development: Vec<String> = builds
        .iter()
        .flat_map(|build| build.sysroot.clone())
        .collect();
    development.sort();
    development.dedup();
    let runtime = if development.is_empty() || !glibc {
        Vec::new()
    } else {
        resolve_request(
            context,
            &platform.name,
            arch,
            &request(development.clone(), &LIBC_DEVELOPMENT),
            indices,
        )?
        .packages
    };
    // A glibc target's sysroot: the target's own C library and the -dev
    // packages, from the image's suite (the same glibc as the image).
    let sysroot = if builds.is_empty() || !glibc {
        Vec::new()
    } else {
        let mut include = vec!["libc6-dev".to_owned()];
        include.extend(development);
        resolve_request(
            context,
            &platform.name,
            arch,
            &request(include, &SYSROOT_EXCLUDES),
            indices,
        )?
        .packages
    };
    let mut include = spec.include.clone();
    let mut add = |name: &str| {
        if !include.iter().any(|existing| existing == name) {
            include.push(name.to_owned());
        }
    };
    if !builds.is_empty() && glibc {
        add("libc6");
    }
    for package in &runtime {
        if !package.name.ends_with("-dev") && !package.name.ends_with("-dev-bin") {
            add(&package.name);
        }
    }
    let request = Request {
        include,
        exclude: spec.exclude.clone(),
        install_time_dependencies: spec.install_time_dependencies,
        without_dependencies: false,
    };
    let resolution = resolve_request(context, &platform.name, arch, &request, indices)?;
    Ok(TargetResolution {
        platform: platform.clone(),
        packages: resolution.packages,
        skipped: resolution.skipped,
        choices: resolution.choices,
        sysroot,
    })
}

/// Resolves `request` against the `arch` indices of the repository, cached
/// under a key of the exact index digests and the request. `target` names
/// the platform in reports and errors; the indices it consults are added
/// to `indices`.
pub(super) fn resolve_request(
    context: &ResolveContext,
    target: &str,
    arch: &str,
    request: &Request,
    indices: &mut Vec<IndexUse>,
) -> Result<RequestResolution, Error> {
    let ResolveContext {
        repository,
        release,
        cache,
        http,
        reporter,
        ..
    } = *context;
    // The key pins the exact index bytes (by the signed Release's digests)
    // and everything the resolver is asked.
    let mut key = KeyBuilder::new("resolution")
        .text("resolver", RESOLVER_VERSION)
        .text("arch", arch)
        .list("include", request.include.iter().map(String::as_str))
        .list("exclude", request.exclude.iter().map(String::as_str))
        .text(
            "dependencies",
            if request.without_dependencies {
                "none"
            } else {
                "closure"
            },
        )
        .text(
            "install-time-dependencies",
            if request.install_time_dependencies {
                "yes"
            } else {
                "no"
            },
        );
    let mut index_paths = Vec::new();
    for component in &repository.components {
        match index::packages_index_path(&release.release, component, arch) {
            Some((path, hash)) => {
                key = key
                    .text("index", &path)
                    .digest("index-digest", &hash.digest);
                index_paths.push((path, hash.digest));
            }
            None => key = key.text("index-missing", component),
        }
    }
    let key = key.finish();
    if let Some(record) = cache.get_entry::<ResolutionRecord>(Bucket::Resolution, &key)? {
        for (path, digest) in &index_paths {
            indices.push(IndexUse {
                name: format!("{}/{path}", repository.suite),
                target: Some(target.to_owned()),
                digest: *digest,
                origin: BlobOrigin::Local,
                bytes: 0,
                seconds: 0.0,
            });
        }
        return Ok(RequestResolution {
            packages: record.packages,
            skipped: record.skipped,
            choices: record.choices,
        });
    }

    let mut packages = Vec::new();
    for component in &repository.components {
        let fetched =
            index::fetch_packages(repository, release, component, arch, cache, http, reporter)?;
        indices.push(IndexUse::of(&fetched.fetch, fetched.digest, Some(target)));
        packages.extend(index::read_packages(&fetched, arch, &request.include)?);
    }
    let universe = Universe::new(packages);
    let resolution = resolver::resolve(&universe, request).map_err(|source| Error::Resolution {
        target: target.to_owned(),
        source,
    })?;
    let packages: Vec<ResolvedPackage> = resolution
        .packages
        .iter()
        .map(|resolved| {
            let package = &resolved.package;
            ResolvedPackage {
                name: package.name.clone(),
                version: package.version.to_string(),
                architecture: package.architecture.clone(),
                filename: package.filename.clone(),
                size: package.size,
                sha256: package.sha256,
                installed_size_kib: package.installed_size_kib,
                source: format!("{} {}", package.source_name(), package.source_version()),
                built_using: package.built_using.clone(),
                reason: reason_text(&resolved.reason),
            }
        })
        .collect();
    let skipped: Vec<String> = resolution
        .skipped
        .iter()
        .map(|skip| {
            format!(
                "{} of {}: {} ({})",
                skip.field, skip.parent, skip.relation, skip.reason
            )
        })
        .collect();
    let choices: Vec<ProviderChoice> = resolution
        .choices
        .iter()
        .map(ProviderChoice::from_resolver)
        .collect();
    let record = ResolutionRecord {
        packages,
        skipped,
        choices,
    };
    // Needs no blob: the packages it names are fetched when used. For a
    // compiler, `target` is the pair `build → target`.
    cache.put_entry(
        Bucket::Resolution,
        &key,
        &record,
        EntryMeta::for_platform(target.replace(" → ", "->")),
    )?;
    Ok(RequestResolution {
        packages: record.packages,
        skipped: record.skipped,
        choices: record.choices,
    })
}

/// `requested`, or `Depends of parent: relation`.
fn reason_text(reason: &Reason) -> String {
    match reason {
        Reason::Requested => "requested".to_owned(),
        Reason::Dependency {
            parent,
            relation,
            field,
        } => format!("{field} of {parent}: {relation}"),
    }
}
