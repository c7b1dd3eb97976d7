//! The platforms xbuild knows and how people name them.
//!
//! Each platform is described by one `targets/<name>.toml` file (embedded in
//! the binary by `build.rs`; more can be added from the directory named by
//! `$XBUILD_TARGETS_DIR`). [`Platforms`] is the registry: it parses and
//! checks those files (a Rust triple must agree with the declared pointer
//! width, byte order and libc) and resolves forgiving user input — the short
//! name (`aarch64-linux`), an alias (`arm64`, `linux/arm64/v8`) or any target
//! triple (`aarch64-unknown-linux-gnu`) — to one [`Platform`].
//! [`PlatformPair`] is the (build, target) pair every plan and report names.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use target_lexicon::{Architecture, Environment, OperatingSystem, Triple};

use crate::manifest::TextPosition;

include!(concat!(env!("OUT_DIR"), "/builtin_targets.rs"));

/// The environment variable naming a directory of extra `*.toml` platforms.
pub const TARGETS_DIRECTORY_VARIABLE: &str = "XBUILD_TARGETS_DIR";

/// Debian release codenames in release order, with their version numbers.
const DEBIAN_RELEASES: &[(&str, u32)] = &[
    ("buster", 10),
    ("bullseye", 11),
    ("bookworm", 12),
    ("trixie", 13),
    ("forky", 14),
    ("duke", 15),
    ("sid", u32::MAX),
    ("unstable", u32::MAX),
];

/// Byte order of a platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endian {
    Little,
    Big,
}

/// The C library programs for a platform link against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Libc {
    Gnu,
    Musl,
}

impl fmt::Display for Libc {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Libc::Gnu => "gnu",
            Libc::Musl => "musl",
        })
    }
}

/// The platform as an OCI image index and config name it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OciPlatform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, `arm`, `386`, `ppc64le`, `s390x`, `riscv64`.
    pub architecture: String,
    /// `v8` for arm64, `v7` for arm; absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl fmt::Display for OciPlatform {
    /// `os/architecture[/variant]`, as `docker --platform` spells it.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(formatter, "/{variant}")?;
        }
        Ok(())
    }
}

/// One platform, as described by a `targets/<name>.toml` file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Platform {
    /// Short name, equal to the file stem: `aarch64-linux`.
    pub name: String,
    /// Other names it answers to: `arm64`, `linux/arm64`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Rust target triples, the first being the one xbuild builds with.
    pub rust_triples: Vec<String>,
    /// GNU triple of its cross toolchain: `aarch64-linux-gnu`.
    pub gnu_triple: String,
    /// Debian architecture of the packages an image for it contains: `arm64`.
    pub debian_arch: String,
    /// OCI platform of its images.
    pub oci: OciPlatform,
    /// qemu-user name, as in `qemu-aarch64`.
    pub qemu: String,
    pub endian: Endian,
    /// 32 or 64.
    pub pointer_width: u32,
    pub libc: Libc,
    /// Dynamic loader of its ELF programs (glibc targets only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elf_interpreter: Option<String>,
    /// Debian multiarch directory of its packages' libraries: `aarch64-linux-gnu`.
    pub multiarch: String,
    /// First Debian suite (codename) whose archive has `debian_arch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_suite: Option<String>,
}

impl Platform {
    /// The Rust triple xbuild compiles for: the first of `rust_triples`.
    pub fn rust_triple(&self) -> &str {
        &self.rust_triples[0]
    }

    /// Whether Debian suite `suite` (a codename such as `bookworm`, or
    /// `sid`) has packages for this platform. Suites xbuild cannot place in
    /// release order (`stable`, `testing`, unknown names) are assumed to.
    pub fn is_available_in_suite(&self, suite: &str) -> bool {
        let Some(minimum) = &self.min_suite else {
            return true;
        };
        match (debian_release_number(suite), debian_release_number(minimum)) {
            (Some(suite_number), Some(minimum_number)) => suite_number >= minimum_number,
            _ => true,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.name)
    }
}

/// The release number of a Debian codename, ignoring a `-updates` or
/// `-security`-style suffix; `sid` and `unstable` sort after every release.
pub fn debian_release_number(suite: &str) -> Option<u32> {
    let codename = suite.split('-').next().unwrap_or(suite);
    DEBIAN_RELEASES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(codename))
        .map(|(_, number)| *number)
}

/// Where xbuild runs (`build`) and what it produces for (`target`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformPair {
    pub build: Platform,
    pub target: Platform,
}

impl PlatformPair {
    pub fn new(build: Platform, target: Platform) -> Self {
        Self { build, target }
    }

    /// True when the target programs run on the build machine without qemu.
    pub fn is_native(&self) -> bool {
        self.build.name == self.target.name
    }
}

