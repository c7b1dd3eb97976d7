//! The crate's top-level error: every module's typed error, classified so
//! the binary can print a hint and exit with a distinct status per class.

use crate::cache::{CacheError, FetchError};
use crate::debian::deb::DebError;
use crate::debian::index::IndexError;
use crate::debian::release::ReleaseError;
use crate::debian::repository::RepositoryError;
use crate::debian::resolve::ResolveError;
use crate::debian::unpack::UnpackError;
use crate::http::HttpError;
use crate::image::layer::LayerError;
use crate::image::layout::LayoutError;
use crate::manifest::ManifestError;
use crate::platform::PlatformError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A signing or trusted key (`--sign`, `--trust`, `cache keygen`).
    #[error(transparent)]
    Key(#[from] xbuild_cache::sign::KeyError),
    /// A remote cache that cannot be used as given (`--remote`).
    #[error(transparent)]
    Remote(#[from] xbuild_cache::backend::RemoteError),
    /// Pushing an image to a registry failed (`--push`, `xbuild push`).
    #[error("cannot push {reference}")]
    Push {
        reference: String,
        #[source]
        source: xbuild_cache::backend::RemoteError,
    },
    /// `cache prewarm`: some uploads failed (each named on stderr).
    #[error("{failures} uploads to the remote cache failed")]
    UploadFailed { failures: usize },
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("cannot resolve the packages of {target}")]
    Resolution {
        target: String,
        #[source]
        source: ResolveError,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Deb(#[from] DebError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Writing a layer blob failed (a full disk, say), as opposed to
    /// reading or checking the packages that go into it.
    #[error("cannot write the layer of {what} to {}", path.display())]
    LayerOutput {
        what: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{target}: {message}")]
    Target { target: String, message: String },
    #[error(
        "{} builds would run, more than --max-builds {limit} allows: {}",
        .builds.len(),
        .builds.join(", ")
    )]
    TooManyBuilds { limit: usize, builds: Vec<String> },
    #[error(
        "{}: {} {} not in the cache:{}",
        match .require {
            crate::plan::RequireHits::Builds => "--require-hits",
            crate::plan::RequireHits::All => "--require-hits=all",
        },
        .misses.len(),
        if .misses.len() == 1 { "node is" } else { "nodes are" },
        .misses.iter().map(|miss| format!("\n  {miss}")).collect::<String>()
    )]
    MissingHits {
        require: crate::plan::RequireHits,
        misses: Vec<crate::plan::MissingHit>,
    },
    #[error(
        "{toolchain} is not in the cache and Debian has no binary for it: it would be built from source ({estimate}); not started without --allow-toolchain-build"
    )]
    ToolchainBuildNotAllowed { toolchain: String, estimate: String },
    #[error("toolchain for {target}: {message}")]
    Toolchain { target: String, message: String },
    #[error("the toolchain for {target}")]
    ToolchainSource {
        target: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot make the configure layer for {target}")]
    Configure {
        target: String,
        #[source]
        source: crate::configure::ConfigureError,
    },
    #[error("cannot make the layer of the build for {target}")]
    DirectoryLayer {
        target: String,
        #[source]
        source: crate::image::dir_layer::DirectoryLayerError,
    },
    #[error("source {what}")]
    Source {
        what: String,
        #[source]
        source: crate::debian::source::SourceError,
    },
    #[error("the C build for {target} failed")]
    CBuild {
        target: String,
        #[source]
        source: crate::build::c::CError,
    },
    #[error("the build for {target} failed")]
    Build {
        target: String,
        #[source]
        source: crate::build::cargo::CargoError,
    },
    #[error(
        "cache verify found {problems} problem{}; what was corrupt is removed",
        if *.problems == 1 { "" } else { "s" }
    )]
    CacheCorrupt { problems: usize },
    /// `[image] slim`: tracing, the slim image, or a probe that differs.
    #[error(transparent)]
    Slim(#[from] crate::slim::SlimError),
    #[error("package {package} ({target})")]
    Package {
        package: String,
        target: String,
        #[source]
        source: Box<Error>,
    },
}

/// Broad classes of failure, each with its own exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad input: manifest, target name, repository configuration (exit 2).
    Input,
    /// The network or a server failed (exit 3).
    Network,
    /// A signature, digest or path check refused data (exit 4).
    Integrity,
    /// The requested packages cannot be resolved (exit 5).
    Resolution,
    /// Local I/O or cache failure (exit 6).
    Local,
    /// A build of the user's code failed (exit 7).
    Build,
    /// `--require-hits`: something would be built or downloaded (exit 8).
    MissingHits,
    /// A registry refused the credentials, or has none for us (exit 9).
    Auth,
}

impl ErrorClass {
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorClass::Input => 2,
            ErrorClass::Network => 3,
            ErrorClass::Integrity => 4,
            ErrorClass::Resolution => 5,
            ErrorClass::Local => 6,
            ErrorClass::Build => 7,
            ErrorClass::MissingHits => 8,
            ErrorClass::Auth => 9,
        }
    }
}

