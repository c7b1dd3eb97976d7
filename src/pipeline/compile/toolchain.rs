//! Which compiler each build uses, planned without side effects: what it is
//! made of, its cache keys, and the identity build keys cover.
//!
//! - A glibc target: Debian's compiler programs for the (build machine,
//!   target) pair — native packages when the two are one architecture,
//!   cross packages otherwise — resolved from the build machine's suite
//!   (the host's own: trixie's compilers need a newer glibc than a bookworm
//!   build machine has), joined with a sysroot of the target's own
//!   `libc6-dev` and the build's `-dev` packages from the image's suite.
//! - A musl target that compiles C: a cross GCC built from source
//!   ([`crate::toolchain::source`]), with its own musl.
//! - A musl target whose cargo project compiles no C: no C compiler at
//!   all; rust-lld links.
//!
//! A compiler's identity — what decides its output — is the Debian sources
//! and versions its programs are made of (`gcc-12-cross 15 (built using
//! gcc-12 12.2.0-14)`, `binutils 2.40-2`) and the target triple; the
//! sysroot is identified by its packages' digests. Neither names the build
//! machine, so the same compiler on another machine gives the same build
//! keys, and a different one (arm64's native `gcc-12 12.2.0-14+deb12u1`
//! against amd64's cross build of 12.2.0-14) gives other keys.

use super::super::resolve::{IndexUse, ResolveContext, resolve_request};
use super::super::sources::{self, PlannedSource};
use super::super::{BuildOptions, ResolvedPackage, TargetResolution};
use crate::Error;
use crate::debian::resolve::Request;
use crate::hash::Sha256Digest;
use crate::plan::KeyBuilder;
use crate::platform::Platform;
use crate::toolchain;
use crate::toolchain::gcc::{self, SKIPPED_HOST_PACKAGES};
use serde::{Deserialize, Serialize};

/// The sources a build's parts are resolved in: the image's (target
/// packages, sysroots, sources) and the build machine's suite (compiler
/// programs).
pub(in crate::pipeline) struct Contexts<'a> {
    pub image: ResolveContext<'a>,
    pub host: ResolveContext<'a>,
}

/// How composed compilers are laid out ([`toolchain::compose`]); part of
/// their keys.
const COMPOSE_LAYOUT: &str = "compose-wrappers-prefix-map-v1";

/// Where a build's C compiler comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolchainProvider {
    /// Debian's compiler packages for the pair, joined with a sysroot of
    /// the target's own packages.
    Debian { native: bool },
    /// Built from source ([`toolchain::source`]) when Debian has no
    /// compiler for the pair: the plan's `packages` are the host-side
    /// inputs; these are the target-side ones.
    Source {
        kernel_headers: Box<ResolvedPackage>,
        libc: Box<PlannedSource>,
    },
    /// No C compiler: a build for a musl target that compiles no C.
    None,
}

impl ToolchainProvider {
    pub fn label(&self) -> &'static str {
        match self {
            ToolchainProvider::Debian { native: true } => "debian-native",
            ToolchainProvider::Debian { native: false } => "debian-cross",
            ToolchainProvider::Source { .. } => "source",
            ToolchainProvider::None => "none",
        }
    }
}

/// A planned toolchain: what it is made from, its key and name, and the
/// compiler identity builds with it are keyed by.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolchainPlan {
    /// The platform its compiler emits code for.
    pub platform: Platform,
    /// Its packages, for the build machine's architecture.
    pub packages: Vec<ResolvedPackage>,
    /// Its cache key: unlike the build's, it names the build machine.
    pub key: Sha256Digest,
    pub name: String,
    pub identity: String,
    pub provider: ToolchainProvider,
}

/// A planned sysroot: the target's packages, and its key (their digests).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SysrootPlan {
    pub packages: Vec<ResolvedPackage>,
    pub key: Sha256Digest,
}