impl fmt::Display for PlatformPair {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} → {}", self.build.name, self.target.name)
    }
}

/// Errors loading platform descriptions or resolving a platform name.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("{}:{line}:{column}: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: field `{field}`: {message}", file.display())]
    Invalid {
        file: PathBuf,
        field: &'static str,
        message: String,
    },
    #[error("platform name `{alias}` is claimed by both `{first}` and `{second}`")]
    NameCollision {
        alias: String,
        first: String,
        second: String,
    },
    #[error("cannot read the platforms directory {}", path.display())]
    ReadDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read platform file {}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "unknown platform `{name}`{}; known platforms: {}",
        suggestion_text(.suggestion),
        .known.join(", ")
    )]
    Unknown {
        name: String,
        known: Vec<String>,
        suggestion: Option<String>,
    },
    #[error(
        "xbuild is running on `{triple}`, which is none of its platforms ({}); \
         add a targets file for it in ${TARGETS_DIRECTORY_VARIABLE}",
        .known.join(", ")
    )]
    UnsupportedHost { triple: String, known: Vec<String> },
}

fn suggestion_text(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(name) => format!(" (did you mean `{name}`?)"),
        None => String::new(),
    }
}

/// A triple reduced to what identifies a platform: CPU architecture and ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TripleKey {
    architecture: Architecture,
    environment: Environment,
}

/// The registry of known platforms, sorted by name.
#[derive(Clone, Debug)]
pub struct Platforms {
    platforms: Vec<Platform>,
    /// Lowercase name, alias or OCI spelling → index into `platforms`.
    names: HashMap<String, usize>,
    /// (architecture, environment) of every declared triple → index.
    triples: Vec<(TripleKey, usize)>,
}

impl Platforms {
    /// The platforms compiled into xbuild from `targets/*.toml`.
    pub fn builtin() -> Result<Platforms, PlatformError> {
        let mut platforms = Vec::with_capacity(BUILTIN_TARGETS.len());
        for (file_name, contents) in BUILTIN_TARGETS {
            let file = Path::new("targets").join(file_name);
            platforms.push(parse_platform_file(&file, contents)?);
        }
        Self::from_platforms(platforms)
    }

    /// The built-in platforms plus those in `$XBUILD_TARGETS_DIR`, if set.
    pub fn from_environment() -> Result<Platforms, PlatformError> {
        let mut platforms = Self::builtin()?;
        if let Some(directory) = std::env::var_os(TARGETS_DIRECTORY_VARIABLE)
            && !directory.is_empty()
        {
            platforms.load_extra_dir(Path::new(&directory))?;
        }
        Ok(platforms)
    }

