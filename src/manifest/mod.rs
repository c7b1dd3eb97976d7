//! The `xbuild.toml` manifest: its schema, defaults and validation.
//!
//! A manifest is read in two steps, like ripgrep's low-level and high-level
//! arguments: serde fills `Raw*` structs that keep the span of every value
//! (unknown keys are rejected, and the error lists the allowed ones), then
//! validation turns them into the typed, checked [`Manifest`] the pipeline
//! uses. Every error — syntax, unknown key, wrong type or a value the
//! validation refuses — reads `path:line:column: message`.
//!
//! ```toml
//! [image]
//! name = "cowsay-hello-world"   # OCI repository name
//! tag = "latest"
//! cmd = ["cowsay", "hello", "world"]
//! [packages]
//! include = ["cowsay"]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

mod account;
mod build;
mod cache;
mod ci;
mod repository;
pub use account::{
    AccountSpec, BUILTIN_ACCOUNTS, CaCertificate, DEFAULT_SHELL, check_pem_certificates,
};
use build::RawBuild;
pub use build::{BuildKind, BuildSource, BuildSpec, CargoOptions, Strip};
pub use cache::{CacheSpec, check_public_key, check_remote_url};
pub use ci::{CiSpec, CiTarget};
pub use repository::RepositorySpec;

/// The file name xbuild looks for in a project directory.
pub const FILE_NAME: &str = "xbuild.toml";
/// The image tag when `[image] tag` is not set.
pub const DEFAULT_TAG: &str = "latest";
/// `PATH` in the image environment unless `[image] env` sets it.
pub const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/games:/usr/games";
/// Most layers an image gets unless `[packages] layer-budget` says otherwise.
pub const DEFAULT_LAYER_BUDGET: u32 = 100;
/// Fewest layers a budget may allow (packages, plus the image's own files).
pub const MINIMUM_LAYER_BUDGET: u32 = 2;
/// Most layers a budget may allow: overlay-based runtimes refuse more than 127.
pub const MAXIMUM_LAYER_BUDGET: u32 = 127;

/// A 1-based line and column (in characters) within a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextPosition {
    pub line: usize,
    pub column: usize,
}

impl TextPosition {
    /// The position of byte `offset` in `text` (clamped to the text).
    pub fn at_offset(text: &str, offset: usize) -> TextPosition {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |index| index + 1);
        TextPosition {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// Errors reading or validating an `xbuild.toml`.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "{} does not exist; create an {FILE_NAME} there with an [image] table \
         (see examples/cowsay/{FILE_NAME})",
        path.display()
    )]
    NotFound { path: PathBuf },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key, a missing key or a value of the wrong type.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A well-typed value that xbuild does not accept.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// A validated `xbuild.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The file it was read from.
    pub path: PathBuf,
    /// The absolute directory containing it; relative paths are resolved here.
    pub dir: PathBuf,
    pub image: ImageSpec,
    pub packages: PackagesSpec,
    /// `[[build]]` entries: sources cross-compiled for each target.
    pub builds: Vec<BuildSpec>,
    /// `[cache]`: remote caches and trusted keys.
    pub cache: CacheSpec,
    /// `[ci]`: the targets a CI pipeline builds.
    pub ci: CiSpec,
    /// `[[account]]` entries: user accounts the image gets besides root
    /// and nobody.
    pub accounts: Vec<AccountSpec>,
}

