//! Binary package records and relation fields. This module owns [`Package`],
//! the compact record the resolver works on, parsed from one paragraph of a
//! `Packages` index and keeping only the fields xbuild needs; [`Relation`]
//! and the parsers of `Depends`-style fields; and
//! [`parse_packages_index`], which streams a whole index paragraph by
//! paragraph.
//!
//! Relation fields are parsed for one target Debian architecture:
//! alternatives whose architecture restriction (`[amd64 !arm64]`, with
//! `linux-any` / `any-<cpu>` wildcards) excludes that architecture are
//! dropped, and so are alternatives whose build-profile restriction
//! (`<!nocheck>`) does not hold with no build profile active. A relation
//! left with no alternative is dropped as a whole. The obsolete `<` and `>`
//! operators mean `<=` and `>=`, as in dpkg.

use crate::debian::control::{ControlError, Paragraph, ParagraphReader};
use crate::debian::version::{Version, VersionError};
use crate::hash::Sha256Digest;
use std::cmp::Ordering;
use std::fmt;
use std::io::BufRead;

/// A version comparison operator of a relation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `<<`
    Earlier,
    /// `<=` (and the obsolete `<`)
    EarlierOrEqual,
    /// `=`
    Equal,
    /// `>=` (and the obsolete `>`)
    LaterOrEqual,
    /// `>>`
    Later,
}

impl Operator {
    /// The operator as written in a control file.
    pub fn symbol(self) -> &'static str {
        match self {
            Operator::Earlier => "<<",
            Operator::EarlierOrEqual => "<=",
            Operator::Equal => "=",
            Operator::LaterOrEqual => ">=",
            Operator::Later => ">>",
        }
    }

    /// Whether `candidate.cmp(required)` giving `ordering` satisfies the
    /// operator.
    pub fn accepts(self, ordering: Ordering) -> bool {
        match self {
            Operator::Earlier => ordering == Ordering::Less,
            Operator::EarlierOrEqual => ordering != Ordering::Greater,
            Operator::Equal => ordering == Ordering::Equal,
            Operator::LaterOrEqual => ordering != Ordering::Less,
            Operator::Later => ordering == Ordering::Greater,
        }
    }
}

/// One relation: `name[:qualifier] [(operator version)]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    pub name: String,
    /// `any`, `native`, or an architecture name, from `name:qualifier`.
    pub arch_qualifier: Option<String>,
    pub constraint: Option<(Operator, Version)>,
}

/// The alternatives of one relation, `a | b`.
pub type Alternatives = Vec<Relation>;

impl Relation {
    /// An unversioned, unqualified relation on `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Relation {
            name: name.into(),
            arch_qualifier: None,
            constraint: None,
        }
    }

    /// Whether `version` meets the version constraint (always true when
    /// there is none).
    pub fn satisfied_by(&self, version: &Version) -> bool {
        match &self.constraint {
            None => true,
            Some((operator, required)) => operator.accepts(version.cmp(required)),
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(qualifier) = &self.arch_qualifier {
            write!(f, ":{qualifier}")?;
        }
        if let Some((operator, version)) = &self.constraint {
            write!(f, " ({} {version})", operator.symbol())?;
        }
        Ok(())
    }
}

/// Alternatives in Debian syntax, `a (>= 1) | b`.
pub fn display_alternatives(alternatives: &[Relation]) -> String {
    let texts: Vec<String> = alternatives.iter().map(ToString::to_string).collect();
    texts.join(" | ")
}

/// A relation field that does not parse. `text` is the offending relation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelationError {
    #[error("invalid package name {name:?} in {text:?}")]
    InvalidName { name: String, text: String },
    #[error("invalid architecture qualifier in {text:?}")]
    InvalidQualifier { text: String },
    #[error("missing or unknown version operator in {text:?}")]
    InvalidOperator { text: String },
    #[error("unclosed {delimiter:?} in {text:?}")]
    Unclosed { delimiter: char, text: String },
    #[error("invalid version in {text:?}")]
    InvalidVersion {
        text: String,
        #[source]
        source: VersionError,
    },
    #[error("unexpected {found:?} in {text:?}")]
    Unexpected { found: String, text: String },
    #[error("mixed negated and plain architectures in {text:?}")]
    MixedArchitectures { text: String },
    #[error("alternatives (`|`) are not allowed in {text:?}")]
    AlternativesNotAllowed { text: String },
    #[error("only `=` may version a Provides entry: {text:?}")]
    ProvidesOperator { text: String },
}

