//! The dependency closure of a set of Debian packages for one target
//! architecture, chosen the way apt's own solver (bookworm's apt 2.6)
//! chooses it for `apt-get install --no-install-recommends` on an empty
//! system. This module owns the request and result types and [`resolve`];
//! [`Universe`] (in `universe.rs`) indexes the packages; the marking is in
//! `marker.rs`, the order of candidates and the conflict rules in
//! `choose.rs`, and the repair and sweep that finish a selection in
//! `settle.rs`.
//!
//! The requested packages are selected first, then their relations are met
//! one package at a time, depth first: a package is selected, then its
//! `Pre-Depends` and `Depends` are met in the order written, and a package
//! selected for one of them has its own relations met before the next
//! relation is looked at. So whether a relation is already met depends on
//! what was selected before it in that order, as in apt. For one relation
//! `a | b | c` that no selected package (or what one provides) satisfies:
//!
//! 1. the alternatives are tried one at a time, in order; for each, the
//!    package of that name (highest satisfying version first), then the
//!    packages that `Provides` it, `Essential: yes` first, then by
//!    priority (required, important, standard, optional, extra), then by
//!    name. An unversioned `Provides` never satisfies a versioned relation;
//!    a versioned one (`foo (= 1.0)`) is compared;
//! 2. for a pure-virtual name (only providers exist) with several
//!    installable providers, each is tried and undone, and the one that
//!    adds the fewest packages is taken (ties in the order above); the
//!    choice is recorded in [`Resolution::choices`];
//! 3. a candidate is installable when each of its relations can be met in
//!    turn; when one cannot, everything its attempt selected is undone,
//!    the candidate is not tried again, and the next candidate (then the
//!    next alternative) is tried. A relation no candidate meets fails the
//!    package that has it, up to a requested package, which is an error
//!    naming the deepest relation that could not be met and its chain.
//!
//! Conflicts, as apt handles them while marking: a candidate whose own
//! `Conflicts`/`Breaks` name a selected package displaces it (unselects
//! it), unless that package is protected — requested, being marked (its
//! relations are being met), or the only package that could meet a
//! relation of a protected package — in which case the candidate is passed
//! over; so is a candidate a selected package's `Conflicts`/`Breaks` name.
//! After the marking, relations a displaced package leaves unmet are met
//! again and packages no requested package reaches any more are dropped
//! (apt's problem resolver and autoremover do that). Conflicts among the
//! requested packages themselves are an error.
//!
//! Multi-Arch: the universe holds one architecture, so a plain relation
//! accepts any package of the name; `name:any` accepts `Multi-Arch:
//! allowed` packages; `name:native` and `name:<target>` accept packages of
//! the target architecture or `all`; a `Multi-Arch: foreign` package
//! satisfies any qualifier. Essential packages are not added implicitly:
//! only what the request and its dependencies name is selected.
//!
//! Excluded packages are never selected; a relation only they could meet is
//! left out and recorded in [`Resolution::skipped`]. Unless
//! [`Request::install_time_dependencies`] is set, relations whose every
//! alternative is one of [`INSTALL_TIME_PACKAGES`] (needed to run maintainer
//! scripts, which xbuild does not run) are left out and recorded too.
//!
//! Where apt's choice depends on an installed system (upgrades, held
//! packages) or on its cache's internal order (the last tie-break among
//! providers) this resolver has no counterpart; where apt would take a
//! package that a selected one's `Conflicts` name and leave its problem
//! resolver to sort the result out, this resolver passes the candidate
//! over; and a failed attempt is undone whole, where apt keeps what it
//! marked until its autoremover drops it (the same closure unless a later
//! relation happens to use such a leftover).

mod choose;
mod marker;
mod settle;
mod universe;

pub use universe::Universe;

use crate::debian::package::Package;
use crate::debian::version::{Version, VersionError};
use marker::Marker;
use std::fmt;
use universe::conflicting_relation;

/// Packages needed only to install other packages (by maintainer scripts
/// and dpkg triggers), not to run them.
pub const INSTALL_TIME_PACKAGES: [&str; 6] = [
    "dpkg",
    "debconf",
    "debconf-2.0",
    "cdebconf",
    "install-info",
    "init-system-helpers",
];

/// What to resolve.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `name` or `name=version`.
    pub include: Vec<String>,
    /// Package names never to select.
    pub exclude: Vec<String>,
    /// Keep relations on [`INSTALL_TIME_PACKAGES`].
    pub install_time_dependencies: bool,
    /// Select the requested packages only, without their dependencies:
    /// for packages whose files are used, not installed (the source
    /// tarballs and static libraries a toolchain is built from).
    pub without_dependencies: bool,
}