/// `[image]`: the image's name and its OCI config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSpec {
    /// Repository name, e.g. `cowsay-hello-world` or `example.org/team/app`.
    pub name: String,
    pub tag: String,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// The environment, `PATH` included ([`DEFAULT_PATH`] unless overridden).
    pub env: BTreeMap<String, String>,
    /// Absolute working directory.
    pub workdir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`.
    pub user: Option<String>,
    /// Where `user` is written, for errors found while building.
    pub user_position: Option<TextPosition>,
    pub labels: BTreeMap<String, String>,
    /// Exposed ports, sorted and without duplicates.
    pub ports: Vec<ExposedPort>,
    /// `docs = true`: package layers keep documentation, man and info
    /// pages and every locale (default: left out).
    pub docs: bool,
    /// Absolute path prefixes kept although small images leave them out
    /// (and kept by slimming, whether traced or not).
    pub keep: Vec<String>,
    /// `ca-certificates`: certificate authorities the image trusts besides
    /// the packaged ones (with the `ca-certificates` package).
    pub ca_certificates: Vec<CaCertificate>,
    /// `slim = true`: the image holds only the files its command and
    /// probes were traced using (see [`crate::slim`]).
    pub slim: bool,
    /// `slim-probes`: commands run, traced, and run again on the slim
    /// image, besides the image's own command.
    pub slim_probes: Vec<Vec<String>>,
}

impl ImageSpec {
    /// `name:tag`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }

    /// The environment as OCI config `Env` spells it: `KEY=value`, sorted by key.
    pub fn env_list(&self) -> Vec<String> {
        self.env
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect()
    }
}

/// The transport protocol of an exposed port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortProtocol {
    Tcp,
    Udp,
    Sctp,
}

/// A port the image exposes; displays as OCI `ExposedPorts` keys do (`8080/tcp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExposedPort {
    pub number: u16,
    pub protocol: PortProtocol,
}

impl fmt::Display for ExposedPort {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocol = match self.protocol {
            PortProtocol::Tcp => "tcp",
            PortProtocol::Udp => "udp",
            PortProtocol::Sctp => "sctp",
        };
        write!(formatter, "{}/{protocol}", self.number)
    }
}

/// `[packages]`: the Debian packages an image contains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackagesSpec {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Keep dependencies needed only to install (`Pre-Depends: dpkg` & co.).
    pub install_time_dependencies: bool,
    /// The package sources, in order; empty means the host apt's.
    pub repositories: Vec<RepositorySpec>,
    /// Most layers per image.
    pub layer_budget: u32,
}

impl Default for PackagesSpec {
    fn default() -> Self {
        Self {
            include: Vec::new(),
            exclude: Vec::new(),
            install_time_dependencies: false,
            repositories: Vec::new(),
            layer_budget: DEFAULT_LAYER_BUDGET,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawManifest {
    image: RawImage,
    packages: Option<RawPackages>,
    #[serde(default)]
    build: Vec<RawBuild>,
    cache: Option<cache::RawCache>,
    ci: Option<ci::RawCi>,
    #[serde(default)]
    account: Vec<account::RawAccount>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawImage {
    name: Spanned<String>,
    tag: Option<Spanned<String>>,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, Spanned<String>>,
    workdir: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    #[serde(default)]
    labels: BTreeMap<Spanned<String>, String>,
    #[serde(default)]
    ports: Vec<Spanned<String>>,
    #[serde(default)]
    docs: bool,
    #[serde(default)]
    keep: Vec<Spanned<String>>,
    #[serde(default)]
    ca_certificates: Vec<Spanned<String>>,
    #[serde(default)]
    slim: bool,
    #[serde(default)]
    slim_probes: Vec<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPackages {
    #[serde(default)]
    include: Vec<Spanned<String>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    #[serde(default)]
    install_time_dependencies: bool,
    repository: Option<Spanned<repository::RawRepositories>>,
    layer_budget: Option<Spanned<i64>>,
}

impl Manifest {
    /// Reads and validates `path`; a directory means its `xbuild.toml`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let path = if path.is_dir() {
            path.join(FILE_NAME)
        } else {
            path.to_path_buf()
        };
        let text = match fs_err::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(ManifestError::NotFound { path });
            }
            Err(source) => return Err(ManifestError::Read { path, source }),
        };
        Manifest::parse(&text, &path)
    }

    /// Parses and validates `text`, read from `path` (used in errors and to
    /// resolve relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|error| {
            let position = TextPosition::at_offset(text, error.span().map_or(0, |span| span.start));
            ManifestError::Syntax {
                path: path.to_path_buf(),
                line: position.line,
                column: position.column,
                message: error.message().trim_end().to_owned(),
            }
        })?;
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let dir = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
        let validator = Validator { text, path };
        let image = validator.image(raw.image, &dir)?;
        let packages = match raw.packages {
            Some(packages) => validator.packages(packages, &dir)?,
            None => PackagesSpec::default(),
        };
        let builds = raw
            .build
            .into_iter()
            .map(|build| validator.build(build, &dir))
            .collect::<Result<_, _>>()?;
        let cache = match raw.cache {
            Some(cache) => validator.cache(cache)?,
            None => CacheSpec::default(),
        };
        let ci = match raw.ci {
            Some(ci) => validator.ci(ci)?,
            None => CiSpec::default(),
        };
        let accounts = validator.accounts(raw.account)?;
        Ok(Manifest {
            path: path.to_path_buf(),
            dir,
            image,
            packages,
            builds,
            cache,
            ci,
            accounts,
        })
    }
}