/// A transfer that failed on this machine (writing the download, reading a
/// local mirror) is local I/O, or bad input when a local mirror's file does
/// not exist; anything else the network's.
fn http_class(error: &HttpError) -> ErrorClass {
    match error.last() {
        HttpError::LocalRead { .. } if error.is_not_found() => ErrorClass::Input,
        error if error.is_local() => ErrorClass::Local,
        _ => ErrorClass::Network,
    }
}

/// A push refused for its credentials is its own class; a registry that
/// cannot be reached or fails is the network's; the rest is input (a
/// repository or reference the registry refuses).
fn push_class(error: &xbuild_cache::backend::RemoteError) -> ErrorClass {
    use xbuild_cache::backend::RemoteError;
    match error {
        RemoteError::Auth { .. } | RemoteError::Credentials { .. } => ErrorClass::Auth,
        RemoteError::Status {
            status: 401 | 403, ..
        } => ErrorClass::Auth,
        error if error.is_unreachable() || error.is_transient() => ErrorClass::Network,
        RemoteError::Status { .. }
        | RemoteError::Transport { .. }
        | RemoteError::Timeout { .. } => ErrorClass::Network,
        // More bytes than the registry's own descriptor declares.
        RemoteError::TooLarge { .. } => ErrorClass::Integrity,
        _ => ErrorClass::Input,
    }
}

fn fetch_class(error: &FetchError) -> ErrorClass {
    match error {
        FetchError::Http(error) => http_class(error),
        FetchError::Cache(_) => ErrorClass::Local,
        FetchError::Mismatch { .. } => ErrorClass::Integrity,
    }
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Key(_) => ErrorClass::Input,
            Error::Remote(error) if error.is_unreachable() || error.is_transient() => {
                ErrorClass::Network
            }
            Error::Remote(_) => ErrorClass::Input,
            Error::UploadFailed { .. } => ErrorClass::Network,
            Error::Push { source, .. } => push_class(source),
            Error::Manifest(_)
            | Error::Platform(_)
            | Error::Repository(_)
            | Error::Target { .. } => ErrorClass::Input,
            Error::Index(error) => match error {
                IndexError::Http { source, .. } => http_class(source),
                IndexError::Fetch(error) => fetch_class(error),
                IndexError::Cache(_) => ErrorClass::Local,
                IndexError::MissingArchitecture { .. } | IndexError::MissingIndex { .. } => {
                    ErrorClass::Input
                }
                IndexError::Release(ReleaseError::Keyring { .. }) => ErrorClass::Input,
                _ => ErrorClass::Integrity,
            },
            Error::Resolution { .. } => ErrorClass::Resolution,
            Error::ToolchainSource { source, .. } if unsafe_package(source.as_ref()) => {
                ErrorClass::Integrity
            }
            Error::Toolchain { .. } | Error::ToolchainSource { .. } => ErrorClass::Local,
            Error::Source { .. } => ErrorClass::Integrity,
            Error::DirectoryLayer {
                source: crate::image::dir_layer::DirectoryLayerError::WhiteoutName { .. },
                ..
            } => ErrorClass::Integrity,
            Error::DirectoryLayer { .. } => ErrorClass::Local,
            Error::Configure { source, .. } => match source {
                crate::configure::ConfigureError::Account { .. }
                | crate::configure::ConfigureError::User { .. } => ErrorClass::Input,
                crate::configure::ConfigureError::Write { .. } => ErrorClass::Local,
                _ => ErrorClass::Integrity,
            },
            Error::TooManyBuilds { .. } | Error::ToolchainBuildNotAllowed { .. } => {
                ErrorClass::Input
            }
            Error::Build { .. } | Error::CBuild { .. } => ErrorClass::Build,
            Error::MissingHits { .. } => ErrorClass::MissingHits,
            Error::Cache(error) if error.is_integrity() => ErrorClass::Integrity,
            Error::Cache(_) => ErrorClass::Local,
            Error::CacheCorrupt { .. } => ErrorClass::Integrity,
            Error::Fetch(error) => fetch_class(error),
            Error::Deb(_) | Error::Layer(_) => ErrorClass::Integrity,
            Error::Layout(_) | Error::LayerOutput { .. } => ErrorClass::Local,
            Error::Slim(error) => error.class(),
            Error::Package { source, .. } => source.class(),
        }
    }

    /// What a person can do about it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Key(_) => None,
            Error::Slim(error) => error.hint(),
            Error::Remote(error) => error.hint(),
            Error::Push { source, .. } => match push_class(source) {
                ErrorClass::Auth => Some(
                    "log in to the registry (`podman login` or `docker login`, which write the credentials xbuild reads: $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, ~/.docker/config.json), or check the account's rights on the repository".into(),
                ),
                _ if crate::cache::remote::error_chain(source).contains("certificate") => Some(
                    "the registry's certificate is not trusted here: pass its CA with --registry-ca FILE (or SSL_CERT_FILE), or name the registry with --insecure-registry HOST if it speaks plain HTTP".into(),
                ),
                _ => source.hint(),
            },
            Error::UploadFailed { .. } => Some(
                "the entries that did reach the remote are complete; run the prewarm again to upload the rest".into(),
            ),
            Error::Repository(error) => Some(error.hint()),
            Error::Cache(error) => error.hint(),
            Error::Fetch(FetchError::Mismatch { .. }) => Some(
                "the mirror served data that does not match the signed index; nothing was cached. Retry later or use another mirror".into(),
            ),
            Error::Fetch(FetchError::Http(error))
            | Error::Index(IndexError::Http { source: error, .. })
            | Error::Index(IndexError::Fetch(FetchError::Http(error)))
                if error.hint().is_some() =>
            {
                error.hint()
            }
            Error::Layout(crate::image::layout::LayoutError::Write { path, source }) => {
                Some(crate::http::local_io_hint(path, source))
            }
            Error::LayerOutput { path, source, .. } => {
                Some(crate::http::local_io_hint(path, source))
            }
            Error::Index(error) => error.hint(),
            Error::Layer(LayerError::UnsafeEntry { package, .. }) => Some(format!(
                "a Debian package never needs such an entry, so {package} is crafted or broken and nothing of it was used; report it to the archive's maintainers, and leave it out of the image (drop it from [packages] include, or add it to [packages] exclude if another package pulls it in)"
            )),
            Error::DirectoryLayer {
                source: crate::image::dir_layer::DirectoryLayerError::WhiteoutName { .. },
                ..
            } => Some(
                "rename the file, or leave it out of what the build installs".into(),
            ),
            Error::ToolchainSource { source, .. } if unsafe_package(source.as_ref()) => Some(
                "a Debian package never needs such an entry, so the package is crafted or broken and nothing of the toolchain was kept; report it to the archive's maintainers".into(),
            ),
            Error::Resolution { .. } => Some(
                "check the package names in [packages] include, or add a package to exclude to drop an optional dependency".into(),
            ),
            Error::Package { source, .. } => source.hint(),
            Error::CBuild { source, .. } => source.hint(),
            Error::Build { .. } => Some(
                "cargo's output above says why; xbuild exits with status 7 whatever cargo's status (it is in the message)".into(),
            ),
            Error::MissingHits { require, .. } => Some(match require {
                crate::plan::RequireHits::Builds => "nothing was fetched or built; run without --require-hits to build them once into the cache, or prewarm a shared cache; `xbuild plan --explain` shows every node and why it misses".into(),
                crate::plan::RequireHits::All => "nothing was fetched or built; run without --require-hits=all to download and build them once into the cache, or prewarm a shared cache; `xbuild plan --explain` shows every node and why it misses".into(),
            }),
            Error::CacheCorrupt { .. } => Some(
                "the next build fetches or builds again what was removed; a second `xbuild cache verify` finds the cache clean".into(),
            ),
            Error::ToolchainBuildNotAllowed { .. } => Some(
                "run again with --allow-toolchain-build to build it once into the cache (every later build and every machine sharing the cache reuses it), or prewarm a shared cache with it; `xbuild plan --explain` shows what it is built from".into(),
            ),
            _ => None,
        }
    }
}

