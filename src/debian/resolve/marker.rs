//! The marking behind [`resolve`](super::resolve): a depth-first walk that
//! selects a package, then meets its relations one by one, each the
//! moment it is reached, and undoes a package's whole attempt when one of
//! them cannot be met. See the module documentation of
//! [`resolve`](super) for the rules it follows; `choose.rs` orders the
//! candidates of a relation and `settle.rs` finishes a selection.
//!
//! Every change to the selection goes on a trail (packages selected,
//! displaced, protected or found not installable), so an attempt is undone
//! by walking the trail back to a [`Checkpoint`]; trial selections of
//! pure-virtual providers use the same mechanism to count what each one
//! would add.

use super::universe::Universe;
use super::{
    INSTALL_TIME_PACKAGES, ProviderChoice, Reason, Request, ResolveError, SkipReason,
    SkippedDependency,
};
use crate::debian::package::{Alternatives, Relation, display_alternatives};
use std::collections::{HashMap, HashSet};

/// Why a relation cannot be met: the fields of
/// [`ResolveError::Unsatisfiable`].
#[derive(Clone, Debug)]
pub(super) struct Unmet {
    pub(super) relation: String,
    pub(super) chain: Vec<String>,
    pub(super) candidates: String,
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

/// One change to the selection, as the trail records it.
enum Change {
    Selected(String),
    /// Displaced by a package whose `Conflicts`/`Breaks` name it.
    Unselected {
        name: String,
        index: usize,
        reason: Reason,
    },
    Failed(usize),
    Protected(usize),
}

/// Lengths of the trail and of the append-only records, to go back to.
#[derive(Clone, Copy)]
pub(super) struct Checkpoint {
    trail: usize,
    skipped: usize,
    choices: usize,
}

pub(super) struct Marker<'a> {
    pub(super) universe: &'a Universe,
    pub(super) excluded: HashSet<&'a str>,
    install_time: bool,
    /// Selected package index by name, and why.
    pub(super) selected: HashMap<String, (usize, Reason)>,
    /// The requested packages, in request order.
    pub(super) requested: Vec<usize>,
    /// Packages found not installable (a relation of theirs cannot be met
    /// in the selection they were tried in); never tried again, as apt
    /// discards such a candidate.
    pub(super) failed: HashSet<usize>,
    /// Packages a later one may not displace: the requested ones and, as
    /// apt propagates it, the only possible solution of a relation of a
    /// protected package.
    protected: HashSet<usize>,
    trail: Vec<Change>,
    pub(super) skipped: Vec<SkippedDependency>,
    pub(super) choices: Vec<ProviderChoice>,
    /// The packages whose relations are being met, outermost first.
    pub(super) stack: Vec<usize>,
}

impl<'a> Marker<'a> {
    pub(super) fn new(universe: &'a Universe, request: &'a Request) -> Self {
        Marker {
            universe,
            excluded: request.exclude.iter().map(String::as_str).collect(),
            install_time: request.install_time_dependencies,
            selected: HashMap::new(),
            requested: Vec::new(),
            failed: HashSet::new(),
            protected: HashSet::new(),
            trail: Vec::new(),
            skipped: Vec::new(),
            choices: Vec::new(),
            stack: Vec::new(),
        }
    }

    /// Selects package `index` without meeting its relations.
    pub(super) fn select(&mut self, index: usize, reason: Reason) {
        let name = self.universe.packages[index].name.clone();
        self.selected.insert(name.clone(), (index, reason));
        self.trail.push(Change::Selected(name));
    }

    /// Selects a requested package, protected, without meeting its
    /// relations.
    pub(super) fn select_requested(&mut self, index: usize) {
        self.select(index, Reason::Requested);
        self.protect(index);
        self.requested.push(index);
    }

    fn unselect(&mut self, name: &str) {
        if let Some((index, reason)) = self.selected.remove(name) {
            self.trail.push(Change::Unselected {
                name: name.to_owned(),
                index,
                reason,
            });
        }
    }

    fn protect(&mut self, index: usize) -> bool {
        let new = self.protected.insert(index);
        if new {
            self.trail.push(Change::Protected(index));
        }
        new
    }