/// Why a package is in a resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    Requested,
    Dependency {
        parent: String,
        /// The relation's alternatives, in Debian syntax.
        relation: String,
        /// `Depends` or `Pre-Depends`.
        field: &'static str,
    },
}

/// A selected package and why.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub package: Package,
    pub reason: Reason,
}

/// Why a relation was left out of a resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Only these excluded packages could meet it.
    Excluded { packages: Vec<String> },
    /// It names only install-time packages.
    InstallTimeOnly,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Excluded { packages } => {
                write!(
                    f,
                    "only excluded packages satisfy it: {}",
                    packages.join(", ")
                )
            }
            SkipReason::InstallTimeOnly => f.write_str("needed only to install packages"),
        }
    }
}

/// A relation left out of a resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedDependency {
    pub parent: String,
    pub relation: String,
    pub field: &'static str,
    pub reason: SkipReason,
}

/// How a relation on a pure-virtual name was met: every provider that was
/// tried, with what it would add, and the one taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderChoice {
    /// The relation (or the request) the name is in.
    pub reason: Reason,
    /// The pure-virtual name the providers provide.
    pub virtual_name: String,
    /// The provider selected.
    pub chosen: String,
    /// Every provider tried, lightest first; those that cannot be
    /// installed last.
    pub providers: Vec<ProviderOption>,
}

/// One provider of a [`ProviderChoice`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderOption {
    pub name: String,
    pub version: String,
    /// The packages it would add (itself included) to the selection made so
    /// far; `None` when it cannot be installed.
    pub added: Option<usize>,
}

/// The closure of a request.
#[derive(Clone, Debug)]
pub struct Resolution {
    /// Sorted by name.
    pub packages: Vec<Resolved>,
    /// Relations left out, in the order met.
    pub skipped: Vec<SkippedDependency>,
    /// How relations on pure-virtual names were met, in the order met.
    pub choices: Vec<ProviderChoice>,
}

impl Resolution {
    /// The selected package called `name`.
    pub fn get(&self, name: &str) -> Option<&Resolved> {
        self.packages
            .binary_search_by(|resolved| resolved.package.name.as_str().cmp(name))
            .ok()
            .map(|index| &self.packages[index])
    }

    /// Total size of the `.deb` files, in bytes.
    pub fn download_size(&self) -> u64 {
        self.packages
            .iter()
            .map(|resolved| resolved.package.size)
            .sum()
    }
}

/// A request that cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot satisfy \"{relation}\" needed by {}: available: {candidates}", .chain.join(" → "))]
    Unsatisfiable {
        relation: String,
        /// Requested package → … → the package with the relation.
        chain: Vec<String>,
        /// The versions that exist, or `none`.
        candidates: String,
    },
    #[error("no package named {name:?} in the index{}", suggestion_text(.suggestions))]
    UnknownPackage {
        name: String,
        suggestions: Vec<String>,
    },
    #[error("no version {version} of package {name} in the index; available: {available}")]
    VersionNotFound {
        name: String,
        version: String,
        available: String,
    },
    #[error("invalid version in requested package {request:?}")]
    InvalidRequestVersion {
        request: String,
        #[source]
        source: VersionError,
    },
    #[error("package {name} is both requested and excluded")]
    RequestedAndExcluded { name: String },
    #[error("package {name} is requested at two versions, {first} and {second}")]
    ConflictingRequests {
        name: String,
        first: String,
        second: String,
    },
    #[error("{package} ({}) has {field} \"{relation}\", but {other} is selected too", .chain.join(" → "))]
    Conflict {
        package: String,
        field: &'static str,
        relation: String,
        other: String,
        chain: Vec<String>,
    },
}

fn suggestion_text(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", suggestions.join(", "))
    }
}

/// Resolves `request` in `universe`; see the module documentation.
pub fn resolve(universe: &Universe, request: &Request) -> Result<Resolution, ResolveError> {
    let mut marker = Marker::new(universe, request);
    let mut virtual_requests = Vec::new();
    for include in &request.include {
        let name = include.trim();
        if universe.is_pure_virtual(name) {
            virtual_requests.push(name);
        } else {
            marker.add_request(include)?;
        }
    }
    for name in virtual_requests {
        marker.add_virtual_request(name, request.without_dependencies)?;
    }
    if !request.without_dependencies {
        for index in marker.requested.clone() {
            marker.meet_relations_of(index)?;
        }
        marker.repair()?;
        marker.sweep();
    }
    marker.check_conflicts()?;
    let mut packages: Vec<Resolved> = marker
        .selected
        .into_values()
        .map(|(index, reason)| Resolved {
            package: universe.packages[index].clone(),
            reason,
        })
        .collect();
    packages.sort_by(|left, right| left.package.name.cmp(&right.package.name));
    Ok(Resolution {
        packages,
        skipped: marker.skipped,
        choices: marker.choices,
    })
}

