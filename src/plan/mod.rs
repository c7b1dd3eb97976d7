//! The plan of a build: a DAG of nodes, each with a key, built once per
//! invocation before any work is done, and serialisable.
//!
//! Every node ([`node::Node`]) says what it makes (its [`NodeKind`] and
//! [`node::Detail`]), the key its output is cached under ([`key`]), the
//! nodes it is made from, who provides it, what it costs, the platforms it
//! concerns, and where the plan gets it from ([`node::NodeSource`]: the
//! local cache, a remote cache ([`remote`]), upstream, or a build). `plan`
//! prints it, refusals (`--max-builds`, `--allow-toolchain-build`,
//! `--require-hits` ([`hits`])) read it, and realize walks it. A node's
//! inputs come before it, so walking the nodes in order walks the DAG.
//!
//! [`builder::PlanBuilder`] assembles a plan from nodes and decides each
//! one's source and whether realizing needs it at all; what goes into the
//! nodes is the pipeline's business (`pipeline::planner`).

pub mod builder;
pub mod explain;
pub mod hits;
pub mod key;
pub mod node;
pub mod remote;

pub use builder::{Availability, NewNode, PlanBuilder};
pub use hits::{MissingHit, RequireHits};
pub use key::{KEY_FORMAT, KeyBuilder};
pub use node::{
    CacheLocation, Cost, Detail, LayerContents, Nearest, Node, NodeId, NodeRef, NodeSource,
    Provider, Purpose,
};
pub use remote::{NoRemote, RemoteStatus};

use crate::hash::Sha256Digest;
use serde::{Deserialize, Serialize};

/// Version of the plan's serialised form.
pub const PLAN_FORMAT: &str = "xbuild-plan-v2";

/// What kind of thing a node produces.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A signed index (InRelease, Packages).
    Index,
    /// A Debian package file.
    Deb,
    /// A build's sources: a Debian source package or a tarball, unpacked.
    Source,
    /// Compiler programs for a (build, target) pair, or a Rust target's
    /// standard library.
    Toolchain,
    /// A target sysroot: C library and `-dev` packages.
    Sysroot,
    /// Compiler programs and a sysroot joined: what a build runs.
    Compiler,
    /// A build of the user's code for one target.
    Build,
    /// A compressed image layer.
    Layer,
    /// An image (config + manifest) for one target.
    Image,
}

impl NodeKind {
    pub fn label(self) -> &'static str {
        match self {
            NodeKind::Index => "index",
            NodeKind::Deb => "deb",
            NodeKind::Source => "source",
            NodeKind::Toolchain => "toolchain",
            NodeKind::Sysroot => "sysroot",
            NodeKind::Compiler => "compiler",
            NodeKind::Build => "build",
            NodeKind::Layer => "layer",
            NodeKind::Image => "image",
        }
    }
}

/// One target's image in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedImage {
    pub target: String,
    /// `x86_64-linux → aarch64-linux`.
    pub pair: String,
    pub image: NodeId,
}

/// A build's plan: see the module doc.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_FORMAT`].
    pub format: String,
    /// The machine the plan is for.
    pub build_platform: String,
    /// The package sources, in order: a `.deb` node's package names its
    /// source by position (`origin.source`).
    pub sources: Vec<SourceSummary>,
    /// What a user should know about the sources (a stable suite without
    /// its `-security` source, a source not read for an architecture).
    pub notes: Vec<String>,
    /// Per target, in the order given.
    pub images: Vec<PlannedImage>,
    /// In topological order: every node's inputs come before it.
    pub nodes: Vec<Node>,
}

/// A package source of a plan, as reports show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSummary {
    /// Its position in the list: what a package's `origin.source` names.
    pub id: usize,
    /// The archive root, credentials redacted.
    pub url: String,
    pub suite: String,
    pub components: Vec<String>,
    /// `image` (the image's packages), `toolchain` (compiler programs).
    pub used_for: Vec<String>,
    /// `NotAutomatic: yes`: packages only when asked for by name.
    pub only_when_asked: bool,
    /// The signed Release's `Date`.
    pub date: Option<String>,
}

impl SourceSummary {
    /// `http://…/debian bookworm-security (main) for image`.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} {} ({}) for {}",
            self.url,
            self.suite,
            self.components.join(", "),
            self.used_for.join(" and ")
        );
        if self.only_when_asked {
            text.push_str(", only packages asked for by name (NotAutomatic)");
        }
        text
    }
}

/// How many needed nodes come from each source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCounts {
    pub local: usize,
    pub remote: usize,
    pub upstream: usize,
    pub build: usize,
}

impl Plan {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    /// The node of `kind` with `key`, if the plan has one.
    pub fn find(&self, kind: NodeKind, key: &Sha256Digest) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|node| node.kind == kind && node.key == *key)
    }

    /// The nodes `node` is made from, in its input order.
    pub fn inputs<'a>(&'a self, node: &'a Node) -> impl Iterator<Item = &'a Node> + 'a {
        node.inputs.iter().map(|id| self.node(*id))
    }

    /// The nodes realizing the plan touches, in order.
    pub fn needed(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|node| node.needed)
    }

    /// The needed nodes of one kind, in order.
    pub fn needed_of(&self, kind: NodeKind) -> impl Iterator<Item = &Node> {
        self.needed().filter(move |node| node.kind == kind)
    }

    /// Needed nodes by source (indices included: they were fetched while
    /// planning).
    pub fn counts(&self) -> SourceCounts {
        let mut counts = SourceCounts::default();
        for node in self.needed() {
            match node.source {
                NodeSource::Local => counts.local += 1,
                NodeSource::Remote => counts.remote += 1,
                NodeSource::Upstream => counts.upstream += 1,
                NodeSource::Build => counts.build += 1,
            }
        }
        counts
    }

    /// Bytes the needed nodes download from upstream.
    pub fn download_bytes(&self) -> u64 {
        self.needed()
            .filter(|node| node.kind != NodeKind::Index)
            .map(|node| node.cost.download_bytes)
            .sum()
    }

    /// The toolchains built from source this plan would build: what
    /// `--allow-toolchain-build` guards.
    pub fn toolchain_builds(&self) -> impl Iterator<Item = &Node> {
        self.needed_of(NodeKind::Toolchain).filter(|node| {
            node.provider == Provider::GccFromSource && node.source == NodeSource::Build
        })
    }

    /// What `--max-builds` counts: toolchains built from source and builds
    /// of the user's code that would run.
    pub fn counted_builds(&self) -> Vec<&Node> {
        self.toolchain_builds()
            .chain(
                self.needed_of(NodeKind::Build)
                    .filter(|node| node.source == NodeSource::Build),
            )
            .collect()
    }

    /// The plan as JSON (what `plan --json` prints of it).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plan serialises")
    }
}
