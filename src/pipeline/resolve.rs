//! The resolve step: verify the package sources' signed indices
//! ([`super::package_sources`]) and compute each target's package closure
//! over all of them. A closure is cached under a key of the sources, their
//! index digests and the request, so an unchanged rebuild neither downloads
//! nor parses a `Packages` index.

use super::BuildOptions;
use super::package_sources::{PackageSource, PackageSources, SourceUse};
use crate::Error;
use crate::cache::{BlobOrigin, Bucket, Cache, EntryMeta};
use crate::debian::index::{self, IndexFetch};
use crate::debian::package::Package;
use crate::debian::resolve::{self as resolver, Reason, Request, Universe};
use crate::hash::Sha256Digest;
use crate::http::HttpClient;
use crate::manifest::package_and_release;
use crate::plan::KeyBuilder;
use crate::platform::Platform;
use crate::progress::Reporter;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// Version of the resolver's behaviour; part of every resolution key.
///
/// v2: depth-first marking in apt's order, alternatives one at a time with
/// their providers, fallback to the next when one cannot be installed, and
/// the lightest provider of a pure-virtual name. v3: over a list of
/// sources, each package recording its origin.
const RESOLVER_VERSION: &str = "resolver-v3-sources";

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
    /// The package source it comes from.
    pub origin: PackageOrigin,
}

/// Where a resolved package comes from: a source of the build's list (see
/// [`PackageSources`]) and the component whose index named it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageOrigin {
    /// The source's position in the list (the plan's `sources[id]`).
    pub source: usize,
    pub suite: String,
    pub component: String,
}

impl PackageOrigin {
    /// `bookworm-security/main`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.suite, self.component)
    }
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
    /// Sources not read for this target, and why.
    pub notes: Vec<String>,
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
    /// Sources not read for the architecture, and why.
    pub notes: Vec<String>,
}

/// The outcome of the resolve step.
pub struct Resolved {
    /// Every source, verified: the image's and the build machine's.
    pub sources: PackageSources,
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
    pub(super) fn of(fetch: &IndexFetch, digest: Sha256Digest, target: Option<&str>) -> IndexUse {
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
    let mut indices = Vec::new();
    let uses: &[SourceUse] = if options.manifest.builds.is_empty() {
        &[SourceUse::Image]
    } else {
        &[SourceUse::Image, SourceUse::Toolchain]
    };
    let sources = PackageSources::verify(options, cache, http, reporter, uses, &mut indices)?;
    let context = ResolveContext {
        options,
        sources: &sources,
        purpose: SourceUse::Image,
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
        sources,
        targets,
        indices,
    })
}

impl Resolved {
    /// The context later steps resolve and fetch the image's packages in.
    pub(super) fn context<'a>(
        &'a self,
        options: &'a BuildOptions,
        cache: &'a Cache,
        http: &'a HttpClient,
        reporter: &'a dyn Reporter,
    ) -> ResolveContext<'a> {
        ResolveContext {
            options,
            sources: &self.sources,
            purpose: SourceUse::Image,
            cache,
            http,
            reporter,
        }
    }

    /// The contexts of builds: the image's sources and the build
    /// machine's.
    pub(super) fn contexts<'a>(
        &'a self,
        options: &'a BuildOptions,
        cache: &'a Cache,
        http: &'a HttpClient,
        reporter: &'a dyn Reporter,
    ) -> super::compile::Contexts<'a> {
        let image = self.context(options, cache, http, reporter);
        let host = ResolveContext {
            purpose: SourceUse::Toolchain,
            ..self.context(options, cache, http, reporter)
        };
        super::compile::Contexts { image, host }
    }
}

/// Where a resolution runs: the verified sources, which of them it reads,
/// and the shared services.
pub(super) struct ResolveContext<'a> {
    pub options: &'a BuildOptions,
    pub sources: &'a PackageSources,
    pub purpose: SourceUse,
    pub cache: &'a Cache,
    pub http: &'a HttpClient,
    pub reporter: &'a dyn Reporter,
}

impl ResolveContext<'_> {
    /// The sources it reads, with their positions.
    pub fn used(&self) -> impl Iterator<Item = (usize, &PackageSource)> {
        self.sources.serving(self.purpose)
    }

    /// `URL SUITE, …` of the sources it reads, for messages.
    pub fn describe(&self) -> String {
        self.sources.describe(self.purpose)
    }

    /// The URL of a resolved package's `.deb`, at its own source.
    pub fn package_url(&self, package: &ResolvedPackage) -> String {
        let source = self.sources.get(package.origin.source);
        format!("{}/{}", source.repository.url, package.filename)
    }
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
        notes: resolution.notes,
    })
}

/// A `Packages` index of one source a request reads.
struct IndexInput<'a> {
    position: usize,
    source: &'a PackageSource,
    component: &'a str,
    path: String,
    hash: crate::debian::release::FileHash,
}

