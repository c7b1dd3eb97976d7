//! The marking behind [`resolve`](super::resolve): a depth-first walk that
//! selects a package, then meets its relations one by one, each the
//! moment it is reached, and undoes a package's whole attempt when one of
//! them cannot be met. See the module documentation of
//! [`resolve`](super) for the rules it follows.
//!
//! Every change to the selection goes on a trail (names in the order
//! selected, failures in the order found, skipped relations, provider
//! choices), so an attempt is undone by cutting the trail back to a
//! [`Checkpoint`]; trial selections of pure-virtual providers use the same
//! mechanism to count what each one would add.

use super::universe::{Universe, conflicting_relation};
use super::{
    INSTALL_TIME_PACKAGES, ProviderChoice, ProviderOption, Reason, Request, ResolveError,
    SkipReason, SkippedDependency,
};
use crate::debian::package::{Alternatives, Package, Relation, display_alternatives};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

/// Why a relation cannot be met: the fields of
/// [`ResolveError::Unsatisfiable`].
#[derive(Clone, Debug)]
pub(super) struct Unmet {
    relation: String,
    chain: Vec<String>,
    candidates: String,
}

impl From<Unmet> for ResolveError {
    fn from(unmet: Unmet) -> Self {
        ResolveError::Unsatisfiable {
            relation: unmet.relation,
            chain: unmet.chain,
            candidates: unmet.candidates,
        }
    }
}

/// Lengths of the trail, to cut it back to.
#[derive(Clone, Copy)]
struct Checkpoint {
    selected: usize,
    failed: usize,
    skipped: usize,
    choices: usize,
}

pub(super) struct Marker<'a> {
    pub(super) universe: &'a Universe,
    pub(super) excluded: HashSet<&'a str>,
    install_time: bool,
    /// Selected package index by name, and why.
    pub(super) selected: HashMap<String, (usize, Reason)>,
    /// The selected names, in the order selected.
    selected_order: Vec<String>,
    /// Packages found not installable (a relation of theirs cannot be met
    /// in the selection they were tried in); never tried again, as apt
    /// discards such a candidate.
    failed: HashSet<usize>,
    failed_order: Vec<usize>,
    pub(super) skipped: Vec<SkippedDependency>,
    pub(super) choices: Vec<ProviderChoice>,
    /// The packages whose relations are being met, outermost first.
    stack: Vec<usize>,
}

impl<'a> Marker<'a> {
    pub(super) fn new(universe: &'a Universe, request: &'a Request) -> Self {
        Marker {
            universe,
            excluded: request.exclude.iter().map(String::as_str).collect(),
            install_time: request.install_time_dependencies,
            selected: HashMap::new(),
            selected_order: Vec::new(),
            failed: HashSet::new(),
            failed_order: Vec::new(),
            skipped: Vec::new(),
            choices: Vec::new(),
            stack: Vec::new(),
        }
    }

    /// Selects package `index` without meeting its relations.
    pub(super) fn select(&mut self, index: usize, reason: Reason) {
        let name = self.universe.packages[index].name.clone();
        self.selected.insert(name.clone(), (index, reason));
        self.selected_order.push(name);
    }

    pub(super) fn is_selected(&self, index: usize) -> bool {
        let name = &self.universe.packages[index].name;
        self.selected
            .get(name)
            .is_some_and(|(selected, _)| *selected == index)
    }

