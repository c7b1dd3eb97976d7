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
mod tests {
    use super::*;
    use crate::debian::package::{parse_provides, parse_relation_list, parse_relations};
    use crate::hash::Sha256Digest;

    /// A package from compact text: `name version [field=value;...]`, with
    /// fields `d` (Depends), `p` (Pre-Depends), `v` (Provides), `c`
    /// (Conflicts), `b` (Breaks), `m` (Multi-Arch), `a` (Architecture),
    /// `r` (Priority).
    fn package(spec: &str) -> Package {
        let (head, fields) = spec.split_once(';').unwrap_or((spec, ""));
        let (name, version) = head.trim().split_once(' ').unwrap();
        let mut package = Package {
            name: name.to_string(),
            version: version.parse().unwrap(),
            architecture: "arm64".to_string(),
            multi_arch: MultiArch::No,
            essential: false,
            priority: None,
            section: None,
            source: None,
            depends: Vec::new(),
            pre_depends: Vec::new(),
            provides: Vec::new(),
            conflicts: Vec::new(),
            breaks: Vec::new(),
            filename: format!("pool/{name}.deb"),
            size: 1,
            sha256: Sha256Digest([0; 32]),
            installed_size_kib: None,
        };
        for field in fields.split(';').filter(|field| !field.trim().is_empty()) {
            let (key, value) = field.split_once('=').unwrap();
            match key.trim() {
                "d" => package.depends = parse_relations(value, "arm64").unwrap(),
                "p" => package.pre_depends = parse_relations(value, "arm64").unwrap(),
                "v" => package.provides = parse_provides(value, "arm64").unwrap(),
                "c" => package.conflicts = parse_relation_list(value, "arm64").unwrap(),
                "b" => package.breaks = parse_relation_list(value, "arm64").unwrap(),
                "a" => package.architecture = value.to_string(),
                "r" => package.priority = Some(value.to_string()),
                "m" => {
                    package.multi_arch = match value {
                        "allowed" => MultiArch::Allowed,
                        "foreign" => MultiArch::Foreign,
                        "same" => MultiArch::Same,
                        _ => MultiArch::No,
                    }
                }
                other => panic!("unknown field {other}"),
            }
        }
        package
    }

    fn universe(specs: &[&str]) -> Universe {
        Universe::new(specs.iter().map(|spec| package(spec)).collect())
    }

    fn request(include: &[&str], exclude: &[&str]) -> Request {
        Request {
            include: include.iter().map(ToString::to_string).collect(),
            exclude: exclude.iter().map(ToString::to_string).collect(),
            install_time_dependencies: false,
        }
    }

    /// `name version` of every selected package.
    fn closure(universe: &Universe, request: &Request) -> Vec<String> {
        let resolution = resolve(universe, request).unwrap_or_else(|error| panic!("{error}"));
        resolution
            .packages
            .iter()
            .map(|resolved| format!("{} {}", resolved.package.name, resolved.package.version))
            .collect()
    }

    #[test]
    fn alternatives_prefer_selected_then_first_satisfiable() {
        let specs = ["app 1;d=missing | b | c", "b 1", "c 1", "both 1;d=app, c"];
        let universe = universe(&specs);
        assert_eq!(
            closure(&universe, &request(&["app"], &[])),
            ["app 1", "b 1"]
        );
        assert_eq!(
            closure(&universe, &request(&["c", "app"], &[])),
            ["app 1", "c 1"]
        );
        // Breadth-first: `both` selects app and c before app's relation is
        // examined, so app's `| c` is already met.
        assert_eq!(
            closure(&universe, &request(&["both"], &[])),
            ["app 1", "both 1", "c 1"]
        );
    }

    #[test]
    fn highest_satisfying_version_with_epochs() {
        let universe = universe(&[
            "app 1;d=lib (<< 1:0)",
            "lib 1.0",
            "lib 2.0",
            "lib 1:0.5",
            "new 1;d=lib (>= 1:0.1)",
        ]);
        assert_eq!(
            closure(&universe, &request(&["app"], &[])),
            ["app 1", "lib 2.0"]
        );
        assert_eq!(
            closure(&universe, &request(&["new"], &[])),
            ["lib 1:0.5", "new 1"]
        );
        assert_eq!(closure(&universe, &request(&["lib=1.0"], &[])), ["lib 1.0"]);
        let error = resolve(&universe, &request(&["lib=3"], &[])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no version 3 of package lib in the index; available: 1:0.5, 2.0, 1.0"
        );
    }

