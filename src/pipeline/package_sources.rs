//! The package sources of a build, as a list: every `deb` source the
//! manifest names (or the host's apt uses), each verified into its signed
//! Release, plus the suite compiler programs come from — one more source
//! with the `toolchain` use, not a field of its own.
//!
//! Which source a package comes from is apt's choice for an empty system
//! (`apt-get install --no-install-recommends`): every source of equal
//! priority is one pool and the highest version wins, so `bookworm-security`
//! and `bookworm-updates` overlay `bookworm`; a suite whose Release says
//! `NotAutomatic: yes` (backports, experimental) gives a package only when
//! the manifest asks for it by name (`pkg/bookworm-backports`, as
//! `apt-get install pkg/bookworm-backports`). Each resolved package keeps
//! the position of its source ([`ResolvedPackage::origin`]), and is fetched
//! from there.
//!
//! [`ResolvedPackage::origin`]: super::ResolvedPackage

use super::BuildOptions;
use super::resolve::IndexUse;
use crate::Error;
use crate::cache::Cache;
use crate::debian::index::{self, SignedRelease};
use crate::debian::release::Keyring;
use crate::debian::repository::{self, Repository, is_overlay_suite};
use crate::http::HttpClient;
use crate::plan::SourceSummary;
use crate::progress::Reporter;

/// What a source is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceUse {
    /// The image's packages, sysroots and Debian source packages.
    Image,
    /// Compiler programs (and the emulator) for the build machine.
    Toolchain,
}

/// One package source with its verified Release.
pub struct PackageSource {
    pub repository: Repository,
    pub release: SignedRelease,
    /// Read for the image's packages.
    pub image: bool,
    /// Read for the build machine's compiler programs.
    pub toolchain: bool,
}

impl PackageSource {
    /// Whether it is read for `purpose`.
    pub fn serves(&self, purpose: SourceUse) -> bool {
        match purpose {
            SourceUse::Image => self.image,
            SourceUse::Toolchain => self.toolchain,
        }
    }

    /// `NotAutomatic: yes`: packages only when asked for by name.
    pub fn only_when_asked(&self) -> bool {
        self.release.release.not_automatic
    }

    /// Whether `release` (of a `pkg/release` request) names this source:
    /// its suite as configured, or its Release's `Suite` or `Codename`, as
    /// apt matches a target release.
    pub fn answers_to(&self, release: &str) -> bool {
        let signed = &self.release.release;
        self.repository.suite == release
            || signed.suite.as_deref() == Some(release)
            || signed.codename.as_deref() == Some(release)
    }
}

/// The verified package sources of a build, in order.
pub struct PackageSources {
    pub list: Vec<PackageSource>,
    /// What a user should know about the list (a stable suite without its
    /// `-security` source beside it), shown by `plan` and `build`.
    pub notes: Vec<String>,
}

impl PackageSources {
    /// Selects the sources (manifest, `--mirror`, else the host's apt),
    /// verifies each one's InRelease, and adds the build machine's suite
    /// for compiler programs when `uses` has [`SourceUse::Toolchain`] and
    /// no source serves it; only the sources serving one of `uses` are
    /// kept. Each InRelease read is added to `indices`.
    pub fn verify(
        options: &BuildOptions,
        cache: &Cache,
        http: &HttpClient,
        reporter: &dyn Reporter,
        uses: &[SourceUse],
        indices: &mut Vec<IndexUse>,
    ) -> Result<PackageSources, Error> {
        let with_toolchain = uses.contains(&SourceUse::Toolchain);
        let with_image = uses.contains(&SourceUse::Image);
        let repositories = repository::select(
            &options.manifest.packages.repositories,
            options.mirror.as_deref(),
        )?;
        let first = repositories
            .iter()
            .find(|repository| !is_overlay_suite(&repository.suite))
            .unwrap_or(&repositories[0])
            .clone();
        for platform in &options.targets {
            if !repositories
                .iter()
                .any(|repository| platform.is_available_in_suite(&repository.suite))
            {
                return Err(Error::Target {
                    target: platform.name.clone(),
                    message: format!(
                        "Debian has {} packages only from suite {} on, and the sources are {}; set packages.repository.suite = \"{}\" in {}",
                        platform.debian_arch,
                        platform.min_suite.as_deref().unwrap_or("?"),
                        describe_all(&repositories),
                        platform.min_suite.as_deref().unwrap_or("?"),
                        options.manifest.path.display()
                    ),
                });
            }
        }
        let toolchain_suite = toolchain_suite(options, &first).unwrap_or(first.suite.clone());
        let mut planned: Vec<(Repository, bool, bool)> = Vec::new();
        let mut toolchain_found = false;
        for repository in repositories {
            let toolchain = !toolchain_found
                && repository.suite == toolchain_suite
                && repository.url == first.url;
            toolchain_found |= toolchain;
            planned.push((repository, true, toolchain));
        }
        if with_toolchain && !toolchain_found {
            planned.push((
                Repository {
                    suite: toolchain_suite,
                    components: vec!["main".to_owned()],
                    architectures: Vec::new(),
                    ..first
                },
                false,
                true,
            ));
        }
        let mut list = Vec::new();
        // Sources of one archive share a keyring: each file is read once.
        let mut keyrings: Vec<(Vec<std::path::PathBuf>, Keyring)> = Vec::new();
        for (repository, image, toolchain) in planned {
            let (image, toolchain) = (image && with_image, toolchain && with_toolchain);
            if !image && !toolchain {
                continue;
            }
            let keyring = match keyrings
                .iter()
                .find(|(paths, _)| *paths == repository.keyrings)
            {
                Some((_, keyring)) => keyring.clone(),
                None => {
                    let keyring =
                        Keyring::load_all(&repository.keyrings).map_err(index::IndexError::from)?;
                    keyrings.push((repository.keyrings.clone(), keyring.clone()));
                    keyring
                }
            };
            let release = index::fetch_release(
                &repository,
                &keyring,
                cache,
                http,
                reporter,
                options.now,
                options.index_freshness(),
            )?;
            indices.push(IndexUse::of(&release.fetch, release.digest, None));
            list.push(PackageSource {
                repository,
                release,
                image,
                toolchain,
            });
        }
        let notes = security_notes(&list);
        Ok(PackageSources { list, notes })
    }