/// Parses a `Depends`-style field (`Depends`, `Pre-Depends`, `Recommends`)
/// for the target architecture `arch`.
pub fn parse_relations(text: &str, arch: &str) -> Result<Vec<Alternatives>, RelationError> {
    let mut relations = Vec::new();
    for group in text.split(',') {
        if group.trim().is_empty() {
            continue;
        }
        let mut alternatives = Vec::new();
        for alternative in group.split('|') {
            if let Some(relation) = parse_one(alternative, arch)? {
                alternatives.push(relation);
            }
        }
        if !alternatives.is_empty() {
            // Vec growth leaves room for four 112-byte relations; across a
            // whole index that slack would outweigh the data.
            alternatives.shrink_to_fit();
            relations.push(alternatives);
        }
    }
    relations.shrink_to_fit();
    Ok(relations)
}

/// Parses a field without alternatives (`Conflicts`, `Breaks`).
pub fn parse_relation_list(text: &str, arch: &str) -> Result<Vec<Relation>, RelationError> {
    let mut relations = Vec::new();
    for alternatives in parse_relations(text, arch)? {
        if alternatives.len() > 1 {
            return Err(RelationError::AlternativesNotAllowed {
                text: display_alternatives(&alternatives),
            });
        }
        relations.extend(alternatives);
    }
    relations.shrink_to_fit();
    Ok(relations)
}

/// Parses a `Provides` field: no alternatives, and only `=` versions.
pub fn parse_provides(text: &str, arch: &str) -> Result<Vec<Relation>, RelationError> {
    let relations = parse_relation_list(text, arch)?;
    if let Some(relation) = relations
        .iter()
        .find(|relation| matches!(relation.constraint, Some((operator, _)) if operator != Operator::Equal))
    {
        return Err(RelationError::ProvidesOperator {
            text: relation.to_string(),
        });
    }
    Ok(relations)
}

fn is_name_character(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+-._".contains(c)
}

/// Parses one alternative; `None` when its restrictions exclude `arch`.
fn parse_one(text: &str, arch: &str) -> Result<Option<Relation>, RelationError> {
    let text = text.trim();
    let owned = || text.to_string();
    let name_end = text
        .find(|c: char| !is_name_character(c))
        .unwrap_or(text.len());
    let name = &text[..name_end];
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(RelationError::InvalidName {
            name: name.to_string(),
            text: owned(),
        });
    }
    let mut rest = &text[name_end..];
    let mut arch_qualifier = None;
    if let Some(after_colon) = rest.strip_prefix(':') {
        let end = after_colon
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(after_colon.len());
        if end == 0 {
            return Err(RelationError::InvalidQualifier { text: owned() });
        }
        arch_qualifier = Some(after_colon[..end].to_string());
        rest = &after_colon[end..];
    }
    rest = rest.trim_start();
    let mut constraint = None;
    if let Some(inside) = rest.strip_prefix('(') {
        let Some(close) = inside.find(')') else {
            return Err(RelationError::Unclosed {
                delimiter: '(',
                text: owned(),
            });
        };
        constraint = Some(parse_constraint(&inside[..close], text)?);
        rest = inside[close + 1..].trim_start();
    }
    // Architecture lists must all hold; of the build-profile lists (a
    // disjunction), one must hold if there is any.
    let mut architecture_holds = true;
    let mut profile_holds: Option<bool> = None;
    while let Some(open) = rest.chars().next() {
        let close = match open {
            '[' => ']',
            '<' => '>',
            _ => {
                return Err(RelationError::Unexpected {
                    found: rest.to_string(),
                    text: owned(),
                });
            }
        };
        let Some(end) = rest.find(close) else {
            return Err(RelationError::Unclosed {
                delimiter: open,
                text: owned(),
            });
        };
        let list = &rest[1..end];
        if open == '[' {
            architecture_holds &= architecture_list_matches(list, arch, text)?;
        } else {
            profile_holds = Some(profile_holds.unwrap_or(false) || profile_list_holds(list));
        }
        rest = rest[end + 1..].trim_start();
    }
    if !architecture_holds || profile_holds == Some(false) {
        return Ok(None);
    }
    Ok(Some(Relation {
        name: name.to_string(),
        arch_qualifier,
        constraint,
    }))
}

fn parse_constraint(inside: &str, text: &str) -> Result<(Operator, Version), RelationError> {
    let inside = inside.trim();
    const OPERATORS: [(&str, Operator); 7] = [
        ("<<", Operator::Earlier),
        ("<=", Operator::EarlierOrEqual),
        (">=", Operator::LaterOrEqual),
        (">>", Operator::Later),
        ("=", Operator::Equal),
        ("<", Operator::EarlierOrEqual),
        (">", Operator::LaterOrEqual),
    ];
    let Some((operator, version_text)) = OPERATORS
        .iter()
        .find_map(|(symbol, operator)| inside.strip_prefix(symbol).map(|rest| (*operator, rest)))
    else {
        return Err(RelationError::InvalidOperator {
            text: text.to_string(),
        });
    };
    let version = version_text
        .parse()
        .map_err(|source| RelationError::InvalidVersion {
            text: text.to_string(),
            source,
        })?;
    Ok((operator, version))
}

