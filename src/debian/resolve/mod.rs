//! The dependency closure of a set of Debian packages for one target
//! architecture. This module owns [`Universe`] (the packages of one
//! architecture plus `all`, indexed by name and by provided name) and
//! [`resolve`], a deterministic greedy resolver.
//!
//! Resolution is breadth-first from the requested packages; for each
//! package, `Pre-Depends` then `Depends` are examined in order. For one
//! relation `a | b | c`:
//!
//! 1. an alternative already satisfied by a selected (or requested) package
//!    wins;
//! 2. else the first alternative with a real package that satisfies it, at
//!    the highest satisfying version;
//! 3. else a package that `Provides` one of the alternatives, in order: an
//!    unversioned `Provides` never satisfies a versioned relation, a
//!    versioned one (`foo (= 1.0)`) is compared; among several providers the
//!    one with the highest priority (required, important, standard,
//!    optional, extra), then the first by name.
//!
//! Candidates that would conflict (`Conflicts`/`Breaks`, both ways) with a
//! selected package are passed over; conflicts among the requested packages
//! themselves are an error. Multi-Arch: the universe holds one architecture,
//! so a plain relation accepts any package of the name; `name:any` accepts
//! `Multi-Arch: allowed` packages; `name:native` and `name:<target>` accept
//! packages of the target architecture or `all`; a `Multi-Arch: foreign`
//! package satisfies any qualifier. Essential packages are not added
//! implicitly: only what the request and its dependencies name is selected.
//!
//! Excluded packages are never selected; a relation only they could meet is
//! left out and recorded in [`Resolution::skipped`]. Unless
//! [`Request::install_time_dependencies`] is set, relations whose every
//! alternative is one of [`INSTALL_TIME_PACKAGES`] (needed to run maintainer
//! scripts, which xbuild does not run) are left out and recorded too.

use crate::debian::package::{Alternatives, MultiArch, Package, Relation, display_alternatives};
use crate::debian::version::{Version, VersionError};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

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

/// The packages available for one target architecture.
pub struct Universe {
    packages: Vec<Package>,
    architecture: Option<String>,
    /// Package indices by name, highest version first.
    by_name: HashMap<String, Vec<usize>>,
    /// (package index, index in its `provides`) by provided name.
    providers: HashMap<String, Vec<(usize, usize)>>,
}

impl Universe {
    /// Indexes `packages`. The target architecture (for `:native`
    /// qualifiers) is the most common architecture other than `all`.
    pub fn new(packages: Vec<Package>) -> Self {
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut providers: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        let mut architectures: HashMap<&str, usize> = HashMap::new();
        for (index, package) in packages.iter().enumerate() {
            by_name.entry(package.name.clone()).or_default().push(index);
            for (provide_index, provided) in package.provides.iter().enumerate() {
                providers
                    .entry(provided.name.clone())
                    .or_default()
                    .push((index, provide_index));
            }
            if package.architecture != "all" {
                *architectures.entry(&package.architecture).or_default() += 1;
            }
        }
        for indices in by_name.values_mut() {
            indices.sort_by(|left, right| packages[*right].version.cmp(&packages[*left].version));
        }
        let architecture = architectures
            .into_iter()
            .max_by(|left, right| left.1.cmp(&right.1).then(right.0.cmp(left.0)))
            .map(|(architecture, _)| architecture.to_string());
        Universe {
            packages,
            architecture,
            by_name,
            providers,
        }
    }

    /// Number of packages (all versions).
    pub fn len(&self) -> usize {
        self.packages.len()
    }

    /// Whether the universe holds no package.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    /// The target architecture, if any package is not `all`.
    pub fn architecture(&self) -> Option<&str> {
        self.architecture.as_deref()
    }