/// Turns raw values into checked ones, reporting errors at their spans.
struct Validator<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Validator<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> ManifestError {
        let position = TextPosition::at_offset(self.text, span.start);
        ManifestError::Invalid {
            path: self.path.to_path_buf(),
            line: position.line,
            column: position.column,
            message: message.into(),
        }
    }

    fn image(&self, raw: RawImage, dir: &Path) -> Result<ImageSpec, ManifestError> {
        check_repository_name(raw.name.get_ref())
            .map_err(|message| self.error(raw.name.span(), message))?;
        let tag = match raw.tag {
            Some(tag) => {
                check_tag(tag.get_ref()).map_err(|message| self.error(tag.span(), message))?;
                tag.into_inner()
            }
            None => DEFAULT_TAG.to_owned(),
        };
        let mut env = BTreeMap::from([("PATH".to_owned(), DEFAULT_PATH.to_owned())]);
        for (key, value) in raw.env {
            if key.get_ref().is_empty() || key.get_ref().contains(['=', '\0']) {
                return Err(self.error(
                    key.span(),
                    format!(
                        "environment variable name `{}` must be non-empty, without `=` or NUL",
                        key.get_ref()
                    ),
                ));
            }
            if value.get_ref().contains('\0') {
                return Err(self.error(value.span(), "environment value contains NUL"));
            }
            env.insert(key.into_inner(), value.into_inner());
        }
        if let Some(workdir) = &raw.workdir
            && !workdir.get_ref().starts_with('/')
        {
            return Err(self.error(
                workdir.span(),
                format!("workdir `{}` must be an absolute path", workdir.get_ref()),
            ));
        }
        if let Some(user) = &raw.user {
            check_user(user.get_ref()).map_err(|message| self.error(user.span(), message))?;
        }
        let mut labels = BTreeMap::new();
        for (key, value) in raw.labels {
            if key.get_ref().trim().is_empty() {
                return Err(self.error(key.span(), "label name is empty"));
            }
            labels.insert(key.into_inner(), value);
        }
        let mut ports = BTreeSet::new();
        for port in &raw.ports {
            let parsed =
                parse_port(port.get_ref()).map_err(|message| self.error(port.span(), message))?;
            if !ports.insert(parsed) {
                return Err(self.error(port.span(), format!("port {parsed} is listed twice")));
            }
        }
        for path in &raw.keep {
            let shown = path.get_ref();
            if !shown.starts_with('/')
                || shown.contains('\0')
                || shown.split('/').any(|part| part == "..")
            {
                return Err(self.error(
                    path.span(),
                    format!("keep path `{shown}` must be an absolute path without `..`"),
                ));
            }
        }
        let ca_certificates = self.ca_certificates(raw.ca_certificates, dir)?;
        for probe in &raw.slim_probes {
            if probe.get_ref().is_empty() || probe.get_ref()[0].is_empty() {
                return Err(self.error(
                    probe.span(),
                    "a slim probe is a non-empty command, e.g. [\"cowsay\", \"moo\"]",
                ));
            }
            if probe.get_ref().iter().any(|arg| arg.contains('\0')) {
                return Err(self.error(probe.span(), "a slim probe argument contains NUL"));
            }
        }
        if !raw.slim
            && let Some(probe) = raw.slim_probes.first()
        {
            return Err(self.error(
                probe.span(),
                "slim-probes are run only for a slim image: set `slim = true`",
            ));
        }
        if raw.slim && raw.cmd.is_none() && raw.entrypoint.is_none() && raw.slim_probes.is_empty() {
            return Err(self.error(
                raw.name.span(),
                "a slim image needs a cmd, an entrypoint or slim-probes to trace",
            ));
        }
        Ok(ImageSpec {
            user_position: raw
                .user
                .as_ref()
                .map(|user| TextPosition::at_offset(self.text, user.span().start)),
            ca_certificates,
            name: raw.name.into_inner(),
            tag,
            cmd: raw.cmd,
            entrypoint: raw.entrypoint,
            env,
            workdir: raw.workdir.map(Spanned::into_inner),
            user: raw.user.map(Spanned::into_inner),
            labels,
            ports: ports.into_iter().collect(),
            docs: raw.docs,
            keep: raw.keep.into_iter().map(Spanned::into_inner).collect(),
            slim: raw.slim,
            slim_probes: raw
                .slim_probes
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
        })
    }

    fn packages(&self, raw: RawPackages, dir: &Path) -> Result<PackagesSpec, ManifestError> {
        let include = self.package_names(raw.include, "include")?;
        let exclude = self.package_names(raw.exclude, "exclude")?;
        if let Some(both) = exclude.iter().find(|name| {
            include
                .iter()
                .any(|included| package_and_release(included.get_ref()).0 == name.get_ref())
        }) {
            return Err(self.error(
                both.span(),
                format!("package `{}` is both included and excluded", both.get_ref()),
            ));
        }
        let layer_budget = match raw.layer_budget {
            Some(budget) => u32::try_from(*budget.get_ref())
                .ok()
                .filter(|value| (MINIMUM_LAYER_BUDGET..=MAXIMUM_LAYER_BUDGET).contains(value))
                .ok_or_else(|| {
                    self.error(
                        budget.span(),
                        format!(
                            "layer-budget must be between {MINIMUM_LAYER_BUDGET} and \
                             {MAXIMUM_LAYER_BUDGET}, not {}",
                            budget.get_ref()
                        ),
                    )
                })?,
            None => DEFAULT_LAYER_BUDGET,
        };
        let repositories = match raw.repository {
            Some(list) => self.repositories(list, dir)?,
            None => Vec::new(),
        };
        Ok(PackagesSpec {
            include: include.into_iter().map(Spanned::into_inner).collect(),
            exclude: exclude.into_iter().map(Spanned::into_inner).collect(),
            install_time_dependencies: raw.install_time_dependencies,
            repositories,
            layer_budget,
        })
    }

    /// Checks Debian package names and that none is listed twice; in
    /// `include`, a name may name its release (`name/bookworm-backports`).
    fn package_names(
        &self,
        names: Vec<Spanned<String>>,
        list: &str,
    ) -> Result<Vec<Spanned<String>>, ManifestError> {
        let mut seen = BTreeSet::new();
        for entry in &names {
            let (name, release) = package_and_release(entry.get_ref());
            check_package_name(name).map_err(|message| self.error(entry.span(), message))?;
            match release {
                Some(_) if list != "include" => {
                    return Err(self.error(
                        entry.span(),
                        format!(
                            "`{}`: only include names a release (`name/suite`)",
                            entry.get_ref()
                        ),
                    ));
                }
                Some(release) => {
                    crate::debian::repository::check_archive_path(release, "release")
                        .and_then(|()| match release.contains('/') {
                            true => Err(format!("release `{release}` has a `/`")),
                            false => Ok(()),
                        })
                        .map_err(|message| self.error(entry.span(), message))?;
                }
                None => {}
            }
            if !seen.insert(name) {
                return Err(self.error(
                    entry.span(),
                    format!("package `{name}` is listed twice in {list}"),
                ));
            }
        }
        Ok(names)
    }
}