impl SysrootPlan {
    /// The sysroot of a glibc target's builds, or `None` when it has none.
    pub fn of(target: &TargetResolution) -> Option<SysrootPlan> {
        if target.sysroot.is_empty() {
            return None;
        }
        let mut key = KeyBuilder::new("sysroot").text("layout", toolchain::sysroot::LAYOUT);
        for package in &target.sysroot {
            key = key
                .text("package", &package.name)
                .digest("deb", &package.sha256);
        }
        Some(SysrootPlan {
            packages: target.sysroot.clone(),
            key: key.finish(),
        })
    }

    /// `sysroot libc6-dev libssl-dev (aarch64-linux)`: its requested
    /// packages and its target.
    pub fn name(&self, platform: &Platform) -> String {
        format!(
            "sysroot {} ({})",
            self.packages
                .iter()
                .filter(|package| package.reason == "requested")
                .map(|package| package.name.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            platform.name
        )
    }
}

/// The key of the compiler composed of `toolchain` and `sysroot`.
pub(in crate::pipeline) fn compiler_key(
    toolchain: &Sha256Digest,
    sysroot: &Sha256Digest,
) -> Sha256Digest {
    KeyBuilder::new("compiler")
        .text("layout", COMPOSE_LAYOUT)
        .digest("toolchain", toolchain)
        .digest("sysroot", sysroot)
        .finish()
}

fn pair(options: &BuildOptions, platform: &Platform) -> String {
    format!("{} → {}", options.build_platform.name, platform.name)
}

/// Resolves Debian's compiler programs for (build machine, `platform`) in
/// the build machine's suite.
pub(super) fn plan_debian(
    contexts: &Contexts,
    platform: &Platform,
    indices: &mut Vec<IndexUse>,
) -> Result<ToolchainPlan, Error> {
    let options = contexts.host.options;
    let roots = gcc::debian_packages(&options.build_platform, platform);
    let request = Request {
        include: roots.include,
        exclude: roots.exclude,
        install_time_dependencies: false,
        without_dependencies: false,
    };
    let pair = pair(options, platform);
    let packages = resolve_request(
        &contexts.host,
        &pair,
        &options.build_platform.debian_arch,
        &request,
        indices,
    )
    .map_err(|error| no_compiler_for(error, &pair, &contexts.host))?
    .packages;
    let mut key = KeyBuilder::new("toolchain")
        .text("kind", "debian-gcc-programs-v1")
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
        name: if roots.native {
            format!("gcc {pair} (native)")
        } else {
            format!("gcc {pair}")
        },
        provider: ToolchainProvider::Debian {
            native: roots.native,
        },
    })
}

/// A resolution failure of the compiler packages, said as what it means.
fn no_compiler_for(error: Error, pair: &str, context: &ResolveContext) -> Error {
    match error {
        Error::Resolution { source, .. } => Error::Toolchain {
            target: pair.to_owned(),
            message: format!(
                "Debian has no compiler packages for {pair} in {} ({source}); building a glibc toolchain from source is not supported",
                context.describe()
            ),
        },
        other => other,
    }
}

/// Whether `name` is one of the packages that make a GCC's output: the
/// compiler, preprocessor, C++ compiler, binutils and GCC's support
/// libraries (`gcc-12-aarch64-linux-gnu`, `binutils-aarch64-linux-gnu`,
/// `libgcc-12-dev-arm64-cross`; `gcc-12`, `libgcc-12-dev` natively).
fn is_compiler_package(name: &str, platform: &Platform) -> bool {
    let triple = gcc::package_triple(&platform.gnu_triple);
    if name == format!("binutils-{triple}") {
        return true;
    }
    let versioned = |rest: &str| -> Option<String> {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        (!digits.is_empty()).then(|| rest[digits.len()..].to_owned())
    };
    for tool in ["gcc-", "cpp-", "g++-"] {
        if let Some(rest) = name.strip_prefix(tool).and_then(versioned)
            && (rest.is_empty() || rest == format!("-{triple}"))
        {
            return true;
        }
    }
    for library in ["libgcc-", "libstdc++-"] {
        if let Some(rest) = name.strip_prefix(library).and_then(versioned)
            && (rest == "-dev" || rest == format!("-dev-{}-cross", platform.debian_arch))
        {
            return true;
        }
    }
    false
}

