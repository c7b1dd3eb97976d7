//! How the marking picks among the packages that could meet a relation:
//! which candidates are usable now and in what order apt would try them,
//! the weighing of pure-virtual providers, apt's check that a package's
//! relations can be met at all before it is marked, the conflict rules,
//! and the texts of "cannot satisfy" errors.

use super::marker::{Marker, Unmet};
use super::universe::conflicting_relation;
use super::{ProviderOption, Reason};
use crate::debian::package::{Alternatives, Package, Relation, display_alternatives};
use std::cmp::Ordering;

/// The trial selections of a pure virtual's providers.
pub(super) struct Weighed {
    /// Lightest first.
    pub(super) installable: Vec<usize>,
    /// Every provider tried, lightest first, the not installable last.
    pub(super) options: Vec<ProviderOption>,
    pub(super) first_unmet: Option<Unmet>,
}

impl Marker<'_> {
    /// Whether a selected package satisfies one of the alternatives,
    /// itself or by what it provides.
    pub(super) fn satisfied(&self, alternatives: &[Relation]) -> bool {
        let universe = self.universe;
        alternatives.iter().any(|relation| {
            self.selected.get(&relation.name).is_some_and(|(index, _)| {
                universe.satisfies_directly(&universe.packages[*index], relation)
            }) || self
                .providers_satisfying(relation)
                .any(|index| self.is_selected(index))
        })
    }

    /// Packages that satisfy `relation` by what they provide.
    fn providers_satisfying<'r>(&self, relation: &'r Relation) -> impl Iterator<Item = usize> + 'r
    where
        Self: 'r,
    {
        let universe = self.universe;
        universe
            .provider_indices(&relation.name)
            .iter()
            .filter(move |(index, provide)| {
                let package = &universe.packages[*index];
                universe.satisfies_by_provides(package, &package.provides[*provide], relation)
            })
            .map(|(index, _)| *index)
    }

    /// Every package that satisfies `relation`: the package of that name
    /// (highest satisfying version first), then its providers in
    /// [`provider_order`].
    fn satisfying(&self, relation: &Relation) -> Vec<usize> {
        let universe = self.universe;
        let mut found: Vec<usize> = universe
            .indices(&relation.name)
            .iter()
            .copied()
            .filter(|index| universe.satisfies_directly(&universe.packages[*index], relation))
            .collect();
        let mut provided: Vec<usize> = self
            .providers_satisfying(relation)
            .filter(|index| !found.contains(index))
            .collect();
        provided.sort_by(|left, right| {
            provider_order(&universe.packages[*left], &universe.packages[*right])
        });
        provided.dedup();
        found.extend(provided);
        found
    }

    /// The packages that could meet `relation` now, in the order to try
    /// them (see [`Marker::satisfying`]). Excluded names are added to
    /// `excluded`; packages found not installable, taken at another
    /// version or blocked by the selection are passed over.
    pub(super) fn candidates(&self, relation: &Relation, excluded: &mut Vec<String>) -> Vec<usize> {
        let mut usable = Vec::new();
        for index in self.satisfying(relation) {
            let name = &self.universe.packages[index].name;
            if self.excluded.contains(name.as_str()) {
                excluded.push(name.clone());
            } else if !self.failed.contains(&index)
                && !self.name_taken(index)
                && !self.blocked_by_selection(index)
            {
                usable.push(index);
            }
        }
        usable
    }

    /// The one package that could meet the relation, if there is exactly
    /// one (excluded and not installable packages aside).
    pub(super) fn sole_solution(&self, alternatives: &[Relation]) -> Option<usize> {
        let mut solutions: Vec<usize> = alternatives
            .iter()
            .flat_map(|relation| self.satisfying(relation))
            .filter(|index| {
                !self.failed.contains(index)
                    && !self
                        .excluded
                        .contains(self.universe.packages[*index].name.as_str())
            })
            .collect();
        solutions.sort_unstable();
        solutions.dedup();
        match solutions.as_slice() {
            [sole] => Some(*sole),
            _ => None,
        }
    }

    /// Tries each provider of a pure-virtual name on its own and undoes
    /// it, counting the packages it adds (itself included). The installable
    /// ones come back lightest first, ties in their given order.
    pub(super) fn weigh_providers(&mut self, candidates: &[usize], reason: &Reason) -> Weighed {
        let mut weights = Vec::new();
        let mut first_unmet = None;
        for (position, candidate) in candidates.iter().copied().enumerate() {
            let before = self.selected.len();
            let checkpoint = self.checkpoint();
            let result = self.mark(candidate, reason.clone());
            let added = self.selected.len().saturating_sub(before);
            self.restore(checkpoint);
            match result {
                Ok(()) => weights.push((Some(added), position, candidate)),
                Err(unmet) => {
                    first_unmet.get_or_insert(unmet);
                    weights.push((None, position, candidate));
                }
            }
        }
        weights.sort_by_key(|(added, position, _)| (added.is_none(), *added, *position));
        let packages = &self.universe.packages;
        Weighed {
            installable: weights
                .iter()
                .filter(|(added, _, _)| added.is_some())
                .map(|(_, _, candidate)| *candidate)
                .collect(),
            options: weights
                .iter()
                .map(|(added, _, candidate)| ProviderOption {
                    name: packages[*candidate].name.clone(),
                    version: packages[*candidate].version.to_string(),
                    added: *added,
                })
                .collect(),
            first_unmet,
        }
    }

    /// The first relation of package `index` that nothing selected meets
    /// and no candidate could (apt's check before it marks a package):
    /// such a package fails without selecting anything.
    pub(super) fn impossible_relation(&self, index: usize) -> Option<Unmet> {
        let universe = self.universe;
        let package = &universe.packages[index];
        for (_, relations) in fields(package) {
            for alternatives in relations {
                if self.install_time_only(alternatives) || self.satisfied(alternatives) {
                    continue;
                }
                let possible = alternatives.iter().any(|relation| {
                    self.satisfying(relation).into_iter().any(|candidate| {
                        self.excluded
                            .contains(universe.packages[candidate].name.as_str())
                            || (!self.failed.contains(&candidate) && !self.name_taken(candidate))
                    })
                });
                if !possible {
                    let mut chain = self.stack_names();
                    chain.push(package.name.clone());
                    return Some(Unmet {
                        relation: display_alternatives(alternatives),
                        chain,
                        candidates: self.candidates_text(alternatives),
                    });
                }
            }
        }
        None
    }

    /// The selected packages that conflict with package `index`, either
    /// way, each with whether `index`'s own `Conflicts`/`Breaks` name it.
    fn conflicting_selection(&self, index: usize) -> Vec<(usize, bool)> {
        let universe = self.universe;
        let candidate = &universe.packages[index];
        let mut found: Vec<(usize, bool)> = Vec::new();
        let mut note = |other: usize, own: bool| match found.iter_mut().find(|(o, _)| *o == other) {
            Some(entry) => entry.1 |= own,
            None => found.push((other, own)),
        };
        for relation in candidate.conflicts.iter().chain(&candidate.breaks) {
            let named = self.selected.get(&relation.name).map(|(other, _)| *other);
            let providers = universe
                .provider_indices(&relation.name)
                .iter()
                .map(|(other, _)| *other)
                .filter(|other| self.is_selected(*other));
            for other in named.into_iter().chain(providers) {
                if conflicting_relation(candidate, &universe.packages[other]).is_some() {
                    note(other, true);
                }
            }
        }
        let own_names = std::iter::once(&candidate.name)
            .chain(candidate.provides.iter().map(|provided| &provided.name));
        for name in own_names {
            for owner in universe.negative_owners(name) {
                if self.is_selected(*owner)
                    && conflicting_relation(&universe.packages[*owner], candidate).is_some()
                {
                    note(*owner, false);
                }
            }
        }
        found
    }

    /// Whether the selection keeps package `index` out: a selected package
    /// conflicts with it that its own `Conflicts`/`Breaks` do not name
    /// (apt would leave that one broken), or that is protected.
    pub(super) fn blocked_by_selection(&self, index: usize) -> bool {
        self.conflicting_selection(index)
            .into_iter()
            .any(|(other, own)| !own || self.is_protected(other))
    }

    /// The selected packages package `index` displaces when it is marked:
    /// those its own `Conflicts`/`Breaks` name (apt unmarks them).
    pub(super) fn displaced_by(&self, index: usize) -> Vec<String> {
        self.conflicting_selection(index)
            .into_iter()
            .filter(|(_, own)| *own)
            .map(|(other, _)| self.universe.packages[other].name.clone())
            .collect()
    }

    /// What exists for the names in `alternatives`, for error messages.
    pub(super) fn candidates_text(&self, alternatives: &[Relation]) -> String {
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
                } else if universe.satisfies_directly(package, relation) {
                    if self.failed.contains(&index) {
                        text.push_str(" (cannot be installed)");
                    } else if self.blocked_by_selection(index) {
                        text.push_str(" (conflicts with a selected package)");
                    }
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
}

/// The relation fields a package needs met, in the order apt meets them.
pub(super) fn fields(package: &Package) -> [(&'static str, &Vec<Alternatives>); 2] {
    [
        ("Pre-Depends", &package.pre_depends),
        ("Depends", &package.depends),
    ]
}

/// The order apt tries the providers of one name in, short of what only
/// an installed system has: `Essential: yes` first, then by priority, then
/// (where apt falls back to its cache's internal order) by name, then
/// highest version.
pub(super) fn provider_order(left: &Package, right: &Package) -> Ordering {
    right
        .essential
        .cmp(&left.essential)
        .then_with(|| priority_rank(left).cmp(&priority_rank(right)))
        .then_with(|| left.name.cmp(&right.name))
        .then_with(|| right.version.cmp(&left.version))
}

/// apt's ranks: no `Priority` field < required < important < standard <
/// optional < extra (and any unknown word).
fn priority_rank(package: &Package) -> u8 {
    match package.priority.as_deref() {
        None => 0,
        Some("required") => 1,
        Some("important") => 2,
        Some("standard") => 3,
        Some("optional") => 4,
        Some(_) => 5,
    }
}