/// Whether `error` (a toolchain's) comes from a package whose data
/// tarball was refused while unpacking.
fn unsafe_package(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error
            .downcast_ref::<UnpackError>()
            .is_some_and(UnpackError::is_unsafe_archive)
        {
            return true;
        }
        current = error.source();
    }
    false
}

impl From<HttpError> for Error {
    fn from(error: HttpError) -> Self {
        Error::Fetch(FetchError::Http(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::entry_policy::UnsafeEntry;
    use crate::toolchain::ToolchainError;

    fn toolchain_unpack_error(source: UnpackError) -> Error {
        Error::ToolchainSource {
            target: "aarch64-linux".into(),
            source: Box::new(ToolchainError::Unpack {
                deb: "evil.deb".into(),
                source,
            }),
        }
    }

    #[test]
    fn a_package_refused_while_unpacking_a_toolchain_is_an_integrity_error() {
        let refused = toolchain_unpack_error(UnpackError::Refused {
            archive: "evil.deb".into(),
            entry: "./dev/sda".into(),
            problem: UnsafeEntry::Device { kind: "block" },
        });
        assert_eq!(refused.class().exit_code(), 4);
        assert!(refused.hint().unwrap().contains("crafted or broken"));
        let disk = toolchain_unpack_error(UnpackError::Write {
            archive: "good.deb".into(),
            path: "/full/disk".into(),
            source: std::io::Error::other("no space left"),
        });
        assert_eq!(disk.class().exit_code(), 6);
    }
}
