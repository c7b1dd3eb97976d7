//! Where realize records what happened to each node, by the node's kind
//! and key (what the code making it knows it by), from any thread. The
//! build report is the plan's nodes that have an outcome, in plan order:
//! what this process did, not what it planned (a layer another process
//! built while this one waited for its lock is a local hit, and its
//! `.deb`s were never touched).

use super::{NodeReport, Outcome};
use crate::hash::Sha256Digest;
use crate::plan::{NodeKind, Plan};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// What happened to one node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeOutcome {
    pub outcome: Outcome,
    /// See [`NodeReport::bytes`].
    pub bytes: u64,
    pub seconds: f64,
    /// For a hit: the recorded duration of the build it stands for.
    pub saved_seconds: f64,
}

impl NodeOutcome {
    pub fn new(outcome: Outcome) -> NodeOutcome {
        NodeOutcome {
            outcome,
            bytes: 0,
            seconds: 0.0,
            saved_seconds: 0.0,
        }
    }

    pub fn with_bytes(mut self, bytes: u64) -> NodeOutcome {
        self.bytes = bytes;
        self
    }

    pub fn with_seconds(mut self, seconds: f64) -> NodeOutcome {
        self.seconds = seconds;
        self
    }

    pub fn with_saved_seconds(mut self, seconds: f64) -> NodeOutcome {
        self.saved_seconds = seconds;
        self
    }
}

/// The outcomes of a plan's nodes, as realize records them.
#[derive(Debug, Default)]
pub struct Outcomes {
    recorded: Mutex<BTreeMap<(NodeKind, Sha256Digest), NodeOutcome>>,
}

impl Outcomes {
    pub fn new() -> Outcomes {
        Outcomes::default()
    }

    /// Records what happened to the node of `kind` with `key`. A node
    /// touched twice (a `.deb` two layers need) keeps the costlier
    /// outcome: downloaded once, then found local, is downloaded.
    pub fn record(&self, kind: NodeKind, key: &Sha256Digest, outcome: NodeOutcome) {
        let mut recorded = self.recorded.lock().unwrap();
        let entry = recorded.entry((kind, *key)).or_insert(outcome);
        if outcome.outcome > entry.outcome {
            *entry = outcome;
        }
    }

    /// What was recorded for the node of `kind` with `key`.
    pub fn get(&self, kind: NodeKind, key: &Sha256Digest) -> Option<NodeOutcome> {
        self.recorded.lock().unwrap().get(&(kind, *key)).copied()
    }

    /// The report's nodes: every node of `plan` with an outcome, in plan
    /// order.
    pub fn reports(&self, plan: &Plan) -> Vec<NodeReport> {
        let recorded = self.recorded.lock().unwrap();
        plan.nodes
            .iter()
            .filter_map(|node| {
                let outcome = recorded.get(&(node.kind, node.key))?;
                Some(NodeReport {
                    kind: node.kind,
                    name: node.name.clone(),
                    target: node.target.clone(),
                    key: node.key,
                    outcome: outcome.outcome,
                    bytes: outcome.bytes,
                    seconds: outcome.seconds,
                    saved_seconds: outcome.saved_seconds,
                })
            })
            .collect()
    }
}
