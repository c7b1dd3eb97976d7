//! Finishing a selection the way apt finishes its marking. A package
//! marked late may have displaced one selected earlier (apt unmarks what a
//! new package's `Conflicts`/`Breaks` name): relations that leaves unmet
//! are met again, as apt's problem resolver repairs them, and packages
//! nothing requested needs any more are dropped, as apt's autoremover drops
//! new installs that are already garbage. Reasons, skipped relations and
//! provider choices that pointed at a dropped package follow.

use super::marker::{Marker, Unmet};
use super::{Reason, choose};
use crate::debian::package::display_alternatives;
use std::collections::{HashMap, HashSet, VecDeque};

impl Marker<'_> {
    /// Meets the relations of selected packages that are unmet, until none
    /// is (a bounded number of rounds: a package displaced in one can
    /// leave another relation unmet).
    pub(super) fn repair(&mut self) -> Result<(), Unmet> {
        let rounds = self.selected.len() + 16;
        for _ in 0..rounds {
            let Some((index, field, position)) = self.first_unmet_relation() else {
                return Ok(());
            };
            let universe = self.universe;
            let package = &universe.packages[index];
            let relations = match field {
                "Pre-Depends" => &package.pre_depends,
                _ => &package.depends,
            };
            self.stack.push(index);
            let result = self.meet(index, field, &relations[position]);
            self.stack.pop();
            result.map_err(|mut unmet| {
                let mut chain = self.chain(&package.name);
                chain.pop();
                chain.append(&mut unmet.chain);
                unmet.chain = chain;
                unmet
            })?;
        }
        match self.first_unmet_relation() {
            None => Ok(()),
            Some((index, field, position)) => {
                let package = &self.universe.packages[index];
                let alternatives = match field {
                    "Pre-Depends" => &package.pre_depends[position],
                    _ => &package.depends[position],
                };
                Err(Unmet {
                    relation: display_alternatives(alternatives),
                    chain: self.chain(&package.name),
                    candidates: self.candidates_text(alternatives),
                })
            }
        }
    }

    /// The first (by package name) relation of a selected package that no
    /// selected package meets and that was not left out on purpose.
    fn first_unmet_relation(&self) -> Option<(usize, &'static str, usize)> {
        let universe = self.universe;
        let mut selected: Vec<usize> = self.selected.values().map(|(index, _)| *index).collect();
        selected.sort_by(|left, right| {
            universe.packages[*left]
                .name
                .cmp(&universe.packages[*right].name)
        });
        for index in selected {
            let package = &universe.packages[index];
            for (field, relations) in choose::fields(package) {
                for (position, alternatives) in relations.iter().enumerate() {
                    if self.install_time_only(alternatives) || self.satisfied(alternatives) {
                        continue;
                    }
                    let text = display_alternatives(alternatives);
                    let left_out = self.skipped.iter().any(|skipped| {
                        skipped.parent == package.name
                            && skipped.field == field
                            && skipped.relation == text
                    });
                    if !left_out {
                        return Some((index, field, position));
                    }
                }
            }
        }
        None
    }

    /// Drops the selected packages the requested ones do not reach through
    /// relations met by selected packages; a package whose reason named a
    /// dropped parent gets the first relation that reaches it instead.
    pub(super) fn sweep(&mut self) {
        let universe = self.universe;
        let mut reached: HashSet<usize> = HashSet::new();
        let mut first_edge: HashMap<usize, Reason> = HashMap::new();
        let mut queue: VecDeque<usize> = VecDeque::new();
        for index in &self.requested {
            if self.is_selected(*index) && reached.insert(*index) {
                queue.push_back(*index);
            }
        }
        while let Some(index) = queue.pop_front() {
            let package = &universe.packages[index];
            for (field, relations) in choose::fields(package) {
                for alternatives in relations {
                    for relation in alternatives {
                        let named = self.selected.get(&relation.name).map(|(other, _)| *other);
                        let named = named.filter(|other| {
                            universe.satisfies_directly(&universe.packages[*other], relation)
                        });
                        let provided: Vec<usize> = universe
                            .provider_indices(&relation.name)
                            .iter()
                            .filter(|(other, provide)| {
                                let other_package = &universe.packages[*other];
                                self.is_selected(*other)
                                    && universe.satisfies_by_provides(
                                        other_package,
                                        &other_package.provides[*provide],
                                        relation,
                                    )
                            })
                            .map(|(other, _)| *other)
                            .collect();
                        for other in named.into_iter().chain(provided) {
                            if reached.insert(other) {
                                first_edge.insert(
                                    other,
                                    Reason::Dependency {
                                        parent: package.name.clone(),
                                        relation: display_alternatives(alternatives),
                                        field,
                                    },
                                );
                                queue.push_back(other);
                            }
                        }
                    }
                }
            }
        }
        self.selected
            .retain(|_, (index, _)| reached.contains(index));
        let kept: HashSet<String> = self.selected.keys().cloned().collect();
        for (index, reason) in self.selected.values_mut() {
            if let Reason::Dependency { parent, .. } = reason
                && !kept.contains(parent.as_str())
                && let Some(edge) = first_edge.get(index)
            {
                *reason = edge.clone();
            }
        }
        self.skipped
            .retain(|skipped| kept.contains(&skipped.parent));
        self.choices.retain(|choice| match &choice.reason {
            Reason::Requested => kept.contains(&choice.chosen),
            Reason::Dependency { parent, .. } => {
                kept.contains(parent) && kept.contains(&choice.chosen)
            }
        });
    }
}