    /// The sources read for `purpose`, with their positions.
    pub fn serving(&self, purpose: SourceUse) -> impl Iterator<Item = (usize, &PackageSource)> {
        self.list
            .iter()
            .enumerate()
            .filter(move |(_, source)| source.serves(purpose))
    }

    /// The source at `position` (a package's origin).
    pub fn get(&self, position: usize) -> &PackageSource {
        &self.list[position]
    }

    /// The first source read for `purpose`: the image's release (its
    /// codename for os-release) or the build machine's suite.
    pub fn main(&self, purpose: SourceUse) -> &PackageSource {
        self.serving(purpose)
            .map(|(_, source)| source)
            .find(|source| !is_overlay_suite(&source.repository.suite))
            .or_else(|| self.serving(purpose).map(|(_, source)| source).next())
            .expect("a source list is never empty")
    }

    /// `URL SUITE, URL SUITE` of the sources read for `purpose`.
    pub fn describe(&self, purpose: SourceUse) -> String {
        self.serving(purpose)
            .map(|(_, source)| source.repository.describe())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The list as plans and reports show it.
    pub fn summaries(&self) -> Vec<SourceSummary> {
        self.list
            .iter()
            .enumerate()
            .map(|(id, source)| {
                let mut used_for = Vec::new();
                if source.image {
                    used_for.push("image".to_owned());
                }
                if source.toolchain {
                    used_for.push("toolchain".to_owned());
                }
                SourceSummary {
                    id,
                    url: source.repository.shown_url(),
                    suite: source.repository.suite.clone(),
                    components: source.repository.components.clone(),
                    used_for,
                    only_when_asked: source.only_when_asked(),
                    date: source
                        .release
                        .release
                        .date
                        .map(crate::debian::release::format_release_date),
                }
            })
            .collect()
    }
}

fn describe_all(repositories: &[Repository]) -> String {
    repositories
        .iter()
        .map(Repository::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The suite compiler programs come from: `--toolchain-suite` (or
/// `XBUILD_TOOLCHAIN_SUITE`), else the suite the host's own apt uses from
/// the image's archive (the build machine's Debian release: a newer
/// suite's compilers need a newer glibc than it has), else the image's.
pub fn toolchain_suite(options: &BuildOptions, image: &Repository) -> Option<String> {
    options
        .toolchain_suite
        .clone()
        .or_else(|| repository::host_suite_of(&image.url))
}

/// A note per image source that is a stable Debian release (its Release
/// says `Suite: stable`, `oldstable`…) with no `<codename>-security`
/// source in the list: its images would miss Debian's security fixes.
fn security_notes(list: &[PackageSource]) -> Vec<String> {
    let mut notes = Vec::new();
    for source in list.iter().filter(|source| source.image) {
        let release = &source.release.release;
        let stable = matches!(
            release.suite.as_deref(),
            Some("stable" | "oldstable" | "oldoldstable")
        );
        if !stable || is_overlay_suite(&source.repository.suite) {
            continue;
        }
        let codename = release
            .codename
            .clone()
            .unwrap_or_else(|| source.repository.suite.clone());
        let security = format!("{codename}-security");
        if list
            .iter()
            .any(|other| other.image && other.answers_to(&security))
        {
            continue;
        }
        notes.push(format!(
            "{} is a stable release, and no {security} source is beside it: images get none of Debian's security fixes. Add `[[packages.repository]]` with `url = \"http://<mirror>/debian-security\"` and `suite = \"{security}\"`",
            source.repository.describe()
        ));
    }
    notes
}