/// The identity of a Debian compiler for `platform` (see the module doc).
pub(super) fn compiler_identity(platform: &Platform, packages: &[ResolvedPackage]) -> String {
    let mut parts: Vec<String> = packages
        .iter()
        .filter(|package| is_compiler_package(&package.name, platform))
        .map(|package| {
            let source = if package.source.is_empty() {
                format!("{} {}", package.name, package.version)
            } else {
                package.source.clone()
            };
            match &package.built_using {
                Some(built_using) => {
                    format!("{source} (built using {})", built_using_text(built_using))
                }
                None => source,
            }
        })
        .collect();
    parts.sort();
    parts.dedup();
    format!("{} for {}", parts.join("; "), platform.gnu_triple)
}

/// `gcc-12 (= 12.2.0-14), binutils (= 2.40-2)` → `gcc-12 12.2.0-14, binutils 2.40-2`.
fn built_using_text(field: &str) -> String {
    field
        .split(',')
        .map(|item| {
            item.replace("(= ", "")
                .replace(['(', ')'], "")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The major version of the suite's default GCC for the build machine:
/// `12` for bookworm.
fn default_gcc_major(contexts: &Contexts, indices: &mut Vec<IndexUse>) -> Result<String, Error> {
    let options = contexts.host.options;
    let request = Request {
        include: vec!["gcc".to_owned()],
        exclude: SKIPPED_HOST_PACKAGES
            .iter()
            .map(|name| name.to_string())
            .collect(),
        install_time_dependencies: false,
        without_dependencies: false,
    };
    let packages = resolve_request(
        &contexts.host,
        &options.build_platform.name,
        &options.build_platform.debian_arch,
        &request,
        indices,
    )?
    .packages;
    packages
        .iter()
        .find_map(|package| {
            let major = package.name.strip_prefix("gcc-")?;
            major.parse::<u32>().ok().map(|major| major.to_string())
        })
        .ok_or_else(|| Error::Toolchain {
            target: options.build_platform.name.clone(),
            message: format!(
                "the `gcc` package of {} depends on no gcc-<version>",
                contexts.host.describe()
            ),
        })
}

/// Plans a cross GCC built from source for `platform` (a musl target):
/// the source packages and host libraries for the build machine (its
/// suite), the target's kernel headers, and the C library's Debian source
/// package. Keyed by the pair, the recipe and every input's digest.
pub(super) fn plan_source(
    contexts: &Contexts,
    platform: &Platform,
    indices: &mut Vec<IndexUse>,
) -> Result<ToolchainPlan, Error> {
    let options = contexts.host.options;
    let pair = pair(options, platform);
    let only = |include: Vec<String>| Request {
        include,
        exclude: Vec::new(),
        install_time_dependencies: false,
        without_dependencies: true,
    };
    let major = default_gcc_major(contexts, indices)?;
    let mut packages = resolve_request(
        &contexts.host,
        &pair,
        &options.build_platform.debian_arch,
        &only(toolchain::source::host_packages(&major)),
        indices,
    )?
    .packages;
    let kernel = resolve_request(
        &contexts.image,
        &platform.name,
        &platform.debian_arch,
        &only(vec!["linux-libc-dev".to_owned()]),
        indices,
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
                "Debian has no compiler for {pair} and xbuild builds only musl toolchains from source"
            ),
        })?;
    let libc = sources::plan_debian_source(&contexts.host, libc_name)?;
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

/// No C compiler: rust-lld links a build for `platform` that compiles no C.
pub(super) fn plan_none(platform: &Platform) -> ToolchainPlan {
    ToolchainPlan {
        platform: platform.clone(),
        packages: Vec::new(),
        key: KeyBuilder::new("toolchain").text("kind", "none").finish(),
        name: "none (no C code; rust-lld links)".to_owned(),
        identity: "none".to_owned(),
        provider: ToolchainProvider::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Platforms;

    fn platform(name: &str) -> Platform {
        Platforms::builtin().unwrap().parse(name).unwrap().clone()
    }

    fn package(
        name: &str,
        version: &str,
        source: &str,
        built_using: Option<&str>,
    ) -> ResolvedPackage {
        ResolvedPackage {
            name: name.to_owned(),
            version: version.to_owned(),
            architecture: "amd64".to_owned(),
            filename: format!("pool/{name}.deb"),
            size: 1,
            sha256: Sha256Digest::of(format!("{name} {version}").as_bytes()),
            installed_size_kib: None,
            reason: "requested".to_owned(),
            source: source.to_owned(),
            built_using: built_using.map(str::to_owned),
            origin: Default::default(),
        }
    }

    /// The closure Debian's cross packages give on an amd64 or an arm64
    /// build machine (the host libraries differ; the compiler does not).
    fn s390x_cross(host_library_version: &str) -> Vec<ResolvedPackage> {
        let built_using = Some("gcc-12 (= 12.2.0-14)");
        vec![
            package(
                "gcc-12-s390x-linux-gnu",
                "12.2.0-14cross1",
                "gcc-12-cross 15",
                built_using,
            ),
            package(
                "cpp-12-s390x-linux-gnu",
                "12.2.0-14cross1",
                "gcc-12-cross 15",
                built_using,
            ),
            package(
                "libgcc-12-dev-s390x-cross",
                "12.2.0-14cross1",
                "gcc-12-cross 15",
                built_using,
            ),
            package(
                "gcc-12-s390x-linux-gnu-base",
                "12.2.0-14cross1",
                "gcc-12-cross 15",
                built_using,
            ),
            package(
                "binutils-s390x-linux-gnu",
                "2.40-2",
                "binutils 2.40-2",
                None,
            ),
            package(
                "gcc-s390x-linux-gnu",
                "4:12.2.0-3",
                "gcc-defaults 1.203",
                None,
            ),
            package("libisl23", host_library_version, "isl 0.25-1.1", None),
        ]
    }

    #[test]
    fn one_compiler_on_two_build_machines_has_one_identity() {
        let s390x = platform("s390x-linux");
        let amd64 = compiler_identity(&s390x, &s390x_cross("0.25-1.1"));
        let arm64 = compiler_identity(&s390x, &s390x_cross("0.25-1.1+b1"));
        assert_eq!(amd64, arm64);
        assert_eq!(
            amd64,
            "binutils 2.40-2; gcc-12-cross 15 (built using gcc-12 12.2.0-14) for s390x-linux-gnu"
        );
    }

    #[test]
    fn a_native_compiler_of_another_revision_has_another_identity() {
        let aarch64 = platform("aarch64-linux");
        let native = [
            package(
                "gcc-12",
                "12.2.0-14+deb12u1",
                "gcc-12 12.2.0-14+deb12u1",
                None,
            ),
            package(
                "libgcc-12-dev",
                "12.2.0-14+deb12u1",
                "gcc-12 12.2.0-14+deb12u1",
                None,
            ),
            package(
                "binutils-aarch64-linux-gnu",
                "2.40-2",
                "binutils 2.40-2",
                None,
            ),
            package("binutils", "2.40-2", "binutils 2.40-2", None),
            package("gcc", "4:12.2.0-3", "gcc-defaults 1.203", None),
        ];
        let identity = compiler_identity(&aarch64, &native);
        assert_eq!(
            identity,
            "binutils 2.40-2; gcc-12 12.2.0-14+deb12u1 for aarch64-linux-gnu"
        );
        let built_using = Some("gcc-12 (= 12.2.0-14)");
        let cross = [
            package(
                "gcc-12-aarch64-linux-gnu",
                "12.2.0-14cross1",
                "gcc-12-cross 15",
                built_using,
            ),
            package(
                "binutils-aarch64-linux-gnu",
                "2.40-2",
                "binutils 2.40-2",
                None,
            ),
        ];
        assert_ne!(identity, compiler_identity(&aarch64, &cross));
    }
}