/// Resolves `request` against the `arch` indices of the context's sources,
/// cached under a key of the sources, the exact index digests and the
/// request. An include entry `name/release` takes `name` from that release
/// (the only way a `NotAutomatic` suite gives anything). `target` names the
/// platform in reports and errors; the indices it consults are added to
/// `indices`.
pub(super) fn resolve_request(
    context: &ResolveContext,
    target: &str,
    arch: &str,
    request: &Request,
    indices: &mut Vec<IndexUse>,
) -> Result<RequestResolution, Error> {
    let ResolveContext {
        cache,
        http,
        reporter,
        ..
    } = *context;
    let mut roots: Vec<String> = Vec::new();
    let mut pins: Vec<(&str, &str)> = Vec::new();
    for entry in &request.include {
        let (name, release) = package_and_release(entry);
        roots.push(name.to_owned());
        if let Some(release) = release {
            if !context.used().any(|(_, source)| source.answers_to(release)) {
                return Err(Error::Target {
                    target: target.to_owned(),
                    message: format!(
                        "`{entry}` asks for release {release}, and no package source is that suite or codename (the sources: {}); add it as a [[packages.repository]]",
                        context.describe()
                    ),
                });
            }
            pins.push((name, release));
        }
    }
    // The key pins the sources, the exact index bytes (by the signed
    // Releases' digests) and everything the resolver is asked.
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
    let mut inputs: Vec<IndexInput> = Vec::new();
    let mut notes = Vec::new();
    for (position, source) in context.used() {
        let release = &source.release.release;
        let listed = release.architectures.is_empty()
            || release
                .architectures
                .iter()
                .any(|a| a == arch || a == "all");
        if !source.repository.serves_architecture(arch) || !listed {
            notes.push(format!(
                "{} not read for {arch}: {}",
                source.repository.describe(),
                if listed {
                    format!(
                        "its sources entry limits it to {}",
                        source.repository.architectures.join(", ")
                    )
                } else {
                    format!("its Release lists {}", release.architectures.join(" "))
                }
            ));
            continue;
        }
        key = key
            .number("source", position as u64)
            .text("suite", &source.repository.suite)
            .text(
                "automatic",
                if source.only_when_asked() {
                    "no"
                } else {
                    "yes"
                },
            );
        for component in &source.repository.components {
            match index::packages_index_path(release, component, arch) {
                Some((path, hash)) => {
                    key = key
                        .text("index", &path)
                        .digest("index-digest", &hash.digest);
                    inputs.push(IndexInput {
                        position,
                        source,
                        component,
                        path,
                        hash,
                    });
                }
                None => key = key.text("index-missing", component),
            }
        }
    }
    if inputs.is_empty() {
        // Nothing to read: the first source's own error says why.
        let (_, first) = context.used().next().expect("a context reads a source");
        let release = &first.release.release;
        return Err(Error::from(
            if !release.architectures.is_empty() && !release.architectures.iter().any(|a| a == arch)
            {
                index::IndexError::MissingArchitecture {
                    url: first.repository.shown_url(),
                    suite: first.repository.suite.clone(),
                    arch: arch.to_owned(),
                    available: release.architectures.clone(),
                }
            } else {
                index::IndexError::MissingIndex {
                    url: format!(
                        "{}/dists/{}",
                        first.repository.shown_url(),
                        first.repository.suite
                    ),
                    component: first.repository.components.join(", "),
                    arch: arch.to_owned(),
                }
            },
        ));
    }
    let key = key.finish();
    if let Some(record) = cache.get_entry::<ResolutionRecord>(Bucket::Resolution, &key)? {
        for input in &inputs {
            indices.push(IndexUse {
                name: format!("{}/{}", input.source.repository.suite, input.path),
                target: Some(target.to_owned()),
                digest: input.hash.digest,
                origin: BlobOrigin::Local,
                bytes: 0,
                seconds: 0.0,
            });
        }
        return Ok(RequestResolution {
            packages: record.packages,
            skipped: record.skipped,
            choices: record.choices,
            notes,
        });
    }

    let mut fetched = Vec::new();
    for input in &inputs {
        let index = index::fetch_packages(
            &input.source.repository,
            &input.source.release,
            input.component,
            arch,
            cache,
            http,
            reporter,
        )?;
        indices.push(IndexUse::of(&index.fetch, index.digest, Some(target)));
        fetched.push(index);
    }
    let lists = index::read_packages(&fetched, arch, &roots)?;
    let (universe, origins) = pool(&inputs, lists, &pins);
    let request = Request {
        include: roots,
        ..request.clone()
    };
    let resolution =
        resolver::resolve(&universe, &request).map_err(|source| Error::Resolution {
            target: target.to_owned(),
            source,
        })?;
    let packages: Vec<ResolvedPackage> = resolution
        .packages
        .iter()
        .map(|resolved| {
            let package = &resolved.package;
            let input = &inputs[origins[&identity(package)]];
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
                origin: PackageOrigin {
                    source: input.position,
                    suite: input.source.repository.suite.clone(),
                    component: input.component.to_owned(),
                },
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
        notes,
    })
}

/// A package version's identity across sources.
fn identity(package: &Package) -> (String, String, String) {
    (
        package.name.clone(),
        package.version.to_string(),
        package.architecture.clone(),
    )
}

/// The packages the resolver chooses from, as apt's candidates for an
/// empty system: every source of equal priority in one pool (the highest
/// version wins; of equal versions, the first source's), a `NotAutomatic`
/// source's packages only where a pin names it, and a pinned name only
/// from the release its pin names. Also each version's index (in
/// `inputs`).
fn pool(
    inputs: &[IndexInput],
    lists: Vec<Vec<Package>>,
    pins: &[(&str, &str)],
) -> (Universe, HashMap<(String, String, String), usize>) {
    let pinned_to = |name: &str, source: &PackageSource| {
        let mut releases = pins.iter().filter(|(pin, _)| *pin == name).peekable();
        releases.peek()?;
        Some(releases.any(|(_, release)| source.answers_to(release)))
    };
    let mut origins = HashMap::new();
    let mut seen = HashSet::new();
    let mut packages = Vec::new();
    for (number, (input, list)) in inputs.iter().zip(lists).enumerate() {
        for package in list {
            let wanted = match pinned_to(&package.name, input.source) {
                Some(named) => named,
                None => !input.source.only_when_asked(),
            };
            if wanted && seen.insert(identity(&package)) {
                origins.insert(identity(&package), number);
                packages.push(package);
            }
        }
    }
    (Universe::new(packages), origins)
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