    fn fail(&mut self, index: usize) {
        if self.failed.insert(index) {
            self.trail.push(Change::Failed(index));
        }
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

    /// Whether a later package may not displace package `index`: it is
    /// protected, or its relations are being met.
    pub(super) fn is_protected(&self, index: usize) -> bool {
        self.protected.contains(&index) || self.stack.contains(&index)
    }

    pub(super) fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            trail: self.trail.len(),
            skipped: self.skipped.len(),
            choices: self.choices.len(),
        }
    }

    pub(super) fn restore(&mut self, checkpoint: Checkpoint) {
        while self.trail.len() > checkpoint.trail {
            match self.trail.pop().expect("the trail is longer") {
                Change::Selected(name) => {
                    self.selected.remove(&name);
                }
                Change::Unselected {
                    name,
                    index,
                    reason,
                } => {
                    self.selected.insert(name, (index, reason));
                }
                Change::Failed(index) => {
                    self.failed.remove(&index);
                }
                Change::Protected(index) => {
                    self.protected.remove(&index);
                }
            }
        }
        self.skipped.truncate(checkpoint.skipped);
        self.choices.truncate(checkpoint.choices);
    }

    /// Selects package `index` and meets its relations, depth first: the
    /// selected packages its own `Conflicts`/`Breaks` name are displaced
    /// first. On failure everything the attempt changed is undone and the
    /// package is remembered as not installable.
    pub(super) fn mark(&mut self, index: usize, reason: Reason) -> Result<(), Unmet> {
        if self.is_selected(index) {
            return Ok(());
        }
        if let Some(unmet) = self.impossible_relation(index) {
            self.fail(index);
            return Err(unmet);
        }
        let checkpoint = self.checkpoint();
        for name in self.displaced_by(index) {
            self.unselect(&name);
        }
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
        'fields: for (field, relations) in super::choose::fields(package) {
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
    pub(super) fn install_time_only(&self, alternatives: &[Relation]) -> bool {
        !self.install_time
            && alternatives
                .iter()
                .all(|relation| INSTALL_TIME_PACKAGES.contains(&relation.name.as_str()))
    }

    /// Meets one relation of the selected package `parent`: nothing to do
    /// when a selected package satisfies it; else the alternatives in
    /// order, each with its candidates in order, until one can be
    /// installed.
    pub(super) fn meet(
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
        // apt's protection spreads from a protected package to the only
        // possible solution of each of its relations.
        let sole = if self.protected.contains(&parent) {
            self.sole_solution(alternatives)
        } else {
            None
        };
        if self.satisfied(alternatives) {
            if let Some(sole) = sole
                && self.is_selected(sole)
            {
                self.spread_protection(sole);
            }
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
                let checkpoint = self.checkpoint();
                if sole == Some(candidate) {
                    self.protect(candidate);
                }
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
                        self.restore(checkpoint);
                        self.fail(candidate);
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

    /// Protects the selected package `index` and, through the relations
    /// with one possible solution, what it needs.
    fn spread_protection(&mut self, index: usize) {
        if !self.protect(index) {
            return;
        }
        let package = &self.universe.packages[index];
        for (_, relations) in super::choose::fields(package) {
            for alternatives in relations {
                if self.install_time_only(alternatives) {
                    continue;
                }
                if let Some(sole) = self.sole_solution(alternatives)
                    && self.is_selected(sole)
                {
                    self.spread_protection(sole);
                }
            }
        }
    }

    /// Selects (as requested, its relations not met yet) a provider of the
    /// pure-virtual name a request names: the lightest, as for a relation
    /// (with dependencies), else the first in apt's order. Nothing when a
    /// selected package already provides it.
    pub(super) fn add_virtual_request(
        &mut self,
        name: &str,
        without_dependencies: bool,
    ) -> Result<(), ResolveError> {
        let relation = Relation::new(name);
        if self.satisfied(std::slice::from_ref(&relation)) {
            return Ok(());
        }
        let candidates = self.candidates(&relation, &mut Vec::new());
        let Some(first) = candidates.first().copied() else {
            return Err(self.unknown(name));
        };
        if without_dependencies || candidates.len() == 1 {
            self.select_requested(first);
            return Ok(());
        }
        let weighed = self.weigh_providers(&candidates, &Reason::Requested);
        let Some(chosen) = weighed.installable.first().copied() else {
            return Err(weighed
                .first_unmet
                .expect("a provider that cannot be installed says why")
                .into());
        };
        self.select_requested(chosen);
        self.choices.push(ProviderChoice {
            reason: Reason::Requested,
            virtual_name: name.to_owned(),
            chosen: self.universe.packages[chosen].name.clone(),
            providers: weighed.options,
        });
        Ok(())
    }

    pub(super) fn stack_names(&self) -> Vec<String> {
        self.stack
            .iter()
            .map(|index| self.universe.packages[*index].name.clone())
            .collect()
    }
}
