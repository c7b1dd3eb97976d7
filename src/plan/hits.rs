//! `--require-hits`: before any work, the needed nodes a plan would build
//! (and, with `--require-hits=all`, download upstream), each with the
//! first of its inputs that differs from the nearest cached entry.
//!
//! Indices are not counted: planning needs them, and they are fetched
//! (or revalidated) before there is a plan to check.

use super::explain::Difference;
use super::node::{CacheLocation, NodeSource};
use super::{NodeKind, Plan};
use serde::Serialize;

/// What `--require-hits` requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequireHits {
    /// `--require-hits`: nothing is built; downloads are allowed.
    Builds,
    /// `--require-hits=all`: nothing is built or downloaded upstream.
    All,
}

/// A node that is not a hit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissingHit {
    pub kind: NodeKind,
    pub name: String,
    pub target: Option<String>,
    /// `build` or `upstream`.
    pub source: NodeSource,
    /// The first input that differs from the nearest cached entry of the
    /// same name, and which cache holds that entry (`None`: no entry of
    /// the name to compare with).
    pub first_difference: Option<(CacheLocation, Difference)>,
}

impl std::fmt::Display for MissingHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let action = match self.source {
            NodeSource::Upstream => "would be downloaded",
            _ => "would be built",
        };
        let name = super::node::describe(self.kind, &self.name, self.target.as_deref());
        write!(f, "{name}: {action}")?;
        match &self.first_difference {
            Some((cache, difference)) => {
                let cache = match cache {
                    CacheLocation::Local => "local",
                    CacheLocation::Remote => "remote",
                };
                write!(
                    f,
                    "; differs from the nearest {cache} entry in {difference}"
                )
            }
            None => match self.kind {
                NodeKind::Build => write!(f, "; no build of this name in the cache"),
                // Derived: built because something it is made of is.
                NodeKind::Image | NodeKind::Compiler => write!(f, "; made of nodes that miss"),
                _ => write!(f, "; not in the cache"),
            },
        }
    }
}

impl Plan {
    /// The needed nodes `require` refuses, in plan order (see the module
    /// doc).
    pub fn missing_hits(&self, require: RequireHits) -> Vec<MissingHit> {
        self.needed()
            .filter(|node| node.kind != NodeKind::Index)
            .filter(|node| match node.source {
                NodeSource::Build => true,
                NodeSource::Upstream => require == RequireHits::All,
                NodeSource::Local | NodeSource::Remote => false,
            })
            .map(|node| MissingHit {
                kind: node.kind,
                name: node.name.clone(),
                target: node.target.clone(),
                source: node.source,
                first_difference: node.nearest.as_ref().and_then(|nearest| {
                    nearest
                        .differences
                        .first()
                        .map(|difference| (nearest.cache, difference.clone()))
                }),
            })
            .collect()
    }
}
