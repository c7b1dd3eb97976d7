//! What xbuild tells people and scripts: the report of `plan` ([`plan`]:
//! the plan, with views of its packages and builds) and of `build`
//! ([`build`]: every node with its outcome — local or remote hit,
//! downloaded, built — bytes and time, per-target packages and layers,
//! time per phase, and a summary). Realize records each node's outcome in
//! [`Outcomes`]; the build report reads them against the plan. Serialised
//! as JSON for machines and rendered as text for people.

pub mod build;
mod outcomes;
pub mod plan;

pub use build::{
    BuildReport, LayerReport, PackageReport, Phases, SlimReport, SourceBytes, Summary, TargetReport,
};
pub use outcomes::{NodeOutcome, Outcomes};
pub use plan::{PlanReport, PlannedBuildReport, PlannedPackage, PlannedTarget, ToolchainPackage};

use crate::hash::Sha256Digest;
use crate::plan::NodeKind;
use serde::Serialize;

/// How a node was satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Hit in the local cache.
    Local,
    /// Hit in a shared (remote) cache.
    Remote,
    /// Fetched from upstream (the Debian archive).
    Downloaded,
    /// Produced here (compressed, compiled).
    Built,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Local => "cached",
            Outcome::Remote => "remote cache",
            Outcome::Downloaded => "downloaded",
            Outcome::Built => "built",
        }
    }

    /// Whether a cache (local or remote) had it.
    pub fn is_hit(self) -> bool {
        matches!(self, Outcome::Local | Outcome::Remote)
    }
}

impl From<crate::cache::BlobOrigin> for Outcome {
    fn from(origin: crate::cache::BlobOrigin) -> Outcome {
        match origin {
            crate::cache::BlobOrigin::Local => Outcome::Local,
            crate::cache::BlobOrigin::Downloaded => Outcome::Downloaded,
        }
    }
}

/// One node of the plan, as realizing it went.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub kind: NodeKind,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Its key in the plan.
    pub key: Sha256Digest,
    pub outcome: Outcome,
    /// Bytes moved: downloaded (upstream), fetched (remote), written
    /// (built), or read from the local cache (a hit, where its size is
    /// known).
    pub bytes: u64,
    pub seconds: f64,
    /// For a cache hit: how long producing it took when it was built.
    #[serde(skip_serializing_if = "is_zero")]
    pub saved_seconds: f64,
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

/// `12.3 MB`-style sizes (powers of 1000, like most download tools).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_uses_decimal_units() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(15_100_000), "15.1 MB");
    }
}