    /// Adds every `*.toml` platform in `directory`. A file whose platform
    /// has the name of a known one replaces it.
    pub fn load_extra_dir(&mut self, directory: &Path) -> Result<(), PlatformError> {
        let read_error = |source| PlatformError::ReadDirectory {
            path: directory.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for entry in fs_err::read_dir(directory).map_err(read_error)? {
            let path = entry.map_err(read_error)?.path();
            if path
                .extension()
                .is_some_and(|extension| extension == "toml")
            {
                files.push(path);
            }
        }
        files.sort();
        let mut platforms = std::mem::take(&mut self.platforms);
        for file in files {
            let contents =
                fs_err::read_to_string(&file).map_err(|source| PlatformError::ReadFile {
                    path: file.clone(),
                    source,
                })?;
            let platform = parse_platform_file(&file, &contents)?;
            platforms.retain(|known| known.name != platform.name);
            platforms.push(platform);
        }
        *self = Self::from_platforms(platforms)?;
        Ok(())
    }

    fn from_platforms(mut platforms: Vec<Platform>) -> Result<Platforms, PlatformError> {
        platforms.sort_by(|left, right| left.name.cmp(&right.name));
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut triples = Vec::new();
        for (index, platform) in platforms.iter().enumerate() {
            for name in std::iter::once(&platform.name).chain(&platform.aliases) {
                if let Some(&other) = names.get(&name.to_lowercase())
                    && other != index
                {
                    return Err(PlatformError::NameCollision {
                        alias: name.clone(),
                        first: platforms[other].name.clone(),
                        second: platform.name.clone(),
                    });
                }
                names.insert(name.to_lowercase(), index);
            }
            for triple in platform.rust_triples.iter().chain([&platform.gnu_triple]) {
                if let Ok(parsed) = Triple::from_str(triple) {
                    triples.push((triple_key(&parsed), index));
                }
            }
        }
        Ok(Platforms {
            platforms,
            names,
            triples,
        })
    }

    /// Every known platform, sorted by name.
    pub fn all(&self) -> &[Platform] {
        &self.platforms
    }

    /// Resolves a platform name, case-insensitively: the short name, an
    /// alias, an OCI `os/architecture[/variant]` spelling listed as an alias,
    /// or a target triple (matched on architecture and ABI, so
    /// `aarch64-unknown-linux-gnu` and `aarch64-linux-gnu` both work).
    pub fn parse(&self, name: &str) -> Result<&Platform, PlatformError> {
        let lowercase = name.trim().to_lowercase();
        if let Some(&index) = self.names.get(&lowercase) {
            return Ok(&self.platforms[index]);
        }
        if let Some(platform) = self
            .platforms
            .iter()
            .find(|platform| platform.rust_triples.contains(&lowercase))
        {
            return Ok(platform);
        }
        if let Ok(triple) = Triple::from_str(&lowercase)
            && let Some(platform) = self.find_by_triple(&triple)
        {
            return Ok(platform);
        }
        Err(PlatformError::Unknown {
            name: name.to_owned(),
            known: self.known_names(),
            suggestion: self.closest_name(&lowercase),
        })
    }

    /// The platform xbuild itself runs on (the one it was compiled for).
    pub fn host(&self) -> Result<&Platform, PlatformError> {
        let host = Triple::host();
        self.find_by_triple(&host)
            .ok_or_else(|| PlatformError::UnsupportedHost {
                triple: host.to_string(),
                known: self.known_names(),
            })
    }

    /// The pair (the host, `target`).
    pub fn pair_for(&self, target: &Platform) -> Result<PlatformPair, PlatformError> {
        Ok(PlatformPair::new(self.host()?.clone(), target.clone()))
    }

    fn known_names(&self) -> Vec<String> {
        self.platforms
            .iter()
            .map(|platform| platform.name.clone())
            .collect()
    }

    fn find_by_triple(&self, triple: &Triple) -> Option<&Platform> {
        if triple.operating_system != OperatingSystem::Linux {
            return None;
        }
        let key = triple_key(triple);
        if let Some((_, index)) = self.triples.iter().find(|(known, _)| *known == key) {
            return Some(&self.platforms[*index]);
        }
        // `aarch64-unknown-linux` names no ABI: take the glibc platform.
        if key.environment == Environment::Unknown {
            return self.triples.iter().find_map(|(known, index)| {
                let platform = &self.platforms[*index];
                (known.architecture == key.architecture && platform.libc == Libc::Gnu)
                    .then_some(platform)
            });
        }
        None
    }

    /// The platform whose name or alias is nearest to `input` by edit
    /// distance, if it is near enough to be a likely typo.
    fn closest_name(&self, input: &str) -> Option<String> {
        let limit = (input.chars().count() / 3).max(2);
        self.names
            .iter()
            .map(|(name, &index)| (edit_distance(input, name), &self.platforms[index].name))
            .filter(|(distance, _)| *distance <= limit)
            .min_by(|left, right| left.0.cmp(&right.0).then_with(|| left.1.cmp(right.1)))
            .map(|(_, name)| name.clone())
    }
}

fn triple_key(triple: &Triple) -> TripleKey {
    TripleKey {
        architecture: triple.architecture,
        environment: triple.environment,
    }
}

/// Edit distance over characters where inserting, deleting or replacing a
/// character, or swapping two adjacent ones (`amr64` for `arm64`), costs 1.
fn edit_distance(left: &str, right: &str) -> usize {
    let left: Vec<char> = left.chars().collect();
    let right: Vec<char> = right.chars().collect();
    let width = right.len() + 1;
    // distances[row * width + column]: distance between left[..row] and right[..column].
    let mut distances = vec![0; (left.len() + 1) * width];
    for row in 0..=left.len() {
        for column in 0..=right.len() {
            distances[row * width + column] = if row == 0 || column == 0 {
                row.max(column)
            } else {
                let cost = usize::from(left[row - 1] != right[column - 1]);
                let mut best = (distances[(row - 1) * width + column - 1] + cost)
                    .min(distances[(row - 1) * width + column] + 1)
                    .min(distances[row * width + column - 1] + 1);
                if row > 1
                    && column > 1
                    && left[row - 1] == right[column - 2]
                    && left[row - 2] == right[column - 1]
                {
                    best = best.min(distances[(row - 2) * width + column - 2] + 1);
                }
                best
            };
        }
    }
    distances[left.len() * width + right.len()]
}

/// Parses and checks one platform file; `file` names it in errors.
fn parse_platform_file(file: &Path, contents: &str) -> Result<Platform, PlatformError> {
    let platform: Platform = toml::from_str(contents).map_err(|error| {
        let position = TextPosition::at_offset(contents, error.span().map_or(0, |span| span.start));
        PlatformError::Syntax {
            file: file.to_path_buf(),
            line: position.line,
            column: position.column,
            message: error.message().trim_end().to_owned(),
        }
    })?;
    check_platform(file, &platform)?;
    Ok(platform)
}

/// Checks that a platform's fields agree with each other and its file name.
fn check_platform(file: &Path, platform: &Platform) -> Result<(), PlatformError> {
    let invalid = |field: &'static str, message: String| PlatformError::Invalid {
        file: file.to_path_buf(),
        field,
        message,
    };
    let stem = file
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("");
    if platform.name != stem {
        return Err(invalid(
            "name",
            format!(
                "`{}` must equal the file name without `.toml` (`{stem}`)",
                platform.name
            ),
        ));
    }
    if platform.name.is_empty()
        || !platform
            .name
            .chars()
            .all(|character| matches!(character, 'a'..='z' | '0'..='9' | '-' | '_'))
    {
        return Err(invalid(
            "name",
            format!(
                "`{}` must be lowercase letters, digits, `-` and `_`",
                platform.name
            ),
        ));
    }
    if platform.aliases.iter().any(|alias| alias.trim().is_empty()) {
        return Err(invalid("aliases", "an alias is empty".to_owned()));
    }
    if platform.rust_triples.is_empty() {
        return Err(invalid(
            "rust_triples",
            "must list at least one triple".to_owned(),
        ));
    }
    if !matches!(platform.pointer_width, 32 | 64) {
        return Err(invalid(
            "pointer_width",
            format!("must be 32 or 64, not {}", platform.pointer_width),
        ));
    }
    for field in [
        ("debian_arch", &platform.debian_arch),
        ("qemu", &platform.qemu),
        ("multiarch", &platform.multiarch),
        ("oci", &platform.oci.os),
        ("oci", &platform.oci.architecture),
    ] {
        if field.1.trim().is_empty() {
            return Err(invalid(field.0, "must not be empty".to_owned()));
        }
    }
    match (&platform.elf_interpreter, platform.libc) {
        (None, Libc::Gnu) => {
            return Err(invalid(
                "elf_interpreter",
                "is required for a glibc platform".to_owned(),
            ));
        }
        (Some(interpreter), _) if !interpreter.starts_with('/') => {
            return Err(invalid(
                "elf_interpreter",
                format!("`{interpreter}` must be an absolute path"),
            ));
        }
        _ => {}
    }
    if let Some(suite) = &platform.min_suite
        && debian_release_number(suite).is_none()
    {
        return Err(invalid(
            "min_suite",
            format!("`{suite}` is not a Debian release codename xbuild knows"),
        ));
    }
    let triples = platform
        .rust_triples
        .iter()
        .map(|triple| ("rust_triples", triple))
        .chain([("gnu_triple", &platform.gnu_triple)]);
    for (field, text) in triples {
        let triple = Triple::from_str(text)
            .map_err(|error| invalid(field, format!("`{text}` is not a target triple: {error}")))?;
        check_triple_agrees(platform, text, &triple).map_err(|message| invalid(field, message))?;
    }
    Ok(())
}

