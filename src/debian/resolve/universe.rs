//! [`Universe`]: the packages of one target architecture (plus `all`),
//! indexed by name, by provided name and by the names their `Conflicts`
//! and `Breaks` mention, with the rules for whether a package (or one of
//! its `Provides`) satisfies a relation.

use crate::debian::package::{MultiArch, Package, Relation};
use std::collections::HashMap;

/// The packages available for one target architecture.
pub struct Universe {
    pub(super) packages: Vec<Package>,
    architecture: Option<String>,
    /// Package indices by name, highest version first.
    pub(super) by_name: HashMap<String, Vec<usize>>,
    /// (package index, index in its `provides`) by provided name.
    pub(super) providers: HashMap<String, Vec<(usize, usize)>>,
    /// Packages whose `Conflicts` or `Breaks` name the key.
    negative_owners: HashMap<String, Vec<usize>>,
}

impl Universe {
    /// Indexes `packages`. The target architecture (for `:native`
    /// qualifiers) is the most common architecture other than `all`.
    pub fn new(packages: Vec<Package>) -> Self {
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut providers: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        let mut negative_owners: HashMap<String, Vec<usize>> = HashMap::new();
        let mut architectures: HashMap<&str, usize> = HashMap::new();
        for (index, package) in packages.iter().enumerate() {
            by_name.entry(package.name.clone()).or_default().push(index);
            for (provide_index, provided) in package.provides.iter().enumerate() {
                providers
                    .entry(provided.name.clone())
                    .or_default()
                    .push((index, provide_index));
            }
            for relation in package.conflicts.iter().chain(&package.breaks) {
                let owners = negative_owners.entry(relation.name.clone()).or_default();
                if owners.last() != Some(&index) {
                    owners.push(index);
                }
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
            negative_owners,
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

    /// Whether `name` is only provided: no package has that name.
    pub fn is_pure_virtual(&self, name: &str) -> bool {
        self.indices(name).is_empty() && !self.provider_indices(name).is_empty()
    }

    pub(super) fn indices(&self, name: &str) -> &[usize] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    pub(super) fn provider_indices(&self, name: &str) -> &[(usize, usize)] {
        self.providers.get(name).map_or(&[], Vec::as_slice)
    }

    /// Packages whose `Conflicts` or `Breaks` name `name`.
    pub(super) fn negative_owners(&self, name: &str) -> &[usize] {
        self.negative_owners.get(name).map_or(&[], Vec::as_slice)
    }

    /// Whether `package` meets the relation's architecture qualifier.
    pub(super) fn architecture_accepts(&self, package: &Package, qualifier: Option<&str>) -> bool {
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
    pub(super) fn satisfies_directly(&self, package: &Package, relation: &Relation) -> bool {
        package.name == relation.name
            && relation.satisfied_by(&package.version)
            && self.architecture_accepts(package, relation.arch_qualifier.as_deref())
    }

    /// Whether the `Provides` entry `provided` of `package` satisfies `relation`.
    pub(super) fn satisfies_by_provides(
        &self,
        package: &Package,
        provided: &Relation,
        relation: &Relation,
    ) -> bool {
        provided.name == relation.name
            && provides_version_matches(provided, relation)
            && self.architecture_accepts(package, relation.arch_qualifier.as_deref())
    }
}

/// An unversioned `Provides` never satisfies a versioned relation; a
/// versioned one (`foo (= 1.0)`) is compared.
fn provides_version_matches(provided: &Relation, relation: &Relation) -> bool {
    match (&relation.constraint, &provided.constraint) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(_), Some((_, version))) => relation.satisfied_by(version),
    }
}

/// The `Conflicts`/`Breaks` relation of `owner` that `other` matches, by
/// its name and version or by what it provides. A package never conflicts
/// with itself (the common Provides + Conflicts pattern).
pub(super) fn conflicting_relation<'p>(
    owner: &'p Package,
    other: &Package,
) -> Option<(&'static str, &'p Relation)> {
    if owner.name == other.name {
        return None;
    }
    let matches = |relation: &Relation| {
        (relation.name == other.name && relation.satisfied_by(&other.version))
            || other.provides.iter().any(|provided| {
                provided.name == relation.name && provides_version_matches(provided, relation)
            })
    };
    let conflicts = owner.conflicts.iter().find(|relation| matches(relation));
    let breaks = owner.breaks.iter().find(|relation| matches(relation));
    conflicts
        .map(|relation| ("Conflicts", relation))
        .or_else(|| breaks.map(|relation| ("Breaks", relation)))
}