/// Evaluates `amd64 !arm64 linux-any` against `arch`: a plain list holds
/// when one entry matches, a negated list when none does.
fn architecture_list_matches(list: &str, arch: &str, text: &str) -> Result<bool, RelationError> {
    let entries: Vec<&str> = list.split_whitespace().collect();
    let negated = entries
        .iter()
        .filter(|entry| entry.starts_with('!'))
        .count();
    if negated != 0 && negated != entries.len() {
        return Err(RelationError::MixedArchitectures {
            text: text.to_string(),
        });
    }
    let any_matches = entries
        .iter()
        .any(|entry| architecture_matches(entry.trim_start_matches('!'), arch));
    Ok(if negated == 0 {
        any_matches
    } else {
        !any_matches
    })
}

/// Whether the architecture name or wildcard `pattern` covers the Linux
/// architecture `arch` (`any`, `linux-any`, `any-arm`, `gnu-linux-arm64`).
pub fn architecture_matches(pattern: &str, arch: &str) -> bool {
    if pattern == arch || pattern == "any" {
        return true;
    }
    let (abi, cpu) = match arch {
        "armel" => ("gnueabi", "arm"),
        "armhf" => ("gnueabihf", "arm"),
        other => ("gnu", other),
    };
    let parts: Vec<&str> = pattern.split('-').collect();
    let (pattern_abi, pattern_os, pattern_cpu) = match parts.as_slice() {
        [os, cpu] => ("any", *os, *cpu),
        [abi, os, cpu] => (*abi, *os, *cpu),
        _ => return false,
    };
    (pattern_abi == "any" || pattern_abi == abi)
        && (pattern_os == "any" || pattern_os == "linux")
        && (pattern_cpu == "any" || pattern_cpu == cpu || pattern_cpu == arch)
}

/// A build-profile restriction `<!nocheck !stage1>` holds with no profile
/// active when every term is negated.
fn profile_list_holds(list: &str) -> bool {
    list.split_whitespace().all(|term| term.starts_with('!'))
}

/// `Multi-Arch` of a binary package.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MultiArch {
    #[default]
    No,
    Same,
    Foreign,
    Allowed,
}

/// A binary package as the resolver sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: Version,
    /// The package's architecture, e.g. `arm64` or `all`.
    pub architecture: String,
    pub multi_arch: MultiArch,
    pub essential: bool,
    pub priority: Option<String>,
    pub section: Option<String>,
    /// The `Source` field as written, e.g. `glibc (2.36-9)`; see
    /// [`Package::source_name`].
    pub source: Option<String>,
    /// The `Built-Using` field as written, e.g. `gcc-12 (= 12.2.0-14)`:
    /// the sources a package was built from besides its own (Debian's
    /// cross compilers name the GCC source they are made of).
    pub built_using: Option<String>,
    pub depends: Vec<Alternatives>,
    pub pre_depends: Vec<Alternatives>,
    pub provides: Vec<Relation>,
    pub conflicts: Vec<Relation>,
    pub breaks: Vec<Relation>,
    /// Path of the `.deb` relative to the repository root.
    pub filename: String,
    pub size: u64,
    pub sha256: Sha256Digest,
    pub installed_size_kib: Option<u64>,
}

/// A `Packages` paragraph that cannot become a [`Package`].
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("{origin}:{line}: package {package} has no {field} field")]
    MissingField {
        origin: String,
        line: usize,
        package: String,
        field: &'static str,
    },
    #[error("{origin}:{line}: package {package} has an invalid {field} field: {value:?}")]
    InvalidField {
        origin: String,
        line: usize,
        package: String,
        field: &'static str,
        value: String,
    },
    #[error("{origin}:{line}: package {package} has an invalid Version field")]
    InvalidVersion {
        origin: String,
        line: usize,
        package: String,
        #[source]
        source: VersionError,
    },
    #[error("{origin}:{line}: package {package} has an invalid {field} field")]
    InvalidRelation {
        origin: String,
        line: usize,
        package: String,
        field: &'static str,
        #[source]
        source: Box<RelationError>,
    },
}