/// Checks that a declared triple has the platform's OS, width, byte order and libc.
fn check_triple_agrees(platform: &Platform, text: &str, triple: &Triple) -> Result<(), String> {
    if triple.operating_system != OperatingSystem::Linux {
        return Err(format!("`{text}` is not a Linux triple"));
    }
    let width = triple
        .pointer_width()
        .map(|width| u32::from(width.bits()))
        .map_err(|()| format!("`{text}` has no known pointer width"))?;
    if width != platform.pointer_width {
        return Err(format!(
            "`{text}` is {width}-bit but pointer_width is {}",
            platform.pointer_width
        ));
    }
    let endian = match triple.endianness() {
        Ok(target_lexicon::Endianness::Little) => Endian::Little,
        Ok(target_lexicon::Endianness::Big) => Endian::Big,
        Err(()) => return Err(format!("`{text}` has no known byte order")),
    };
    if endian != platform.endian {
        return Err(format!(
            "`{text}` is {endian:?}-endian but endian is {:?}",
            platform.endian
        ));
    }
    let environment = triple.environment.into_str();
    let libc = if environment.starts_with("musl") {
        Libc::Musl
    } else if environment.starts_with("gnu") {
        Libc::Gnu
    } else {
        return Err(format!("`{text}` names neither a gnu nor a musl ABI"));
    };
    if libc != platform.libc {
        return Err(format!(
            "`{text}` is a {libc} triple but libc is {}",
            platform.libc
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "platform_tests.rs"]
mod tests;