    #[test]
    fn virtual_packages_by_priority_then_name() {
        let universe = universe(&[
            "app 1;d=mail-transport-agent",
            "zmail 1;v=mail-transport-agent;r=standard",
            "amail 1;v=mail-transport-agent;r=optional",
            "bmail 1;v=mail-transport-agent;r=standard",
        ]);
        assert_eq!(
            closure(&universe, &request(&["app"], &[])),
            ["app 1", "bmail 1"]
        );
        assert_eq!(
            closure(&universe, &request(&["app", "amail"], &[])),
            ["amail 1", "app 1"]
        );
        assert_eq!(
            closure(&universe, &request(&["app"], &["bmail"])),
            ["app 1", "zmail 1"]
        );
        assert_eq!(
            closure(&universe, &request(&["mail-transport-agent"], &[])),
            ["bmail 1"]
        );
    }

    #[test]
    fn versioned_provides() {
        let specs = [
            "app 1;d=libv (>= 2)",
            "plain 1;v=libv",
            "old 1;v=libv (= 1.5)",
            "good 1;v=libv (= 2.1)",
        ];
        assert_eq!(
            closure(&universe(&specs), &request(&["app"], &[])),
            ["app 1", "good 1"]
        );
        let error = resolve(&universe(&specs[..3]), &request(&["app"], &[])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot satisfy \"libv (>= 2)\" needed by app: available: \
             plain 1 provides libv, old 1 provides libv (= 1.5)"
        );
    }

    #[test]
    fn unsatisfiable_names_the_chain() {
        let universe = universe(&[
            "app 1;d=libbar",
            "libbar 1;d=libfoo (>= 2)",
            "libfoo 1.0",
            "lone 1;d=nothing",
        ]);
        let error = resolve(&universe, &request(&["app"], &[])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot satisfy \"libfoo (>= 2)\" needed by app → libbar: available: libfoo 1.0"
        );
        let ResolveError::Unsatisfiable { chain, .. } = error else {
            panic!()
        };
        assert_eq!(chain, ["app", "libbar"]);
        let error = resolve(&universe, &request(&["lone"], &[])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot satisfy \"nothing\" needed by lone: available: none"
        );
    }

    #[test]
    fn exclusions_prune_and_are_recorded() {
        let universe = universe(&["app 1;d=b, c | d, e | b", "b 1", "c 1", "d 1", "e 1"]);
        let resolution = resolve(&universe, &request(&["app"], &["b", "c"])).unwrap();
        let names: Vec<_> = resolution
            .packages
            .iter()
            .map(|r| r.package.name.as_str())
            .collect();
        assert_eq!(names, ["app", "d", "e"]);
        assert_eq!(
            resolution.skipped,
            [SkippedDependency {
                parent: "app".to_string(),
                relation: "b".to_string(),
                field: "Depends",
                reason: SkipReason::Excluded {
                    packages: vec!["b".to_string()]
                },
            }]
        );
        assert!(matches!(
            resolve(&universe, &request(&["b"], &["b"])),
            Err(ResolveError::RequestedAndExcluded { .. })
        ));
    }