impl Marker<'_> {
    /// Selects the package `include` names (`name` or `name=version`);
    /// nothing when the same package is requested twice.
    fn add_request(&mut self, include: &str) -> Result<(), ResolveError> {
        let universe = self.universe;
        let (name, version) = match include.split_once('=') {
            Some((name, version)) => (name.trim(), Some(version.trim())),
            None => (include.trim(), None),
        };
        if self.excluded.contains(name) {
            return Err(ResolveError::RequestedAndExcluded {
                name: name.to_string(),
            });
        }
        let index = match version {
            Some(version_text) => {
                let wanted: Version =
                    version_text
                        .parse()
                        .map_err(|source| ResolveError::InvalidRequestVersion {
                            request: include.to_string(),
                            source,
                        })?;
                let found = universe
                    .indices(name)
                    .iter()
                    .copied()
                    .find(|index| universe.packages[*index].version == wanted);
                match found {
                    Some(index) => index,
                    None if universe.indices(name).is_empty() => return Err(self.unknown(name)),
                    None => {
                        return Err(ResolveError::VersionNotFound {
                            name: name.to_string(),
                            version: version_text.to_string(),
                            available: self.versions_text(name),
                        });
                    }
                }
            }
            None => match universe.indices(name).first() {
                Some(index) => *index,
                None => return Err(self.unknown(name)),
            },
        };
        let package = &universe.packages[index];
        if let Some((existing, _)) = self.selected.get(&package.name) {
            if *existing == index {
                return Ok(());
            }
            return Err(ResolveError::ConflictingRequests {
                name: package.name.clone(),
                first: universe.packages[*existing].version.to_string(),
                second: package.version.to_string(),
            });
        }
        self.select_requested(index);
        Ok(())
    }

    fn check_conflicts(&self) -> Result<(), ResolveError> {
        let packages = &self.universe.packages;
        let mut selected: Vec<usize> = self.selected.values().map(|(index, _)| *index).collect();
        selected.sort_by(|left, right| packages[*left].name.cmp(&packages[*right].name));
        for owner in &selected {
            for other in &selected {
                let (owner, other) = (&packages[*owner], &packages[*other]);
                if let Some((field, relation)) = conflicting_relation(owner, other) {
                    return Err(ResolveError::Conflict {
                        package: owner.name.clone(),
                        field,
                        relation: relation.to_string(),
                        other: format!("{} {}", other.name, other.version),
                        chain: self.chain(&owner.name),
                    });
                }
            }
        }
        Ok(())
    }

    /// Requested package → … → `name`, following the reasons.
    pub(super) fn chain(&self, name: &str) -> Vec<String> {
        let mut chain = vec![name.to_string()];
        let mut current = name;
        while let Some((_, Reason::Dependency { parent, .. })) = self.selected.get(current) {
            if chain.contains(parent) {
                break;
            }
            chain.push(parent.clone());
            current = parent;
        }
        chain.reverse();
        chain
    }

    fn versions_text(&self, name: &str) -> String {
        let versions: Vec<String> = self
            .universe
            .get(name)
            .map(|package| package.version.to_string())
            .collect();
        versions.join(", ")
    }

    pub(super) fn unknown(&self, name: &str) -> ResolveError {
        ResolveError::UnknownPackage {
            name: name.to_string(),
            suggestions: close_names(self.universe, name),
        }
    }
}

/// Up to five real or virtual names within a small edit distance of `name`.
fn close_names(universe: &Universe, name: &str) -> Vec<String> {
    let limit = (name.chars().count() / 4).clamp(1, 3);
    let mut close: Vec<(usize, &str)> = universe
        .by_name
        .keys()
        .chain(universe.providers.keys())
        .filter(|candidate| candidate.len().abs_diff(name.len()) <= limit)
        .filter_map(|candidate| {
            let distance = edit_distance(name, candidate);
            (distance <= limit).then_some((distance, candidate.as_str()))
        })
        .collect();
    close.sort_unstable();
    close.dedup();
    close
        .into_iter()
        .take(5)
        .map(|(_, name)| name.to_string())
        .collect()
}

/// Levenshtein distance over characters.
fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    let mut current = vec![0; right.len() + 1];
    for (i, left_char) in left.chars().enumerate() {
        current[0] = i + 1;
        for (j, right_char) in right.iter().enumerate() {
            let substitution = previous[j] + usize::from(left_char != *right_char);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[right.len()]
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod apt_tests;