    /// Whether the name of package `index` is taken by another version.
    pub(super) fn name_taken(&self, index: usize) -> bool {
        let name = &self.universe.packages[index].name;
        self.selected
            .get(name)
            .is_some_and(|(selected, _)| *selected != index)
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            selected: self.selected_order.len(),
            failed: self.failed_order.len(),
            skipped: self.skipped.len(),
            choices: self.choices.len(),
        }
    }

    fn restore(&mut self, checkpoint: Checkpoint) {
        for name in self.selected_order.drain(checkpoint.selected..) {
            self.selected.remove(&name);
        }
        for index in self.failed_order.drain(checkpoint.failed..) {
            self.failed.remove(&index);
        }
        self.skipped.truncate(checkpoint.skipped);
        self.choices.truncate(checkpoint.choices);
    }

    fn fail(&mut self, index: usize) {
        if self.failed.insert(index) {
            self.failed_order.push(index);
        }
    }

    /// Selects package `index` and meets its relations, depth first; on
    /// failure everything the attempt selected is undone and the package is
    /// remembered as not installable.
    fn mark(&mut self, index: usize, reason: Reason) -> Result<(), Unmet> {
        if self.is_selected(index) {
            return Ok(());
        }
        if let Some(unmet) = self.impossible_relation(index) {
            self.fail(index);
            return Err(unmet);
        }
        let checkpoint = self.checkpoint();
        self.select(index, reason);
        if let Err(unmet) = self.meet_relations_of(index) {
            self.restore(checkpoint);
            self.fail(index);
            return Err(unmet);
        }
        Ok(())
    }

    /// Meets the `Pre-Depends`, then the `Depends` of the selected package
    /// `index`, in the order written.
    pub(super) fn meet_relations_of(&mut self, index: usize) -> Result<(), Unmet> {
        let universe = self.universe;
        let package = &universe.packages[index];
        self.stack.push(index);
        let mut result = Ok(());
        'fields: for (field, relations) in fields(package) {
            for alternatives in relations {
                result = self.meet(index, field, alternatives);
                if result.is_err() {
                    break 'fields;
                }
            }
        }
        self.stack.pop();
        result
    }

    /// Whether the relation is to be left out as install-time only.
    fn install_time_only(&self, alternatives: &[Relation]) -> bool {
        !self.install_time
            && alternatives
                .iter()
                .all(|relation| INSTALL_TIME_PACKAGES.contains(&relation.name.as_str()))
    }

    /// Meets one relation of the selected package `parent`: nothing to do
    /// when a selected package satisfies it; else the alternatives in
    /// order, each with its candidates in order, until one can be
    /// installed.
    fn meet(
        &mut self,
        parent: usize,
        field: &'static str,
        alternatives: &Alternatives,
    ) -> Result<(), Unmet> {
        let universe = self.universe;
        let parent_name = &universe.packages[parent].name;
        let skip = |reason| SkippedDependency {
            parent: parent_name.clone(),
            relation: display_alternatives(alternatives),
            field,
            reason,
        };
        if self.install_time_only(alternatives) {
            self.skipped.push(skip(SkipReason::InstallTimeOnly));
            return Ok(());
        }
        if self.satisfied(alternatives) {
            return Ok(());
        }
        let reason = Reason::Dependency {
            parent: parent_name.clone(),
            relation: display_alternatives(alternatives),
            field,
        };
        let mut excluded = Vec::new();
        let mut first_unmet = None;
        for relation in alternatives {
            let mut candidates = self.candidates(relation, &mut excluded);
            let mut choice = None;
            if candidates.len() > 1 && universe.is_pure_virtual(&relation.name) {
                let weighed = self.weigh_providers(&candidates, &reason);
                candidates = weighed.installable;
                if let Some(unmet) = weighed.first_unmet {
                    first_unmet.get_or_insert(unmet);
                }
                choice = Some(weighed.options);
            }
            for candidate in candidates {
                match self.mark(candidate, reason.clone()) {
                    Ok(()) => {
                        if let Some(providers) = choice {
                            self.choices.push(ProviderChoice {
                                reason,
                                virtual_name: relation.name.clone(),
                                chosen: universe.packages[candidate].name.clone(),
                                providers,
                            });
                        }
                        return Ok(());
                    }
                    Err(unmet) => {
                        first_unmet.get_or_insert(unmet);
                    }
                }
            }
        }
        if !excluded.is_empty() {
            excluded.sort();
            excluded.dedup();
            self.skipped
                .push(skip(SkipReason::Excluded { packages: excluded }));
            return Ok(());
        }
        Err(first_unmet.unwrap_or_else(|| Unmet {
            relation: display_alternatives(alternatives),
            chain: self.stack_names(),
            candidates: self.candidates_text(alternatives),
        }))
    }

    /// Selects a provider of the pure-virtual name a request names: the
    /// lightest, as for a relation (with dependencies), else the first in
    /// apt's order. `None` when a selected package already provides it.
    pub(super) fn add_virtual_request(
        &mut self,
        name: &str,
        without_dependencies: bool,
    ) -> Result<Option<usize>, ResolveError> {
        let relation = Relation::new(name);
        if self.satisfied(std::slice::from_ref(&relation)) {
            return Ok(None);
        }
        let candidates = self.candidates(&relation, &mut Vec::new());
        let Some(first) = candidates.first().copied() else {
            return Err(self.unknown(name));
        };
        if without_dependencies || candidates.len() == 1 {
            self.select(first, Reason::Requested);
            return Ok(Some(first));
        }
        let weighed = self.weigh_providers(&candidates, &Reason::Requested);
        let Some(chosen) = weighed.installable.first().copied() else {
            return Err(weighed
                .first_unmet
                .expect("a provider that cannot be installed says why")
                .into());
        };
        self.mark(chosen, Reason::Requested)?;
        self.choices.push(ProviderChoice {
            reason: Reason::Requested,
            virtual_name: name.to_owned(),
            chosen: self.universe.packages[chosen].name.clone(),
            providers: weighed.options,
        });
        Ok(Some(chosen))
    }

    /// Whether a selected package satisfies one of the alternatives,
    /// itself or by what it provides.
    fn satisfied(&self, alternatives: &[Relation]) -> bool {
        let universe = self.universe;
        alternatives.iter().any(|relation| {
            self.selected.get(&relation.name).is_some_and(|(index, _)| {
                universe.satisfies_directly(&universe.packages[*index], relation)
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
        })
    }

    /// The packages that could meet `relation` now, in the order to try
    /// them: the package of that name (highest satisfying version first),
    /// then its providers by [`provider_order`]. Excluded names are added to
    /// `excluded`; packages found not installable, taken at another
    /// version or conflicting with the selection are passed over.
    pub(super) fn candidates(&self, relation: &Relation, excluded: &mut Vec<String>) -> Vec<usize> {
        let universe = self.universe;
        let mut real = Vec::new();
        for index in universe.indices(&relation.name).iter().copied() {
            if universe.satisfies_directly(&universe.packages[index], relation) {
                real.push(index);
            }
        }
        let mut provided: Vec<usize> = universe
            .provider_indices(&relation.name)
            .iter()
            .filter(|(index, provide)| {
                let package = &universe.packages[*index];
                universe.satisfies_by_provides(package, &package.provides[*provide], relation)
            })
            .map(|(index, _)| *index)
            .filter(|index| !real.contains(index))
            .collect();
        provided.sort_by(|left, right| {
            provider_order(&universe.packages[*left], &universe.packages[*right])
        });
        provided.dedup();
        let mut usable = Vec::new();
        for index in real.into_iter().chain(provided) {
            let name = &universe.packages[index].name;
            if self.excluded.contains(name.as_str()) {
                excluded.push(name.clone());
            } else if !self.failed.contains(&index)
                && !self.name_taken(index)
                && !self.conflicts_with_selection(index)
            {
                usable.push(index);
            }
        }
        usable
    }

    /// Tries each provider of a pure-virtual name on its own and undoes
    /// it, counting the packages it adds (itself included). The installable
    /// ones come back lightest first, ties in their given order.
    fn weigh_providers(&mut self, candidates: &[usize], reason: &Reason) -> Weighed {
        let mut weights = Vec::new();
        let mut first_unmet = None;
        for (position, candidate) in candidates.iter().copied().enumerate() {
            let checkpoint = self.checkpoint();
            let result = self.mark(candidate, reason.clone());
            let added = self.selected_order.len() - checkpoint.selected;
            self.restore(checkpoint);
            match result {
                Ok(()) => weights.push((Some(added), position, candidate)),
                Err(unmet) => {
                    // The selection is as it was, so it fails again.
                    self.fail(candidate);
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
    fn impossible_relation(&self, index: usize) -> Option<Unmet> {
        let universe = self.universe;
        let package = &universe.packages[index];
        for (_, relations) in fields(package) {
            for alternatives in relations {
                if self.install_time_only(alternatives) || self.satisfied(alternatives) {
                    continue;
                }
                let possible = alternatives.iter().any(|relation| {
                    let real = universe
                        .indices(&relation.name)
                        .iter()
                        .copied()
                        .filter(|i| universe.satisfies_directly(&universe.packages[*i], relation));
                    let provided = universe
                        .provider_indices(&relation.name)
                        .iter()
                        .filter(|(i, provide)| {
                            let provider = &universe.packages[*i];
                            universe.satisfies_by_provides(
                                provider,
                                &provider.provides[*provide],
                                relation,
                            )
                        })
                        .map(|(i, _)| *i);
                    real.chain(provided).any(|candidate| {
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

    /// Whether package `index` conflicts with a selected package, either way.
    pub(super) fn conflicts_with_selection(&self, index: usize) -> bool {
        let universe = self.universe;
        let candidate = &universe.packages[index];
        let conflicts_with = |other: usize| {
            let other = &universe.packages[other];
            conflicting_relation(candidate, other).is_some()
                || conflicting_relation(other, candidate).is_some()
        };
        let named = candidate.conflicts.iter().chain(&candidate.breaks);
        for relation in named {
            if let Some((other, _)) = self.selected.get(&relation.name)
                && conflicts_with(*other)
            {
                return true;
            }
            for (other, _) in universe.provider_indices(&relation.name) {
                if self.is_selected(*other) && conflicts_with(*other) {
                    return true;
                }
            }
        }
        let own_names = std::iter::once(&candidate.name)
            .chain(candidate.provides.iter().map(|provided| &provided.name));
        for name in own_names {
            for owner in universe.negative_owners(name) {
                if self.is_selected(*owner) && conflicts_with(*owner) {
                    return true;
                }
            }
        }
        false
    }

    fn stack_names(&self) -> Vec<String> {
        self.stack
            .iter()
            .map(|index| self.universe.packages[*index].name.clone())
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
                    } else if self.conflicts_with_selection(index) {
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

/// The trial selections of a pure virtual's providers.
struct Weighed {
    /// Lightest first.
    installable: Vec<usize>,
    /// Every provider tried, lightest first, the not installable last.
    options: Vec<ProviderOption>,
    first_unmet: Option<Unmet>,
}

/// The relation fields a package needs met, in the order apt meets them.
fn fields(package: &Package) -> [(&'static str, &Vec<Alternatives>); 2] {
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