/// OCI distribution repository names: `/`-separated components of lowercase
/// letters and digits, joined inside a component by `.`, `_`, `__` or `-`s.
fn check_repository_name(name: &str) -> Result<(), String> {
    const RULE: &str = "an image name is lowercase letters and digits, separated inside a \
                        part by `.`, `_`, `__` or `-`, parts joined by `/`";
    if name.is_empty() {
        return Err("image name is empty".to_owned());
    }
    if name.len() > 255 {
        return Err(format!(
            "image name is {} characters long; the limit is 255",
            name.len()
        ));
    }
    if name.chars().any(|character| character.is_ascii_uppercase()) {
        return Err(format!(
            "image name `{name}` has uppercase letters ({RULE}); try `{}`",
            name.to_ascii_lowercase()
        ));
    }
    for component in name.split('/') {
        if !is_repository_component(component) {
            return Err(format!("image name `{name}` is not valid: {RULE}"));
        }
    }
    Ok(())
}

fn is_repository_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alphanumeric = |byte: u8| byte.is_ascii_lowercase() || byte.is_ascii_digit();
    if bytes.is_empty() || !alphanumeric(bytes[0]) || !alphanumeric(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut index = 0;
    while index < bytes.len() {
        if alphanumeric(bytes[index]) {
            index += 1;
            continue;
        }
        let separator_start = index;
        while index < bytes.len() && !alphanumeric(bytes[index]) {
            index += 1;
        }
        let separator = &component[separator_start..index];
        let allowed = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !allowed {
            return false;
        }
    }
    true
}