impl Package {
    /// Builds a package from one `Packages` paragraph, with relation fields
    /// evaluated for the target architecture `arch`. `origin` and `line`
    /// (where the paragraph starts) are used in errors.
    pub fn from_paragraph(
        paragraph: &Paragraph,
        origin: &str,
        line: usize,
        arch: &str,
    ) -> Result<Package, PackageError> {
        let package_name = paragraph.get("Package").unwrap_or("").to_string();
        let line_of = |field: &str| paragraph.line_of(field).unwrap_or(line);
        let missing = |field: &'static str| PackageError::MissingField {
            origin: origin.to_string(),
            line,
            package: if package_name.is_empty() {
                "(unnamed)".to_string()
            } else {
                package_name.clone()
            },
            field,
        };
        let required = |field: &'static str| {
            paragraph
                .get(field)
                .filter(|value| !value.is_empty())
                .ok_or_else(|| missing(field))
        };
        let invalid = |field: &'static str, value: &str| PackageError::InvalidField {
            origin: origin.to_string(),
            line: line_of(field),
            package: package_name.clone(),
            field,
            value: value.to_string(),
        };
        required("Package")?;
        let version_text = required("Version")?;
        let version = version_text
            .parse()
            .map_err(|source| PackageError::InvalidVersion {
                origin: origin.to_string(),
                line: line_of("Version"),
                package: package_name.clone(),
                source,
            })?;
        let architecture = required("Architecture")?.to_string();
        let multi_arch = match paragraph.get("Multi-Arch") {
            None | Some("no") => MultiArch::No,
            Some("same") => MultiArch::Same,
            Some("foreign") => MultiArch::Foreign,
            Some("allowed") => MultiArch::Allowed,
            Some(other) => return Err(invalid("Multi-Arch", other)),
        };
        let essential = match paragraph.get("Essential") {
            None | Some("no") => false,
            Some("yes") => true,
            Some(other) => return Err(invalid("Essential", other)),
        };
        let relation_error = |field: &'static str| {
            let package = package_name.clone();
            move |source| PackageError::InvalidRelation {
                origin: origin.to_string(),
                line: line_of(field),
                package,
                field,
                source: Box::new(source),
            }
        };
        let relations = |field: &'static str| match paragraph.get(field) {
            None => Ok(Vec::new()),
            Some(text) => parse_relations(text, arch).map_err(relation_error(field)),
        };
        let relation_list = |field: &'static str| match paragraph.get(field) {
            None => Ok(Vec::new()),
            Some(text) => parse_relation_list(text, arch).map_err(relation_error(field)),
        };
        let provides = match paragraph.get("Provides") {
            None => Vec::new(),
            Some(text) => parse_provides(text, arch).map_err(relation_error("Provides"))?,
        };
        let filename = required("Filename")?.to_string();
        let size_text = required("Size")?;
        let size = size_text.parse().map_err(|_| invalid("Size", size_text))?;
        let sha256_text = required("SHA256")?;
        let sha256 =
            Sha256Digest::parse(sha256_text).ok_or_else(|| invalid("SHA256", sha256_text))?;
        let installed_size_kib = match paragraph.get("Installed-Size") {
            None => None,
            Some(text) => Some(text.parse().map_err(|_| invalid("Installed-Size", text))?),
        };
        let optional = |field: &str| paragraph.get(field).map(str::to_string);
        Ok(Package {
            version,
            architecture,
            multi_arch,
            essential,
            priority: optional("Priority"),
            section: optional("Section"),
            source: optional("Source"),
            built_using: optional("Built-Using"),
            depends: relations("Depends")?,
            pre_depends: relations("Pre-Depends")?,
            provides,
            conflicts: relation_list("Conflicts")?,
            breaks: relation_list("Breaks")?,
            filename,
            size,
            sha256,
            installed_size_kib,
            name: package_name,
        })
    }

    /// The source package name: the `Source` field without its version, or
    /// the package's own name when there is no `Source` field.
    pub fn source_name(&self) -> &str {
        match &self.source {
            Some(source) => source.split_whitespace().next().unwrap_or(&self.name),
            None => &self.name,
        }
    }

    /// The source package's version: the one in parentheses of the
    /// `Source` field (`gcc-12-cross (15)`), else the package's own.
    pub fn source_version(&self) -> String {
        self.source
            .as_deref()
            .and_then(|source| source.split_once('('))
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(version, _)| version.trim().to_owned())
            .unwrap_or_else(|| self.version.to_string())
    }

    /// `name version architecture`, for messages.
    pub fn describe(&self) -> String {
        format!("{} {} {}", self.name, self.version, self.architecture)
    }
}

/// Reads a `Packages` index for the target architecture `arch`, one
/// paragraph at a time, keeping the packages built for `arch` or `all`
/// (others are skipped). `origin` (path or URL) names the index in errors.
pub fn parse_packages_index<R: BufRead>(
    reader: R,
    origin: &str,
    arch: &str,
) -> Result<Vec<Package>, PackageError> {
    let mut packages = Vec::new();
    for item in ParagraphReader::new(reader, origin) {
        let (paragraph, line) = item?;
        if let Some(architecture) = paragraph.get("Architecture")
            && architecture != arch
            && architecture != "all"
        {
            continue;
        }
        packages.push(Package::from_paragraph(&paragraph, origin, line, arch)?);
    }
    packages.shrink_to_fit();
    Ok(packages)
}

#[cfg(test)]
#[path = "package_tests.rs"]
mod tests;