    #[test]
    fn install_time_dependencies_are_skipped_unless_asked() {
        let specs = [
            "app 1;p=dpkg (>= 1.17);d=debconf (>= 0.5) | debconf-2.0, libc6",
            "dpkg 1.21;d=tar",
            "tar 1",
            "debconf 1",
            "libc6 2",
        ];
        let universe = universe(&specs);
        let mut wanted = request(&["app"], &[]);
        let resolution = resolve(&universe, &wanted).unwrap();
        assert!(resolution.get("dpkg").is_none() && resolution.get("tar").is_none());
        assert!(resolution.get("libc6").is_some());
        let skipped: Vec<_> = resolution
            .skipped
            .iter()
            .map(|s| (s.relation.as_str(), s.field))
            .collect();
        assert_eq!(
            skipped,
            [
                ("dpkg (>= 1.17)", "Pre-Depends"),
                ("debconf (>= 0.5) | debconf-2.0", "Depends")
            ]
        );
        assert!(
            resolution
                .skipped
                .iter()
                .all(|s| s.reason == SkipReason::InstallTimeOnly)
        );
        wanted.install_time_dependencies = true;
        let resolution = resolve(&universe, &wanted).unwrap();
        assert_eq!(resolution.packages.len(), 5);
        assert!(resolution.skipped.is_empty());
        assert_eq!(
            resolution.get("tar").unwrap().reason,
            Reason::Dependency {
                parent: "dpkg".to_string(),
                relation: "tar".to_string(),
                field: "Depends"
            }
        );
    }

    #[test]
    fn multi_arch_qualifiers() {
        let allowed = ["app 1;d=perl:any", "perl 5;m=allowed"];
        assert_eq!(
            closure(&universe(&allowed), &request(&["app"], &[])),
            ["app 1", "perl 5"]
        );
        let foreign = ["app 1;d=perl:any", "perl 5;m=foreign"];
        assert_eq!(
            closure(&universe(&foreign), &request(&["app"], &[])),
            ["app 1", "perl 5"]
        );
        let error = resolve(
            &universe(&["app 1;d=perl:any", "perl 5"]),
            &request(&["app"], &[]),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot satisfy \"perl:any\" needed by app: available: perl 5 (multi-arch: no)"
        );
        let native = [
            "app 1;d=lib:native, tool:arm64, data:native",
            "lib 1",
            "tool 1",
            "data 1;a=all",
        ];
        assert_eq!(
            closure(&universe(&native), &request(&["app"], &[])).len(),
            4
        );
        let other = ["app 1;d=lib:amd64", "lib 1"];
        assert!(resolve(&universe(&other), &request(&["app"], &[])).is_err());
    }

    #[test]
    fn pre_depends_cycles_terminate() {
        let universe = universe(&["a 1;p=b", "b 1;p=a;d=c", "c 1;d=a, c"]);
        let resolution = resolve(&universe, &request(&["a"], &[])).unwrap();
        assert_eq!(resolution.packages.len(), 3);
        assert_eq!(
            resolution.get("c").unwrap().reason,
            Reason::Dependency {
                parent: "b".to_string(),
                relation: "c".to_string(),
                field: "Depends",
            }
        );
    }

    #[test]
    fn conflicts_steer_alternatives_or_fail() {
        let specs = [
            "x 1;c=y",
            "app 1;d=y | z",
            "y 1",
            "z 1",
            "w 1;b=x (<< 2)",
            "self 1;v=thing;c=thing",
        ];
        let universe = universe(&specs);
        assert_eq!(
            closure(&universe, &request(&["x", "app"], &[])),
            ["app 1", "x 1", "z 1"]
        );
        let error = resolve(&universe, &request(&["y", "x"], &[])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "x (x) has Conflicts \"y\", but y 1 is selected too"
        );
        assert!(matches!(
            resolve(&universe, &request(&["x", "w"], &[])),
            Err(ResolveError::Conflict {
                field: "Breaks",
                ..
            })
        ));
        assert_eq!(closure(&universe, &request(&["self"], &[])), ["self 1"]);
    }

    #[test]
    fn resolution_is_deterministic_whatever_the_input_order() {
        let mut specs = vec![
            "app 1;d=v1, v2 | q, lib (>= 1)",
            "p1 1;v=v1;r=optional",
            "p2 1;v=v1;r=optional",
            "lib 1",
            "lib 2",
            "q 1",
            "v2real 1;v=v2",
        ];
        let first = resolve(&universe(&specs), &request(&["app"], &[])).unwrap();
        specs.reverse();
        let second = resolve(&universe(&specs), &request(&["app"], &[])).unwrap();
        let describe = |resolution: &Resolution| -> Vec<String> {
            resolution
                .packages
                .iter()
                .map(|r| format!("{} {:?}", r.package.describe(), r.reason))
                .collect()
        };
        assert_eq!(describe(&first), describe(&second));
        assert_eq!(
            closure(&universe(&specs), &request(&["app"], &[])),
            ["app 1", "lib 2", "p1 1", "q 1"]
        );
    }