/// Tags: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), String> {
    let valid_first = tag
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric() || first == '_');
    let valid_rest = tag
        .chars()
        .all(|character| character.is_ascii_alphanumeric() || matches!(character, '_' | '.' | '-'));
    if valid_first && valid_rest && tag.len() <= 128 {
        Ok(())
    } else {
        Err(format!(
            "tag `{tag}` is not valid: up to 128 letters, digits, `_`, `.` and `-`, \
             not starting with `.` or `-`"
        ))
    }
}

fn check_user(user: &str) -> Result<(), String> {
    let valid = user.split(':').count() <= 2
        && user.split(':').all(|part| {
            !part.is_empty() && !part.chars().any(|character| character.is_whitespace())
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "user `{user}` is not valid: expected `user`, `uid`, `user:group` or `uid:gid`"
        ))
    }
}

/// `8080/tcp`, `53/udp`, `9999/sctp`, or `9090` (TCP).
fn parse_port(text: &str) -> Result<ExposedPort, String> {
    let (number, protocol) = text.split_once('/').unwrap_or((text, "tcp"));
    let protocol = match protocol.to_ascii_lowercase().as_str() {
        "tcp" => PortProtocol::Tcp,
        "udp" => PortProtocol::Udp,
        "sctp" => PortProtocol::Sctp,
        _ => {
            return Err(format!(
                "port `{text}` has protocol `{protocol}`; expected tcp, udp or sctp"
            ));
        }
    };
    let digits_only = !number.is_empty() && number.bytes().all(|byte| byte.is_ascii_digit());
    match number.parse::<u16>() {
        Ok(number) if digits_only && number != 0 => Ok(ExposedPort { number, protocol }),
        _ => Err(format!(
            "port `{text}` is not valid: expected a number from 1 to 65535, \
             optionally followed by /tcp, /udp or /sctp"
        )),
    }
}

/// Debian package names: `[a-z0-9][a-z0-9+.-]+`.
/// An `include` entry's package name and the release it names, if any:
/// `foo/bookworm-backports` → (`foo`, `bookworm-backports`), as apt's
/// `apt-get install foo/bookworm-backports`.
pub fn package_and_release(entry: &str) -> (&str, Option<&str>) {
    match entry.split_once('/') {
        Some((name, release)) => (name, Some(release)),
        None => (entry, None),
    }
}

fn check_package_name(name: &str) -> Result<(), String> {
    let valid = name.len() >= 2
        && name
            .chars()
            .next()
            .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit())
        && name.chars().all(|character| {
            character.is_ascii_lowercase()
                || character.is_ascii_digit()
                || matches!(character, '+' | '.' | '-')
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a Debian package name: lowercase letters, digits, `+`, `.` \
             and `-`, at least two characters, starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests;