    /// Every version of the package called `name`, highest first.
    pub fn get(&self, name: &str) -> impl Iterator<Item = &Package> + '_ {
        self.indices(name)
            .iter()
            .map(|index| &self.packages[*index])
    }

    /// The packages that provide `name`, each with its `Provides` entry.
    pub fn providers(&self, name: &str) -> impl Iterator<Item = (&Package, &Relation)> + '_ {
        self.provider_indices(name).iter().map(|(index, provide)| {
            let package = &self.packages[*index];
            (package, &package.provides[*provide])
        })
    }

    /// All packages, in the order they were given.
    pub fn packages(&self) -> &[Package] {
        &self.packages
    }

    fn indices(&self, name: &str) -> &[usize] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    fn provider_indices(&self, name: &str) -> &[(usize, usize)] {
        self.providers.get(name).map_or(&[], Vec::as_slice)
    }

    /// Whether `package` meets the relation's architecture qualifier.
    fn architecture_accepts(&self, package: &Package, qualifier: Option<&str>) -> bool {
        if package.multi_arch == MultiArch::Foreign {
            return true;
        }
        let native = || {
            package.architecture == "all"
                || Some(package.architecture.as_str()) == self.architecture()
        };
        match qualifier {
            None => true,
            Some("any") => package.multi_arch == MultiArch::Allowed,
            Some("native") => native(),
            Some(architecture) => Some(architecture) == self.architecture() && native(),
        }
    }

    /// Whether the package itself (not what it provides) satisfies `relation`.
    fn satisfies_directly(&self, package: &Package, relation: &Relation) -> bool {
        package.name == relation.name
            && relation.satisfied_by(&package.version)
            && self.architecture_accepts(package, relation.arch_qualifier.as_deref())
    }

    /// Whether the `Provides` entry `provided` of `package` satisfies `relation`.
    fn satisfies_by_provides(
        &self,
        package: &Package,
        provided: &Relation,
        relation: &Relation,
    ) -> bool {
        let version_ok = match (&relation.constraint, &provided.constraint) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(_), Some((_, version))) => relation.satisfied_by(version),
        };
        provided.name == relation.name
            && version_ok
            && self.architecture_accepts(package, relation.arch_qualifier.as_deref())
    }
}

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

/// The closure of a request.
#[derive(Clone, Debug)]
pub struct Resolution {
    /// Sorted by name.
    pub packages: Vec<Resolved>,
    /// Relations left out, in the order met.
    pub skipped: Vec<SkippedDependency>,
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

/// How a relation is met.
enum Choice {
    AlreadySatisfied,
    Select(usize),
    OnlyExcluded(Vec<String>),
    Unsatisfiable,
}

struct Resolver<'a> {
    universe: &'a Universe,
    excluded: HashSet<&'a str>,
    /// Selected package index by name, and why.
    selected: HashMap<String, (usize, Reason)>,
    queue: VecDeque<usize>,
    skipped: Vec<SkippedDependency>,
}

/// Resolves `request` in `universe`; see the module documentation.
pub fn resolve(universe: &Universe, request: &Request) -> Result<Resolution, ResolveError> {
    let mut resolver = Resolver {
        universe,
        excluded: request.exclude.iter().map(String::as_str).collect(),
        selected: HashMap::new(),
        queue: VecDeque::new(),
        skipped: Vec::new(),
    };
    for include in &request.include {
        resolver.add_request(include)?;
    }
    if request.without_dependencies {
        resolver.queue.clear();
    }
    while let Some(index) = resolver.queue.pop_front() {
        let package = &universe.packages[index];
        let fields = [
            ("Pre-Depends", &package.pre_depends),
            ("Depends", &package.depends),
        ];
        for (field, relations) in fields {
            for alternatives in relations {
                resolver.meet(
                    package,
                    field,
                    alternatives,
                    request.install_time_dependencies,
                )?;
            }
        }
    }
    resolver.check_conflicts()?;
    let mut packages: Vec<Resolved> = resolver
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
        skipped: resolver.skipped,
    })
}