    #[test]
    fn unknown_packages_suggest_close_names() {
        let universe = universe(&["cowsay 1", "cowsay-off 1", "fortune 1;v=fortune-mod"]);
        let error = resolve(&universe, &request(&["cowsey"], &[])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no package named \"cowsey\" in the index; did you mean cowsay?"
        );
        let error = resolve(&universe, &request(&["fortune-mud"], &[])).unwrap_err();
        assert!(
            error.to_string().ends_with("did you mean fortune-mod?"),
            "{error}"
        );
        let error = resolve(&universe, &request(&["zzz"], &[])).unwrap_err();
        assert_eq!(error.to_string(), "no package named \"zzz\" in the index");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    /// Lists of the host's apt for one architecture, uncompressed or lz4.
    fn host_lists() -> Option<(String, Vec<std::path::PathBuf>)> {
        let directory = fs_err::read_dir("/var/lib/apt/lists").ok()?;
        let mut lists: Vec<_> = directory
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .collect();
        lists.sort();
        for architecture in ["arm64", "amd64"] {
            let marker = format!("binary-{architecture}_Packages");
            let chosen: Vec<_> = lists
                .iter()
                .filter(|path| {
                    let name = path.file_name().unwrap().to_string_lossy();
                    name.ends_with(&marker) || name.ends_with(&format!("{marker}.lz4"))
                })
                .cloned()
                .collect();
            if !chosen.is_empty() {
                return Some((architecture.to_string(), chosen));
            }
        }
        None
    }

    #[test]
    fn resolves_cowsay_from_host_lists() {
        use crate::debian::package::parse_packages_index;
        use std::io::BufReader;
        let Some((architecture, lists)) = host_lists() else {
            println!("note: no apt lists under /var/lib/apt/lists; skipping");
            return;
        };
        let started = std::time::Instant::now();
        let mut packages = Vec::new();
        for list in &lists {
            let origin = list.display().to_string();
            if origin.ends_with(".lz4") {
                let Ok(mut child) = std::process::Command::new("lz4cat")
                    .arg(list)
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                else {
                    println!("note: lz4cat missing, skipping {origin}");
                    continue;
                };
                let reader = BufReader::new(child.stdout.take().unwrap());
                packages.extend(parse_packages_index(reader, &origin, &architecture).unwrap());
                assert!(child.wait().unwrap().success());
            } else {
                let reader = BufReader::new(fs_err::File::open(list).unwrap());
                packages.extend(parse_packages_index(reader, &origin, &architecture).unwrap());
            }
        }
        if packages.is_empty() {
            println!("note: no package read from the host lists; skipping");
            return;
        }
        let universe = Universe::new(packages);
        println!(
            "{} packages ({architecture}) parsed in {:?}",
            universe.len(),
            started.elapsed()
        );
        assert!(universe.len() > 10_000);
        let mut wanted = request(&["cowsay"], &[]);
        let resolution = resolve(&universe, &wanted).unwrap();
        for name in ["cowsay", "perl", "perl-base", "libc6"] {
            assert!(resolution.get(name).is_some(), "{name} missing");
        }
        assert!(resolution.get("dpkg").is_none());
        assert!(
            resolution
                .skipped
                .iter()
                .any(|s| s.relation.starts_with("dpkg"))
        );
        println!(
            "cowsay closure: {} packages, {} bytes",
            resolution.packages.len(),
            resolution.download_size()
        );
        wanted.install_time_dependencies = true;
        let with_dpkg = resolve(&universe, &wanted).unwrap();
        assert!(with_dpkg.get("dpkg").is_some());
        assert!(with_dpkg.packages.len() > resolution.packages.len());
        println!(
            "with install-time dependencies: {} packages",
            with_dpkg.packages.len()
        );
    }
}