impl<'a> Resolver<'a> {
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
                None => {
                    let relation = Relation::new(name);
                    match self.best_provider(std::slice::from_ref(&relation), &mut Vec::new()) {
                        Some(index) => index,
                        None => return Err(self.unknown(name)),
                    }
                }
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
        self.select(index, Reason::Requested);
        Ok(())
    }

    fn select(&mut self, index: usize, reason: Reason) {
        let name = self.universe.packages[index].name.clone();
        self.selected.insert(name, (index, reason));
        self.queue.push_back(index);
    }

    fn is_selected(&self, index: usize) -> bool {
        let name = &self.universe.packages[index].name;
        self.selected
            .get(name)
            .is_some_and(|(selected, _)| *selected == index)
    }

    /// Whether the name of package `index` is taken by another version.
    fn name_taken(&self, index: usize) -> bool {
        let name = &self.universe.packages[index].name;
        self.selected
            .get(name)
            .is_some_and(|(selected, _)| *selected != index)
    }

    fn meet(
        &mut self,
        parent: &Package,
        field: &'static str,
        alternatives: &Alternatives,
        install_time: bool,
    ) -> Result<(), ResolveError> {
        let skip = |reason| SkippedDependency {
            parent: parent.name.clone(),
            relation: display_alternatives(alternatives),
            field,
            reason,
        };
        if !install_time
            && alternatives
                .iter()
                .all(|relation| INSTALL_TIME_PACKAGES.contains(&relation.name.as_str()))
        {
            self.skipped.push(skip(SkipReason::InstallTimeOnly));
            return Ok(());
        }
        match self.choose(alternatives) {
            Choice::AlreadySatisfied => Ok(()),
            Choice::Select(index) => {
                let reason = Reason::Dependency {
                    parent: parent.name.clone(),
                    relation: display_alternatives(alternatives),
                    field,
                };
                self.select(index, reason);
                Ok(())
            }
            Choice::OnlyExcluded(packages) => {
                self.skipped.push(skip(SkipReason::Excluded { packages }));
                Ok(())
            }
            Choice::Unsatisfiable => Err(ResolveError::Unsatisfiable {
                relation: display_alternatives(alternatives),
                chain: self.chain(&parent.name),
                candidates: self.candidates_text(alternatives),
            }),
        }
    }

    fn choose(&self, alternatives: &[Relation]) -> Choice {
        let universe = self.universe;
        let already = alternatives.iter().any(|relation| {
            universe.indices(&relation.name).iter().any(|index| {
                self.is_selected(*index)
                    && universe.satisfies_directly(&universe.packages[*index], relation)
            }) || universe
                .provider_indices(&relation.name)
                .iter()
                .any(|(index, provide)| {
                    let package = &universe.packages[*index];
                    self.is_selected(*index)
                        && universe.satisfies_by_provides(
                            package,
                            &package.provides[*provide],
                            relation,
                        )
                })
        });
        if already {
            return Choice::AlreadySatisfied;
        }
        let mut excluded_candidates = Vec::new();
        for relation in alternatives {
            for index in universe.indices(&relation.name).iter().copied() {
                let package = &universe.packages[index];
                if !universe.satisfies_directly(package, relation) {
                    continue;
                }
                if self.excluded.contains(package.name.as_str()) {
                    excluded_candidates.push(package.name.clone());
                } else if !self.name_taken(index) && !self.conflicts_with_selection(index) {
                    return Choice::Select(index);
                }
            }
        }
        if let Some(index) = self.best_provider(alternatives, &mut excluded_candidates) {
            return Choice::Select(index);
        }
        if excluded_candidates.is_empty() {
            Choice::Unsatisfiable
        } else {
            excluded_candidates.dedup();
            Choice::OnlyExcluded(excluded_candidates)
        }
    }

    /// The preferred provider for the first alternative that has a usable
    /// one; excluded providers are noted in `excluded_candidates`.
    fn best_provider(
        &self,
        alternatives: &[Relation],
        excluded_candidates: &mut Vec<String>,
    ) -> Option<usize> {
        let universe = self.universe;
        for relation in alternatives {
            let mut usable: Vec<usize> = Vec::new();
            for (index, provide) in universe.provider_indices(&relation.name).iter().copied() {
                let package = &universe.packages[index];
                if !universe.satisfies_by_provides(package, &package.provides[provide], relation) {
                    continue;
                }
                if self.excluded.contains(package.name.as_str()) {
                    excluded_candidates.push(package.name.clone());
                } else if !self.name_taken(index) && !self.conflicts_with_selection(index) {
                    usable.push(index);
                }
            }
            let best = usable.into_iter().min_by(|left, right| {
                let (left, right) = (&universe.packages[*left], &universe.packages[*right]);
                priority_rank(left)
                    .cmp(&priority_rank(right))
                    .then_with(|| left.name.cmp(&right.name))
                    .then_with(|| right.version.cmp(&left.version))
            });
            if best.is_some() {
                return best;
            }
        }
        None
    }

    /// Whether package `index` conflicts with a selected package, either way.
    fn conflicts_with_selection(&self, index: usize) -> bool {
        let packages = &self.universe.packages;
        let candidate = &packages[index];
        self.selected.values().any(|(selected, _)| {
            let other = &packages[*selected];
            conflicting_relation(candidate, other).is_some()
                || conflicting_relation(other, candidate).is_some()
        })
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
    fn chain(&self, name: &str) -> Vec<String> {
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

    /// What exists for the names in `alternatives`, for error messages.
    fn candidates_text(&self, alternatives: &[Relation]) -> String {
        let universe = self.universe;
        let mut texts = Vec::new();
        for relation in alternatives {
            for index in universe.indices(&relation.name).iter().copied() {
                let package = &universe.packages[index];
                let mut text = format!("{} {}", package.name, package.version);
                if self.name_taken(index) {
                    text.push_str(" (another version is selected)");
                } else if relation.satisfied_by(&package.version)
                    && !universe.architecture_accepts(package, relation.arch_qualifier.as_deref())
                {
                    text.push_str(
                        &format!(" (Multi-Arch: {:?})", package.multi_arch).to_lowercase(),
                    );
                } else if universe.satisfies_directly(package, relation)
                    && self.conflicts_with_selection(index)
                {
                    text.push_str(" (conflicts with a selected package)");
                }
                texts.push(text);
            }
            for (package, provided) in universe.providers(&relation.name) {
                texts.push(format!(
                    "{} {} provides {provided}",
                    package.name, package.version
                ));
            }
        }
        if texts.is_empty() {
            "none".to_string()
        } else {
            texts.join(", ")
        }
    }

    fn unknown(&self, name: &str) -> ResolveError {
        ResolveError::UnknownPackage {
            name: name.to_string(),
            suggestions: close_names(self.universe, name),
        }
    }
}

/// The `Conflicts`/`Breaks` relation of `owner` that `other` matches, by
/// its name and version or by what it provides. A package never conflicts
/// with itself (the common Provides + Conflicts pattern).
fn conflicting_relation<'p>(
    owner: &'p Package,
    other: &Package,
) -> Option<(&'static str, &'p Relation)> {
    if owner.name == other.name {
        return None;
    }
    let matches = |relation: &Relation| {
        (relation.name == other.name && relation.satisfied_by(&other.version))
            || other.provides.iter().any(|provided| {
                provided.name == relation.name
                    && match (&relation.constraint, &provided.constraint) {
                        (None, _) => true,
                        (Some(_), None) => false,
                        (Some(_), Some((_, version))) => relation.satisfied_by(version),
                    }
            })
    };
    let conflicts = owner.conflicts.iter().find(|relation| matches(relation));
    let breaks = owner.breaks.iter().find(|relation| matches(relation));
    conflicts
        .map(|relation| ("Conflicts", relation))
        .or_else(|| breaks.map(|relation| ("Breaks", relation)))
}

/// required < important < standard < optional < extra < anything else.
fn priority_rank(package: &Package) -> u8 {
    match package.priority.as_deref() {
        Some("required") => 0,
        Some("important") => 1,
        Some("standard") => 2,
        Some("optional") => 3,
        Some("extra") => 4,
        _ => 5,
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
#[path = "tests.rs"]
mod tests;
